"""Compiled hot loops (Cython, nogil, OpenMP).  Nothing but kernels lives here; each has a numpy
reference next to the rule that uses it, and the tests check one against the other."""
