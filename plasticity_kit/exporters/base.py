"""The exporter contract."""
from __future__ import annotations

from pathlib import Path

from ..component import Component


class Exporter(Component):
    """Base class: ``export(result, out_dir)`` writes files for a finished run and returns their paths."""

    def export(self, result, out_dir: Path) -> list[Path]:
        raise NotImplementedError
