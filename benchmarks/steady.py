"""Time a row in the steady state it has inside a training run.

Two things on a shared 2-core VM make a row timed right after another one slow for reasons that
are not its own (both measured on this machine, BCM MNIST shape at 2 threads):

* an OpenBLAS pool keeps spinning ~0.1 s after its last call (numpy and scipy each bring one), so
  the next row shares the cores with it;
* a CPU left idle (by a one-thread row, or by a pause) takes 2–3 epochs — 50–80 ms — to come back
  to full speed: 10-step epochs timed one by one after a 0.3 s pause took 38, 31, 26, 25 ms,
  back to back 20–21 ms.

In a training run epochs follow each other, so neither happens there.  :func:`settle` sleeps
``pause`` seconds (the pools go quiet) and then runs the row itself, untimed, for at least
``rewarm`` seconds (at least once), before the timed repeat starts.
"""
from __future__ import annotations

import time


def settle(fn, pause: float = 0.3, rewarm: float = 0.15) -> None:
    """Sleep ``pause`` s, then call ``fn()`` untimed until ``rewarm`` s have passed (once at least)."""
    if pause > 0:
        time.sleep(pause)
    end = time.perf_counter() + rewarm
    fn()
    while time.perf_counter() < end:
        fn()
