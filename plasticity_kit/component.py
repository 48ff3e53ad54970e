"""Base class of the small pluggable pieces: activations, optimizers, initializers, interactions."""
from __future__ import annotations

from typing import ClassVar

from .errors import SpecError
from .options import Schema, describe


class Component:
    """A named, parametrised building block selected in a spec as ``{name: ..., params: {...}}``.

    ``Cls(lr=1e-3)`` validates its parameters against ``Cls.options`` (raising
    :class:`~plasticity_kit.errors.SpecError` naming the bad key); validated values live in
    ``self.params``, the names given explicitly in ``self.given``.
    """

    name: ClassVar[str] = ""
    options: ClassVar[Schema] = Schema()

    def __init__(self, _key: str | None = None, **params):
        self.params = type(self).options.validate(params, _key if _key is not None else self.name)
        self.given = frozenset(params)  # the options set explicitly (the rest are defaults)

    @classmethod
    def from_config(cls, params, key: str):
        """Build from the ``params`` mapping of a spec found at ``key``."""
        if params is not None and not isinstance(params, dict):
            raise SpecError(key, f"expected a mapping of parameters, got {describe(params)}")
        params = params or {}
        cls.options.validate(params, key)  # unknown or non-text keys named before they become keywords
        return cls(_key=key, **params)

    def to_config(self) -> dict:
        return {"name": self.name, "params": dict(self.params)}

    def __getattr__(self, item):
        params = self.__dict__.get("params", {})
        if item in params:
            return params[item]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {item!r}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.params == other.params

    __hash__ = None
