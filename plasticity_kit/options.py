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
INT_MAX = 2**31 - 1
"""Ceiling of every integer option that declares none: the sizes the compiled kernels index with C ints."""
SEED_MAX = 2**64 - 1
"""Largest seed: numpy's SeedSequence entropy is stored as an unsigned 64-bit integer in the run file."""
STRING_MAX = 4096
"""Longest string option (a path may be up to PATH_MAX = 4096 bytes)."""
NAME_MAX = 255
"""Longest file name, in bytes of UTF-8 (ext4, XFS, APFS, NTFS)."""
DESCRIBE_MAX = 60


def describe(value: Any) -> str:
    """Show a user value in an error message the way they wrote it (long values shortened)."""
    if isinstance(value, str):
        text = repr(value)
    elif value is None:
        return "null"
    elif isinstance(value, bool):
        return "true" if value else "false"
    elif isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {len(str(abs(value))) if value.bit_length() < 10_000 else 'thousands of'} digits"
    elif isinstance(value, (dict, list, tuple)):
        text = _short_repr(value)
    else:
        try:
            text = repr(value)
        except (ValueError, RecursionError):
            text = f"a {type(value).__name__}"
    return text if len(text) <= DESCRIBE_MAX else text[:DESCRIBE_MAX - 1] + "…"


def _short_repr(value, budget: int = DESCRIBE_MAX + 1) -> str:
    """repr-like text of a nested list/dict that stops after about ``budget`` characters (aliases
    let a small YAML file describe a huge structure, whose full repr would never finish)."""
    out: list[str] = []
    size = 0
    stack: list = []  # (iterator over children, is a mapping, closing bracket, first child still to come)

    def emit(text: str) -> None:
        nonlocal size
        out.append(text)
        size += len(text)

    def open_(item) -> bool:
        if isinstance(item, dict):
            emit("{")
            stack.append([iter(item.items()), True, "}", True])
            return True
        if isinstance(item, (list, tuple)):
            emit("[")
            stack.append([iter(item), False, "]", True])
            return True
        return False

    if not open_(value):
        return describe(value)
    while stack and size < budget:
        frame = stack[-1]
        try:
            item = next(frame[0])
        except StopIteration:
            stack.pop()
            emit(frame[2])
            continue
        if not frame[3]:
            emit(", ")
        frame[3] = False
        if frame[1]:
            key, item = item
            emit(f"{describe(key)}: ")
        if not open_(item):
            emit(describe(item))
    return "".join(out)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_key_error(key: str, name: str, known: Iterable[str]) -> SpecError:
    known = sorted(known)
    hint = did_you_mean(name, known)
    allowed = ", ".join(known) if known else "none"
    return SpecError(key, f"unknown key '{name}'{hint}; allowed keys: {allowed}")


KINDS = ("number", "integer", "bool", "string", "choice", "numbers", "integers", "path", "filename", "any")
"""The valid ``Option.kind`` values."""


@dataclass(frozen=True)
class Option:
    """One typed parameter.

    kind: ``number`` (float), ``integer``, ``bool``, ``string``, ``choice`` (one of ``choices``),
    ``numbers`` (list of floats), ``integers`` (list of ints), ``path`` (string naming a file),
    ``filename`` (one file name: no ``/``, at most 255 bytes) or ``any``.  ``low``/``high``
    bound numbers; ``low_open``/``high_open`` exclude the bound.  An integer without ``high`` is
    still at most :data:`INT_MAX`.  Strings hold no NUL and at most :data:`STRING_MAX` characters.
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

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Option {self.name!r}: unknown kind {self.kind!r}{did_you_mean(self.kind, KINDS)}; "
                             f"valid kinds: {', '.join(KINDS)}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"Option {self.name!r}: kind 'choice' needs choices=(...)")

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
        elif self.kind == "filename":
            text = "a file name (no '/', at most 255 bytes)"
        elif self.kind == "string":
            text = "a string"
        else:
            text = "a value"
        return text + (" or null" if self.nullable else "")

    def _hidden(self, bound) -> bool:
        """Whether a bound is beyond human scale (an integer past 2³¹ such as a seed's 2⁶⁴−1, a
        number of 1e15 or more): messages name it only to a value that crosses it."""
        if bound is None:
            return False
        if self.kind in ("integer", "integers"):
            return abs(bound) > INT_MAX
        return abs(bound) >= 1e15

    def _shown(self) -> tuple:
        """(low, high) as the range text states them."""
        return (None if self._hidden(self.low) else self.low, None if self._hidden(self.high) else self.high)

    def _range_text(self) -> str:
        low, high = self._shown()
        if low is None and high is None:
            return ""
        if low is not None and high is not None:
            lo = "(" if self.low_open else "["
            hi = ")" if self.high_open else "]"
            return f" in {lo}{_fmt(low)}, {_fmt(high)}{hi}"
        if low is not None:
            return f" {'>' if self.low_open else '>='} {_fmt(low)}"
        return f" {'<' if self.high_open else '<='} {_fmt(high)}"

    def _in_range(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            return False
        return True

    def _ceiling_text(self, x) -> str:
        """`` and at most 2147483647`` (or `` and at least …``) when ``x`` crosses a bound the range
        text omits: :data:`INT_MAX` for an integer without ``high``, or a hidden bound."""
        high = INT_MAX if self.high is None and self.kind in ("integer", "integers") else self.high
        if (self.high is None or self._hidden(self.high)) and high is not None and x > high:
            return f" and at most {_fmt(high)}"
        if self._hidden(self.low) and x < self.low:
            return f" and at least {_fmt(self.low)}"
        return ""

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
        if kind in ("string", "path", "filename"):
            if not isinstance(value, str) or not value:
                raise fail
            problem = text_problem(value) or (path_problem(value) if kind == "path" else None) or (
                filename_problem(value) if kind == "filename" else None)
            if problem:
                raise SpecError(key, f"expected {self.expected()}, got {describe(value)} ({problem})")
            return value
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
                try:
                    out = float(value)
                except OverflowError:  # an integer beyond float range
                    raise fail from None
            elif isinstance(value, str) and len(value) < 100:
                try:
                    out = float(value)  # YAML reads 1e-3 as a string
                except ValueError:
                    raise fail from None
            else:
                raise fail
            if not math.isfinite(out):
                raise fail
        beyond = self._ceiling_text(out)
        if beyond:
            noun = "an integer" if self.kind in ("integer", "integers") else "a number"
            raise SpecError(fail.key, f"expected {noun}{self._range_text()}{beyond}, got {describe(value)}")
        if not self._in_range(out):
            raise fail
        return out


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be a spec string (NUL, not UTF-8, too long), or None."""
    if "\0" in text:
        return "it contains a NUL character"
    if len(text) > STRING_MAX:
        return f"{len(text)} characters, at most {STRING_MAX}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid UTF-8 (a lone surrogate)"
    return None


def filename_problem(name: str) -> str | None:
    """Why ``name`` cannot be one file or folder name, or None."""
    problem = text_problem(name)
    if problem:
        return problem
    if "/" in name or "\\" in name:
        return "a file name cannot contain '/' or '\\'"
    if name in (".", ".."):
        return f"{name!r} is not a file name"
    size = len(name.encode("utf-8"))
    if size > NAME_MAX:
        return f"{size} bytes, a file name has at most {NAME_MAX}"
    return None


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file (a part longer than a file name may be), or None."""
    problem = text_problem(path)
    if problem:
        return problem
    for part in path.split("/"):
        if len(part.encode("utf-8")) > NAME_MAX:
            return f"the part {describe(part)} is {len(part.encode('utf-8'))} bytes, a file name has at most {NAME_MAX}"
    return None


def _fmt(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


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
