"""BCM epoch on MNIST-shaped data: numpy reference vs Cython kernel vs the bare matrix products.

    python benchmarks/bench_bcm.py                 # 1 and 2 threads, 11 repeats
    python benchmarks/bench_bcm.py --quick         # 3 repeats
    python benchmarks/bench_bcm.py --mnist DIR --repeats 21 --epochs 2 --threads 1,2,4

The problem (the shape of the issue): 10,000 samples × 784 inputs in [0, 1], 100 neurons,
mini-batches of 1,000 (10 steps per epoch), ReLU, Adam (lr 1e-3), no lateral interaction,
moving-average threshold, float32.  The data are the genuine MNIST test set
(``t10k-images-idx3-ubyte.gz``, pixels / 255) found in ``--mnist DIR``, else in the directory
named by ``$PLASTICITY_KIT_MNIST``, else in ``<repo>/../shared/data/mnist``; without any of
them, uniform random numbers in [0, 1] of the same shape (the output says which).

What one "epoch" is, for every row: 10 steps over the batches ``X[0:1000]``, ``X[1000:2000]``,
... — contiguous row slices, which are views: no batch is gathered or copied in any row
(a), (b), (c).  The cost of gathering shuffled batches, as the scheduler does, is reported on
its own ("info" rows), and so is a whole ``scheduler.train`` epoch (shuffle, gather, step,
divergence check), so that nothing is hidden.

  (a) numpy reference: ``plasticity_kit.rules.bcm.reference_step`` per batch.
  (b) Cython kernel: ``BCM.step(state, batch)``, the call the scheduler makes per batch
      (Python dispatch + ``kernels.bcm.bcm_step``: both products, activation, threshold, φ,
      Adam).
  (c) the bare products the rule needs per batch, W·Xᵀ (100×1000) and φ·X (100×784), with the
      BLAS the kernel uses (scipy's, via ``scipy.linalg.blas.sgemm``, same transposition flags
      and output layout as the kernel's ``cython_blas`` calls, outputs preallocated); numpy's
      ``@`` (numpy's own OpenBLAS) is shown for information.

Thread counts: OpenBLAS (scipy's and numpy's copies) and OpenMP read theirs when they load,
so each thread count runs in a fresh subprocess with ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMEXPR_NUM_THREADS``, ... set; the child
reports the thread counts the libraries actually see.  In each child the rows are measured
interleaved (the order rotates each repeat) after one warm-up epoch each; the table shows the
median time per epoch over the repeats and [min–max].  (b)/(c) is given both as the ratio of
medians and as the median of the per-repeat ratios (each (b) paired with the (c) of the same repeat), and as the
ratio of the minima (the least disturbed samples on a shared machine).  Each timed block starts
after a short sleep (``--pause``): an idle OpenBLAS pool keeps spinning ~0.1 s after its last
call, and numpy and scipy bring two separate pools, so without the pause the row measured right
after a numpy row runs with the other pool's workers still burning the cores (at 2 threads on 2
cores that made a kernel epoch 2-4x slower).  After the pause the row runs untimed for ``--rewarm`` seconds: a core
left idle takes 2–3 epochs to come back to full speed on this VM, which a training run (epochs
back to back) never sees (benchmarks/steady.py).

Target (issues 3 and 14): (b) ≤ 1.2 × (c), at 1 and at 2 threads.  For comparison (not measured here): the C++/Cython BCM of
the Nico-Curti/plasticity library was measured at about 2.9× its bare-product time on this shape.
"""
from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from steady import settle

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")
IMAGES = "t10k-images-idx3-ubyte"
N_SAMPLES, N_INPUTS, N_NEURONS, BATCH = 10_000, 784, 100, 1_000
REPO = Path(__file__).resolve().parent.parent
TARGET = 1.2

ROWS = (
    ("reference", "(a) numpy reference_step"),
    ("kernel", "(b) Cython kernel, BCM.step"),
    ("sgemm", "(c) bare products, scipy sgemm"),
    ("numpy", "    bare products, numpy @"),
    ("gather", "    info: gather shuffled batches"),
    ("train", "    info: scheduler.train epoch"),
)


# ----------------------------------------------------------------------------------- data --

def read_idx(path: Path):
    """An IDX file (optionally gzipped) as a numpy array of its declared shape."""
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find_mnist(explicit: str | None) -> tuple[Path | None, str]:
    """The IDX images file and where its directory came from; (None, why) when there is none."""
    candidates = []
    if explicit:
        candidates.append((Path(explicit), "--mnist", True))
    elif os.environ.get("PLASTICITY_KIT_MNIST"):
        candidates.append((Path(os.environ["PLASTICITY_KIT_MNIST"]), "$PLASTICITY_KIT_MNIST", True))
    candidates.append((REPO.parent / "shared" / "data" / "mnist", "default", False))
    for directory, origin, required in candidates:
        for name in (IMAGES + ".gz", IMAGES):
            if (directory / name).is_file():
                return directory / name, origin
        if required:
            sys.exit(f"bench_bcm: no {IMAGES}[.gz] in {directory} (from {origin})")
    return None, "no MNIST directory found"


def load_data(explicit: str | None):
    import numpy as np

    path, origin = find_mnist(explicit)
    if path is not None:
        images = read_idx(path)
        X = np.ascontiguousarray(images.reshape(images.shape[0], -1)[:N_SAMPLES], dtype=np.float32) / np.float32(255)
        if X.shape != (N_SAMPLES, N_INPUTS):
            sys.exit(f"bench_bcm: {path} holds {X.shape}, expected ({N_SAMPLES}, {N_INPUTS})")
        return X, f"MNIST test set {X.shape[0]}×{X.shape[1]} ({path})"
    X = np.random.default_rng(0).random((N_SAMPLES, N_INPUTS), dtype=np.float32)
    return X, f"uniform random in [0, 1], {N_SAMPLES}×{N_INPUTS} ({origin})"


# ---------------------------------------------------------------------------------- child --

def threads_seen() -> dict:
    """Thread counts the loaded OpenBLAS copies and OpenMP runtime report (Linux; else {})."""
    import ctypes

    seen = {}
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if line.rstrip().endswith(".so") or ".so." in line})
    except OSError:
        return seen
    for lib in libs:
        name = os.path.basename(lib)
        if "openblas" in name:
            symbols = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                       "openblas_get_num_threads64_", "openblas_get_num_threads")
            who = "numpy" if "numpy" in lib else "scipy" if "scipy" in lib else name
            key = f"OpenBLAS ({who})"
        elif "gomp" in name or name.startswith(("libomp", "libiomp")):
            symbols, key = ("omp_get_max_threads",), "OpenMP"
        else:
            continue
        try:
            dll = ctypes.CDLL(lib)
        except OSError:
            continue
        for symbol in symbols:
            fn = getattr(dll, symbol, None)
            if fn is not None:
                seen[key] = int(fn())
                break
    return seen


def loadavg() -> str | None:
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return None


def child(args) -> dict:
    import numpy as np
    import scipy.linalg.blas as blas

    from plasticity_kit import activations, initializers, interactions, optimizers
    from plasticity_kit.rules.base import Model
    from plasticity_kit.rules.bcm import BCM, reference_step
    from plasticity_kit.scheduler import train

    X, data = load_data(args.mnist)
    batches = [X[b * BATCH:(b + 1) * BATCH] for b in range(N_SAMPLES // BATCH)]

    def make_rule():
        model = Model(n_inputs=N_INPUTS, n_neurons=N_NEURONS, dtype=np.dtype(np.float32),
                      params=BCM.options.validate({}, "bench"), activation=activations.Relu(),
                      optimizer=optimizers.Adam(lr=1e-3), initializer=initializers.Normal(std=0.1),
                      interaction=interactions.NoInteraction())
        rule = BCM(model)
        return rule, rule.init_state(np.random.default_rng(1))

    rule, state = make_rule()
    if not rule.uses_kernel:
        sys.exit("bench_bcm: the BCM rule does not use its kernel for ReLU + Adam")
    p = rule.params

    # (a) numpy reference, on its own copy of the state
    ref_rule, ref_state = make_rule()
    ref_opt = ref_rule._opt_state(ref_state)

    def reference():
        for xb in batches:
            reference_step(ref_state["weights"], ref_state["theta"], xb, None, ref_rule.model.activation,
                           ref_rule.model.optimizer, ref_opt, p["memory_factor"], p["threshold"], p["epsilon"])

    # (b) the kernel, as the scheduler calls it
    def kernel():
        for xb in batches:
            rule.step(state, xb)

    # (c) the bare products, with the kernel's layout: Z = W·Xᵀ (N×B, row-major) and
    # ΔW = φ·X (N×D, row-major) are the column-major Zᵀ = X·Wᵀ and ΔWᵀ = Xᵀ·φᵀ.
    W = np.array(state["weights"])
    phi = (np.random.default_rng(2).standard_normal((N_NEURONS, BATCH)) * 1e-3).astype(np.float32)
    Z = np.empty((N_NEURONS, BATCH), np.float32)
    dW = np.empty((N_NEURONS, N_INPUTS), np.float32)
    for xb in batches[:1]:
        out1 = blas.sgemm(1.0, xb.T, W.T, trans_a=1, c=Z.T, overwrite_c=1)
        out2 = blas.sgemm(1.0, xb.T, phi.T, c=dW.T, overwrite_c=1)
        if not (np.shares_memory(out1, Z) and np.shares_memory(out2, dW)):
            sys.exit("bench_bcm: scipy sgemm copied its output; the (c) row would be wrong")
        if not np.allclose(Z, W @ xb.T, rtol=1e-4, atol=1e-4) or not np.allclose(dW, phi @ xb, rtol=1e-4, atol=1e-6):
            sys.exit("bench_bcm: the sgemm layout is wrong")

    def sgemm():
        for xb in batches:
            blas.sgemm(1.0, xb.T, W.T, trans_a=1, c=Z.T, overwrite_c=1)
            blas.sgemm(1.0, xb.T, phi.T, c=dW.T, overwrite_c=1)

    def numpy_products():
        for xb in batches:
            np.matmul(W, xb.T, out=Z)
            np.matmul(phi, xb, out=dW)

    # info: the scheduler's gather of shuffled batches, and a whole scheduler epoch
    gather_rng = np.random.default_rng(3)
    full = np.empty((BATCH, N_INPUTS), np.float32)

    def gather():
        order = gather_rng.permutation(N_SAMPLES)
        for b in range(N_SAMPLES // BATCH):
            np.take(X, order[b * BATCH:(b + 1) * BATCH], axis=0, out=full, mode="clip")

    train_rule, train_state = make_rule()
    train_rng = np.random.default_rng(4)

    def train_epoch():
        outcome = train(train_rule, train_state, X, epochs=1, batch_size=BATCH, shuffle=True, rng=train_rng)
        if outcome.status != "completed":
            raise RuntimeError(outcome.message)

    measures = {"reference": reference, "kernel": kernel, "sgemm": sgemm, "numpy": numpy_products,
                "gather": gather, "train": train_epoch}
    if args.skip_reference:
        del measures["reference"]
    names = list(measures)
    times = {name: [] for name in names}
    for fn in measures.values():  # warm-up: BLAS buffers, thread pools, page faults
        fn()
    gc.collect()
    load0 = loadavg()
    gc.disable()
    try:
        for r in range(args.repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:
                settle(measures[name], args.pause, args.rewarm)
                t0 = time.perf_counter()
                for _ in range(args.epochs):
                    measures[name]()
                times[name].append((time.perf_counter() - t0) / args.epochs)
    finally:
        gc.enable()
    for st in (state, ref_state, train_state):
        if not all(np.isfinite(v).all() for v in st.values() if v.dtype.kind == "f"):
            sys.exit("bench_bcm: the state is no longer finite")
    return {"times": times, "data": data, "threads_seen": threads_seen(), "loadavg": [load0, loadavg()],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}


# --------------------------------------------------------------------------------- parent --

def run_child(threads: int, args) -> dict:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--repeats", str(args.repeats),
           "--epochs", str(args.epochs), "--pause", str(args.pause), "--rewarm", str(args.rewarm)]
    if args.mnist:
        cmd += ["--mnist", args.mnist]
    if args.skip_reference:
        cmd.append("--skip-reference")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(REPO))
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        sys.exit(f"bench_bcm: the {threads}-thread run failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def table(results: dict, args) -> str:
    counts = list(results)
    first = results[counts[0]]
    lines = [
        f"BCM epoch: {first['data']}",
        f"  {N_NEURONS} neurons, batch {BATCH} ({N_SAMPLES // BATCH} steps/epoch), ReLU, Adam, float32, "
        f"no interaction; ms per epoch, median of {args.repeats} repeats × {args.epochs} epoch(s) [min–max]",
        "",
    ]
    width = 34
    col = 24
    lines.append(" " * width + "".join(f"{f'{t} thread' + ('s' if t > 1 else ''):>{col}}" for t in counts))
    for key, label in ROWS:
        if key not in first["times"]:
            continue
        cells = []
        for t in counts:
            xs = [1e3 * x for x in results[t]["times"][key]]
            cells.append(f"{median(xs):8.1f} [{min(xs):.1f}–{max(xs):.1f}]")
        lines.append(f"{label:<{width}}" + "".join(f"{c:>{col}}" for c in cells))
    lines.append("")

    def ratio_row(label, num, den):
        cells = []
        for t in counts:
            a, b = results[t]["times"][num], results[t]["times"][den]
            cells.append(f"{median(a) / median(b):.2f}")
        lines.append(f"{label:<{width}}" + "".join(f"{c:>{col}}" for c in cells))

    def min_row(label, num, den):
        cells = []
        for t in counts:
            cells.append(f"{min(results[t]['times'][num]) / min(results[t]['times'][den]):.2f}")
        lines.append(f"{label:<{width}}" + "".join(f"{c:>{col}}" for c in cells))

    def paired_row(label, num, den):
        cells = []
        for t in counts:
            rs = [x / y for x, y in zip(results[t]["times"][num], results[t]["times"][den])]
            cells.append(f"{median(rs):.2f} [{min(rs):.2f}–{max(rs):.2f}]")
        lines.append(f"{label:<{width}}" + "".join(f"{c:>{col}}" for c in cells))

    ratio_row(f"(b)/(c)  target ≤ {TARGET}", "kernel", "sgemm")
    paired_row("(b)/(c)  per-repeat pairs", "kernel", "sgemm")
    min_row("(b)/(c)  of the minima", "kernel", "sgemm")
    ratio_row("(b)/numpy @ products", "kernel", "numpy")
    if "reference" in first["times"]:
        ratio_row("(a)/(b)  kernel speed-up", "reference", "kernel")
    lines.append("")
    lines.append("threads seen by the libraries: " + "; ".join(
        f"{t}: " + (", ".join(f"{k} {v}" for k, v in results[t]["threads_seen"].items()) or "unknown")
        for t in counts))
    lines.append(f"OMP_WAIT_POLICY in the children: {first['omp_wait_policy'] or '(unset)'}")
    loads = [results[t].get("loadavg") for t in counts]
    if all(loads):
        lines.append("load average (1 min) before/after each child: " + "; ".join(
            f"{t}: {a} / {b}" for t, (a, b) in zip(counts, loads))
            + " (on a machine with other work, medians are inflated; the minima are the least disturbed)")
    lines.append("For comparison (from the issue, not measured here): the Nico-Curti/plasticity C++ BCM "
                 "takes about 2.9× its bare products on this shape.")
    verdict = all(median(results[t]["times"]["kernel"]) / median(results[t]["times"]["sgemm"]) <= TARGET
                  for t in counts)
    lines.append(f"target (b)/(c) ≤ {TARGET} at every thread count: {'met' if verdict else 'NOT met'}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist", metavar="DIR", help=f"directory holding {IMAGES}.gz "
                    "(default: $PLASTICITY_KIT_MNIST, then <repo>/../shared/data/mnist, else random data)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per row (default 11; 3 with --quick)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per timed repeat (default 1)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    ap.add_argument("--skip-reference", action="store_true", help="leave out the slow numpy reference row")
    ap.add_argument("--rewarm", type=float, default=0.15, help="seconds each row runs untimed after the "
                    "pause, before its timed block (benchmarks/steady.py)")
    ap.add_argument("--pause", type=float, default=0.3, help="seconds of sleep before each timed block "
                    "(default 0.3): lets the idle BLAS workers of the previous row stop spinning")
    ap.add_argument("--json", metavar="FILE", help="also write the raw timings (seconds) to FILE")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 11
    if args.repeats < 1 or args.epochs < 1:
        ap.error("--repeats and --epochs must be at least 1")

    if args.child:
        print(json.dumps(child(args)))
        return
    find_mnist(args.mnist)  # fail here, not in every child, on a wrong --mnist / $PLASTICITY_KIT_MNIST
    counts = [int(t) for t in args.threads.split(",") if t.strip()]
    results = {}
    for t in counts:
        print(f"running with {t} thread(s)…", file=sys.stderr, flush=True)
        results[t] = run_child(t, args)
    print(table(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps({str(t): r for t, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
