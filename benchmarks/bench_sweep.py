"""Wall time of the reference study's Fig. 1 and Fig. 5 sweeps (training only), and what replicas save.

    python benchmarks/bench_sweep.py [--spec SPEC ...] [--workers N] [--sweep-epochs E] [--skip-sweep]

1. The sweeps of ``--spec`` (default both: Rondini 2023 Fig. 1, ``specs/olivetti-matrices.yaml``,
   100 runs × 64 replicas = 6,400 BCM networks on 10 faces; Fig. 5, ``specs/olivetti-batch-size.yaml``,
   12 runs × 64 replicas = 768 networks on all 400 faces; 3,000 epochs each) with their metrics
   and exporters removed, on the local process pool: the wall time from start to the last run
   recorded, against the targets of issue 14 (Fig. 1 < 2 min, Fig. 5 < 5 min on 2 cores).
   ``--sweep-epochs E`` trains E epochs instead and prints the time scaled to 3,000 (training
   time is proportional to the epochs; the scaled figure says so).
2. One configuration of that sweep (N = 13, B matrix, 10 faces of one person) trained three ways,
   in this process, one thread:
   - 64 separate runs of one network (``model.replicas: 1``), one after the other;
   - one run of 64 replicas (``model.replicas: 64``): one kernel call per chunk of steps;
   - the same two in the weight space (Adam, where the sample-space form does not apply).
   The baseline is measured in the same run; the ratios are the speed-ups of replicas.
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from plasticity_kit.executors import Local  # noqa: E402
from plasticity_kit.runner import execute  # noqa: E402
from plasticity_kit.spec import read_yaml, resolve  # noqa: E402
from plasticity_kit.sweep import expand, run_sweep  # noqa: E402
from plasticity_kit.threads import available_cpus  # noqa: E402

QUIET = {"progress": False, "log": lambda *a: None, "overwrite": True}
TARGETS = {"olivetti-matrices.yaml": 120, "olivetti-batch-size.yaml": 300}  # seconds, issue 14, 2 cores


def training_only(raw: dict, out: Path) -> dict:
    raw = copy.deepcopy(raw)
    raw["metrics"], raw["exporters"] = [], []
    raw["output"] = {"dir": str(out)}
    return raw


def time_sweep(raw: dict, workers: int | None) -> tuple[float, list]:
    sweep = expand(raw, "<bench>")
    start = time.perf_counter()
    rows = run_sweep(sweep, Local(workers=workers), log=lambda *a: None)
    return time.perf_counter() - start, rows


def one_config(raw: dict, out: Path, replicas: int, optimizer: dict | None = None) -> dict:
    spec = training_only(raw, out)
    spec.pop("sweep", None)
    spec["name"] = f"r{replicas}"
    spec["data"] = {"name": "olivetti", "params": {"select": "persons", "persons": [0]}}
    spec["model"] = {**spec["model"], "n_neurons": 13, "interaction": "binocular", "replicas": replicas}
    if optimizer:
        spec["model"]["optimizer"] = optimizer
    spec["schedule"] = {**spec["schedule"], "seed": 1, "batch_size": 10}  # Fig. 5's spec has larger batches
    return spec


def timed_runs(spec: dict, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        result = execute(resolve(copy.deepcopy(spec)), **QUIET)
        assert result.status == "completed", result.outcome.message
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", action="append", default=None,
                    help="sweep spec (repeatable; default: the Fig. 1 and Fig. 5 specs)")
    ap.add_argument("--sweep-epochs", type=int, default=None, help="train this many epochs and scale the time")
    ap.add_argument("--workers", type=int, default=None, help="sweep worker processes (default: the CPUs available)")
    ap.add_argument("--skip-sweep", action="store_true", help="only the replica comparison")
    ap.add_argument("--epochs", type=int, default=3000, help="epochs of the replica comparison")
    args = ap.parse_args()
    specs = args.spec or ["specs/olivetti-matrices.yaml", "specs/olivetti-batch-size.yaml"]
    raw = read_yaml(specs[0])
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        if not args.skip_sweep:
            for path in specs:
                sweep_raw = training_only(read_yaml(path), tmp / Path(path).stem)
                epochs = sweep_raw["schedule"]["epochs"]
                if args.sweep_epochs:
                    sweep_raw["schedule"]["epochs"] = args.sweep_epochs
                sweep = expand(sweep_raw, path)
                networks = sum(int(r.raw["model"].get("replicas", 1)) for r in sweep.runs)
                target = TARGETS.get(Path(path).name)
                load0 = os.getloadavg()[0]
                print(f"{path}: {len(sweep.runs)} runs, {networks} networks × {sweep_raw['schedule']['epochs']} epochs, "
                      f"training only (metrics and exporters removed), local pool of "
                      f"{args.workers or available_cpus()} workers, {available_cpus()} CPUs available")
                seconds, rows = time_sweep(sweep_raw, args.workers)
                scale = epochs / sweep_raw["schedule"]["epochs"]
                done = sum(r["status"] == "completed" for r in rows)
                print(f"{'wall time':28s} {seconds:9.1f} s  ({seconds / 60:.2f} min"
                      + (f"; target < {target / 60:g} min at {epochs} epochs" if target else "") + ")")
                if scale != 1:  # an upper bound: the per-run start-up does not grow with the epochs
                    print(f"{f'× {scale:g}, at most':28s} {seconds * scale:9.1f} s  ({seconds * scale / 60:.2f} min "
                          f"at {epochs} epochs)")
                print(f"{'runs completed':28s} {done:9d} of {len(rows)}")
                print(f"{'mean seconds per run':28s} {np.mean([r['seconds'] for r in rows]):9.2f} s (in its worker)")
                print(f"{'load average before/after':28s} {load0:9.2f} / {os.getloadavg()[0]:.2f}")
                print()

        raw["schedule"] = {**raw["schedule"], "epochs": args.epochs}
        print(f"one configuration: N = 13, B matrix, 10 faces of person 0, batch 10, {args.epochs} epochs, one thread")
        print(f"{'':44s} {'seconds':>9s} {'ms/network':>11s} {'speed-up':>9s}")
        for label, optimizer in (("SGD (sample space)", None),
                                 ("Adam (weight space)", {"name": "adam", "params": {"lr": 0.001}})):
            separate = timed_runs(one_config(raw, tmp / "one", 1, optimizer), 64)
            together = timed_runs(one_config(raw, tmp / "all", 64, optimizer), 1)
            print(f"{label + ': 64 runs of 1 network':44s} {separate:9.2f} {1e3 * separate / 64:11.2f} {1.0:8.2f}×")
            print(f"{label + ': 1 run of 64 replicas':44s} {together:9.2f} {1e3 * together / 64:11.2f} "
                  f"{separate / together:8.2f}×")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
