"""The memory estimate of a run and the available memory it is compared with."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import tiny_spec
from plasticity_kit import memory
from plasticity_kit.errors import SpecError
from plasticity_kit.runner import seed_streams
from plasticity_kit.spec import preflight, resolve


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_available_is_the_smaller_of_meminfo_and_the_cgroup_room(tmp_path):
    meminfo = _write(tmp_path / "meminfo", "MemTotal: 100 kB\nMemAvailable:    2048 kB\n")
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    assert memory.available(str(meminfo), str(v2), str(v1)) == 2048 * 1024
    _write(v2 / "memory.max", "1500000\n")
    _write(v2 / "memory.current", "1000000\n")
    assert memory.available(str(meminfo), str(v2), str(v1)) == 500000
    _write(v2 / "memory.max", "max\n")  # no limit: MemAvailable decides
    assert memory.available(str(meminfo), str(v2), str(v1)) == 2048 * 1024
    _write(v1 / "memory.limit_in_bytes", "9223372036854771712\n")  # v1's "no limit"
    assert memory.available(str(meminfo), str(v2), str(v1)) == 2048 * 1024
    _write(v1 / "memory.limit_in_bytes", "1200000\n")
    _write(v1 / "memory.usage_in_bytes", "1300000\n")  # over the limit already: nothing left
    assert memory.available(str(meminfo), str(v2), str(v1)) == 0
    assert memory.available(str(tmp_path / "none"), str(tmp_path / "none"), str(tmp_path / "none")) is None


@pytest.mark.parametrize("change", [
    {},  # BCM, Adam: weights and two moments
    {"model.replicas": 3},
    {"model.optimizer": {"name": "momentum", "params": {}}},
    {"model.dtype": "float64"},
])
def test_state_estimate_matches_the_state_the_rule_allocates(tmp_path, change):
    spec = resolve(tiny_spec(tmp_path, **change))
    data, rule = preflight(spec)
    state = rule.init_state(seed_streams(0)["init"])
    weights_like = sum(v.nbytes for k, v in state.items() if v.shape[-2:] == state["weights"].shape[-2:])
    est = dict((what, n) for what, n, _ in spec.memory.items)
    assert est["state"] == weights_like
    assert est["data"] == data.X.nbytes
    assert spec.memory.total >= sum(v.nbytes for v in state.values()) + data.X.nbytes


def test_weight_sharing_estimate_matches(tmp_path):
    spec = resolve({
        "name": "ws", "data": {"name": "white_noise", "params": {"image_shape": [12, 12, 3], "n_samples": 4}},
        "model": {"rule": {"name": "hebbian_weight_sharing",
                           "params": {"input_shape": [12, 12, 3], "kernel_size": 3, "stride": 2, "padding": 1,
                                      "sleep_steps": 7}},
                  "n_neurons": 4},
        "schedule": {"epochs": 1, "batch_size": 2}, "output": {"dir": str(tmp_path)},
    })
    _, rule = preflight(spec)
    state = rule.init_state(np.random.default_rng(0))
    est = dict((what, n) for what, n, _ in spec.memory.items)
    assert est["state"] == state["weights"].nbytes
    assert est["sleep record"] == state["sleep_snr"].nbytes


def test_check_names_the_key_that_sets_the_largest_part(tmp_path):
    spec = resolve(tiny_spec(tmp_path, **{"model.replicas": 4}))
    est = memory.check(spec, 20, 4096, free=1 << 40)
    assert est.total > 0
    with pytest.raises(SpecError) as info:
        memory.check(spec, 20, 4096, free=100_000)
    assert info.value.key == "model.replicas"
    assert info.value.message.startswith("expected a run that fits in the 97.7 KiB of memory available, got one "
                                         f"that needs {est.describe()}")
    # the data is loaded before the check (available memory already leaves it out): not counted again
    assert memory.check(resolve(tiny_spec(tmp_path)), 10**6, 4096, free=1 << 30).total > 1 << 35


def test_human_sizes():
    assert [memory.human(n) for n in (0, 1023, 1024, 1536, 5 << 30)] == ["0 B", "1023 B", "1.0 KiB", "1.5 KiB",
                                                                       "5.0 GiB"]
