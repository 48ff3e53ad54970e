"""The one owner of a run file, from its claim to its end: lock, create or reopen, record,
checkpoint, finish — or mark it failed.

The never-lose-a-run design, in four rules:

1. **A lock before any byte.**  A run first takes an exclusive ``flock`` on the sidecar
   ``run.h5.lock`` (created next to the run file, never followed through a symbolic link) and
   holds it to its end.  A second run of the same output — or a ``--resume`` of it — finds the
   lock taken and stops with one line (exit 2) before it reads or writes anything.  The lock is
   the kernel's: a killed run releases it with its last breath.
2. **A finished run is never replaced silently.**  Under the lock, an existing ``run.h5``
   (completed, interrupted, failed, killed: any file) stops a new run with one line saying how
   to replace it (``--overwrite``) or continue it (``--resume``).  A symbolic link at ``run.h5``
   is refused, so a run never writes outside its output folder.
3. **Created whole, then renamed.**  A new run file is written at a hidden temporary name,
   complete with its initial checkpoint (the initial state, slot 0), and renamed over
   ``run.h5`` in one step: a run killed during start-up leaves no half-made ``run.h5``, and with
   ``--overwrite`` the old file stays whole until the new one replaces it.
4. **The disk stops the run, not the file.**  Every write checks the room left first and keeps
   a reserve (see :mod:`plasticity_kit.recording`); when it runs out, or a write fails, the run
   stops with :class:`~plasticity_kit.errors.RunFileError` (exit 3) and the file is marked
   ``failed``: readable up to its last good frame, resumable from its last checkpoint, which
   is never overwritten in place (two slots, the pointer switched last).
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

import numpy as np

from .errors import DataError, RunFileError
from .recording import RESUMABLE, Checkpoint, Recorder, ensure_room, open_for_reading, reason
from .scheduler import Outcome, Position, critical


class RunLock:
    """An exclusive ``flock`` on ``<run file>.lock``, held from :meth:`acquire` to :meth:`release`.

    The lock file is removed on release; an acquirer checks that the file it locked is still the
    one at the path (not one a releasing run just removed), so two runs never both hold it."""

    def __init__(self, path: Path):
        self.path = Path(f"{path}.lock")
        self.fd: int | None = None

    def acquire(self, run_file: Path) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise DataError(f"{run_file}: cannot create its lock file {self.path}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise DataError(f"{run_file}: another run is writing it (process {holder}); wait for it "
                                    f"to end, or give this run another name or output.dir") from None
                raise DataError(f"{run_file}: cannot lock {self.path}: {exc.strerror}") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # locked a file its holder removed on release: take the new one
        self.fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds without the note
            pass
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def refuse_to_replace(path: Path, overwrite: bool) -> None:
    """DataError if a new run must not be written at ``path``: a symbolic link there (always), or
    an existing file (unless ``overwrite``), with the line saying how to go on."""
    if path.is_symlink():
        raise DataError(f"{path} is a symbolic link (to {os.readlink(path)}); a run writes its file only inside "
                        f"its output folder: remove the link, or set another output.dir")
    if path.exists() and not overwrite:
        raise DataError(f"{path} already holds {describe(path)}; add --overwrite to replace it"
                        + (f", or continue it with --resume {path}" if _status(path) in RESUMABLE else ""))


def _status(path: Path) -> str | None:
    try:
        with open_for_reading(path, retries=0) as f:
            return str(f.attrs.get("status", ""))
    except (OSError, DataError):
        return None


def describe(path: Path) -> str:
    """What the file at ``path`` is, in a few words ("a completed run", "a file that is not a run file")."""
    status = _status(path)
    if status is None:
        return "a file that is not a readable run file"
    if status == "running":
        return "a run that was killed (status running)"
    return f"{'an' if status[0] in 'aeiou' else 'a'} {status} run"


class RunFile:
    """One run's file, owned by one process from :meth:`claim` to :meth:`release`.

    ``claim`` takes the lock and checks that a new run may be written (or, to resume, that the
    file is there); then :meth:`create` writes a new file, or :meth:`reopen` continues the one
    there from its last checkpoint.  :meth:`end` records how the run ended (checkpointing an
    interrupted run), :meth:`fail` marks a run whose file could not be written ``failed``.
    """

    def __init__(self, path: Path, lock: RunLock):
        self.path = path
        self.lock = lock
        self.recorder: Recorder | None = None

    @classmethod
    def claim(cls, path, *, overwrite: bool = False, resume: bool = False) -> "RunFile":
        path = Path(path)
        lock = RunLock(path).acquire(path)
        try:
            if resume:
                if not path.exists():
                    raise DataError(f"{path}: no such run file")
            else:
                refuse_to_replace(path, overwrite)
        except BaseException:
            lock.release()
            raise
        return cls(path, lock)

    def create(self, *, state: dict, data, **recorder_kwargs) -> Recorder:
        """Write the new run file (at a temporary name, renamed over ``run.h5`` once complete)."""
        for stale in self.path.parent.glob(f".{self.path.name}.new-*"):  # left by a run killed starting
            stale.unlink(missing_ok=True)
        temporary = self.path.parent / f".{self.path.name}.new-{os.getpid()}"
        ensure_room(temporary, Recorder.creation_bytes(state, data), self.path)
        recorder = None
        try:
            with critical():
                recorder = Recorder(temporary, state=state, data=data, **recorder_kwargs)
                os.replace(temporary, self.path)
                recorder.path, self.recorder = self.path, recorder
        except OSError as exc:
            if recorder is not None:
                recorder._abandon()
                recorder.close()
            temporary.unlink(missing_ok=True)
            raise RunFileError(f"{self.path}: cannot create the run file: {reason(exc)}") from None
        except BaseException:
            if recorder is not None and recorder.path == temporary:
                recorder.close()
                temporary.unlink(missing_ok=True)
            raise
        return recorder

    def reopen(self, **resume_kwargs) -> tuple[Recorder, Checkpoint]:
        """Continue the run file from its last checkpoint (:meth:`Recorder.resume`)."""
        self.recorder, checkpoint = Recorder.resume(self.path, **resume_kwargs)
        return self.recorder, checkpoint

    def end(self, outcome: Outcome, state: dict, position: Position, synthetic: np.ndarray | None) -> None:
        """Record how the run ended; an interrupted run is checkpointed where it stopped first."""
        recorder = self.recorder
        with critical(reraise=False):
            if (outcome.status == "interrupted" and position.exact and position.step == recorder.last[0]
                    and recorder.checkpointed != position.step):
                recorder.checkpoint(position, state)
            recorder.finish(outcome.status, outcome.message, state, steps=outcome.steps,
                            epochs_completed=outcome.epochs_completed, synthetic=synthetic)

    def stopped(self, exc: BaseException, state: dict) -> BaseException:
        """After ``exc`` stopped the run outside the training loop: mark the file failed (an
        error writing it) or interrupted; returns the exception to raise."""
        recorder = self.recorder
        if recorder is None:
            return exc
        failure = exc if isinstance(exc, RunFileError) else recorder.failure
        if isinstance(failure, RunFileError):
            return self.fail(failure)
        with critical(reraise=False):
            try:
                recorder.finish("interrupted", f"stopped by {type(exc).__name__}: {exc}", state,
                                steps=recorder.last[0], epochs_completed=recorder.last[1])
            except RunFileError as error:
                return self.fail(error)
        return exc

    def fail(self, error: RunFileError) -> RunFileError:
        """Mark the file ``failed`` with ``error``'s message; the one-line error to raise."""
        recorder = self.recorder
        frames = (f"keeps {recorder.n_frames} frames, the last of step {recorder.written}" if recorder.n_frames
                  else "has no frame yet")
        if recorder.mark_failed(str(error)):
            end = (f"marked failed; once the cause is mended, continue it with --resume {self.path}"
                   if error.resumable else "marked failed")
        else:
            end = "could not even be marked failed (its status still says running)"
        return RunFileError(f"{error}; the run stopped, the file {frames} and was {end}")

    def release(self) -> None:
        """Close the file (if still open) and release the lock."""
        with critical():
            try:
                if self.recorder is not None:
                    self.recorder.close()
            finally:
                self.lock.release()
