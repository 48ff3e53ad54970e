# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Krotov–Hopfield competing hidden units (Krotov & Hopfield 2019, PNAS 116:7723).

Both rules share the currents and the weight update:

    I_bμ = Σ_i sign(W_μi)|W_μi|^(p−1) x_bi              one dense product (BLAS), B × N
    ds_μ = Σ_b g_bμ x_b − (Σ_b g_bμ I_bμ) W_μ
    W   += eps · ds / max(max|ds|, precision)

and differ in the learning activation g:

* ``ranking_step`` (the fast algorithm of the paper's notebook): per sample the strongest unit gets
  g = 1 and the k-th strongest g = −Δ (ties: the lower unit index ranks first);
* ``dynamics_step`` (the full model): per sample the hidden currents relax to the steady state of
  τ dh/dt = I − w_inh Σ_{ν≠μ} r(h_ν) − h, r = max(h, 0), then g(h) = 0 (h < 0), −Δ (0 ≤ h < h*),
  1 (h ≥ h*).

Only units with g ≠ 0 (two per sample for the ranking rule, the few active ones for the dynamics)
receive a learning signal, so ds is accumulated for those rows only (a sparse accumulation, no
second dense product) and only those rows of W change.  Everything runs without the GIL; the
per-sample ranking and relaxation run in parallel over samples (OpenMP).  ``ranking_step`` can
step R independent networks stacked in W in one call (``replicas``), each bit for bit as its own
call would.  The numpy references
of the same equations are ``plasticity_kit.rules.krotov_hopfield.reference_step`` and
``plasticity_kit.rules.krotov_hopfield_dynamics.reference_step``.
"""
from cython.parallel cimport prange
from libc.math cimport pow, powf, fabs
from libc.stdlib cimport malloc, calloc, free
cimport openmp

import numpy as np

from plasticity_kit.kernels.blas cimport gemm_rm, floating

cdef enum:
    PAR_MIN = 1 << 20


cdef void powered_weights(const floating* W, floating* out, Py_ssize_t N, Py_ssize_t D, double p,
                          int nt) noexcept nogil:
    """out = sign(W)·|W|^(p−1); a whole exponent by repeated products (|w|·|w| for p = 3, as numpy)."""
    cdef Py_ssize_t i, j
    cdef int q
    cdef floating w, a, b
    cdef double e = p - 1.0
    cdef int m = <int> e
    cdef bint whole = e == <double> m and m >= 1 and m <= 16
    if m == 2 and whole:
        for i in prange(N, num_threads=nt, schedule="static"):
            for j in range(D):
                w = W[i * D + j]
                out[i * D + j] = w * fabs(w)
        return
    for i in prange(N, num_threads=nt, schedule="static"):
        for j in range(D):
            w = W[i * D + j]
            a = fabs(w)
            if whole:
                b = a
                for q in range(m - 1):
                    b = b * a
            elif floating is float:
                b = powf(a, <float> e)
            else:
                b = pow(a, e)
            out[i * D + j] = b if w > 0 else (-b if w < 0 else 0)


cdef int currents(const floating* W, const floating* X, floating* I, Py_ssize_t N, Py_ssize_t D,
                  Py_ssize_t B, double p, int nt) noexcept nogil:
    """I (B × N) = X · (sign(W)|W|^(p−1))ᵀ.  Returns −1 when memory runs out."""
    cdef floating* Wp = <floating*> W
    if p != 2.0:
        Wp = <floating*> malloc(N * D * sizeof(floating))
        if Wp == NULL:
            return -1
        powered_weights(W, Wp, N, D, p, nt)
    gemm_rm(False, True, <int> B, <int> N, <int> D, <floating> 1, X, <int> D, Wp, <int> D,
            <floating> 0, I, <int> N)
    if p != 2.0:
        free(Wp)
    return 0


cdef int sparse_update(floating* W, const floating* X, const floating* I, Py_ssize_t N, Py_ssize_t D,
                       const int* e_unit, const int* e_sample, const floating* e_g, Py_ssize_t E,
                       double eps, double precision, int nt, double* nc_out) noexcept nogil:
    """ds rows of the units named in the entries (unit, sample, g), then W += eps·ds/max(|ds|, prec).

    Entries are grouped by unit with a counting sort that keeps their order (sample order), so the
    sums run in a fixed order whatever the number of threads.  Returns −1 when memory runs out.
    """
    cdef Py_ssize_t t, q, j, e, b, u, T = 0
    cdef int* start = <int*> calloc(N + 1, sizeof(int))
    cdef int* order = <int*> malloc((E if E > 0 else 1) * sizeof(int))
    cdef int* touched = <int*> malloc((N if N < E else (E if E > 0 else 1)) * sizeof(int))
    cdef int* fill = <int*> malloc((N + 1) * sizeof(int))
    cdef floating* ds = NULL
    cdef double* rowmax = NULL
    cdef floating g, xx, v, nc_f
    cdef double m, nc = 0
    if start == NULL or order == NULL or touched == NULL or fill == NULL:
        free(start); free(order); free(touched); free(fill)
        return -1
    for e in range(E):
        start[e_unit[e] + 1] += 1
    for u in range(N):
        if start[u + 1] > 0:
            touched[T] = <int> u
            T += 1
        start[u + 1] += start[u]
    for u in range(N + 1):
        fill[u] = start[u]
    for e in range(E):
        u = e_unit[e]
        order[fill[u]] = <int> e
        fill[u] += 1
    free(fill)

    ds = <floating*> malloc((T if T > 0 else 1) * D * sizeof(floating))
    rowmax = <double*> malloc((T if T > 0 else 1) * sizeof(double))
    if ds == NULL or rowmax == NULL:
        free(start); free(order); free(touched); free(ds); free(rowmax)
        return -1
    for t in prange(T, num_threads=_team(nt, T * D), schedule="dynamic"):
        u = touched[t]
        for j in range(D):
            ds[t * D + j] = 0
        xx = 0
        for q in range(start[u], start[u + 1]):
            e = order[q]
            b = e_sample[e]
            g = e_g[e]
            xx = xx + g * I[b * N + u]
            for j in range(D):
                ds[t * D + j] = ds[t * D + j] + g * X[b * D + j]
        m = 0
        for j in range(D):
            v = ds[t * D + j] - xx * W[u * D + j]
            ds[t * D + j] = v
            if fabs(v) > m or v != v:
                m = fabs(v) if v == v else v
        rowmax[t] = m
    for t in range(T):
        if rowmax[t] > nc or rowmax[t] != rowmax[t]:
            nc = rowmax[t]
    if nc < precision:
        nc = precision
    nc_f = <floating> nc
    for t in prange(T, num_threads=_team(nt, T * D), schedule="static"):
        u = touched[t]
        for j in range(D):
            W[u * D + j] = W[u * D + j] + <floating> eps * (ds[t * D + j] / nc_f)
    nc_out[0] = nc
    free(start); free(order); free(touched); free(ds); free(rowmax)
    return 0


cdef void rank_sample(const floating* I, Py_ssize_t N, int k, int* idx, floating* val,
                      int* top, int* kth) noexcept nogil:
    """Strongest and k-th strongest unit of one sample: a top-k insertion list, stable on ties."""
    cdef Py_ssize_t j, pos
    cdef int count = 0
    cdef floating v
    for j in range(N):
        v = I[j]
        if count == k:
            if not (v > val[k - 1]):
                continue
            pos = k - 1
        else:
            pos = count
            count += 1
        while pos > 0 and val[pos - 1] < v:
            val[pos] = val[pos - 1]
            idx[pos] = idx[pos - 1]
            pos -= 1
        val[pos] = v
        idx[pos] = <int> j
    top[0] = idx[0]
    kth[0] = idx[k - 1]


cdef inline int _team(int nt, Py_ssize_t work) noexcept nogil:
    """Threads for a pass of ``work`` elements: small passes run on the calling thread, because
    an OpenMP team started between two BLAS calls fights BLAS's own workers for the cores (with
    2 threads the ranking step ran no faster than with 1; see kernels/bcm.pyx)."""
    return nt if work >= PAR_MIN else 1


cdef int _threads(int num_threads) noexcept:
    return num_threads if num_threads > 0 else openmp.omp_get_max_threads()


def ranking_step(floating[:, ::1] W, const floating[:, ::1] X, double eps, double p, int k, double delta,
                 double precision, int[:, ::1] winners=None, int num_threads=0, int replicas=1):
    """One mini-batch of the ranking rule on ``W`` (N × D) in place for inputs ``X`` (B × D).

    For each network (a block of n rows of W, see ``replicas``):

        I_bμ = Σ_i sign(W_μi)|W_μi|^(p−1) x_bi            B × n, one BLAS product
        g_bμ = 1 for the strongest unit of sample b, −Δ for its k-th strongest (ties: lower index
               first), 0 otherwise
        ds_μ = Σ_b g_bμ x_b − (Σ_b g_bμ I_bμ) W_μ          only the rows with some g ≠ 0
        W   += eps · ds / max(max|ds|, precision)          max over the network's own n rows

    Replicas: ``replicas`` = R independent networks of n = N/R units each that see the same batch
    are stepped in one call, their rows stacked in W (network r is rows r·n … (r+1)·n − 1).  Each
    block is stepped exactly as a call on that network alone (its own product, its own ranking
    among its n units, its own normaliser), one block after the other on the calling thread, so
    the result equals R separate calls ``ranking_step(W[r*n:(r+1)*n], X, ...)`` bit for bit and
    the R − 1 extra Python calls are saved.  Requires R ≥ 1 dividing N and 2 ≤ k ≤ n.

    ``winners`` (optional, (R·B) × 2 int32; B × 2 for one network) receives each sample's strongest
    and k-th strongest unit, network r's in rows r·B … (r+1)·B − 1, as unit indices within the
    network (0 … n−1).  ``num_threads`` ≤ 0 uses OpenMP's default; it applies to the element-wise
    passes (the product uses BLAS's own threads).

    Returns max|ds| (floored at ``precision``), the normaliser of the step: a float for
    ``replicas`` = 1, a float64 array of the R networks' normalisers otherwise.
    """
    cdef Py_ssize_t N = W.shape[0], D = W.shape[1], B = X.shape[0], b
    if X.shape[1] != D:
        raise ValueError(f"shape mismatch: W {N}x{D}, X {B}x{X.shape[1]}")
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    if N % replicas != 0:
        raise ValueError(f"replicas must divide the {N} rows of W, got {replicas}")
    cdef Py_ssize_t R = replicas, n = N // replicas, r
    if k < 2 or k > n:
        if R == 1:
            raise ValueError(f"k must be in [2, {n}] (the number of units), got {k}")
        raise ValueError(f"k must be in [2, {n}] (n = {n}, the units per replica: {N} rows / {R} replicas), "
                         f"got {k}")
    if winners is not None and (winners.shape[0] != R * B or winners.shape[1] != 2):
        if R == 1:
            raise ValueError("winners must be B x 2")
        raise ValueError(f"winners must be (R*B) x 2 = {R * B} x 2 ({R} replicas, batch {B}), "
                         f"got {winners.shape[0]}x{winners.shape[1]}")
    norms_arr = np.zeros(R, dtype=np.float64)
    cdef double[::1] norms = norms_arr
    if B == 0:
        return 0.0 if R == 1 else norms_arr
    cdef int nt = _threads(num_threads)
    # One replica's buffers, reused block after block; the winners of all blocks are kept.
    cdef floating* I = <floating*> malloc(B * n * sizeof(floating))
    cdef int* idx = <int*> malloc(B * k * sizeof(int))
    cdef floating* val = <floating*> malloc(B * k * sizeof(floating))
    cdef int* e_unit = <int*> malloc(R * 2 * B * sizeof(int))
    cdef int* e_sample = <int*> malloc(2 * B * sizeof(int))
    cdef floating* e_g = <floating*> malloc(2 * B * sizeof(floating))
    cdef int status = 0
    cdef floating minus_delta = <floating> (-delta)
    cdef floating* Wr
    cdef int* eu
    if I == NULL or idx == NULL or val == NULL or e_unit == NULL or e_sample == NULL or e_g == NULL:
        status = -1
    else:
        with nogil:
            for b in range(B):
                e_sample[2 * b] = <int> b
                e_sample[2 * b + 1] = <int> b
                e_g[2 * b] = 1
                e_g[2 * b + 1] = minus_delta
            for r in range(R):
                Wr = &W[0, 0] + r * n * D
                eu = e_unit + r * 2 * B
                status = currents(Wr, &X[0, 0], I, n, D, B, p, nt)
                if status != 0:
                    break
                for b in prange(B, num_threads=_team(nt, B * n), schedule="static"):
                    rank_sample(I + b * n, n, k, idx + b * k, val + b * k, eu + 2 * b, eu + 2 * b + 1)
                status = sparse_update(Wr, &X[0, 0], I, n, D, eu, e_sample, e_g, 2 * B,
                                       eps, precision, nt, &norms[r])
                if status != 0:
                    break
        if status == 0 and winners is not None:
            for b in range(R * B):
                winners[b, 0] = e_unit[2 * b]
                winners[b, 1] = e_unit[2 * b + 1]
    free(I); free(idx); free(val); free(e_unit); free(e_sample); free(e_g)
    if status != 0:
        raise MemoryError()
    return norms[0] if R == 1 else norms_arr


cdef int relax_sample(const floating* I, double* h, Py_ssize_t N, double w, double dt, int max_steps,
                      double tol) noexcept nogil:
    """Relax h (from 0) to the steady state of dh/dt = I − w Σ_{ν≠μ} r(h_ν) − h (time in units of τ).

    Linearly implicit Euler: with the current active set a = [h > 0] the step solves
    h' = h + dt (I − w (S' − a h') − h'), S' = Σ a h', which is diagonal plus rank one and solved in
    closed form, so the step is stable for any dt.  Stops when the residual
    max |I − w Σ_{ν≠μ} r(h_ν) − h| ≤ tol; returns the number of steps, or −1 after max_steps.
    """
    cdef Py_ssize_t j
    cdef int it
    cdef double R, res, r, c, Sc, S, active
    cdef double Da = 1.0 + dt * (1.0 - w), Di = 1.0 + dt
    for j in range(N):
        h[j] = 0
    for it in range(max_steps + 1):
        R = 0
        for j in range(N):
            if h[j] > 0:
                R = R + h[j]
        res = 0
        Sc = 0
        active = 0
        for j in range(N):
            r = h[j] if h[j] > 0 else 0
            c = fabs(I[j] - w * (R - r) - h[j])
            if c > res:
                res = c
            if h[j] > 0:
                Sc = Sc + h[j] + dt * I[j]
                active = active + 1
        if res <= tol:
            return it
        if it == max_steps:
            return -1
        S = (Sc / Da) / (1.0 + dt * w * active / Da)
        for j in range(N):
            c = h[j] + dt * I[j] - dt * w * S
            h[j] = c / Da if h[j] > 0 else c / Di
    return -1


def relax(const floating[:, ::1] I, double w_inh, double dt, int max_steps, double tol,
          double[:, ::1] h_out, int[::1] steps_out=None, int num_threads=0):
    """Steady states of the hidden currents ``I`` (B × N) into ``h_out`` (B × N, float64), one
    sample per thread.  ``steps_out`` (B) receives the steps taken (−1: not converged).
    Returns the number of samples that did not converge within ``max_steps``."""
    cdef Py_ssize_t B = I.shape[0], N = I.shape[1], b
    if h_out.shape[0] != B or h_out.shape[1] != N:
        raise ValueError("h_out must have the shape of I")
    if steps_out is not None and steps_out.shape[0] != B:
        raise ValueError("steps_out must have one entry per sample")
    cdef int nt = _threads(num_threads)
    cdef int s, failed = 0
    cdef bint keep = steps_out is not None
    for b in prange(B, num_threads=nt, schedule="dynamic", nogil=True):
        s = relax_sample(&I[b, 0], &h_out[b, 0], N, w_inh, dt, max_steps, tol)
        if keep:
            steps_out[b] = s
        if s < 0:
            failed += 1
    return failed


def dynamics_step(floating[:, ::1] W, const floating[:, ::1] X, double eps, double p, double delta,
                  double h_star, double w_inh, double dt, int max_steps, double tol, double precision,
                  double[:, ::1] h_out=None, int num_threads=0):
    """One mini-batch of the full dynamics on ``W`` (N × D) in place for inputs ``X`` (B × D).

    ``h_out`` (optional, B × N float64) receives the steady states.  Returns (max|ds| floored at
    ``precision``, number of samples whose relaxation did not converge).
    """
    cdef Py_ssize_t N = W.shape[0], D = W.shape[1], B = X.shape[0], b, j, E = 0
    if X.shape[1] != D:
        raise ValueError(f"shape mismatch: W {N}x{D}, X {B}x{X.shape[1]}")
    if h_out is not None and (h_out.shape[0] != B or h_out.shape[1] != N):
        raise ValueError("h_out must be B x N")
    if B == 0:
        return 0.0, 0
    cdef int nt = _threads(num_threads)
    cdef floating* I = <floating*> malloc(B * N * sizeof(floating))
    cdef double* h = <double*> malloc(B * N * sizeof(double))
    cdef int* e_unit = <int*> malloc(B * N * sizeof(int))
    cdef int* e_sample = <int*> malloc(B * N * sizeof(int))
    cdef floating* e_g = <floating*> malloc(B * N * sizeof(floating))
    cdef int status = 0, s, failed = 0
    cdef double nc = 0, hv
    cdef floating minus_delta = <floating> (-delta)
    if I == NULL or h == NULL or e_unit == NULL or e_sample == NULL or e_g == NULL:
        status = -1
    else:
        with nogil:
            status = currents(&W[0, 0], &X[0, 0], I, N, D, B, p, nt)
            if status == 0:
                for b in prange(B, num_threads=nt, schedule="dynamic"):
                    s = relax_sample(I + b * N, h + b * N, N, w_inh, dt, max_steps, tol)
                    if s < 0:
                        failed += 1
                for b in range(B):
                    for j in range(N):
                        hv = h[b * N + j]
                        if hv >= 0:
                            e_unit[E] = <int> j
                            e_sample[E] = <int> b
                            e_g[E] = 1 if hv >= h_star else minus_delta
                            E = E + 1
                status = sparse_update(&W[0, 0], &X[0, 0], I, N, D, e_unit, e_sample, e_g, E,
                                       eps, precision, nt, &nc)
        if status == 0 and h_out is not None:
            for b in range(B):
                for j in range(N):
                    h_out[b, j] = h[b * N + j]
    free(I); free(h); free(e_unit); free(e_sample); free(e_g)
    if status != 0:
        raise MemoryError()
    return nc, failed
