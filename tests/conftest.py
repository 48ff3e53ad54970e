"""Shared fixtures.  Real data (Olivetti, MNIST test set, FID weights) is looked up in
$PLASTICITY_KIT_SHARED_DATA, else in ../shared/data next to the repository (as on CI)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    env = os.environ.get("PLASTICITY_KIT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("real data not found: set PLASTICITY_KIT_SHARED_DATA to the shared data folder")
    return d


@pytest.fixture(scope="session")
def mnist_dir(shared_data) -> Path:
    d = shared_data / "mnist"
    if not (d / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST test set not found in {d}")
    return d
