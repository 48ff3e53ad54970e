"""What recording a run to HDF5 costs, on specs/olivetti.yaml (400 faces × 4096 pixels, 21 BCM
neurons, Adam, batch 100: 4 steps per epoch), at its default cadence (a record every 120 steps:
101 frames over its 3000 epochs) and at every epoch (every 4 steps), for the storage choices
(compression gzip | lzf | none, float16 frames, SWMR).

    python benchmarks/bench_recording.py                  # 1 thread, 25 records per row, 300-epoch runs
    python benchmarks/bench_recording.py --records 50 --epochs 600 --repeats 5 --threads 2

A record writes one frame of ``weights`` (21 × 4096) and ``theta`` and rewrites the resume
checkpoint (weights, θ, Adam's moments: 1 MB at full precision), with two HDF5 flushes.

Table 1, interleaved (the measurement to read on a shared machine): for each storage choice, a
Recorder on the real state, then ``--records`` times: 120 training steps (``rule.step`` on the
spec's batches), timed, then one record, timed until its writes are done (the state copy on the
training thread plus the compression and writes on the recorder's thread, run one after the
other: the whole CPU cost, none of it hidden by the thread).  Steps and records alternate, so a
slow moment of the machine slows both; medians.  Overhead at a cadence = ms per record / (steps
between records × ms per step).

Table 2, end to end (recording off versus on, in the same run): ``runner.execute_data`` of the
spec shortened to ``--epochs`` epochs, with ``path=None`` ("off") and with recording, in
rotating order, ``--repeats`` times; A/B is the median over repeats of the ratio to the "off"
run of the same repeat.  It includes the per-run costs (creating the file, the final state) that
a full-length run amortises, and on a loaded 2-core machine its run-to-run spread is ±10–25%:
it confirms table 1's order of magnitude, it cannot resolve 1%.

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
import numpy as np  # noqa: E402

from plasticity_kit.recording import Recorder  # noqa: E402
from plasticity_kit.runner import execute_data, seed_streams  # noqa: E402
from plasticity_kit.scheduler import Position  # noqa: E402
from plasticity_kit.spec import load_spec  # noqa: E402

SPEC = REPO / "specs" / "olivetti.yaml"
DEFAULT_EVERY = 120  # specs/olivetti.yaml: 12,000 steps -> 101 frames
STEPS_PER_EPOCH = 4
FULL_STEPS = 3000 * STEPS_PER_EPOCH

STORAGE = [  # name, record overrides
    ("gzip (the default)", {"compression": "gzip"}),
    ("gzip, float16", {"compression": "gzip", "dtype": "float16"}),
    ("lzf", {"compression": "lzf"}),
    ("lzf, float16", {"compression": "lzf", "dtype": "float16"}),
    ("none", {"compression": "none"}),
    ("none, float16", {"compression": "none", "dtype": "float16"}),
    ("gzip, SWMR", {"compression": "gzip", "swmr": True}),
]
END_TO_END = [  # name, record.every (None: off), record overrides
    ("off", None, {}),
    ("default cadence, gzip", DEFAULT_EVERY, {"compression": "gzip"}),
    ("default cadence, none, float16", DEFAULT_EVERY, {"compression": "none", "dtype": "float16"}),
    ("every epoch, gzip", STEPS_PER_EPOCH, {"compression": "gzip"}),
    ("every epoch, none, float16", STEPS_PER_EPOCH, {"compression": "none", "dtype": "float16"}),
]


def spec_with(epochs: int, out_dir: Path, every=None, record: dict | None = None):
    overrides = [f"schedule.epochs={epochs}", f"output.dir={out_dir}", "exporters=[]", "metrics=[]"]
    if every is not None:
        overrides.append(f"record.every={every}")
    overrides += [f"record.{k}={v}" for k, v in (record or {}).items()]
    return load_spec(SPEC, overrides)


def interleaved(name: str, record: dict, n_records: int, tmp: Path) -> dict:
    """Median ms per training step and per record (all its work), and stored kB per frame."""
    spec = spec_with(3000, tmp, DEFAULT_EVERY, record)
    streams = seed_streams(spec.schedule["seed"])
    data = spec.dataset.load(streams["data"])
    X = np.ascontiguousarray(data.X, dtype=spec.model.dtype)
    rule = spec.build_rule(X.shape[1])
    state = rule.init_state(streams["init"])
    batches = [np.ascontiguousarray(X[i::4]) for i in range(4)]
    path = tmp / f"{abs(hash(name))}.h5"
    recorder = Recorder(path, name="bench", spec_yaml=spec.to_yaml(), seed=0, seeds={}, data=data, state=state,
                        fields=spec.record["fields"], compression=spec.record["compression"],
                        dtype=spec.record["dtype"], swmr=spec.record["swmr"])
    rng = np.random.default_rng(0)
    step_ms, record_ms = [], []
    try:
        for i in range(n_records):
            start = time.perf_counter()
            for k in range(DEFAULT_EVERY):
                rule.step(state, batches[k % 4])
            middle = time.perf_counter()
            step = (i + 1) * DEFAULT_EVERY
            position = Position(step, step // 4, 0, rng.bit_generator.state, 0.0)
            recorder.record(step, step // 4, 0.0, state, position=position)
            recorder._worker.sync()  # the whole cost of the record, not only the training thread's part
            end = time.perf_counter()
            step_ms.append(1e3 * (middle - start) / DEFAULT_EVERY)
            record_ms.append(1e3 * (end - middle))
    finally:
        recorder.close()
    with h5py.File(path, "r") as f:
        frame_kb = f["trajectory/weights"].id.get_storage_size() / f["trajectory/weights"].shape[0] / 1e3
    return {"step": statistics.median(step_ms), "record": statistics.median(record_ms), "frame_kb": frame_kb}


def end_to_end(epochs: int, every, record: dict, out_dir: Path) -> dict:
    """Wall seconds, frames and file bytes of one ``execute_data`` of the shortened spec."""
    spec = spec_with(epochs, out_dir, every, record)
    streams = seed_streams(spec.schedule["seed"])
    data = spec.dataset.load(streams["data"])
    path = None if every is None else out_dir / "run.h5"
    start = time.perf_counter()
    result = execute_data(spec, data, path=path, streams=streams, progress=False, log=lambda *a: None)
    out = {"wall": time.perf_counter() - start, "frames": 0, "bytes": 0}
    assert result.outcome.status == "completed", result.outcome.message
    if path is not None:
        with h5py.File(path, "r") as f:
            out["frames"] = f["trajectory/step"].shape[0]
        out["bytes"] = path.stat().st_size
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=25, help="records per row of table 1")
    parser.add_argument("--epochs", type=int, default=300, help="epochs per run of table 2 (the spec has 3000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of table 2")
    parser.add_argument("--threads", default="1", help="OMP/OpenBLAS threads (read before numpy loads)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, record in STORAGE:
            got = interleaved(name, record, args.records, Path(tmp))
            rows.append((name, got))
            print(f"  {name:<20} {got['step']:.2f} ms/step {got['record']:.2f} ms/record", file=sys.stderr, flush=True)

        runs = {name: [] for name, _, _ in END_TO_END}
        for r in range(args.repeats):
            order = END_TO_END[r % len(END_TO_END):] + END_TO_END[:r % len(END_TO_END)]
            for i, (name, every, record) in enumerate(order):
                got = end_to_end(args.epochs, every, record, Path(tmp) / f"{r}-{i}")
                runs[name].append(got)
                print(f"  repeat {r + 1}: {name:<32} {got['wall']:7.2f} s", file=sys.stderr, flush=True)

    print(f"Table 1 — cost of one record against the training steps between records, interleaved "
          f"({args.records} records of 120 steps each, {args.threads} thread(s), medians)")
    print(f"{'storage':<20} {'ms/step':>8} {'ms/record':>10} {'default (120 steps)':>20} "
          f"{'every epoch (4)':>16} {'kB/frame':>9} {'MB, full run':>13}")
    for name, got in rows:
        default = 100 * got["record"] / (DEFAULT_EVERY * got["step"])
        epoch = 100 * got["record"] / (STEPS_PER_EPOCH * got["step"])
        full_mb = got["frame_kb"] * (FULL_STEPS // DEFAULT_EVERY + 1) / 1e3
        print(f"{name:<20} {got['step']:>8.2f} {got['record']:>10.2f} {default:>19.1f}% {epoch:>15.0f}% "
              f"{got['frame_kb']:>9.0f} {full_mb:>13.1f}")
    print("(MB, full run: the frames of weights at the default cadence, 101 of them; the file adds ~3 MB "
          "of checkpoint and final state)")

    steps = args.epochs * STEPS_PER_EPOCH
    print(f"\nTable 2 — end to end: runner.execute_data of the spec shortened to {args.epochs} epochs ({steps} steps), "
          f"median of {args.repeats} repeats")
    print(f"{'configuration':<32} {'frames':>6} {'wall s':>7} {'A/B':>7} {'file MB':>8}")
    for name, every, _ in END_TO_END:
        wall = statistics.median(x["wall"] for x in runs[name])
        if every is None:
            ab = "-"
        else:
            ab = f"{100 * (statistics.median(y['wall'] / o['wall'] for y, o in zip(runs[name], runs['off'])) - 1):+.1f}%"
        x = runs[name][-1]
        print(f"{name:<32} {x['frames']:>6} {wall:>7.2f} {ab:>7} {x['bytes'] / 1e6:>8.2f}")
    walls = [x["wall"] for x in runs["off"]]
    print(f"('off' over repeats: {min(walls):.2f}–{max(walls):.2f} s; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
