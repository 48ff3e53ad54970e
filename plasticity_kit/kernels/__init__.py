"""Compiled hot loops (Cython, nogil, OpenMP).  Nothing but kernels lives here; each has a numpy
reference next to the rule that uses it, and the tests check one against the other.

Every kernel call runs one OpenMP team (``team.h`` or ``prange``) whose threads call BLAS
single-threaded on their own blocks; the number of threads and the BLAS limits are in
:mod:`plasticity_kit.threads`.  The passive OpenMP wait policy is set when the package is
imported (``plasticity_kit/__init__.py``).
"""
