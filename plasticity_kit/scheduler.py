"""The training loop: epochs × mini-batches with seeded shuffling, record cadence, divergence
guard, clean interruption (Ctrl-C or SIGTERM) and resume.

``train`` never calls Python per sample: each step hands a whole mini-batch to ``rule.step``
(a compiled kernel for the built-ins); a rule with a multi-step kernel (``rule.chunk_steps`` > 1)
gets the sample indices of all the steps up to the next record, metric or chunk end in one
``rule.run_steps`` call.  When every recorded field is one the rule can copy out inside a call
(``rule.snapshot_fields``: BCM's θ), records do not end calls: the rule returns those fields at
the record steps inside the call (``marks``) and the frames are written after it, with the
elapsed time interpolated within the call; the checkpoint is then also rewritten (when due) at
call ends between records.  Chunks end at fixed step numbers, so the same spec always makes the
same calls (and a resumed run the calls of the run it continues).  It returns how the run ended;
the caller records it.

Resume: a :class:`Position` says where training stands (steps done, epoch, batches of that epoch
done, the shuffle generator's state at that epoch's start).  ``train(..., position=p)`` starts
from ``p`` and keeps it current, so that the state dict plus the position at any record is
enough to continue the run exactly as if it had never stopped: the epoch's permutation is drawn
again from the saved generator state and its first ``batch`` batches are skipped.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np

CHUNK_SAMPLES = 1 << 17
"""Most sample indices handed to one ``rule.run_steps`` call.  Ctrl-C and SIGTERM wait for the
call to end: 2¹⁷ samples of the reference study's Fig. 5 (64 networks of 25 BCM neurons on 400
faces, sample-space form) are ~3 s on one core; 2²⁰ were ~16 s."""


class Terminated(KeyboardInterrupt):
    """Raised when the process receives SIGTERM (a KeyboardInterrupt, so that whatever ends a run
    on Ctrl-C ends it on SIGTERM too)."""


@dataclass
class Position:
    """Where training stands: ``step`` steps done, ``epoch`` epochs completed, ``batch`` batches of
    epoch ``epoch`` done, ``rng_state`` the shuffle generator's ``bit_generator.state`` at the start
    of epoch ``epoch`` (before its permutation), ``elapsed`` training seconds so far.  ``exact``
    is False while a step is half done (an interruption inside ``rule.step``): such a position
    must not be used to resume."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    rng_state: dict | None = None
    elapsed: float = 0.0
    exact: bool = True


@dataclass
class Outcome:
    status: str            # completed | interrupted | diverged
    message: str
    steps: int
    epochs_completed: int
    elapsed: float


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    return math.ceil(n_samples / batch_size)


class _Signals:
    """SIGINT → KeyboardInterrupt and SIGTERM → :class:`Terminated`, held back inside
    :func:`critical` sections (an exception raised in the middle of an HDF5 write can leave
    h5py's locks taken and hang the process) and raised when the section ends."""

    active: "_Signals | None" = None

    def __init__(self):
        self.depth = 0
        self.pending: type | None = None

    def handler(self, signum, frame):
        exc = KeyboardInterrupt if signum == signal.SIGINT else Terminated
        if self.depth:
            self.pending = self.pending or exc
            return
        raise exc()


@contextmanager
def signals_raise():
    """Install the SIGINT/SIGTERM handlers of :class:`_Signals` for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = _Signals()
    previous = {sig: signal.signal(sig, signals.handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    outer, _Signals.active = _Signals.active, signals
    try:
        yield
    finally:
        _Signals.active = outer
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def critical(reraise: bool = True):
    """Hold Ctrl-C and SIGTERM back while the block runs (writes to the run file); then raise
    the one that came, unless ``reraise`` is False (the run is already stopping)."""
    signals = _Signals.active
    if signals is None:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        with signals_raise(), critical(reraise):
            yield
        return
    signals.depth += 1
    try:
        yield
    finally:
        signals.depth -= 1
        if not signals.depth and signals.pending is not None:
            exc, signals.pending = signals.pending, None
            if reraise:
                raise exc()


class Progress:
    """A one-line progress bar on a TTY (stderr); silent otherwise."""

    def __init__(self, total_epochs: int, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total_epochs
        self.last = 0.0
        self.start = time.perf_counter()

    def update(self, epoch: int, step: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        frac = epoch / self.total
        bar = "#" * int(30 * frac)
        elapsed = now - self.start
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        self.stream.write(f"\r[{bar:<30}] epoch {epoch}/{self.total}  step {step}  {elapsed:6.1f}s  eta {eta:6.1f}s ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def train(rule, state: dict, X: np.ndarray, *, epochs: int, batch_size: int, shuffle: bool,
          rng: np.random.Generator, record_every: int | None = None,
          on_record: Callable[[int, int, float, dict], None] | None = None,
          periodic=(), progress: Progress | None = None, position: Position | None = None,
          recorded: bool | None = None, record_fields=None,
          on_checkpoint: Callable[[dict], None] | None = None) -> Outcome:
    """Run ``epochs`` passes of ``rule.step`` over mini-batches of ``X``, updating ``state``.

    ``on_record(step, epoch, elapsed, state)`` is called before the first step (step 0), every
    ``record_every`` steps and after the last step.  ``periodic`` is a list of
    ``(every, callback)``: ``callback(step, epoch, state)`` runs every ``every`` steps (metrics),
    before the record of the same step.  Both receive ``epoch`` = completed epochs =
    step // steps_per_epoch.
    ``rule.end_epoch(state, epochs_completed)`` runs after the last step of every epoch.

    ``position`` (default: the beginning) is where training starts; ``state`` and ``rng`` must
    be those of that moment, except that ``rng`` is reset to ``position.rng_state`` when given.
    It is updated in place, so ``on_record`` can read the exact position of every record.
    ``recorded`` says whether the step at ``position`` has its record already (default: when it
    is not 0); if not, it is recorded first when it falls on the ``record_every`` cadence.
    ``record_fields``: the fields ``on_record`` reads; when the rule can copy them all out
    inside a multi-step call, frames are taken inside calls (``on_record`` then gets a dict of
    those fields only) and ``on_checkpoint(state)`` runs at the calls' ends between records.
    """
    n = X.shape[0]
    per_epoch = steps_per_epoch(n, batch_size)
    total = epochs * per_epoch
    full = np.empty((min(batch_size, n), X.shape[1]), dtype=X.dtype)
    pos = position if position is not None else Position()
    if pos.step != pos.epoch * per_epoch + pos.batch or pos.batch >= per_epoch:
        raise ValueError(f"inconsistent position: step {pos.step}, epoch {pos.epoch}, batch {pos.batch} "
                         f"with {per_epoch} steps per epoch")
    if pos.rng_state is not None:
        rng.bit_generator.state = pos.rng_state
    else:
        pos.rng_state = rng.bit_generator.state
    step, epoch, b = pos.step, pos.epoch, pos.batch   # b: batches of epoch `epoch` done
    epoch_rng = pos.rng_state                         # the generator at the start of epoch `epoch`
    order = None                                      # epoch `epoch`'s permutation, once drawn
    chunk = max(1, int(getattr(rule, "chunk_steps", 1)))
    if chunk > 1:  # the chunk's sample indices at most CHUNK_SAMPLES
        chunk = max(1, min(chunk, CHUNK_SAMPLES // max(batch_size, 1)))
    inside = bool(chunk > 1 and record_every and on_record is not None and record_fields is not None
                  and set(record_fields) <= set(getattr(rule, "snapshot_fields", ())))
    stops = [c for c in (None if inside else record_every, chunk, *(every for every, _ in periodic)) if c]
    if recorded is None:
        recorded = step != 0
    on_cadence = step == 0 or (record_every and step % record_every == 0)
    last_recorded = step if recorded or not on_cadence else -1
    start = time.perf_counter()
    offset = pos.elapsed

    def record(reraise=True):
        nonlocal last_recorded
        pos.elapsed = offset + time.perf_counter() - start
        if on_record is not None and last_recorded != step:
            with critical(reraise):
                on_record(step, step // per_epoch, pos.elapsed, state)
                last_recorded = step

    def outcome(status, message):
        return Outcome(status, message, step, step // per_epoch, offset + time.perf_counter() - start)

    with signals_raise():
        try:
            record()
            while step < total:
                # the batches up to the next step where something happens (a record, a metric,
                # the end of a chunk); one batch for rules without a multi-step kernel
                stop = min([total] + [(step // c + 1) * c for c in stops])
                picks, completed = [], []
                while step + len(picks) < stop:
                    if order is None:
                        order = rng.permutation(n) if shuffle else np.arange(n)
                    idx = order[b * batch_size:(b + 1) * batch_size]
                    if picks and len(idx) != len(picks[0]):
                        break  # an epoch's smaller last batch starts a chunk of its own
                    picks.append(idx)
                    b += 1
                    if b == per_epoch:
                        epoch, b, order = epoch + 1, 0, None
                        epoch_rng = rng.bit_generator.state
                        completed.append(epoch)
                pos.exact = False  # until the steps, their epochs' ends and their metrics are done
                if chunk == 1:
                    idx = picks[0]
                    rule.step(state, np.take(X, idx, axis=0, out=full, mode="clip") if len(idx) == len(full) else X[idx])
                    step += 1
                else:
                    # the call, its step count and its frames go together: Ctrl-C or SIGTERM
                    # during the call stops the run after them
                    with critical():
                        first = step
                        marks = list(range(record_every - step % record_every, len(picks), record_every)) if inside else []
                        called = time.perf_counter()
                        snapshots = rule.run_steps(state, X, np.stack(picks), marks) if marks else \
                            rule.run_steps(state, X, np.stack(picks))
                        returned = time.perf_counter()
                        step += len(picks)
                        for m, fields in zip(marks, snapshots):
                            at = offset + called - start + (returned - called) * m / len(picks)
                            on_record(first + m, (first + m) // per_epoch, at, fields)
                problem = rule.divergence(state)
                if problem:
                    record()
                    where = f"at step {step}" if len(picks) == 1 else f"by step {step}"
                    return outcome("diverged", f"diverged {where} (epoch {(step - 1) // per_epoch + 1}): {problem}")
                for e in completed:
                    rule.end_epoch(state, e)  # before the step is measured or recorded
                pos.step, pos.epoch, pos.batch, pos.rng_state = step, epoch, b, epoch_rng
                for every, callback in periodic:
                    if step % every == 0:
                        callback(step, step // per_epoch, state)
                pos.exact = True
                if record_every and step % record_every == 0:
                    record()
                elif inside and on_checkpoint is not None:
                    pos.elapsed = offset + time.perf_counter() - start
                    with critical():
                        on_checkpoint(state)
                if progress is not None and (completed or step == total):
                    progress.update(epoch, step)
            record()
            return outcome("completed", f"completed {epochs} epochs ({step} steps)")
        except Terminated:
            record(reraise=False)
            return outcome("interrupted", f"terminated by SIGTERM at step {step} (epoch {epoch + 1} of {epochs})")
        except KeyboardInterrupt:
            record(reraise=False)
            return outcome("interrupted", f"interrupted by Ctrl-C at step {step} (epoch {epoch + 1} of {epochs})")
        finally:
            if progress is not None:
                progress.close()
