"""The training loop: epochs × mini-batches with seeded shuffling, record cadence, divergence
guard, clean interruption (Ctrl-C or SIGTERM) and resume.

``train`` never calls Python per sample: each step hands a whole mini-batch to ``rule.step``
(a compiled kernel for the built-ins).  It returns how the run ended; the caller records it.

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


class Terminated(BaseException):
    """Raised inside the loop when the process receives SIGTERM."""


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
          periodic=(), progress: Progress | None = None, position: Position | None = None) -> Outcome:
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
    The step at ``position`` is taken as recorded already when it is not 0.
    """
    n = X.shape[0]
    per_epoch = steps_per_epoch(n, batch_size)
    full = np.empty((min(batch_size, n), X.shape[1]), dtype=X.dtype)
    pos = position if position is not None else Position()
    if pos.step != pos.epoch * per_epoch + pos.batch or pos.batch >= per_epoch:
        raise ValueError(f"inconsistent position: step {pos.step}, epoch {pos.epoch}, batch {pos.batch} "
                         f"with {per_epoch} steps per epoch")
    if pos.rng_state is not None:
        rng.bit_generator.state = pos.rng_state
    else:
        pos.rng_state = rng.bit_generator.state
    step, pos_epoch0, first_batch = pos.step, pos.epoch, pos.batch
    epoch = pos_epoch0
    last_recorded = step if step else -1
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
            for epoch in range(pos_epoch0, epochs):
                order = rng.permutation(n) if shuffle else np.arange(n)
                for b in range(first_batch if epoch == pos_epoch0 else 0, per_epoch):
                    idx = order[b * batch_size:(b + 1) * batch_size]
                    batch = np.take(X, idx, axis=0, out=full, mode="clip") if len(idx) == len(full) else X[idx]
                    pos.exact = False  # until the step, its epoch's end and its metrics are done
                    rule.step(state, batch)
                    step += 1
                    problem = rule.divergence(state)
                    if problem:
                        record()
                        return outcome("diverged", f"diverged at step {step} (epoch {epoch + 1}): {problem}")
                    if b + 1 == per_epoch:
                        rule.end_epoch(state, epoch + 1)  # before the step is measured or recorded
                        # the next epoch starts from the generator as it is now
                        pos.step, pos.epoch, pos.batch, pos.rng_state = step, epoch + 1, 0, rng.bit_generator.state
                    else:
                        pos.step, pos.batch = step, b + 1
                    for every, callback in periodic:
                        if step % every == 0:
                            callback(step, step // per_epoch, state)
                    pos.exact = True
                    if record_every and step % record_every == 0:
                        record()
                if progress is not None:
                    progress.update(epoch + 1, step)
            epoch = epochs
            record()
            return outcome("completed", f"completed {epochs} epochs ({step} steps)")
        except KeyboardInterrupt:
            record(reraise=False)
            return outcome("interrupted", f"interrupted by Ctrl-C at step {step} (epoch {epoch + 1} of {epochs})")
        except Terminated:
            record(reraise=False)
            return outcome("interrupted", f"terminated by SIGTERM at step {step} (epoch {epoch + 1} of {epochs})")
        finally:
            if progress is not None:
                progress.close()
