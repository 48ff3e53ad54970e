"""Compiled hot loops (Cython, nogil, OpenMP).  Nothing but kernels lives here; each has a numpy
reference next to the rule that uses it, and the tests check one against the other.

The kernels interleave OpenMP loops with BLAS calls that run their own thread pool.  With
OpenMP's default (active, spinning) wait policy, idle OpenMP workers keep the cores busy while
BLAS needs them, which made a small BCM step 12× slower on 2 cores; a passive policy is set
here, before the kernels load libgomp, unless the user chose one.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
