"""Command line: ``plasticity-kit run | validate | plugins | metrics | sweep | show | replay | watch``.

Exit status: 0 success, 1 the run diverged, 2 bad input (spec, data, plugin; a run file that
exists or another run is writing), 3 the run file could not be written (disk full, I/O error:
the file is marked failed), 130 interrupted (Ctrl-C or SIGTERM), 70 an unexpected exception (a
bug: its traceback is printed).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import textwrap

from .errors import DataError, PluginError, RunFileError, SpecError, one_line

EXIT_DIVERGED, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_INTERNAL = 70  # an unexpected exception (a bug): sysexits' EX_SOFTWARE


def _add_spec_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="YAML run spec")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a spec key (repeatable), e.g. --set model.n_neurons=9; an integer "
                        "part indexes a list: --set model.layers.1.n_neurons=64")


def _thread_count(text: str) -> int:
    from .threads import check

    try:
        return check(text, "--threads")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--threads: ")) from None


def cmd_run(args) -> int:
    from .runner import execute
    from .spec import load_spec

    threads = [f"output.threads={args.threads}"] if args.threads is not None else []
    spec = load_spec(args.spec, args.overrides + threads)
    if spec.raw.get("sweep"):
        raise SpecError("sweep", "this spec describes a sweep: run it with 'plasticity-kit sweep "
                        f"{args.spec}' (or remove the sweep section)", args.spec)
    # -q: stdout gets only the run file's path; errors and a run that did not complete go to stderr
    log = (lambda *a: None) if args.quiet else print
    log(f"{spec.name}: {spec.rule_class.name} rule, {spec.model.n_neurons} neurons, "
        f"{spec.schedule['epochs']} epochs, batch {spec.schedule['batch_size']} → {spec.output_dir}/")
    result = execute(spec, progress=None if not args.quiet else False, log=log, resume=args.resume,
                     overwrite=args.overwrite)
    o = result.outcome
    from .cli_replay import outcome_line

    line = outcome_line(o.status, o.message)
    if args.quiet:
        if o.status != "completed":
            print(line, file=sys.stderr)
        print(result.path)
    else:
        print(f"{line} in {o.elapsed:.1f} s")
        from .exporters.summary import score_lines

        for score in score_lines(result):  # the final scores, image scores beside their real floor
            print(score)
        print(f"trajectory: {result.path}")
        for path in result.outputs:
            print(f"wrote: {path}")
    if o.status == "diverged":
        return EXIT_DIVERGED
    if o.status == "interrupted":
        return EXIT_INTERRUPTED
    return 0


def cmd_validate(args) -> int:
    """Everything ``run`` (or ``sweep``) checks before it allocates a state: the spec, every run of
    its sweep, the data, the batch size and the memory estimate."""
    from .memory import available, human
    from .spec import preflight, read_with_overrides, resolve
    from .sweep import expand

    raw = read_with_overrides(args.spec, args.overrides)
    if raw.get("sweep") is not None:
        sweep = expand(raw, args.spec, preflight=True)
        print(f"{args.spec}: valid sweep of {len(sweep.runs)} runs → {sweep.directory}/")
        return 0
    spec = resolve(raw, args.spec)
    data, _ = preflight(spec)
    if args.print:
        sys.stdout.write(spec.to_yaml())
    else:
        free = available()
        print(f"{args.spec}: valid ({spec.rule_class.name} rule, {spec.model.n_neurons} neurons, "
              f"data '{spec.dataset.name}' {data.X.shape[0]}x{data.X.shape[1]}, {spec.schedule['epochs']} epochs; "
              f"memory {spec.memory.describe()}" + (f" of {human(free)} available)" if free else ")"))
    return 0


def cmd_plugins(args) -> int:
    from .plugins import plugin_table

    rows = plugin_table()
    if args.kind:
        rows = [r for r in rows if r[1] == args.kind]
    widths = [max(len(r[i]) for r in rows + [("plugin", "kind", "name", "")]) for i in range(3)]
    indent = sum(widths) + 6
    text_width = max(40, shutil.get_terminal_size().columns - indent)
    print(f"{'plugin':<{widths[0]}}  {'kind':<{widths[1]}}  {'name':<{widths[2]}}  description")
    for plugin, kind, name, doc in rows:
        lines = textwrap.wrap(doc, text_width, break_on_hyphens=False, break_long_words=False) or [""]
        print(f"{plugin:<{widths[0]}}  {kind:<{widths[1]}}  {name:<{widths[2]}}  {lines[0]}")
        for more in lines[1:]:
            print(" " * indent + more)
    return 0


def cmd_metrics(args) -> int:
    import json

    import numpy as np

    from .metrics.base import MetricUnavailable
    from .metrics.recompute import recompute

    params = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError("--param", f"expected KEY=VALUE, got {item!r}")
        params[key.strip()] = _param_value(value, f"--param {key.strip()}") if value.strip() else None

    def show(v):
        a = np.asarray(v)
        return f"{a.item():.6g}" if a.ndim == 0 else np.array2string(a, precision=4, threshold=12, separator=" ")

    records = []
    try:
        for run, step, name, values in recompute(args.runs, args.metric, params, args.step, args.pool):
            if args.json:
                records.append({"run": run, "step": step, "metric": name,
                                "values": {k: np.asarray(v).tolist() for k, v in values.items()}})
            else:
                print(f"{run} step {step}: {name}: " + ", ".join(f"{k} = {show(v)}" for k, v in values.items()))
    except MetricUnavailable as exc:
        print(f"error: metric unavailable: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(records, indent=1))
    return 0


def _param_value(text: str, key: str):
    """A command-line value read as YAML with the spec's limits (depth, aliases, plain values)."""
    import yaml

    from .spec import check_values, parse_yaml

    try:
        value = parse_yaml(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise SpecError(key, f"expected a YAML value, got {text[:60]!r} ({getattr(exc, 'problem', None) or exc})")
    check_values(value, key)
    return value


def cmd_sweep(args) -> int:
    from .plugins import registry
    from .sweep import load_sweep, run_sweep

    sweep = load_sweep(args.spec, args.overrides)
    if args.dry_run:
        replicas = sum(int(run.raw.get("model", {}).get("replicas", 1)) for run in sweep.runs)
        print(f"{sweep.name}: {len(sweep.runs)} runs, {replicas} networks → {sweep.directory}/")
        for run in sweep.runs:
            values = ", ".join(f"{k}={v}" for k, v in run.params.items())
            print(f"{run.name}\tseed={run.seed}\t{values}")
        return 0
    cls = registry().executors.get(args.executor, "--executor")
    config = {k: v for k, v in (("workers", args.workers), ("address", args.address)) if v}
    executor = cls.from_config(config, "--executor")
    rows = run_sweep(sweep, executor)
    print(f"table: {sweep.directory / 'sweep.csv'}")
    if sweep.plot:
        from .aggregate import plot_examples, plot_metric

        metric, x = sweep.plot["metric"], sweep.plot["x"]
        short = x.split(".")[-1]
        try:
            out = plot_metric(sweep.directory / "sweep.csv", x, metric, sweep.directory / f"{metric}-vs-{short}.png")
            print(f"wrote: {out}")
        except DataError as exc:  # e.g. fid skipped without the [fid] extra: the table is still there
            print(f"plot skipped: {exc}", file=sys.stderr)
        try:
            print(f"wrote: {plot_examples(sweep, x, sweep.directory / f'examples-by-{short}.png')}")
        except DataError as exc:
            print(f"examples skipped: {exc}", file=sys.stderr)
    failed = [r["name"] for r in rows if r["status"] != "completed"]
    if failed:
        print(f"{len(failed)} of {len(rows)} runs did not complete: {', '.join(failed)}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="plasticity-kit",
        description="Train local (non-backprop) learning rules from a YAML spec, record the whole trajectory "
                    "to HDF5, replay it and score it.",
        epilog="Exit status: 0 success, 1 the run diverged, 2 bad input (spec, data, plugin), 3 the run file could not "
               "be written (disk full), 130 interrupted, 70 an unexpected exception (a bug). "
               "Run 'plasticity-kit COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"plasticity-kit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train the run a spec describes and record it to HDF5")
    _add_spec_args(p)
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the run file's path (errors, and a run that did not complete, on stderr)")
    p.add_argument("--resume", metavar="RUN.h5", help="continue this interrupted run of the same spec from its "
                   "last recorded state, appending to the file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run file of this spec (without "
                   "it, an existing run.h5 stops the run)")
    p.add_argument("--threads", type=_thread_count, default=None, metavar="N",
                   help="threads of the kernels (sets output.threads; default: $PLASTICITY_KIT_THREADS, else the "
                   "CPUs this process may use); the result is the same for any N")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a spec without running it")
    _add_spec_args(p)
    p.add_argument("--print", action="store_true", help="print the fully resolved spec as YAML")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plugins", help="list installed plugins and what they register")
    p.add_argument("--kind", choices=["rules", "interactions", "activations", "optimizers", "initializers",
                                      "datasets", "exporters", "metrics", "executors"], help="only this kind")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("metrics", help="recompute metrics from saved run files")
    p.add_argument("runs", nargs="+", metavar="RUN.h5", help="run file(s) written by plasticity-kit run")
    p.add_argument("--metric", action="append", default=[], metavar="NAME",
                   help="metric to compute (repeatable; default: those in the run's spec)")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="metric parameter (repeatable), e.g. --param dims=64; overrides the run spec's")
    p.add_argument("--step", default="last", help="last (default), all, or a recorded step number")
    p.add_argument("--pool", action="store_true",
                   help="score the synthetic images of all the runs together (e.g. one middle neuron per seed)")
    p.add_argument("--json", action="store_true", help="print the values as JSON")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("sweep", help="expand a spec's sweep: section into runs; list them or run them")
    _add_spec_args(p)
    p.add_argument("--dry-run", action="store_true", help="list the runs (name, seed, swept values) without running")
    p.add_argument("--executor", default="local", help="where the runs execute: local (process pool, default), "
                   "inprocess, dask, or an installed executor plugin")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: the number of cores)")
    p.add_argument("--address", default=None, help="dask: the scheduler to connect to, e.g. tcp://10.0.0.5:8786 "
                   "(default: start a LocalCluster)")
    p.set_defaults(func=cmd_sweep)

    from .cli_replay import add_commands

    add_commands(sub)
    return parser


def main(argv=None) -> int:
    if (sys.argv[1:] if argv is None else list(argv))[:1] != ["run"]:
        return _command(argv)
    return _run_command(argv)


def _run_command(argv) -> int:
    """``run``: Ctrl-C and SIGTERM held back while the modules load (an import cut short can
    leave numpy half-loaded), then raised as KeyboardInterrupt: a run stopped at any instant
    exits 130 with its file closed (the training loop and the writes hold them back again)."""
    import signal

    held: list = []
    previous = {sig: signal.signal(sig, lambda signum, frame: held.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        build_parser()
        from . import runner  # noqa: F401 - the slow imports, signals held
        from .plugins import registry
        from .scheduler import Terminated

        registry()  # the plugins, the kernels among them

        def terminated(signum, frame):
            raise Terminated()

        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, terminated)
        if held:
            raise KeyboardInterrupt
        return _command(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():  # the run has ended: in a process of its own, a signal
            signal.signal(sig, signal.SIG_IGN if argv is None else handler)  # at exit changes nothing


def _command(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe (show | head -1) is then caught below
        return status
    except BrokenPipeError:
        return _stdout_closed()
    except (SpecError, DataError, PluginError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)  # one line, whatever the user's keys hold
        return EXIT_BAD_INPUT
    except RunFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug, not bad input: the traceback, and a status no outcome uses
        import traceback

        traceback.print_exc()
        print("internal error: this is a bug in plasticity-kit; please report it with the traceback above",
              file=sys.stderr)
        return EXIT_INTERNAL


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head``): stop quietly with 128 + SIGPIPE, as a tool
    killed by SIGPIPE would, pointing stdout at /dev/null so that the flush at exit cannot fail."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
