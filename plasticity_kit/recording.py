"""The HDF5 trajectory writer.  The file contract, readable with plain h5py:

* root attributes: ``format = "plasticity-kit/trajectory"``, ``format_version``, ``status``
  (``running | completed | interrupted | diverged | failed``; ``failed``: the file could not be
  written, e.g. the disk was full), ``message`` (how it ended, in words),
  ``plasticity_kit_version``, ``name``, ``seed``, ``created``, ``ended`` (ISO times),
  ``steps`` and ``epochs_completed`` (when it ended), ``writer_pid`` and ``writer_host`` (the
  process writing it), ``swmr`` (written in SWMR mode), ``resumed_at`` (steps where the run was
  resumed, empty if never), ``replicas`` (R of ``model.replicas``: every state array, hence every
  recorded field, then has a leading axis of R networks);
* dataset ``spec``: the fully resolved spec as YAML text;
* group ``versions``: attributes with the versions of Python, numpy, h5py, scipy, pluggy, yaml;
* group ``seeds``: the entropy of each random stream (``data``, ``init``, ``shuffle``);
* group ``data``: attributes ``name``, ``source``, ``checksum`` (sha256), ``n_samples``,
  ``n_inputs``, ``image_shape``; datasets ``indices`` (rows of the full data set used) and
  ``labels`` when known;
* group ``trajectory``: ``step``, ``epoch`` (int64), ``time`` (seconds of training) and one
  resizable chunked dataset per recorded field, first axis matching ``step``; one chunk per
  frame, gzip (or lzf) with the byte-shuffle filter, stored as ``record.dtype`` when set
  (float16 halves the file);
* group ``metrics/<name>``: ``step`` (int64) and one dataset per value the metric reports,
  first axis matching its ``step``;
* group ``checkpoint``: what resuming needs.  Two slots ``0`` and ``1``, each with
  ``state/<key>`` (every state array at full precision, ``optimizer/...`` included),
  ``position`` (step, completed epochs, batches done in the current epoch, number of trajectory
  frames), ``elapsed`` (training seconds) and ``rng`` (JSON of the shuffle generator's
  ``bit_generator.state`` at the start of the current epoch); scalar ``current`` names the slot
  that is complete (-1: none).  The file is created with the initial state in slot 0; then a
  record rewrites the checkpoint when ``record.checkpoint_seconds`` have passed since the last
  one (wall time, not every frame), and the run's end does when it was interrupted.  A
  checkpoint writes the slot not named by ``current`` in place (no new space), flushes, then
  switches ``current`` and flushes again, so a process killed at any instant leaves one
  complete checkpoint;
* group ``final``: every state array at the end (``weights``, ``theta``, ``optimizer/...``) and
  ``synthetic_images`` (neurons × inputs in [0, 1]; replicas × neurons × inputs for a
  replicated run) when the rule maps weights to images.

The file is flushed at least every second (``FLUSH_SECONDS``) and at every checkpoint, so a
killed process leaves a readable file whose checkpoint's frames are all there.  Before each write the
recorder checks the room left for the file (free space on its filesystem, and the process's
file-size limit) against the write's size plus a reserve: a disk that fills up stops the run
*before* HDF5 meets the error, and the reserve lets the file be marked ``failed``.  A write HDF5
fails anyway (another process took the space, an I/O error) makes the recorder abandon its
handle without flushing (HDF5's cached metadata may no longer agree with the disk): the file
stays as its last flush left it, and is reopened to be marked ``failed``.

Frames are written by a thread of the recorder's own, in order: the training thread only copies
the arrays and goes on while that thread compresses (zlib releases the GIL) and writes.  Even
raw frames go through it: once a run has written a few hundred MB, the kernel's page-cache
writeback makes each 344 kB ``write`` of specs/olivetti.yaml cost ~0.8 ms of system time, which
on the training thread was +26 % of a 300-epoch run and on the writer's is +4 % (measured).  A
queue of two records bounds the memory and makes a slow disk slow training down rather than
fall behind.
``benchmarks/bench_recording.py`` measures the filters.

Live reading.  By default the file is written as before (HDF5 superblock version 0): a killed
run's file opens with plain h5py, and a reader of a live file must open it without the file
lock (``locking=False``; :func:`open_for_reading` does), with no guarantee from HDF5 that it
never sees a record half written.  With ``record.swmr: true`` the file is written in HDF5's
single-writer/multiple-reader mode (``libver`` v110, ``swmr_mode``), which guarantees readers
opening it with ``swmr=True`` (``plasticity_kit.open``, ``plasticity-kit watch``) a consistent
view at every instant.  SWMR forbids creating objects once it is on, so everything whose shape
is known at the start (the trajectory datasets, both checkpoint slots) is created before it is
switched on.  What is known only later — a metric's datasets after its first evaluation, and
at the end ``final/`` and the status attributes — is made in a short non-SWMR window: the
writer closes the file, reopens it (without the lock: readers hold shared locks and must not
stop the writer), creates the objects and switches SWMR on again; once per metric, once at the
end.  The window touches only the new objects and the root attributes, never the trajectory,
and readers opening the file during it retry.  SWMR is not the default because HDF5 marks an
SWMR file "open for writing" in its superblock: after a SIGKILL, plain ``h5py.File(path)``
refuses it (``h5py.File(path, "r", swmr=True)`` and ``plasticity_kit.open`` read it; resuming
clears the mark as ``h5clear -s`` does, see :mod:`plasticity_kit.h5clear`).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import queue
import resource
import socket
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from h5py import h5s

from ._version import __version__
from .errors import DataError, RunFileError
from .h5clear import SIGNATURE, clear_dead_plain_writer, clear_status_flags, status_flags
from .scheduler import Position

FORMAT = "plasticity-kit/trajectory"
FORMAT_VERSION = 1
STATUSES = ("running", "completed", "interrupted", "diverged", "failed")
RESUMABLE = ("interrupted", "failed", "running")  # running: its writer was killed
SWMR_LIBVER = ("v110", "v110")  # the oldest format with SWMR: readable by HDF5 >= 1.10
RNG_BYTES = 2048
GZIP_LEVEL = 1  # the level the dataset declares; the frames are encoded with zlib's run-length strategy:
# on byte-shuffled float weights it gives a stream as small as level 1's (~80% of raw) 3-4x faster
SHUFFLE = True  # the byte-shuffle filter before gzip or lzf
AXES = (("step", np.int64), ("epoch", np.int64), ("time", np.float64))
SLACK = 64 << 10     # bytes of HDF5 metadata (chunk index nodes, heaps) a write may add beyond its data
RESERVE = 256 << 10  # kept free so that a stopped run can still be marked failed and closed
CHECKPOINT_SECONDS = 30.0
RELEASE_BYTES = 8 << 20  # frames written between two releases of their pages (Recorder._release_pages)
FLUSH_SECONDS = 1.0  # frames reach the disk (and live readers) at least this often
ROOM_SECONDS = 1.0  # the room left is measured again at least this often (and whenever it runs low)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict:
    import pluggy
    import scipy
    import yaml

    return {
        "plasticity_kit": __version__, "python": platform.python_version(), "numpy": np.__version__,
        "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version, "scipy": scipy.__version__,
        "pluggy": pluggy.__version__, "pyyaml": yaml.__version__,
    }


def _writer_attrs() -> dict:
    return {"writer_pid": os.getpid(), "writer_host": socket.gethostname()}


def writer_alive(attrs) -> bool | None:
    """Whether the process named in a run file's ``writer_pid``/``writer_host`` still runs:
    None when it cannot be told (another host, or a file without those attributes)."""
    pid, host = attrs.get("writer_pid"), attrs.get("writer_host")
    if pid is None or host != socket.gethostname():
        return None
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Checkpoint:
    """The last complete checkpoint of a run file: where training stood, its full state and how
    many trajectory frames had been written."""

    position: Position
    frames: int
    state: dict


def read_checkpoint(f: h5py.File, with_state: bool = True) -> Checkpoint | None:
    """The checkpoint in an open run file, or None (none written yet, or a file from before them).
    ``with_state=False`` skips reading the state arrays (``state`` is then empty)."""
    g = f.get("checkpoint")
    if g is None or int(g["current"][()]) < 0:
        return None
    slot = g[str(int(g["current"][()]))]
    step, epoch, batch, frames = (int(v) for v in slot["position"][:])
    state = {}
    if with_state:
        slot["state"].visititems(
            lambda key, obj: state.__setitem__(key, np.asarray(obj[()])) if isinstance(obj, h5py.Dataset) else None)
    rng = json.loads(slot["rng"][()].decode())
    return Checkpoint(Position(step, epoch, batch, rng, float(slot["elapsed"][()])), frames, state)


def is_hdf5(path) -> bool:
    """Whether ``path`` has an HDF5 signature (at byte 0, 512, 1024, ...: after a user block).
    Unlike h5py.is_hdf5 it does not open the file, so it holds while a writer has it locked."""
    with open(path, "rb") as fh:
        offset = 0
        while True:
            fh.seek(offset)
            head = fh.read(8)
            if head == SIGNATURE:
                return True
            if len(head) < 8:
                return False
            offset = 512 if offset == 0 else offset * 2


def open_for_reading(path, retries: int = 20, wait: float = 0.1) -> h5py.File:
    """Open a run file read-only whatever its state: complete, killed, or being written (in SWMR
    mode: a consistent view; otherwise without the file lock, best effort).  While an SWMR writer
    is in one of its short non-SWMR windows the open is retried ``retries`` times; a file whose
    writer was killed in such a window gets its flags cleared (``clear_dead_plain_writer``)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such run file")
    if not is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file")
    problem = None
    for attempt in range(retries + 1):
        try:
            return h5py.File(path, "r", swmr=True)
        except OSError as exc:  # a non-SWMR writer holds the lock, or an SWMR writer is outside SWMR
            problem = exc
        clear_dead_plain_writer(path)
        if not status_flags(path):
            try:
                return h5py.File(path, "r", locking=False)
            except OSError as exc:
                problem = exc
        time.sleep(wait)
    raise DataError(f"{path}: cannot be opened for reading: {problem}")


def _open_for_append(path: Path, kwargs: dict) -> h5py.File:
    """Open for writing; readers' shared locks do not stop it, a writer's exclusive lock does."""
    try:
        return h5py.File(path, "r+", **kwargs)
    except OSError:
        pass
    try:
        h5py.File(path, "r").close()  # takes a shared lock: fails only if a writer holds the file
    except OSError as exc:
        raise DataError(f"{path}: cannot open for writing ({exc}); is a run still writing it?") from None
    return h5py.File(path, "r+", locking=False, **kwargs)


def _filters(compression: str) -> dict:
    if compression == "none":
        return {}
    return {"compression": compression, "shuffle": SHUFFLE,
            **({"compression_opts": GZIP_LEVEL} if compression == "gzip" else {})}


def _write_frame(ds: h5py.Dataset, n: int, frame: np.ndarray) -> None:
    """Write ``frame`` as frame ``n`` of ``ds`` (one chunk per frame), encoded here as HDF5's
    filters would (byte shuffle, then zlib; or raw) and written as a whole chunk: zlib releases
    the GIL, so training goes on meanwhile, and the chunk skips h5py's selection and HDF5's
    chunk cache.  lzf, which Python cannot encode, goes through HDF5."""
    frame = np.ascontiguousarray(frame, dtype=ds.dtype)
    offset = (n,) + (0,) * frame.ndim
    if ds.chunks != (1,) + frame.shape or ds.compression not in (None, "gzip"):
        ds[n] = frame
    elif ds.compression is None:
        ds.id.write_direct_chunk(offset, frame.tobytes())
    else:
        data = frame.view(np.uint8).reshape(-1, frame.dtype.itemsize).T.tobytes() if ds.shuffle else frame.tobytes()
        strategy = zlib.Z_RLE if ds.compression_opts == 1 else zlib.Z_DEFAULT_STRATEGY
        encoder = zlib.compressobj(ds.compression_opts, zlib.DEFLATED, 15, 8, strategy)  # zlib format, as HDF5's
        ds.id.write_direct_chunk(offset, encoder.compress(data) + encoder.flush())


def _append(ds: h5py.Dataset, n: int, values: np.ndarray) -> None:
    """Write ``values`` as elements ``n, n + 1, ...`` of the 1-d resizable ``ds``, growing it (the
    low-level calls: h5py's ``resize`` and ``ds[n] = v`` cost several times more)."""
    ds.id.set_extent((n + len(values),))
    space = ds.id.get_space()
    space.select_hyperslab((n,), (len(values),))
    ds.id.write(h5s.create_simple((len(values),)), space, np.ascontiguousarray(values, dtype=ds.dtype))


def _overwrite(ds: h5py.Dataset, value) -> None:
    """Replace the whole of a fixed-size dataset (the low-level call: h5py's ``ds[()] = v`` costs
    several times more, and a checkpoint makes a dozen of them)."""
    ds.id.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(value, dtype=ds.dtype))

def headroom(path: Path) -> int:
    """Bytes the file at ``path`` may still grow by: the space an unprivileged user may still
    take on its filesystem, and the process's file-size limit (``RLIMIT_FSIZE``) less its size."""
    st = os.statvfs(path.parent)
    room = st.f_bavail * st.f_frsize
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        room = min(room, soft - (path.stat().st_size if path.exists() else 0))
    return room


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def ensure_room(path: Path, need: int, name: Path | None = None) -> None:
    """RunFileError (naming ``name``, default ``path``) unless the file at ``path`` can grow by
    ``need`` bytes and keep :data:`RESERVE` for marking itself failed."""
    room = headroom(path)
    if room < need + RESERVE:
        raise RunFileError(f"{name or path}: disk full: {_mb(max(room, 0))} left for the run file, its next write "
                           f"needs {_mb(need)} and {_mb(RESERVE)} are kept in reserve")


def reason(exc: OSError) -> str:
    """An OSError from h5py in a few words: its errno's text, or the message's first clause."""
    if exc.errno:
        return f"{os.strerror(exc.errno)} (errno {exc.errno})"
    return str(exc).split(" (")[0]


class _Worker:
    """One thread doing a Recorder's writes in the order they were submitted, so that training
    only pays for copying the state.  The first error stops it: later tasks are dropped and the
    error comes back to the training thread at every call."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue(maxsize=2)  # a slow disk slows training, never fills memory
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="plasticity-kit recorder", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:  # the kernels' threads first: the writer takes the CPU time they leave
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        while True:
            task = self.queue.get()
            try:
                if task is None:
                    return
                if self.error is None:
                    task()
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                self.error = exc
            finally:
                self.queue.task_done()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, task) -> None:
        self.check()
        self.queue.put(task)

    def sync(self) -> None:
        """Wait until every submitted write is done; raise the first error of any."""
        self.queue.join()
        self.check()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


class Recorder:
    """Writes one run file: ``record`` appends a frame (and, every ``checkpoint_seconds``, rewrites
    the checkpoint), ``record_metric`` appends a metric evaluation, ``checkpoint`` rewrites the
    checkpoint now, ``finish`` stores the end state and status, ``mark_failed`` the status of a
    run that could not be recorded.  :meth:`resume` reopens an interrupted file to continue it.

    Every write first checks the room left (:func:`ensure_room`); a write that fails anyway makes
    the recorder abandon the HDF5 handle (:meth:`_abandon`).  Either way the error, a
    :class:`~plasticity_kit.errors.RunFileError`, comes back to the training thread at its next
    call, and every later write is refused.
    """

    def __init__(self, path, *, name: str, spec_yaml: str, seed: int, seeds: dict, data, state: dict,
                 fields, compression: str = "gzip", dtype: str | None = None, swmr: bool = False,
                 replicas: int = 1, rng_state: dict | None = None,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = list(fields)
        self.swmr = swmr
        self.checkpoint_seconds = checkpoint_seconds
        self.abandoned = False
        self.file = h5py.File(self.path, "w", **({"libver": SWMR_LIBVER} if swmr else {}))
        f = self.file
        f.attrs.update({
            "format": FORMAT, "format_version": FORMAT_VERSION, "status": "running", "message": "",
            "plasticity_kit_version": __version__, "name": name, "seed": seed, "created": _now(),
            "steps": 0, "epochs_completed": 0, "swmr": swmr, "resumed_at": np.zeros(0, np.int64),
            "replicas": replicas,
            **_writer_attrs(),
        })
        f.create_dataset("spec", data=spec_yaml, dtype=h5py.string_dtype("utf-8"))
        f.create_group("versions").attrs.update(_versions())
        f.create_group("seeds").attrs.update({k: str(v) for k, v in seeds.items()})
        g = f.create_group("data")
        g.attrs.update({
            "name": data.name, "source": data.source, "checksum": data.checksum,
            "n_samples": data.X.shape[0], "n_inputs": data.X.shape[1],
            "image_shape": np.asarray(data.image_shape or (), dtype=np.int64),
        })
        g.create_dataset("indices", data=np.asarray(data.indices, dtype=np.int64))
        if data.labels is not None:
            g.create_dataset("labels", data=np.asarray(data.labels))
        t = f.create_group("trajectory")
        for axis, kind in AXES:
            t.create_dataset(axis, shape=(0,), maxshape=(None,), dtype=kind, chunks=(1024,))
        for field in self.fields:
            arr = state[field]
            stored = np.dtype(dtype) if dtype and arr.dtype.kind == "f" else arr.dtype
            t.create_dataset(field, shape=(0,) + arr.shape, maxshape=(None,) + arr.shape, dtype=stored,
                             chunks=(1,) + arr.shape, **_filters(compression))
        ck = f.create_group("checkpoint")
        ck.create_dataset("current", data=np.int64(-1 if rng_state is None else 0))
        for slot in ("0", "1"):
            s = ck.create_group(slot)
            s.create_dataset("position", data=np.zeros(4, np.int64))
            s.create_dataset("elapsed", data=np.float64(0.0))
            s.create_dataset("rng", data=np.bytes_(_rng_json(rng_state or {})), dtype=f"S{RNG_BYTES}")
            for key, value in state.items():
                s.create_dataset(f"state/{key}", data=value)
        self.n_frames, self.written = 0, None  # frames in the file, the step of the last
        self.last = (0, 0)  # (step, epoch) of the last record asked for
        self.checkpointed = 0 if rng_state is not None else None  # the step of the last checkpoint
        self._checkpoint_time = time.monotonic()
        self._handles: dict = {}
        self._axes: list = []  # (epoch, time, step) of the frames whose axes wait for the next flush
        self._room, self._room_at = 0, -ROOM_SECONDS
        self._unreleased = 0  # bytes of frames written since their pages were last released
        f.flush()
        self._flushed = time.monotonic()
        self._start_swmr()
        self._worker = _Worker()

    @staticmethod
    def creation_bytes(state: dict, data) -> int:
        """About the size of a new run file: two checkpoint slots and the data's indices and labels."""
        labels = 0 if data.labels is None else np.asarray(data.labels).nbytes
        return 2 * sum(np.asarray(v).nbytes for v in state.values()) + 8 * len(data.indices) + labels + 4 * SLACK

    # -- SWMR ------------------------------------------------------------------------------
    def _start_swmr(self) -> None:
        if self.swmr:
            self.file.swmr_mode = True

    @contextmanager
    def _structure(self, swmr_after: bool = True):
        """A window where objects can be created: outside SWMR mode (reopening the file if needed).
        Without the file lock: SWMR readers hold a shared one, and must not stop the writer."""
        if self.swmr and self.file.swmr_mode:
            self.file.close()
            self.file = h5py.File(self.path, "r+", libver=SWMR_LIBVER, locking=False)
            self._handles = {}
        yield self.file
        if swmr_after:
            self.file.flush()
            self._start_swmr()

    # -- failures --------------------------------------------------------------------------
    def _submit(self, need: int, task) -> None:
        """Hand ``task`` (HDF5 writes growing the file by at most ``need`` bytes) to the thread."""
        self._worker.submit(lambda: self._guarded(need, task))

    def _guarded(self, need: int, task) -> None:
        now = time.monotonic()
        if now - self._room_at < ROOM_SECONDS and self._room - need >= RESERVE:
            self._room -= need  # measured less than a second ago, less what was written since
        else:
            ensure_room(self.path, need)
            self._room, self._room_at = headroom(self.path) - need, now
        try:
            task()
        except OSError as exc:
            self._abandon()
            raise RunFileError(f"{self.path}: cannot write the run file: {reason(exc)}") from None

    def _abandon(self) -> None:
        """Stop HDF5 from writing any more of this file after a write it failed: its cached
        metadata may no longer agree with the disk, and flushing it could overwrite the last
        consistent state (the 'addr overflow' of a file resumed after a full disk).  The file
        descriptor is pointed at /dev/null before the handle is closed, so that the flush of the
        close writes nothing; the file stays as its last flush left it."""
        self.abandoned = True
        try:
            fd = self.file.id.get_vfd_handle()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, fd)
            os.close(null)
        except Exception:  # noqa: BLE001 - the handle is dropped whatever happens
            pass
        try:
            self.file.close()
        except Exception:  # noqa: BLE001 - expected: the flush cannot write
            pass
        self._handles = {}

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped the writes, if any."""
        return self._worker.error

    def mark_failed(self, message: str) -> bool:
        """Set ``status`` to ``failed`` with ``message`` and close the file (reopened if it was
        abandoned); False if even that could not be written (the file keeps its last flush)."""
        self._worker.stop()
        try:
            if self.abandoned or not self.file.id.valid:
                if status_flags(self.path):
                    clear_status_flags(self.path)
                self.file = h5py.File(self.path, "r+", locking=False)
                f = self.file
            else:
                self._write_axes()  # the frames written whole before the failure
                f = self._structure(swmr_after=False).__enter__()
            f.attrs.update({"status": "failed", "message": message, "ended": _now()})
            f.flush()
            f.close()
            return True
        except Exception:  # noqa: BLE001 - the caller says the status could not be written
            if self.file.id.valid:
                self._abandon()
            return False

    # -- writing ---------------------------------------------------------------------------
    def record(self, step: int, epoch: int, elapsed: float, state: dict, position: Position | None = None) -> None:
        """Append one frame; with an exact ``position``, also rewrite the checkpoint when
        ``checkpoint_seconds`` have passed since the last one.  The arrays are copied here and
        written by the recorder's thread."""
        due = (position is not None and position.exact
               and time.monotonic() - self._checkpoint_time >= self.checkpoint_seconds)
        keys = list(state) if due else self.fields
        snapshot = {key: np.array(state[key], copy=True) for key in keys}
        position = dataclasses.replace(position) if due else None
        self.last = (step, epoch)
        need = sum(int(snapshot[k].nbytes * 1.01) for k in self.fields) + SLACK
        self._submit(need, lambda: self._write_record(step, epoch, elapsed, snapshot, position))
        if due:
            self._checkpoint_time = time.monotonic()
            self.checkpointed = step

    def checkpoint_if_due(self, position: Position, state: dict) -> None:
        """At an exact ``position`` between frames (the end of a kernel call that took its frames
        inside), rewrite the checkpoint when ``checkpoint_seconds`` have passed since the last
        one.  A run resumed from it records no frame at its step (off the cadence)."""
        if position.exact and time.monotonic() - self._checkpoint_time >= self.checkpoint_seconds:
            self._submit_checkpoint(position, state)

    def checkpoint(self, position: Position, state: dict) -> None:
        """Rewrite the checkpoint now, at ``position`` (exact, and the step of the last frame)."""
        if not position.exact or position.step != self.last[0]:
            raise ValueError(f"checkpoint at step {position.step}: the last frame is of step {self.last[0]}")
        self._submit_checkpoint(position, state)

    def _submit_checkpoint(self, position: Position, state: dict) -> None:
        snapshot = {key: np.array(value, copy=True) for key, value in state.items()}
        position = dataclasses.replace(position)
        self._submit(SLACK, lambda: self._checkpoint(position, snapshot))
        self._checkpoint_time = time.monotonic()
        self.checkpointed = position.step

    def _write_record(self, step: int, epoch: int, elapsed: float, state: dict, position: Position | None) -> None:
        n = self.n_frames
        datasets = [self._dataset(f"trajectory/{field}") for field in self.fields]
        for field, ds in zip(self.fields, datasets):
            self._check_fits(field, ds.dtype, state[field], step)
        for field, ds in zip(self.fields, datasets):
            ds.id.set_extent((n + 1,) + state[field].shape)
            _write_frame(ds, n, state[field])
            self._unreleased += state[field].nbytes
        if self._unreleased >= RELEASE_BYTES:
            self._release_pages()
        self._axes.append((epoch, elapsed, step))
        self.n_frames, self.written = n + 1, step
        if self.swmr:  # SWMR readers see every extent at once: the axes go with their frame
            self._write_axes()
        if position is not None:
            self._checkpoint(position, state)
        elif time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self._flush()

    def _write_axes(self) -> None:
        """Append the step, epoch and time of the frames written since the last flush (in one
        write each: a frame counts for a reader once its step is there)."""
        if not self._axes:
            return
        epochs, times, steps = zip(*self._axes)
        n = self.n_frames - len(self._axes)
        for axis, values in (("epoch", epochs), ("time", times), ("step", steps)):  # step last: readers count it
            _append(self._dataset(f"trajectory/{axis}"), n, np.asarray(values))
        self._axes = []

    def _release_pages(self) -> None:
        """Start writing the file's pages out and drop those already written from the page cache
        (``posix_fadvise(DONTNEED)``): the frames are never read back during the run, and a write
        into a page cache holding hundreds of MB of dirty frames cost 0.65–0.85 ms per 344 kB on
        this machine's ext4, against 0.30 ms with the pages released every few MB (measured with
        plain ``os.write``; HDF5's writes cost the same).  Also spares the other users' caches."""
        self._unreleased = 0
        try:
            os.posix_fadvise(self.file.id.get_vfd_handle(), 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError, ValueError):
            pass  # not Linux, or not the sec2 driver: the page cache keeps them

    def _flush(self) -> None:
        self._write_axes()
        self.file.flush()
        self._flushed = time.monotonic()

    def _check_fits(self, field: str, stored: np.dtype, value: np.ndarray, step: int) -> None:
        """RunFileError if a finite value of ``field`` would become inf in the stored type."""
        if stored.kind != "f" or stored.itemsize >= value.dtype.itemsize or value.size == 0:
            return
        largest = float(np.finfo(stored).max)
        peak = float(np.max(np.abs(value)))
        if np.isfinite(peak) and peak > largest:
            raise RunFileError.unresumable(f"{self.path}: record.dtype {stored.name} cannot hold '{field}' at step {step}: "
                               f"values up to {peak:.4g}, beyond its largest {largest:.0f}; record it as "
                               f"float32 (record.dtype: float32) in a new run")

    def _checkpoint(self, position: Position, state: dict) -> None:
        self._write_axes()
        current = self._dataset("checkpoint/current")
        target = "1" if int(current[()]) == 0 else "0"
        for key, value in state.items():
            ds = self._dataset(f"checkpoint/{target}/state/{key}")
            if ds is None or ds.shape != np.shape(value):
                raise ValueError(f"state array '{key}' changed shape or appeared during the run; "
                                 f"a rule's state must keep the arrays of init_state")
            _overwrite(ds, value)
        _overwrite(self._dataset(f"checkpoint/{target}/position"),
                   [position.step, position.epoch, position.batch, self.n_frames])
        _overwrite(self._dataset(f"checkpoint/{target}/elapsed"), position.elapsed)
        _overwrite(self._dataset(f"checkpoint/{target}/rng"), np.bytes_(_rng_json(position.rng_state)))
        self.file.flush()  # the slot is complete on disk before it is named current
        _overwrite(current, int(target))
        self.file.flush()
        self._flushed = time.monotonic()

    def _dataset(self, name: str) -> h5py.Dataset | None:
        """The dataset at ``name``, its handle kept while the file stays open (an h5py path
        lookup costs about as much as the write it precedes)."""
        handles = self._handles
        ds = handles.get(name)
        if ds is None or not ds.id.valid:
            ds = handles[name] = self.file.get(name)
        return ds

    def record_metric(self, name: str, step: int, values: dict) -> None:
        """Append one evaluation of metric ``name`` (scalars or arrays of a fixed shape)."""
        arrays = {k: np.array(v, copy=True) for k, v in values.items()}
        arrays = {k: a for k, a in arrays.items() if a.dtype.kind in "biuf"}
        need = sum(max(a.nbytes, 4096 * a.itemsize) for a in arrays.values()) + 2 * SLACK
        self._submit(need, lambda: self._write_metric(name, step, arrays))

    def _write_metric(self, name: str, step: int, arrays: dict) -> None:
        g = self.file.get(f"metrics/{name}")
        if g is None or "step" not in g or any(k not in g for k in arrays):
            with self._structure() as f:
                g = f.require_group("metrics").require_group(name)
                if "step" not in g:
                    g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
                n = g["step"].shape[0]
                for key, arr in arrays.items():
                    if key not in g:
                        g.create_dataset(key, shape=(n,) + arr.shape, maxshape=(None,) + arr.shape, dtype=arr.dtype,
                                         chunks=(max(1, 4096 // max(arr.size, 1)),) + arr.shape)
        g = self.file[f"metrics/{name}"]
        n = g["step"].shape[0]
        for key, arr in arrays.items():
            ds = g[key]
            ds.resize(n + 1, axis=0)
            ds[n] = arr
        g["step"].resize((n + 1,))
        g["step"][n] = step
        self.file.flush()

    def finish(self, status: str, message: str, state: dict, *, steps: int, epochs_completed: int,
               synthetic: np.ndarray | None = None) -> None:
        """Store the end state (group ``final``) and the status; raises the error of any pending
        write (then nothing is written here)."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._worker.sync()
        need = sum(np.asarray(v).nbytes for v in state.values()) + (0 if synthetic is None else 4 * synthetic.size)
        self._guarded(need + 2 * SLACK, lambda: self._write_finish(status, message, state, steps, epochs_completed,
                                                                    synthetic))

    def _write_finish(self, status, message, state, steps, epochs_completed, synthetic) -> None:
        self._write_axes()
        with self._structure(swmr_after=False) as f:
            final = f.require_group("final")
            for key, value in state.items():
                if key in final:
                    del final[key]
                final.create_dataset(key, data=value)
            if synthetic is not None:
                if "synthetic_images" in final:
                    del final["synthetic_images"]
                final.create_dataset("synthetic_images", data=synthetic.astype(np.float32))
            f.attrs.update({"status": status, "message": message, "ended": _now(), "steps": steps,
                            "epochs_completed": epochs_completed})
            f.flush()

    def close(self) -> None:
        """Finish the pending writes and close the file (an error of a pending write is dropped:
        ``finish`` is where it is raised)."""
        self._worker.stop()
        if self.file.id.valid:
            try:
                if not self.abandoned and self._worker.error is None:
                    self._write_axes()
                self.file.close()
            except Exception:  # noqa: BLE001 - an abandoned handle cannot flush; any other may not fail
                if not self.abandoned:
                    raise

    # -- resuming --------------------------------------------------------------------------
    @classmethod
    def resume(cls, path, *, record_every: int, swmr: bool = False,
               checkpoint_seconds: float = CHECKPOINT_SECONDS) -> tuple["Recorder", Checkpoint]:
        """Reopen the run file at ``path`` to continue it from its last checkpoint.

        Frames and metric evaluations after the checkpoint (records cut short, or made after it)
        are dropped, and so is the frame an interruption recorded off the ``record_every``
        cadence (the continued run records the same frames as one never interrupted).  The
        status is set back to ``running`` and the file left in SWMR mode if ``swmr``.  Raises
        DataError if the file is not a run file, is still being written, completed or diverged,
        or has no checkpoint.  ``recorder.recorded`` says whether the checkpoint's step has its
        frame already (else the continued run records it).
        """
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: no such run file")
        if not clear_dead_plain_writer(path) and status_flags(path):
            try:
                with h5py.File(path, "r", swmr=True) as f:
                    alive = writer_alive(f.attrs)
                    pid = f.attrs.get("writer_pid")
            except OSError:  # a live writer in one of its moments outside SWMR mode
                raise DataError(f"{path}: still open for writing; stop its run before resuming") from None
            if alive is not False:
                raise DataError(f"{path}: still open for writing by process {pid} "
                                f"{'on this machine' if alive else 'on another machine'}; stop it before resuming")
            clear_status_flags(path)
        f = _open_for_append(path, {"libver": SWMR_LIBVER} if swmr else {})
        self = cls.__new__(cls)
        self.path, self.file, self.swmr, self._handles, self._axes = path, f, swmr, {}, []
        self._room, self._room_at = 0, -ROOM_SECONDS
        self._unreleased = 0  # bytes of frames written since their pages were last released
        self.checkpoint_seconds, self.abandoned = checkpoint_seconds, False
        try:
            checkpoint = self._prepare_resume(record_every)
        except BaseException:
            f.close()
            raise
        self._checkpoint_time = self._flushed = time.monotonic()
        self.checkpointed = checkpoint.position.step
        self._start_swmr()
        self._worker = _Worker()
        return self, checkpoint

    def _prepare_resume(self, record_every: int) -> Checkpoint:
        f, path = self.file, self.path
        if f.attrs.get("format") != FORMAT:
            raise DataError(f"{path}: not a plasticity-kit run file")
        status = f.attrs["status"]
        if status == "completed":
            raise DataError(f"{path}: the run completed; nothing to resume")
        if status == "diverged":
            raise DataError(f"{path}: the run diverged ({f.attrs['message']}); resuming would diverge again")
        if status == "running" and writer_alive(f.attrs):
            raise DataError(f"{path}: still being written by process {f.attrs['writer_pid']}; stop it before resuming")
        checkpoint = read_checkpoint(f)
        if checkpoint is None:
            raise DataError(f"{path}: no checkpoint to resume from (written by plasticity-kit "
                            f"{f.attrs.get('plasticity_kit_version', '?')}, before checkpoints)")
        t = f["trajectory"]
        self.fields = [k for k in t if k not in dict(AXES)]
        keep, step = checkpoint.frames, checkpoint.position.step
        if min(t[k].shape[0] for k in t) < keep or (keep and t["step"][keep - 1] > step):
            raise DataError(f"{path}: the trajectory does not match its checkpoint (step {step})")
        self.recorded = bool(keep) and int(t["step"][keep - 1]) == step
        if self.recorded and step % record_every:
            keep -= 1  # the frame an interruption recorded off the cadence
        for k in t:
            t[k].resize(keep, axis=0)
        for g in f.get("metrics", {}).values():
            rows = int(np.searchsorted(g["step"][:], step, side="right"))
            for k in g:
                g[k].resize(rows, axis=0)
        if "final" in f:
            del f["final"]
        resumed = np.append(f.attrs.get("resumed_at", np.zeros(0, np.int64)), step)
        f.attrs.update({"status": "running", "message": "", "swmr": self.swmr, "resumed_at": resumed.astype(np.int64),
                        **_writer_attrs()})
        if "ended" in f.attrs:
            del f.attrs["ended"]
        f.flush()
        self.n_frames, self.written = keep, int(t["step"][keep - 1]) if keep else None
        self.last = (step, checkpoint.position.epoch)
        return checkpoint

    def metric_history(self) -> dict:
        """The last recorded evaluation of every metric: name → (step, {key: value})."""
        out = {}
        for name, g in self.file.get("metrics", {}).items():
            if g["step"].shape[0]:
                out[name] = (int(g["step"][-1]), {k: g[k][-1] for k in g if k != "step"})
        return out


def _rng_json(rng_state: dict | None) -> bytes:
    rng = json.dumps(rng_state).encode()
    if len(rng) > RNG_BYTES:
        raise ValueError(f"shuffle generator state too large to checkpoint ({len(rng)} bytes)")
    return rng
