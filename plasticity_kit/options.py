"""Typed option schemas shared by every plugin, the spec validator and the estimators.

A plugin declares ``options = Schema(Option(...), ...)``; :meth:`Schema.validate` turns a
user mapping into a complete, typed parameter dict or raises :class:`SpecError` naming the key
and what was expected (``expected a number in [0, 1), got 'abc'``), with a did-you-mean for
unknown keys.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .errors import SpecError

_REQUIRED = object()


def describe(value: Any) -> str:
    """Show a user value in an error message the way they wrote it."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_key_error(key: str, name: str, known: Iterable[str]) -> SpecError:
    known = sorted(known)
    hint = did_you_mean(name, known)
    allowed = ", ".join(known) if known else "none"
    return SpecError(key, f"unknown key '{name}'{hint}; allowed keys: {allowed}")


@dataclass(frozen=True)
class Option:
    """One typed parameter.

    kind: ``number`` (float), ``integer``, ``bool``, ``string``, ``choice`` (one of ``choices``),
    ``numbers`` (list of floats), ``integers`` (list of ints), ``path`` (string naming a file) or
    ``any``.  ``low``/``high`` bound numbers; ``low_open``/``high_open`` exclude the bound.
    ``nullable`` lets ``null`` through (the default is then usually ``None``).
    """

    name: str
    kind: str
    default: Any = _REQUIRED
    doc: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    nullable: bool = False

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def expected(self) -> str:
        """Human description of what this option accepts."""
        if self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind in ("number", "integer"):
            noun = "a number" if self.kind == "number" else "an integer"
            text = noun + self._range_text()
        elif self.kind in ("numbers", "integers"):
            noun = "numbers" if self.kind == "numbers" else "integers"
            text = f"a list of {noun}" + self._range_text()
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "path":
            text = "a file path"
        elif self.kind == "string":
            text = "a string"
        else:
            text = "a value"
        return text + (" or null" if self.nullable else "")

    def _range_text(self) -> str:
        if self.low is None and self.high is None:
            return ""
        if self.low is not None and self.high is not None:
            lo = "(" if self.low_open else "["
            hi = ")" if self.high_open else "]"
            return f" in {lo}{_fmt(self.low)}, {_fmt(self.high)}{hi}"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {_fmt(self.low)}"
        return f" {'<' if self.high_open else '<='} {_fmt(self.high)}"

    def _in_range(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            return False
        return True

    def coerce(self, value: Any, key: str) -> Any:
        """Return the typed value or raise SpecError at ``key``."""
        if value is None:
            if self.nullable:
                return None
            raise SpecError(key, f"expected {self.expected()}, got null")
        fail = SpecError(key, f"expected {self.expected()}, got {describe(value)}")
        kind = self.kind
        if kind == "any":
            return value
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise fail
        if kind in ("string", "path"):
            if isinstance(value, str) and value:
                return value
            raise fail
        if kind == "choice":
            if value in self.choices:
                return value
            hint = did_you_mean(str(value), [str(c) for c in self.choices])
            raise SpecError(key, f"expected {self.expected()}, got {describe(value)}{hint}")
        if kind in ("number", "integer"):
            return self._scalar(value, fail)
        if kind in ("numbers", "integers"):
            if not isinstance(value, (list, tuple)):
                raise fail
            noun = "a number" if kind == "numbers" else "an integer"
            return [self._scalar(v, SpecError(f"{key}[{i}]", f"expected {noun}{self._range_text()}, got {describe(v)}"))
                    for i, v in enumerate(value)]
        raise ValueError(f"unknown option kind {kind!r}")

    def _scalar(self, value: Any, fail: SpecError):
        if isinstance(value, bool):
            raise fail
        if self.kind in ("integer", "integers"):
            if isinstance(value, int):
                out = value
            elif isinstance(value, float) and value.is_integer():
                out = int(value)
            else:
                raise fail
        else:
            if isinstance(value, (int, float)):
                out = float(value)
            elif isinstance(value, str):
                try:
                    out = float(value)  # YAML reads 1e-3 as a string
                except ValueError:
                    raise fail from None
            else:
                raise fail
            if not math.isfinite(out):
                raise fail
        if not self._in_range(out):
            raise fail
        return out


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True)
class Schema:
    """An ordered set of :class:`Option` plus optional cross-checks.

    ``checks`` are callables ``check(params) -> (key, message) | None`` run after each option has
    been validated on its own (e.g. ``k`` must not exceed ``n_neurons``).
    """

    options: tuple[Option, ...] = ()
    checks: tuple[Callable[[dict], tuple[str, str] | None], ...] = field(default=())

    def __init__(self, *options: Option, checks=()):
        object.__setattr__(self, "options", tuple(options))
        object.__setattr__(self, "checks", tuple(checks))

    def __iter__(self):
        return iter(self.options)

    def __contains__(self, name: str) -> bool:
        return any(o.name == name for o in self.options)

    def names(self) -> list[str]:
        return [o.name for o in self.options]

    def defaults(self) -> dict:
        return {o.name: o.default for o in self.options if not o.required}

    def validate(self, values: Mapping | None, key: str) -> dict:
        """Check ``values`` found at spec key ``key``; return every option, defaults filled."""
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise SpecError(key, f"expected a mapping of parameters, got {describe(values)}")
        by_name = {o.name: o for o in self.options}
        for name in values:
            if name not in by_name:
                raise unknown_key_error(f"{key}.{name}" if key else str(name), str(name), by_name)
        out = {}
        for opt in self.options:
            sub = f"{key}.{opt.name}" if key else opt.name
            if opt.name in values:
                out[opt.name] = opt.coerce(values[opt.name], sub)
            elif opt.required:
                raise SpecError(sub, f"missing; expected {opt.expected()}")
            else:
                out[opt.name] = opt.default
        for check in self.checks:
            problem = check(out)
            if problem:
                name, message = problem
                raise SpecError(f"{key}.{name}" if key else name, message)
        return out
