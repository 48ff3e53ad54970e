"""What recording every epoch costs on specs/olivetti.yaml (400 faces × 4096 pixels, 21 BCM
neurons, Adam, batch 100: 4 steps per epoch), for the storage filters of the trajectory frames.

    python benchmarks/bench_recording.py                   # 1 thread, 300-epoch runs, 3 repeats
    python benchmarks/bench_recording.py --epochs 600 --repeats 5 --threads 2

Each row is ``runner.execute_data`` of the spec shortened to ``--epochs`` epochs, with a frame
(``weights`` 21 × 4096 and ``theta``) every epoch, against the same training without recording
("off").  Runs rotate through the rows, ``--repeats`` times; the overhead is the median over
repeats of the ratio to the "off" run of the same repeat, so a slow moment of a shared machine
slows both sides of a ratio.  The resume checkpoint (1 MB: weights, θ, Adam's moments) is written
every ``record.checkpoint_seconds`` (default 30 s) and when the run stops, not with every frame:
the rows show its default, and the cost of the old way (a checkpoint with every frame,
``checkpoint_seconds: 0``) for comparison.  gzip levels and the byte-shuffle filter are set
through ``recording.GZIP_LEVEL`` and ``recording.SHUFFLE`` (the spec chooses only the filter).

``--threads`` sets the OMP/OpenBLAS threads before numpy loads (default 1: on a shared 2-core
machine two threads make the step time vary several-fold between runs).
"""
from __future__ import annotations

import argparse
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

import h5py  # noqa: E402

from plasticity_kit import recording  # noqa: E402
from plasticity_kit.runner import execute_data, seed_streams  # noqa: E402
from plasticity_kit.spec import load_spec  # noqa: E402

SPEC = REPO / "specs" / "olivetti.yaml"
STEPS_PER_EPOCH = 4

ROWS = [  # name, record overrides, gzip level, shuffle
    ("off", None, None, None),
    ("none", {"compression": "none"}, None, None),
    ("lzf + shuffle", {"compression": "lzf"}, None, True),
    ("lzf", {"compression": "lzf"}, None, False),
    ("gzip 1 + shuffle", {"compression": "gzip"}, 1, True),
    ("gzip 1", {"compression": "gzip"}, 1, False),
    ("gzip 4 + shuffle", {"compression": "gzip"}, 4, True),
    ("gzip 9 + shuffle", {"compression": "gzip"}, 9, True),
    ("none, float16", {"compression": "none", "dtype": "float16"}, None, None),
    ("none, ckpt every frame", {"compression": "none", "checkpoint_seconds": 0}, None, None),
    ("none, first+last frame", {"compression": "none", "every": 0}, None, None),  # the per-run cost alone
]


def run(epochs: int, out_dir: Path, record: dict | None, level, shuffle) -> dict:
    """Wall seconds, frames and file bytes of one ``execute_data`` of the shortened spec."""
    record = None if record is None else {"every": STEPS_PER_EPOCH, **record}
    if record is not None and record["every"] == 0:
        record["every"] = epochs * STEPS_PER_EPOCH
    overrides = [f"schedule.epochs={epochs}", f"output.dir={out_dir}", "exporters=[]", "metrics=[]",
                 f"record.every={STEPS_PER_EPOCH}"] + [f"record.{k}={v}" for k, v in (record or {}).items()]
    spec = load_spec(SPEC, overrides)
    if level is not None:
        recording.GZIP_LEVEL = level
    if shuffle is not None:
        recording.SHUFFLE = shuffle
    streams = seed_streams(spec.schedule["seed"])
    data = spec.dataset.load(streams["data"])
    path = None if record is None else out_dir / "run.h5"
    start = time.perf_counter()
    cpu = time.process_time()
    result = execute_data(spec, data, path=path, streams=streams, progress=False, log=lambda *a: None)
    out = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, "frames": 0, "bytes": 0}
    assert result.outcome.status == "completed", result.outcome.message
    if path is not None:
        with h5py.File(path, "r") as f:
            out["frames"] = f["trajectory/step"].shape[0]
            out["frame_kb"] = f["trajectory/weights"].id.get_storage_size() / out["frames"] / 1e3
        out["bytes"] = path.stat().st_size
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="epochs per run (the spec has 3000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of every row")
    parser.add_argument("--threads", default="1", help="OMP/OpenBLAS threads (read before numpy loads)")
    parser.add_argument("--rows", nargs="*", metavar="NAME", help="only these rows (and 'off'), e.g. none 'gzip 1'")
    args = parser.parse_args(argv)
    rows = [row for row in ROWS if not args.rows or row[0] in ["off", *args.rows]]
    default_level, default_shuffle = recording.GZIP_LEVEL, recording.SHUFFLE

    runs: dict = {name: [] for name, *_ in rows}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = rows[r % len(rows):] + rows[:r % len(rows)]
            for i, (name, record, level, shuffle) in enumerate(order):
                got = run(args.epochs, Path(tmp) / f"{r}-{i}", record, level, shuffle)
                recording.GZIP_LEVEL, recording.SHUFFLE = default_level, default_shuffle
                loads.append(os.getloadavg()[0])
                runs[name].append(got)
                print(f"  repeat {r + 1}: {name:<24} {got['wall']:7.2f} s  load {loads[-1]:.1f}",
                      file=sys.stderr, flush=True)

    print(f"Recording every epoch ({args.epochs + 1} frames of weights 21x4096 + theta) on "
          f"specs/olivetti.yaml shortened to {args.epochs} epochs, {args.threads} thread(s), median of "
          f"{args.repeats} repeats; overhead = wall / wall of 'off' in the same repeat - 1")
    print(f"{'frames stored as':<24} {'wall s':>7} {'CPU s':>6} {'overhead':>9} {'kB/frame':>9} {'file MB':>8}")
    for name, *_ in rows:
        wall = statistics.median(x["wall"] for x in runs[name])
        cpu = statistics.median(x["cpu"] for x in runs[name])
        if name == "off":
            over, kb, mb = "-", "-", "-"
        else:
            over = f"{100 * (statistics.median(y['wall'] / o['wall'] for y, o in zip(runs[name], runs['off'])) - 1):+.1f}%"
            kb, mb = f"{runs[name][-1]['frame_kb']:.0f}", f"{runs[name][-1]['bytes'] / 1e6:.1f}"
        print(f"{name:<24} {wall:>7.2f} {cpu:>6.2f} {over:>9} {kb:>9} {mb:>8}")
    print(f"(load average {min(loads):.1f}-{max(loads):.1f} during the runs, on {os.cpu_count()} CPUs; "
          f"checkpoints every {recording.CHECKPOINT_SECONDS:.0f} s unless the row says otherwise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
