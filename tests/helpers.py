"""Small builders shared by the tests."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def tiny_spec(tmp_path: Path, **changes) -> dict:
    """A fast BCM spec on 20 Olivetti faces; ``changes`` maps dotted keys to values."""
    spec = {
        "name": "tiny",
        "data": {"name": "olivetti", "params": {"select": "persons", "persons": [0, 1]}},
        "model": {
            "rule": {"name": "bcm", "params": {"memory_factor": 0.5}},
            "n_neurons": 5,
            "interaction": "binocular",
            "activation": "relu",
            "optimizer": {"name": "adam", "params": {"lr": 0.001}},
            "initializer": {"name": "normal", "params": {"std": 0.01}},
        },
        "schedule": {"epochs": 6, "batch_size": 8, "seed": 3},
        "record": {"every": 2},
        "output": {"dir": str(tmp_path / "runs")},
    }
    for key, value in changes.items():
        node = spec
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return spec


def write_spec(tmp_path: Path, spec: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def cli(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plasticity_kit", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def interrupt_metric(monkeypatch, nth: int) -> None:
    """Ctrl-C inside the ``nth`` evaluation of the ``weight_norm`` metric (a KeyboardInterrupt
    raised from its ``compute``), until ``monkeypatch.undo()``."""
    from plasticity_kit.metrics.convergence import WeightNorm

    original, calls = WeightNorm.compute, []

    def interrupting(self, *args):
        calls.append(1)
        if len(calls) == nth:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(WeightNorm, "compute", interrupting)
