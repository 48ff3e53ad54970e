"""Built-in learning rules and the :class:`Rule` contract."""
from .base import Model, Rule, minmax_rows

__all__ = ["Model", "Rule", "minmax_rows"]
