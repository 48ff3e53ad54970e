"""Validation of run files before anything reads them: :func:`check_run_file`, :func:`open_checked`.

Every read path (``show``, ``replay``, ``watch``, ``metrics``, ``plasticity_kit.open`` and the
resume pre-check) opens a run file through :func:`open_checked`, which compares what the file
declares with the contract of :mod:`plasticity_kit.recording` before a single array is read:

* root attributes: ``format = "plasticity-kit/trajectory"``, an integer ``format_version`` this
  version reads, a ``status`` among the known ones; text attributes are text (``str`` or
  ``bytes``), integer ones integers, whatever HDF5 type they were stored as;
* the ``spec`` dataset is one YAML text giving a mapping with the sizes the readers use
  (``model.n_neurons``, ``schedule.epochs``, ``schedule.batch_size``, ...);
* groups ``data`` (``n_samples``, ``n_inputs``, ``image_shape`` with ∏ image_shape = n_inputs,
  ``indices`` of length n_samples) and ``trajectory`` (``step``, ``epoch``, ``time`` and the
  recorded fields, all of one length — longer fields allowed in a file still ``running`` or
  ``failed``, whose writer appends the axes of its frames at the next flush, ``step`` last);
* sizes: ``weights`` has ``model.n_neurons`` rows (axis −2), every field a leading axis of
  ``replicas`` networks when replicated, the checkpoint's and ``final``'s arrays the frame shape
  of the same field; every dataset numeric;
* ``checkpoint``: ``current`` in {−1, 0, 1}, the slot it names with a 4-integer ``position``, a
  scalar ``elapsed`` and a JSON ``rng`` mapping.

Reads are bounded: no single read may exceed :data:`READ_CAP` bytes (``ds.shape`` × itemsize is
compared before reading), so a file declaring a 73 TiB dataset — HDF5 stores a chunked dataset
that was never written in a few bytes — is refused with a message instead of allocated.  Any
problem raises :class:`MalformedRunFile`, one line naming the file and what is wrong (exit status 2
on the command line).
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import yaml

from .errors import DataError

READ_CAP = 1 << 30  # bytes one read of a run file may allocate (a frame, an axis, a metric series)
TEXT_CAP = 16 << 20  # bytes of the spec text
NUMERIC = "biuf"


class MalformedRunFile(DataError):
    """A run file cannot be read: missing, not a run file, damaged, or contradicting itself
    (a bad-input error: exit status 2; :class:`~plasticity_kit.errors.RunFileError` is the
    writer's, exit 3).  ``str()`` is one line: ``<path>: <what is wrong>``."""

    def __init__(self, path, problem: str):
        self.path, self.problem = Path(path), " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextmanager
def reading(path, what: str):
    """Turn an error HDF5 raises while reading ``what`` (a damaged chunk, a truncated file) into
    a :class:`MalformedRunFile` naming the file."""
    try:
        yield
    except MalformedRunFile:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        if isinstance(exc, DataError):
            raise
        raise MalformedRunFile(path, f"{what} cannot be read ({_short(exc)})") from None


def nbytes(ds: h5py.Dataset, frames: int | None = None) -> int:
    """Bytes of ``ds`` (or of ``frames`` entries along its first axis) once read into memory."""
    shape = tuple(ds.shape or ())
    if frames is not None:
        shape = (frames,) + shape[1:]
    return math.prod(shape) * ds.dtype.itemsize


def read(path, ds: h5py.Dataset, index=(), *, what: str, frames: int | None = None):
    """``ds[index]`` after checking that it reads at most :data:`READ_CAP` bytes (``frames``:
    how many entries along the first axis ``index`` selects; default all of them)."""
    size = nbytes(ds, frames)
    if size > READ_CAP:
        raise MalformedRunFile(path, f"{what} would need {size / 2**30:.3g} GiB in memory, over the "
                                 f"{READ_CAP / 2**30:.3g} GiB read cap (declared shape {tuple(ds.shape)})")
    with reading(path, what):
        return ds[index]


# -- attribute values, whatever HDF5 type they came back as ---------------------------------

def as_text(value) -> str | None:
    """``value`` as text if it is a string (``str``, ``bytes``, a 0-d string array), else None."""
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "SUO":
            return None
        value = value.item()
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(value) if isinstance(value, str) else None


def as_int(value) -> int | None:
    """``value`` as an int if it is an integer scalar (a 0-d or 1-element integer array too), else None."""
    if isinstance(value, np.ndarray):
        if value.size != 1 or value.dtype.kind not in "iu":
            return None
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None


_MISSING = object()


class _Checker:
    def __init__(self, f: h5py.File, path: Path, for_resume: bool):
        self.f, self.path, self.for_resume = f, path, for_resume

    def fail(self, problem: str):
        raise MalformedRunFile(self.path, problem)

    def attr(self, obj, name: str, where: str = ""):
        try:
            return obj.attrs[name] if name in obj.attrs else _MISSING
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            self.fail(f"attribute '{where}{name}' cannot be read ({_short(exc)})")

    def text_attr(self, obj, name: str, where: str = "", required: bool = False) -> str | None:
        value = self.attr(obj, name, where)
        if value is _MISSING:
            if required:
                self.fail(f"attribute '{where}{name}' is missing")
            return None
        text = as_text(value)
        if text is None:
            self.fail(f"attribute '{where}{name}' is {_kind(value)}, expected text")
        return text

    def int_attr(self, obj, name: str, where: str = "", required: bool = False, low: int | None = None) -> int | None:
        value = self.attr(obj, name, where)
        if value is _MISSING:
            if required:
                self.fail(f"attribute '{where}{name}' is missing")
            return None
        number = as_int(value)
        if number is None:
            self.fail(f"attribute '{where}{name}' is {_kind(value)}, expected an integer")
        if low is not None and number < low:
            self.fail(f"attribute '{where}{name}' is {number}, expected an integer >= {low}")
        return number

    def group(self, name: str, required: bool = True) -> h5py.Group | None:
        try:
            obj = self.f.get(name)
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            self.fail(f"'{name}' cannot be read ({_short(exc)})")
        if obj is None:
            if required:
                self.fail(f"group '{name}' is missing")
            return None
        if not isinstance(obj, h5py.Group):
            self.fail(f"'{name}' is a dataset, expected a group")
        return obj

    def dataset(self, parent: h5py.Group, name: str, where: str, required: bool = True) -> h5py.Dataset | None:
        try:
            obj = parent.get(name)
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            self.fail(f"'{where}' cannot be read ({_short(exc)})")
        if obj is None:
            if required:
                self.fail(f"dataset '{where}' is missing")
            return None
        if not isinstance(obj, h5py.Dataset):
            self.fail(f"'{where}' is a group, expected a dataset")
        return obj

    def numeric(self, ds: h5py.Dataset, where: str, kinds: str = NUMERIC, ndim: int | None = None) -> h5py.Dataset:
        try:
            kind, shape = ds.dtype.kind, ds.shape
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            self.fail(f"'{where}' cannot be read ({_short(exc)})")
        if kind not in kinds or ds.dtype.subdtype is not None or ds.dtype.names:
            expected = {"iu": "integers", "f": "floats", "fiu": "numbers"}.get("".join(sorted(kinds)), "numbers")
            self.fail(f"'{where}' holds {ds.dtype}, expected {expected}")
        if shape is None:
            self.fail(f"'{where}' has no shape (an empty dataspace)")
        if ndim is not None and len(shape) != ndim:
            self.fail(f"'{where}' has shape {shape}, expected {ndim} dimension{'s' if ndim != 1 else ''}")
        if nbytes(ds) > READ_CAP and where.split("/")[0] not in ("trajectory",):
            self.fail(f"'{where}' declares shape {shape} ({nbytes(ds) / 2**30:.3g} GiB), over the "
                      f"{READ_CAP / 2**30:.3g} GiB read cap")
        return ds

    # -- the parts of the contract ----------------------------------------------------------
    def root(self) -> dict:
        from .recording import FORMAT, FORMAT_VERSION, STATUSES

        fmt = self.attr(self.f, "format")
        if fmt is _MISSING:
            self.fail(f"not a plasticity-kit run file (no 'format' attribute; expected {FORMAT!r})")
        if as_text(fmt) != FORMAT:
            self.fail(f"not a plasticity-kit run file (format attribute is {_show(fmt)}, expected {FORMAT!r})")
        version = self.int_attr(self.f, "format_version", required=True, low=1)
        if version > FORMAT_VERSION:
            self.fail(f"written in run-file format version {version}; this plasticity-kit reads up to "
                      f"version {FORMAT_VERSION} (upgrade plasticity-kit)")
        status = self.text_attr(self.f, "status", required=True)
        if status not in STATUSES:
            self.fail(f"attribute 'status' is {status!r}, expected one of {', '.join(STATUSES)}")
        for name in ("message", "name", "created", "ended", "writer_host", "plasticity_kit_version"):
            self.text_attr(self.f, name)
        for name in ("steps", "epochs_completed", "writer_pid", "seed"):
            self.int_attr(self.f, name, low=0)
        replicas = self.int_attr(self.f, "replicas", low=1) or 1
        resumed = self.attr(self.f, "resumed_at")
        if resumed is not _MISSING:
            a = np.asarray(resumed)
            if a.ndim > 1 or (a.size and a.dtype.kind not in "iu"):
                self.fail(f"attribute 'resumed_at' is {_kind(resumed)}, expected a list of steps")
        swmr = self.attr(self.f, "swmr")
        if swmr is not _MISSING and not (isinstance(swmr, (bool, np.bool_)) or as_int(swmr) is not None):
            self.fail(f"attribute 'swmr' is {_kind(swmr)}, expected true or false")
        return {"status": status, "replicas": replicas}

    def spec(self) -> dict:
        ds = self.dataset(self.f, "spec", "spec")
        try:
            kind, shape = ds.dtype.kind, ds.shape
        except (OSError, ValueError, TypeError) as exc:
            self.fail(f"'spec' cannot be read ({_short(exc)})")
        if shape != () or kind not in "SOU":
            self.fail(f"'spec' is {ds.dtype} of shape {shape}, expected one YAML text")
        if kind == "S" and ds.dtype.itemsize > TEXT_CAP:
            self.fail(f"'spec' declares {ds.dtype.itemsize} bytes of text, over {TEXT_CAP} bytes")
        with reading(self.path, "'spec'"):
            value = ds[()]
        text = as_text(value)
        if text is None:
            self.fail("'spec' is not UTF-8 text")
        if len(text) > TEXT_CAP:
            self.fail(f"'spec' holds {len(text)} characters, over {TEXT_CAP}")
        from .spec import parse_yaml  # the safe loader with a nesting limit

        try:
            spec = parse_yaml(text)
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            self.fail(f"'spec' is not valid YAML ({_short(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
        if not isinstance(spec, dict):
            self.fail(f"'spec' is {_kind(spec)}, expected a mapping of spec sections")
        model = self._section(spec, "model")
        rule = model.get("rule")
        if not isinstance(rule, dict) or not isinstance(rule.get("name"), str):
            self.fail("'spec': model.rule is not a mapping with a name (a resolved spec)")
        self._spec_int(model, "model.n_neurons", 1)
        if not isinstance(model.get("dtype"), str):
            self.fail(f"'spec': model.dtype is {_kind(model.get('dtype'))}, expected text")
        if "replicas" in model:
            self._spec_int(model, "model.replicas", 1)
        schedule = self._section(spec, "schedule")
        self._spec_int(schedule, "schedule.epochs", 0)
        self._spec_int(schedule, "schedule.batch_size", 1)
        self._spec_int(schedule, "schedule.seed", 0)
        record = self._section(spec, "record")
        if record.get("every") is not None:
            self._spec_int(record, "record.every", 1)
        return spec

    def _section(self, spec: dict, name: str) -> dict:
        value = spec.get(name)
        if not isinstance(value, dict):
            self.fail(f"'spec': section {name} is {_kind(value)}, expected a mapping")
        return value

    def _spec_int(self, mapping: dict, key: str, low: int) -> int:
        value = mapping.get(key.split(".")[-1])
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.fail(f"'spec': {key} is {_show(value)}, expected an integer >= {low}")
        return value

    def data(self) -> dict:
        g = self.group("data")
        n_samples = self.int_attr(g, "n_samples", "data/", required=True, low=1)
        n_inputs = self.int_attr(g, "n_inputs", "data/", required=True, low=1)
        for name in ("name", "source", "checksum"):
            self.text_attr(g, name, "data/")
        shape = self.attr(g, "image_shape", "data/")
        if shape is not _MISSING:
            a = np.asarray(shape)
            if a.ndim > 1 or (a.size and (a.dtype.kind not in "iu" or (a <= 0).any())) or a.size > 8:
                self.fail(f"attribute 'data/image_shape' is {_show(shape)}, expected a list of positive sizes")
            if a.size and math.prod(int(s) for s in a) != n_inputs:
                self.fail(f"attribute 'data/image_shape' {list(map(int, a))} does not hold n_inputs = {n_inputs} values")
        ds = self.numeric(self.dataset(g, "indices", "data/indices"), "data/indices", "iu", ndim=1)
        if ds.shape[0] != n_samples:
            self.fail(f"'data/indices' has {ds.shape[0]} rows, expected n_samples = {n_samples}")
        labels = self.dataset(g, "labels", "data/labels", required=False)
        if labels is not None:
            self.numeric(labels, "data/labels")
            if not labels.shape or labels.shape[0] != n_samples:
                self.fail(f"'data/labels' has shape {labels.shape}, expected {n_samples} rows (n_samples)")
        return {"n_samples": n_samples, "n_inputs": n_inputs}

    def trajectory(self, status: str, replicas: int, n_neurons: int) -> dict:
        from .recording import AXES

        g = self.group("trajectory")
        step = self.numeric(self.dataset(g, "step", "trajectory/step"), "trajectory/step", "iu", ndim=1)
        n = step.shape[0]
        # a live or killed writer (running), or one stopped by a failed write, may have written
        # frames whose step/epoch/time wait for the next flush: their datasets run ahead of step
        ahead = status in ("running", "failed")
        frames: dict = {}
        names: list = []  # nested too: a layered model records layers/<i>/<field>
        with reading(self.path, "'trajectory'"):
            g.visititems(lambda key, obj: names.append(key) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            where = f"trajectory/{name}"
            ds = self.dataset(g, name, where)
            axis = name in dict(AXES)
            self.numeric(ds, where, {"step": "iu", "epoch": "iu", "time": "fiu"}.get(name, NUMERIC),
                         ndim=1 if axis else None)
            length = ds.shape[0] if ds.shape else 0
            if length < n or (length > n and not ahead):
                self.fail(f"'{where}' has {length} frames, 'trajectory/step' {n}")
            if axis:
                if nbytes(ds) > READ_CAP:
                    self.fail(f"'{where}' declares {n} frames ({nbytes(ds) / 2**30:.3g} GiB), over the "
                              f"{READ_CAP / 2**30:.3g} GiB read cap")
                continue
            frame = tuple(ds.shape[1:])
            if nbytes(ds, 1) > READ_CAP:
                self.fail(f"'{where}' declares frames of shape {frame} ({nbytes(ds, 1) / 2**30:.3g} GiB each), "
                          f"over the {READ_CAP / 2**30:.3g} GiB read cap")
            if replicas > 1 and (not frame or frame[0] != replicas):
                self.fail(f"'{where}' has frames of shape {frame}, expected a first axis of {replicas} replicas")
            if name == "weights" and (len(frame) < 2 or frame[-2] != n_neurons):
                self.fail(f"'{where}' has frames of shape {frame}, expected model.n_neurons = {n_neurons} "
                          f"rows (axis -2)")
            frames[name] = frame
        for axis, _ in AXES:
            if axis not in g:
                self.fail(f"dataset 'trajectory/{axis}' is missing")
        self.complete = min(g[k].shape[0] for k in names)  # frames whose every dataset is written
        self.written = max(g[k].shape[0] for k in names)
        return frames

    def metrics(self) -> None:
        g = self.group("metrics", required=False)
        if g is None:
            return
        for name in list(g):
            sub = g.get(name)
            if not isinstance(sub, h5py.Group):
                self.fail(f"'metrics/{name}' is a dataset, expected a group")
            self.numeric(self.dataset(sub, "step", f"metrics/{name}/step"), f"metrics/{name}/step", "iu", ndim=1)
            for key in list(sub):
                ds = self.numeric(self.dataset(sub, key, f"metrics/{name}/{key}"), f"metrics/{name}/{key}")
                if not ds.shape:
                    self.fail(f"'metrics/{name}/{key}' is a scalar, expected one value per evaluation")

    def checkpoint(self, frames: dict, n_frames: int) -> None:
        g = self.group("checkpoint", required=False)
        if g is None:
            if self.for_resume:
                self.fail("no checkpoint to resume from (group 'checkpoint' is missing)")
            return
        ds = self.numeric(self.dataset(g, "current", "checkpoint/current"), "checkpoint/current", "iu")
        if ds.shape not in ((), (1,)):
            self.fail(f"'checkpoint/current' has shape {ds.shape}, expected a scalar")
        with reading(self.path, "'checkpoint/current'"):
            current = int(np.asarray(ds[()]).reshape(()))
        if current not in (-1, 0, 1):
            self.fail(f"'checkpoint/current' is {current}, expected -1, 0 or 1")
        if current < 0:
            if self.for_resume:
                self.fail("no checkpoint to resume from (none was written before the run stopped)")
            return
        where = f"checkpoint/{current}"
        slot = self.group(where)
        position = self.numeric(self.dataset(slot, "position", f"{where}/position"), f"{where}/position", "iu")
        if position.shape != (4,):
            self.fail(f"'{where}/position' has shape {position.shape}, expected 4 integers")
        with reading(self.path, f"'{where}/position'"):
            step, epoch, batch, saved_frames = (int(v) for v in position[:])
        if min(step, epoch, batch, saved_frames) < 0 or saved_frames > n_frames + 1:
            self.fail(f"'{where}/position' is {[step, epoch, batch, saved_frames]}: expected step, epoch, batch >= 0 "
                      f"and 0 to {n_frames + 1} frames")
        elapsed = self.numeric(self.dataset(slot, "elapsed", f"{where}/elapsed"), f"{where}/elapsed", "fiu")
        if elapsed.shape not in ((), (1,)):
            self.fail(f"'{where}/elapsed' has shape {elapsed.shape}, expected a scalar")
        rng = self.dataset(slot, "rng", f"{where}/rng")
        if rng.dtype.kind != "S" or rng.shape != () or rng.dtype.itemsize > 1 << 16:
            self.fail(f"'{where}/rng' is {rng.dtype} of shape {rng.shape}, expected one JSON text")
        with reading(self.path, f"'{where}/rng'"):
            text = rng[()]
        try:
            state = json.loads(bytes(text).decode("utf-8"))
        except (ValueError, RecursionError):
            self.fail(f"'{where}/rng' is not the JSON of a random generator state")
        if not isinstance(state, dict):
            self.fail(f"'{where}/rng' is {_kind(state)}, expected the JSON mapping of a random generator state")
        self.state_arrays(self.group(f"{where}/state"), f"{where}/state", frames)

    def state_arrays(self, g: h5py.Group, where: str, frames: dict) -> None:
        problems = []

        def visit(key, obj):
            if isinstance(obj, h5py.Dataset):
                problems.append((key, obj))
        with reading(self.path, f"'{where}'"):
            g.visititems(visit)
        for key, ds in problems:
            self.numeric(ds, f"{where}/{key}")
            if key in frames and tuple(ds.shape) != frames[key]:
                self.fail(f"'{where}/{key}' has shape {tuple(ds.shape)}, its recorded frames {frames[key]}")

    def final(self, frames: dict) -> None:
        g = self.group("final", required=False)
        if g is None:
            return
        images = g.get("synthetic_images")
        if images is not None:
            if not isinstance(images, h5py.Dataset):
                self.fail("'final/synthetic_images' is a group, expected a dataset")
            self.numeric(images, "final/synthetic_images", "f")
            if len(images.shape) not in (2, 3):
                self.fail(f"'final/synthetic_images' has shape {images.shape}, expected (neurons, inputs) "
                          f"or (replicas, neurons, inputs)")
        self.state_arrays(g, "final", frames)

    def run(self) -> dict:
        root = self.root()
        spec = self.spec()
        model = spec["model"]
        replicas = root["replicas"]
        if model.get("replicas", 1) != replicas:
            self.fail(f"attribute 'replicas' is {replicas}, the spec's model.replicas {model.get('replicas', 1)}")
        data = self.data()
        frames = self.trajectory(root["status"], replicas, model["n_neurons"])
        self.metrics()
        self.checkpoint(frames, self.written)
        self.final(frames)
        return {"spec": spec, **root, **data, "frames": frames, "length": self.complete}


def _kind(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype} with shape {value.shape}"
    if value is None:
        return "missing"
    if isinstance(value, (bytes, np.bytes_)):
        return "bytes that are not UTF-8 text"
    return f"{type(value).__name__} {_show(value)}"


def _show(value) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(f: h5py.File, path, *, for_resume: bool = False) -> dict:
    """Check the open run file ``f`` (at ``path``) against the contract; MalformedRunFile if it breaks it.
    Returns what was read on the way: ``spec`` (the parsed spec), ``status``, ``replicas``,
    ``n_samples``, ``n_inputs``, ``frames`` (field → frame shape) and ``length`` (complete frames)."""
    checker = _Checker(f, Path(path), for_resume)
    try:
        return checker.run()
    except MalformedRunFile:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, RecursionError) as exc:
        raise MalformedRunFile(path, f"damaged ({_short(exc)})") from None


def open_checked(path, *, for_resume: bool = False) -> tuple[h5py.File, dict]:
    """Open the run file at ``path`` for reading and validate it: ``(open h5py.File, what
    :func:`validate` returns)``; MalformedRunFile (the file closed) if it cannot be opened or breaks
    the contract."""
    from .h5clear import status_flags
    from .recording import open_for_reading

    path = Path(path)
    if path.is_dir():
        raise MalformedRunFile(path, "is a directory, expected a run file (run.h5)")
    try:
        try:  # one attempt first: retrying only helps while an SWMR writer holds the file
            f = open_for_reading(path, retries=0, wait=0)
        except DataError:
            if not _open_for_writing(path, status_flags):
                raise
            f = open_for_reading(path)
    except MalformedRunFile:
        raise
    except DataError as exc:
        raise MalformedRunFile(path, _short(exc).removeprefix(f"{path}: ")) from None
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise MalformedRunFile(path, f"cannot be opened ({_short(exc)})") from None
    try:
        return f, validate(f, path, for_resume=for_resume)
    except BaseException:
        f.close()
        raise


def _open_for_writing(path: Path, status_flags) -> bool:
    try:
        return bool(status_flags(path))
    except (OSError, ValueError, IndexError):
        return False


def check_run_file(path, *, for_resume: bool = False) -> dict:
    """Validate the run file at ``path`` (see the module docstring); MalformedRunFile naming the file
    and what is wrong if it is not a readable run file — with ``for_resume``, also if it holds no
    checkpoint to continue from.  Returns what :func:`validate` returns."""
    f, info = open_checked(path, for_resume=for_resume)
    f.close()
    return info
