"""The training loop: epochs × mini-batches with seeded shuffling, record cadence, divergence
guard and clean interruption (Ctrl-C or SIGTERM).

``train`` never calls Python per sample: each step hands a whole mini-batch to ``rule.step``
(a compiled kernel for the built-ins).  It returns how the run ended; the caller records it.
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
class Outcome:
    status: str            # completed | interrupted | diverged
    message: str
    steps: int
    epochs_completed: int
    elapsed: float


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    return math.ceil(n_samples / batch_size)


@contextmanager
def sigterm_raises():
    """Turn SIGTERM into :class:`Terminated` for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
          periodic=(), progress: Progress | None = None) -> Outcome:
    """Run ``epochs`` passes of ``rule.step`` over mini-batches of ``X``, updating ``state``.

    ``on_record(step, epoch, elapsed, state)`` is called before the first step (step 0), every
    ``record_every`` steps and after the last step.  ``periodic`` is a list of
    ``(every, callback)``: ``callback(step, epoch, state)`` runs every ``every`` steps (metrics).
    Both receive ``epoch`` = completed epochs = step // steps_per_epoch.
    """
    n = X.shape[0]
    per_epoch = steps_per_epoch(n, batch_size)
    full = np.empty((min(batch_size, n), X.shape[1]), dtype=X.dtype)
    step, epoch, last_recorded = 0, 0, -1
    start = time.perf_counter()

    def record():
        nonlocal last_recorded
        if on_record is not None and last_recorded != step:
            on_record(step, step // per_epoch, time.perf_counter() - start, state)
            last_recorded = step

    def outcome(status, message):
        return Outcome(status, message, step, epoch, time.perf_counter() - start)

    record()
    try:
        with sigterm_raises():
            for epoch in range(epochs):
                order = rng.permutation(n) if shuffle else np.arange(n)
                for b in range(per_epoch):
                    idx = order[b * batch_size:(b + 1) * batch_size]
                    batch = np.take(X, idx, axis=0, out=full, mode="clip") if len(idx) == len(full) else X[idx]
                    rule.step(state, batch)
                    step += 1
                    problem = rule.divergence(state)
                    if problem:
                        record()
                        return outcome("diverged", f"diverged at step {step} (epoch {epoch + 1}): {problem}")
                    if record_every and step % record_every == 0:
                        record()
                    for every, callback in periodic:
                        if step % every == 0:
                            callback(step, step // per_epoch, state)
                if progress is not None:
                    progress.update(epoch + 1, step)
            epoch = epochs
            record()
            return outcome("completed", f"completed {epochs} epochs ({step} steps)")
    except KeyboardInterrupt:
        record()
        return outcome("interrupted", f"interrupted by Ctrl-C at step {step} (epoch {epoch + 1} of {epochs})")
    except Terminated:
        record()
        return outcome("interrupted", f"terminated by SIGTERM at step {step} (epoch {epoch + 1} of {epochs})")
    finally:
        if progress is not None:
            progress.close()
