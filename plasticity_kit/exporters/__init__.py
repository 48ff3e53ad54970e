"""Exporters run at the end of a completed run: ``export(result, out_dir) -> [paths written]``."""
from .base import Exporter

__all__ = ["Exporter"]
