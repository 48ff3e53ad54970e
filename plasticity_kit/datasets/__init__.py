"""Data-set plugins and the :class:`Dataset` contract."""
from .base import Data, Dataset

__all__ = ["Data", "Dataset"]
