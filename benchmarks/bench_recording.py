"""What recording a run to HDF5 costs: the same run with recording off, at the default cadence of
specs/olivetti.yaml and at every epoch, with the storage choices (compression, float16, SWMR).

    python benchmarks/bench_recording.py                  # 300 epochs, 3 repeats, 1 thread
    python benchmarks/bench_recording.py --epochs 600 --repeats 5 --threads 2

The run is specs/olivetti.yaml (400 faces × 4096 pixels, 21 BCM neurons, batch 100: 4 steps per
epoch) shortened to ``--epochs`` epochs; exporters and metrics off.  The cadences keep their
spacing in steps: "default" records every 120 steps as the spec does (101 frames over its 3000
epochs, 1 + epochs·4/120 here), "every epoch" every 4 steps.  A record writes one frame of
``weights`` (21 × 4096) and ``theta``, and rewrites the resume checkpoint (weights, θ and the
Adam moments: 1 MB at full precision), each followed by an HDF5 flush.  The overhead of a
cadence is a ratio of steps to records, so it does not depend on how many epochs are run.

Timed: ``runner.execute_data`` (rule built, recorder opened, the training loop, final state
written, file closed) — the same call with ``path=None`` is the "off" baseline measured in the
same run.  The configurations run interleaved, their order rotating each repeat.  Columns:
wall seconds, "A/B" the wall overhead against "off"; "ms/record" the time the training thread
spends per record (copying the state and queueing it: the recorder's thread compresses and
writes while training goes on), "fixed" the per-run cost (creating the file, writing the final
state, waiting for the last writes at close); "full run" projects both onto the whole spec
(3000 epochs: 101 frames at the default cadence, 3001 at every epoch) with the step time of
"off": fixed + frames × ms/record over 12,000 steps.  Medians over the repeats.  The recorder's
thread also takes CPU time; on a machine with no idle core that shows in A/B only.

``--threads`` sets OMP/OpenBLAS threads before numpy loads (default 1: on a shared 2-core
machine two threads make the step time vary several-fold between runs).
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads

from plasticity_kit.recording import Recorder  # noqa: E402
from plasticity_kit.runner import execute_data, seed_streams  # noqa: E402
from plasticity_kit.spec import load_spec  # noqa: E402

SPEC = REPO / "specs" / "olivetti.yaml"
DEFAULT_EVERY = 120  # specs/olivetti.yaml: 12,000 steps -> 101 frames
STEPS_PER_EPOCH = 4

CONFIGS = [  # name, record.every (None: off), record overrides
    ("off", None, {}),
    ("default cadence, gzip", DEFAULT_EVERY, {"compression": "gzip"}),
    ("default cadence, gzip, float16", DEFAULT_EVERY, {"compression": "gzip", "dtype": "float16"}),
    ("default cadence, gzip, SWMR", DEFAULT_EVERY, {"compression": "gzip", "swmr": True}),
    ("every epoch, gzip", STEPS_PER_EPOCH, {"compression": "gzip"}),
    ("every epoch, lzf", STEPS_PER_EPOCH, {"compression": "lzf"}),
    ("every epoch, none", STEPS_PER_EPOCH, {"compression": "none"}),
    ("every epoch, gzip, float16", STEPS_PER_EPOCH, {"compression": "gzip", "dtype": "float16"}),
    ("every epoch, lzf, float16", STEPS_PER_EPOCH, {"compression": "lzf", "dtype": "float16"}),
]


SPENT = {"fixed": 0.0, "record": 0.0}


def _timed(method, kind):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            SPENT[kind] += time.perf_counter() - start
    return wrapper


for _name, _kind in (("__init__", "fixed"), ("record", "record"), ("finish", "fixed"), ("close", "fixed")):
    setattr(Recorder, _name, _timed(getattr(Recorder, _name), _kind))


def run_once(epochs: int, every, record: dict, out_dir: Path) -> dict:
    """Wall and CPU seconds, seconds inside the recorder, frames and file bytes of one run."""
    overrides = [f"schedule.epochs={epochs}", f"output.dir={out_dir}", "exporters=[]", "metrics=[]"]
    if every is not None:
        overrides.append(f"record.every={every}")
        overrides += [f"record.{k}={v}" for k, v in record.items()]
    spec = load_spec(SPEC, overrides)
    streams = seed_streams(spec.schedule["seed"])
    data = spec.dataset.load(streams["data"])
    path = None if every is None else out_dir / "run.h5"
    SPENT.update(fixed=0.0, record=0.0)
    start = time.perf_counter()
    result = execute_data(spec, data, path=path, streams=streams, progress=False, log=lambda *a: None)
    out = {"wall": time.perf_counter() - start, **SPENT, "frames": 0, "bytes": 0}
    assert result.outcome.status == "completed", result.outcome.message
    if path is not None:
        import h5py

        with h5py.File(path, "r") as f:
            out["frames"] = f["trajectory/step"].shape[0]
        out["bytes"] = path.stat().st_size
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="epochs per run (the spec has 3000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1", help="OMP/OpenBLAS threads (read before numpy loads)")
    args = parser.parse_args(argv)

    runs = {name: [] for name, _, _ in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = CONFIGS[r % len(CONFIGS):] + CONFIGS[:r % len(CONFIGS)]
            for i, (name, every, record) in enumerate(order):
                got = run_once(args.epochs, every, record, Path(tmp) / f"{r}-{i}")
                runs[name].append(got)
                print(f"  repeat {r + 1}: {name:<32} {got['wall']:7.2f} s, {got['record']:6.3f} s recording, "
                      f"{got['fixed']:6.3f} s fixed", file=sys.stderr, flush=True)

    def med(name, key):
        return statistics.median(x[key] for x in runs[name])

    base = med("off", "wall")
    steps = args.epochs * STEPS_PER_EPOCH
    full_steps = 3000 * STEPS_PER_EPOCH
    step_s = base / steps
    print(f"specs/olivetti.yaml shortened to {args.epochs} epochs ({steps} steps), {args.threads} thread(s), "
          f"median of {args.repeats} repeats; step {1e3 * step_s:.2f} ms with recording off")
    print(f"{'configuration':<32} {'frames':>6} {'wall s':>7} {'A/B':>7} {'ms/record':>9} {'fixed s':>7} "
          f"{'full run':>8} {'file MB':>8} {'kB/frame':>8}")
    for name, every, _ in CONFIGS:
        x = runs[name][-1]
        if every is None:
            ab = per_record = fixed = projected = "-"
        else:
            ab = f"{100 * (med(name, 'wall') / base - 1):+.1f}%"
            ms = 1e3 * statistics.median(y["record"] / y["frames"] for y in runs[name])
            per_record, fixed = f"{ms:.2f}", f"{med(name, 'fixed'):.3f}"
            frames_full = full_steps // every + 1
            projected = f"{100 * (med(name, 'fixed') + frames_full * ms / 1e3) / (full_steps * step_s):.1f}%"
        per_frame = f"{x['bytes'] / x['frames'] / 1e3:.0f}" if x["frames"] else "-"
        print(f"{name:<32} {x['frames']:>6} {med(name, 'wall'):>7.2f} {ab:>7} {per_record:>9} {fixed:>7} "
              f"{projected:>8} {x['bytes'] / 1e6:>8.2f} {per_frame:>8}")
    walls = [x["wall"] for x in runs["off"]]
    print(f"('off' wall over repeats: {min(walls):.2f}–{max(walls):.2f} s; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
