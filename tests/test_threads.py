"""The thread setting (plasticity_kit.threads) and the kernels' determinism across thread counts:
every kernel gives the same result bit for bit on 1, 2 and 4 threads."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from plasticity_kit import threads
from plasticity_kit.kernels import bcm, krotov, locally_connected

THREAD_COUNTS = (1, 2, 4)


def write_cpu_max(tmp_path, text):
    path = tmp_path / "cpu.max"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, cpus, expected", [
    ("max 100000\n", range(8), 8),           # no quota: the affinity
    ("150000 100000\n", range(8), 2),         # 1.5 CPUs -> 2 threads
    ("100000 100000\n", range(8), 1),
    ("50000 100000\n", range(8), 1),          # half a CPU still gets one thread
    ("400000 100000\n", {0, 3}, 2),           # affinity smaller than the quota
    ("garbage\n", {1, 2, 5}, 3),              # unreadable quota: the affinity alone
])
def test_available_cpus_from_affinity_and_cgroup_quota(tmp_path, text, cpus, expected):
    assert threads.available_cpus(set(cpus), write_cpu_max(tmp_path, text)) == expected


def test_available_cpus_without_a_cgroup_file(tmp_path):
    assert threads.available_cpus({0, 1, 2}, str(tmp_path / "missing")) == 3


def test_default_uses_the_affinity_not_the_core_count(monkeypatch, tmp_path):
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {4, 5, 6}, raising=False)
    monkeypatch.setattr(threads, "CPU_MAX", str(tmp_path / "none"))
    monkeypatch.setattr(threads.available_cpus, "__defaults__", (None, str(tmp_path / "none")))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)
    assert threads.default_threads() == 3


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv(threads.ENV, raising=False)
    assert threads.default_threads() == 3
    monkeypatch.setenv(threads.ENV, "5")
    assert threads.default_threads() == 5  # ours wins over OpenMP's
    monkeypatch.setenv(threads.ENV, "zero")
    with pytest.raises(ValueError, match="PLASTICITY_KIT_THREADS: expected an integer from 1 to 1024"):
        threads.default_threads()


@pytest.mark.parametrize("bad", [0, -1, 2.5, "two", True, 5000])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="output.threads: expected an integer from 1 to 1024"):
        threads.check(bad)


def blas_threads():
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_using_sets_the_kernels_threads_and_limits_blas():
    before, outer = blas_threads(), threads.get_threads()
    with threads.using(1) as n:
        assert n == 1 and threads.get_threads() == 1
        assert all(v == 1 for v in blas_threads().values())
        with threads.single_blas():
            assert all(v == 1 for v in blas_threads().values())
    assert threads.get_threads() == outer
    assert blas_threads() == before


def test_the_blas_the_kernels_call_is_limited_even_before_a_kernel_is_imported():
    """The controller made by the first threads.using (before any kernel is imported) holds
    every BLAS loaded by numpy and scipy, so single_blas reaches the one the kernels call."""
    import subprocess
    import sys

    code = ("from plasticity_kit import threads\n"
            "with threads.using(2):\n"
            "    ours = {lib.filepath for lib in threads._controller().lib_controllers}\n"
            "import scipy.linalg, numpy\n"
            "from plasticity_kit.kernels import bcm, krotov\n"
            "from threadpoolctl import threadpool_info\n"
            "loaded = {lib['filepath'] for lib in threadpool_info() if lib['user_api'] == 'blas'}\n"
            "assert loaded and loaded <= ours, (loaded, ours)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- determinism across threads --

def same_for_every_thread_count(run):
    """``run(nt)`` returns a tuple of arrays; they must be bit-identical for 1, 2 and 4 threads.
    BLAS outside the kernels is given as many threads (as OPENBLAS_NUM_THREADS would): the
    kernels' results must not depend on it either."""
    results = []
    for nt in THREAD_COUNTS:
        with threadpool_limits(limits=nt, user_api="blas"):
            results.append(run(nt))
    for nt, result in zip(THREAD_COUNTS[1:], results[1:]):
        for a, b in zip(results[0], result):
            assert np.array_equal(a, b, equal_nan=True), f"{nt} threads differ from 1 thread"


def bcm_case(dtype, optimizer, factor, replicas, gram):
    rng = np.random.default_rng(7)
    n, D, P, B, S = 20, 600, 40, 32, 6
    W0 = (rng.standard_normal((n * replicas, D)) * 0.05).astype(dtype)
    X = rng.random((P, D)).astype(dtype)
    F = np.ascontiguousarray(np.linalg.inv(np.eye(n) - 0.02 * rng.random((n, n))), dtype=dtype) if factor else None
    batches = np.stack([rng.permutation(P)[:B] for _ in range(S)]).astype(np.int32)
    G = (X.astype(np.float64) @ X.astype(np.float64).T).astype(dtype) if gram else None

    def run(nt):
        W, th = W0.copy(), np.full(len(W0), 0.05, dtype)
        m, v, t = np.zeros_like(W), np.zeros_like(W), np.zeros(replicas, np.int64)
        bcm.bcm_steps(W, th, X, batches, F, 1, 0.5, False, 1e-8, optimizer, 1e-3, 0.9, 0.999, 1e-8, m, v, t,
                      gram=G, num_threads=nt, replicas=replicas)
        return W, th, m, v
    return run


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer, factor, replicas, gram", [
    (2, True, 1, False),   # Adam, lateral interaction, one network: blocks of samples / columns
    (1, False, 1, False),  # momentum
    (0, True, 1, False),   # SGD folded into the product
    (2, False, 3, False),  # replicas shared out among the threads
    (0, True, 5, True),    # sample-space form, replicas
    (0, False, 1, True),   # sample-space form, one network
])
def test_bcm_is_bit_identical_on_1_2_4_threads(dtype, optimizer, factor, replicas, gram):
    same_for_every_thread_count(bcm_case(dtype, optimizer, factor, replicas, gram))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p, replicas", [(2.0, 1), (3.0, 1), (4.5, 2)])
def test_krotov_ranking_is_bit_identical_on_1_2_4_threads(dtype, p, replicas):
    rng = np.random.default_rng(3)
    n, D, B = 60, 300, 70
    W0 = rng.standard_normal((n * replicas, D)).astype(dtype)
    batches = [rng.random((B, D)).astype(dtype) for _ in range(4)]

    def run(nt):
        W = W0.copy()
        winners = np.empty((replicas * B, 2), np.int32)
        for X in batches:
            krotov.ranking_step(W, X, 0.02, p, 3, 0.4, 1e-30, winners=winners, num_threads=nt, replicas=replicas)
        return W, winners
    same_for_every_thread_count(run)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_krotov_dynamics_is_bit_identical_on_1_2_4_threads(dtype):
    rng = np.random.default_rng(4)
    W0 = (rng.standard_normal((40, 200)) * 0.1).astype(dtype)
    batches = [rng.random((50, 200)).astype(dtype) for _ in range(3)]

    def run(nt):
        W, h = W0.copy(), np.empty((50, 40))
        for X in batches:
            krotov.dynamics_step(W, X, 0.02, 3.0, 0.4, 0.5, 0.8, 1.0, 200, 1e-6, 1e-30, h_out=h, num_threads=nt)
        return W, h
    same_for_every_thread_count(run)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_locally_connected_is_bit_identical_on_1_2_4_threads(dtype):
    rng = np.random.default_rng(5)
    H = Wd = 10
    C, k, F = 2, 3, 4
    out_w = H - k + 1
    P, K = out_w * out_w, k * k * C
    W0 = (rng.standard_normal((P, F, K)) * 0.1).astype(dtype)
    X = rng.random((16, H * Wd * C)).astype(dtype)
    T, Bs = 3, 8
    tiles = rng.standard_normal((T, Bs, k, k, C)).astype(dtype)
    order = np.arange(P, dtype=np.int64)
    group_ptr = np.array([0, P // 2, P], dtype=np.int64)
    offsets = np.array([[0, 0], [1, 2]], dtype=np.int64)

    def run(nt):
        W = W0.copy()
        out = np.empty((16, P, F), dtype)
        snr = np.empty(T + 1)
        locally_connected.lc_wake_step(W, X, H, Wd, C, k, 1, 0, out_w, 1, 0.01, 1e-3, num_threads=nt)
        locally_connected.lc_sleep_phase(W, tiles, order, group_ptr, offsets, 0.01, 1e-3, 1.0, 0.0, snr,
                                         num_threads=nt)
        locally_connected.lc_forward(W, X, H, Wd, C, k, 1, 0, out_w, out, num_threads=nt)
        return W, out, snr
    same_for_every_thread_count(run)


# ------------------------------------------------------------------- a whole run, three ways --

TINY_RUN = """
name: tiny
data: {name: olivetti, params: {select: persons, persons: [0, 1]}}
model:
  rule: {name: bcm}
  n_neurons: 6
  interaction: binocular
  activation: relu
  optimizer: {name: adam, params: {lr: 0.001}}
schedule: {epochs: 3, batch_size: 5, seed: 3}
exporters: []
"""


def test_a_run_is_the_same_on_1_2_4_threads_set_three_ways(tmp_path, monkeypatch):
    """output.threads, --threads and $PLASTICITY_KIT_THREADS all reach the kernels (threads.using
    sees them) and the trajectory is the same bit for bit."""
    from plasticity_kit.cli import main
    from plasticity_kit.replay import open as open_run
    from plasticity_kit.runner import execute
    from plasticity_kit.spec import load_spec

    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(TINY_RUN)
    seen = []
    real_using = threads.using

    def spy(n=None):
        seen.append(n if n is not None else threads.default_threads())
        return real_using(n)
    monkeypatch.setattr(threads, "using", spy)
    weights = []
    for nt in THREAD_COUNTS:
        out = tmp_path / f"spec{nt}"
        result = execute(load_spec(spec_path, [f"output.threads={nt}", f"output.dir={out}"]), progress=False,
                         log=lambda *a: None)
        weights.append(result.state["weights"].copy())
    out = tmp_path / "cli"
    assert main(["run", str(spec_path), "-q", "--threads", "2", "--set", f"output.dir={out}"]) == 0
    with open_run(out / "tiny" / "run.h5") as run:
        weights.append(np.asarray(run.final["weights"]))
    monkeypatch.setenv(threads.ENV, "4")
    result = execute(load_spec(spec_path, [f"output.dir={tmp_path / 'env'}"]), progress=False, log=lambda *a: None)
    weights.append(result.state["weights"].copy())
    assert seen == [1, 2, 4, 2, 4]
    for w in weights[1:]:
        assert np.array_equal(w, weights[0])
    with pytest.raises(Exception, match="output.threads"):
        load_spec(spec_path, ["output.threads=0"])
