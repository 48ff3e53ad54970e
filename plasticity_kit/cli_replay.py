"""Command line for run files: ``plasticity-kit show | replay | watch RUN.h5``.

``show`` prints what a run file holds; ``replay`` draws it (receptive-field animation, θ and
metrics over time, the synthetic images at one step); ``watch`` follows a run while it is
written and exits with the run's exit status when it ends (0 completed, 1 diverged, 130
interrupted or killed).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from .errors import SpecError

EXIT_BY_STATUS = {"completed": 0, "diverged": 1, "interrupted": 130}


def outcome_line(status: str, message: str) -> str:
    """``status: message``, without repeating the status when the message already starts with it."""
    if not message:
        return status
    return message if message.startswith(status) else f"{status}: {message}"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def _value(v) -> str:
    a = np.asarray(v)
    if a.ndim == 0:
        return f"{a.item():.6g}"
    return f"array{list(a.shape)}"


def _writer_note(t) -> str:
    from .recording import writer_alive

    if t.status != "running":
        return ""
    alive = writer_alive(t.file.attrs)
    pid = t.file.attrs.get("writer_pid", "?")
    if alive is None:
        return f" (written on {t.file.attrs.get('writer_host', 'another machine')})"
    return f" (writer process {pid} {'alive' if alive else 'gone: killed? resume with run SPEC --resume FILE'})"


def _table(rows: list[tuple], indent: str = "  ") -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(f"{str(c):<{w}}" for c, w in zip(r, widths)).rstrip() for r in rows]


def _shape(shape) -> str:
    return "×".join(map(str, shape))


def _layers(t) -> list[str]:
    """``show``'s lines on a layered model: every layer, what it is, the maps it outputs and its recorded fields."""
    from .errors import DataError

    model = t.spec["model"]
    try:
        rule = t.rule
        shapes = [(b.in_shape, b.out_shape(b.in_shape)) for b in rule.blocks]
    except DataError:  # the rule's plugin is not installed here: what the spec says
        rule, shapes = None, [None] * len(model["layers"])
    rows = [("layer", "what", "maps", "recorded")]
    for i, (entry, shape) in enumerate(zip(model["layers"], shapes)):
        if "rule" in entry:
            conv = entry.get("conv")
            local = shape is not None and shape[1][:2] != (1, 1)  # no conv: dense, or its rule's own positions
            what = f"{entry['rule']['name']}, {entry['n_neurons']} " + (
                f"filters {conv['kernel']}×{conv['kernel']} (stride {conv['stride']}, padding {conv['padding']})"
                if conv else f"units, {'locally connected' if local else 'dense'}")
        else:
            params = ", ".join(f"{k} {v}" for k, v in entry.get("params", {}).items() if v is not None)
            what = f"{entry['stage']}" + (f" ({params})" if params else "")
        recorded = [name.split("/", 2)[2] for name in t.fields if name.startswith(f"layers/{i}/")]
        rows.append((i, what, f"{_shape(shape[0])} → {_shape(shape[1])}" if shape else "?",
                     ", ".join(recorded) or "-"))
    shape = f", input {_shape(rule.input_shape)}" if rule is not None else ""
    return [f"layers:   {len(rows) - 1}, training {model.get('training', 'greedy')}{shape}"] + _table(rows)


def cmd_show(args) -> int:
    from .recording import read_checkpoint
    from .replay import Trajectory
    from .runfile_check import reading

    with Trajectory(args.run) as t, reading(t.path, "the run file"):
        spec, attrs, data = t.spec, t.attrs, t.data_info
        model, sched = spec["model"], spec["schedule"]
        lines = [f"{t.path}: run '{attrs.get('name', '?')}'",
                 f"status:   {outcome_line(t.status, t.message)}{_writer_note(t)}",
                 f"created:  {attrs.get('created', '?')}" + (f", ended {attrs['ended']}" if "ended" in attrs else ""),
                 f"spec:     {model['rule']['name']} rule, {model['n_neurons']} neurons"
                 f"{' × ' + str(model['replicas']) + ' replicas' if model.get('replicas', 1) > 1 else ''}, {model['dtype']}; "
                 f"data '{data.get('name')}' ({int(data.get('n_samples', 0))} samples x {int(data.get('n_inputs', 0))}); "
                 f"{sched['epochs']} epochs, batch {sched['batch_size']}, seed {sched['seed']}"]
        steps = t.steps
        total = t.total_steps()
        if len(steps):
            lines.append(f"progress: step {steps[-1]} of {total} ({100 * steps[-1] / max(total, 1):.0f}%), "
                         f"epoch {t.epochs[-1]}, {t.times[-1]:.1f} s of training")
        resumed = list(np.asarray(attrs.get("resumed_at", [])).ravel())
        if resumed:
            lines.append(f"resumed:  at step{'s' if len(resumed) > 1 else ''} {', '.join(map(str, resumed))}")
        if model.get("layers"):
            lines += _layers(t)
        lines.append(f"fields:   {len(t)} frames" + (f", steps {steps[0]} to {steps[-1]}, every {spec['record']['every']}"
                                                     if len(steps) else ""))
        rows = [("name", "frame shape", "stored as", "compression")]
        for name in t.fields:
            ds = t[name].dataset
            rows.append((name, str(ds.shape[1:]), str(ds.dtype), ds.compression or "none"))
        lines += _table(rows)
        metrics = t.metrics
        if metrics:
            lines.append("metrics:")
            rows = [("name", "value", "evaluations", "last step", "last value")]
            for name, values in metrics.items():
                for key, series in values.items():
                    if key != "step":
                        rows.append((name, key, len(series), int(values["step"][-1]) if len(series) else "-",
                                     _value(series[-1]) if len(series) else "-"))
            lines += _table(rows)
        checkpoint = read_checkpoint(t.file, with_state=False)
        if checkpoint is not None and t.status in ("running", "interrupted"):
            p = checkpoint.position
            lines.append(f"checkpoint: step {p.step} (epoch {p.epoch}, batch {p.batch}); continue with: "
                         f"plasticity-kit run SPEC --resume {t.path}")
        if t.final_keys:
            lines.append(f"final:    {', '.join(t.final_keys)}")
        lines.append(f"file:     {_size(os.path.getsize(t.path))}{' (SWMR)' if attrs.get('swmr') else ''}")
    print("\n".join(lines))
    return 0


def _parse_step(text: str, t) -> int:
    steps = t.steps
    if not len(steps):
        raise SpecError("--frame", f"{t.path} has no recorded frame yet")
    if text in ("last", "first"):
        return int(steps[-1] if text == "last" else steps[0])
    try:
        return int(text)
    except ValueError:
        raise SpecError("--frame", f"expected a recorded step number, 'first' or 'last', got {text!r}") from None


def cmd_replay(args) -> int:
    from .exporters.animation import LAYER_FIELD, animate, default_field
    from .exporters.image_grid import save_image_grid
    from .exporters.timeline import plot_timeline
    from .replay import Trajectory

    if not (args.animate or args.plot or args.frame is not None):
        raise SpecError("replay", "nothing to do: give --animate FILE.gif, --plot FILE.png or --frame STEP --out FILE.png")
    if (args.frame is None) != (args.out is None):
        raise SpecError("--frame" if args.frame is None else "--out", "--frame STEP and --out FILE go together")
    if args.every < 1:
        raise SpecError("--every", f"expected an integer >= 1, got {args.every}")
    if args.fps <= 0:
        raise SpecError("--fps", f"expected a positive number, got {args.fps}")
    if args.layer is not None and args.field is not None:
        raise SpecError("--layer", "--layer I draws layers/I/weights: give --layer or --field, not both")
    with Trajectory(args.run) as t:
        if args.layer is not None:
            t.learned_layer(args.layer)
        field = args.field or default_field(t, args.layer)
        match = LAYER_FIELD.fullmatch(field)
        layer = int(match[1]) if match and t.spec["model"].get("layers") else None  # drawn as image patches
        if args.animate:
            path, n = animate(t, args.animate, field=field, every=args.every, fps=args.fps, cmap=args.cmap,
                              layer=args.layer)
            print(f"wrote: {path} ({n} frames of {field}, {args.fps:g} fps)")
        if args.plot:
            path, n = plot_timeline(t, args.plot)
            print(f"wrote: {path} ({n} panels)")
        if args.frame is not None:
            step = _parse_step(args.frame, t)
            if layer is not None:
                images = t.layer_patches(layer, t.index(step), key="--layer" if args.layer is not None else "--field")
                images = images[..., 0] if images.shape[3] == 1 else images
                title = (f"{t.attrs.get('name', '')}: layer {layer} ({t.rule.blocks[layer].rule.name}), step {step}, "
                         f"epoch {int(t.epochs[t.index(step)])}")
                path = save_image_grid(images, args.out, title=title, cmap="bwr")
                what = f"layer {layer}: {len(images)} fields of {_shape(images.shape[1:])}"
            else:
                state = t.at(step)
                images = state.synthesize()
                if images is None or not t.image_shape:
                    raise SpecError("--frame", f"{t.path}: rule '{t.spec['model']['rule']['name']}' or data "
                                               f"'{t.data_info.get('name')}' gives no images to draw")
                images = images.reshape((images.shape[0],) + t.image_shape)
                title = f"{t.attrs.get('name', '')}: step {step}, epoch {state.epoch}"
                path = save_image_grid(images, args.out, title=title)
                what = f"{images.shape[0]} neurons"
            print(f"wrote: {path} (step {step}, {what})")
    return 0


def _progress_line(t, total: int) -> str:
    steps = t.steps
    if not len(steps):
        return "no frame yet"
    step, elapsed = int(steps[-1]), float(t.times[-1])
    line = (f"step {step}/{total} ({100 * step / max(total, 1):.0f}%), epoch {int(t.epochs[-1])}, "
            f"{len(steps)} frames, {elapsed:.1f} s")
    if 0 < step < total and t.status == "running":
        line += f", ETA {elapsed / step * (total - step):.0f} s"
    latest = []
    for name, values in t.metrics.items():
        for key, series in values.items():
            if key != "step" and len(series) and np.asarray(series[-1]).ndim == 0:
                latest.append(f"{name}.{key}={_value(series[-1])} @{int(values['step'][-1])}")
    return line + (" | " + ", ".join(latest) if latest else "")


def cmd_watch(args) -> int:
    from .recording import writer_alive
    from .replay import Trajectory

    last, noted = None, False
    while True:
        with Trajectory(args.run) as t:
            total = t.total_steps()
            line = _progress_line(t, total)
            status = t.status
            alive = writer_alive(t.file.attrs) if status == "running" else None
            message = t.message
            swmr = bool(t.attrs.get("swmr"))
        if status == "running" and not swmr and not noted:
            print("note: the run is not written in SWMR mode (record.swmr: false): reading it live is best effort",
                  file=sys.stderr)
            noted = True
        if line != last:
            print(f"[{time.strftime('%H:%M:%S')}] {status}: {line}", flush=True)
            last = line
        if status != "running":
            print(outcome_line(status, message), flush=True)
            return EXIT_BY_STATUS.get(status, 0)
        if alive is False:
            print(f"the writing process is gone (killed?): the file stops at the line above; "
                  f"continue it with: plasticity-kit run SPEC --resume {args.run}", flush=True)
            return 130
        if args.once:
            return 0
        time.sleep(args.interval)


def add_commands(sub) -> None:
    """Register ``show``, ``replay`` and ``watch`` on the CLI's subparsers."""
    p = sub.add_parser("show", help="what a run file holds: status, spec, fields, metrics, size")
    p.add_argument("run", metavar="RUN.h5")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("replay", help="draw a run file: animation of receptive fields, θ and metrics, one frame")
    p.add_argument("run", metavar="RUN.h5")
    p.add_argument("--animate", metavar="FILE.gif|FILE.mp4", help="receptive fields over training (MP4 needs ffmpeg)")
    p.add_argument("--field", help="recorded field to animate (default: weights; a layered model: the first "
                   "learned layer's)")
    p.add_argument("--layer", type=int, metavar="I", help="a layered model's learned layer I (model.layers[I]): "
                   "--animate and --frame draw its receptive fields as image patches (k×k×C tiles of a first "
                   "convolutional layer; a deeper layer by its strongest inputs); default: the first learned layer")
    p.add_argument("--every", type=int, default=1, metavar="N", help="animate every N-th recorded frame")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second of the animation (default 10)")
    p.add_argument("--cmap", default="auto", help="matplotlib colormap of the animation (default auto: bwr with "
                   "symmetric limits for signed weights, grey min–max per neuron for one-signed weights)")
    p.add_argument("--plot", metavar="FILE.png", help="θ of every neuron and the metrics against the step")
    p.add_argument("--frame", metavar="STEP", help="a recorded step (or first, last) to draw with --out")
    p.add_argument("--out", metavar="FILE.png", help="where --frame draws the synthetic images")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("watch", help="follow a run while it is written: progress and latest metrics")
    p.add_argument("run", metavar="RUN.h5")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between polls (default 2)")
    p.add_argument("--once", action="store_true", help="print the progress once and exit")
    p.set_defaults(func=cmd_watch)

