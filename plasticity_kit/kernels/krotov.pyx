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
second dense product) and only those rows of W change.  Everything runs without the GIL, in one
OpenMP team per call (``team.h``): each thread takes fixed blocks of units (their currents, by
single-threaded BLAS), then of samples (their ranking or relaxation), then rows of the sparse
update.  Blocks
are fixed by the shape and each row's sums run in sample order, so any number of threads gives
the same bits.  ``ranking_step`` can keep the powered weights between calls (``powered``,
refreshing only the changed rows) and step R independent networks stacked in W in one call
(``replicas``), each bit for bit as its own call would.
The numpy references
of the same equations are ``plasticity_kit.rules.krotov_hopfield.reference_step`` and
``plasticity_kit.rules.krotov_hopfield_dynamics.reference_step``.
"""
from cython.parallel cimport prange, threadid
from libc.math cimport pow, powf, fabs
from libc.stdlib cimport malloc, calloc, free

import numpy as np

from plasticity_kit.kernels.blas cimport gemm_rm, floating
from plasticity_kit.threads import get_threads, single_blas

cdef extern from "team.h" nogil:
    ctypedef void (*pk_task)(void* ctx, Py_ssize_t step, Py_ssize_t item) noexcept nogil
    void pk_team(int nt, Py_ssize_t steps, int phases, const pk_task* tasks, const Py_ssize_t* counts,
                 void* ctx) noexcept nogil
    Py_ssize_t pk_blocks(Py_ssize_t size, Py_ssize_t least) noexcept nogil

cdef enum:
    MIN_UNITS = 200    # fewest units in a block of the currents' product
    MIN_SAMPLES = 8    # fewest samples in a block of the ranking / relaxation
    MIN_ROWS = 64      # fewest rows in a block of the full powered-weights pass
    RANKING = 0
    DYNAMICS = 1



cdef inline Py_ssize_t block_start(Py_ssize_t size, Py_ssize_t blocks, Py_ssize_t b) noexcept nogil:
    return size * b // blocks


cdef inline void power_rows(const floating* W, floating* out, Py_ssize_t r0, Py_ssize_t r1,
                            Py_ssize_t D, double p) noexcept nogil:
    """out = sign(W)·|W|^(p−1) on rows [r0, r1); a whole exponent by repeated products (|w|·|w|
    for p = 3, as numpy)."""
    cdef Py_ssize_t i, j
    cdef int q
    cdef floating w, a, b
    cdef double e = p - 1.0
    cdef int m = <int> e
    cdef bint whole = e == <double> m and m >= 1 and m <= 16
    if m == 2 and whole:
        for i in range(r0 * D, r1 * D):
            w = W[i]
            out[i] = w * fabs(w)
        return
    for i in range(r0 * D, r1 * D):
        w = W[i]
        a = fabs(w)
        if whole:
            b = a
            for q in range(m - 1):
                b = b * a
        elif floating is float:
            b = powf(a, <float> e)
        else:
            b = pow(a, e)
        out[i] = b if w > 0 else (-b if w < 0 else 0)


def powered_weights(const floating[:, ::1] W, double p, floating[:, ::1] out, int num_threads=0):
    """out = sign(W)·|W|^(p−1) (N × D), computed as the kernels compute it: the ``powered``
    weights that ``ranking_step`` keeps up to date start from this."""
    cdef Py_ssize_t N = W.shape[0], D = W.shape[1], blk, nb = pk_blocks(N, MIN_ROWS)
    if out.shape[0] != N or out.shape[1] != D:
        raise ValueError(f"out must be {N} x {D}, got {out.shape[0]}x{out.shape[1]}")
    cdef int nt = num_threads if num_threads > 0 else get_threads()
    if N == 0 or D == 0:
        return
    with nogil:
        for blk in prange(nb, num_threads=nt, schedule="dynamic"):
            power_rows(&W[0, 0], &out[0, 0], block_start(N, nb, blk), block_start(N, nb, blk + 1), D, p)


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


cdef struct Net:
    # One network's step (n units, D inputs, batch B) and its workspace.
    void* W             # n × D, updated in place
    void* Wp            # sign(W)|W|^(p−1), n × D (W itself for p = 2)
    bint keep_wp        # Wp is the caller's: refresh the rows that change
    const void* X       # B × D
    Py_ssize_t n, D, B
    int mode, k, dbl
    double p, eps, precision, delta, h_star, w_inh, dt, tol
    int max_steps
    Py_ssize_t nub, nsb, nrb  # blocks of units (currents), of samples, of rows (powered pass)
    void* cur           # B × n currents I
    double* h           # B × n steady states (dynamics)
    int* idx            # B × k ranking lists
    void* val
    int* e_unit         # entries (unit, sample, g): the units with a learning signal
    int* e_sample
    void* e_g
    Py_ssize_t E, cap   # entries, room for entries
    int* start          # n + 1: entries of unit u are order[start[u] : start[u+1]]
    int* order
    int* touched        # the T units with entries
    Py_ssize_t T
    void* ds            # T × D
    double* rowmax      # T
    double nc           # max |ds| floored at precision
    int failed          # samples whose relaxation did not converge
    int* relax_failed   # per sample (dynamics)
    Py_ssize_t counts[7]


cdef void powered_block(Net* net, Py_ssize_t blk, floating* tag) noexcept nogil:
    cdef Py_ssize_t r0 = block_start(net.n, net.nrb, blk), r1 = block_start(net.n, net.nrb, blk + 1)
    power_rows(<const floating*> net.W, <floating*> net.Wp, r0, r1, net.D, net.p)


cdef void currents_block(Net* net, Py_ssize_t blk, floating* tag) noexcept nogil:
    """Block ``blk`` of the units: their currents I[:, u0:u1] = X·Wp[u0:u1]ᵀ, one BLAS product
    (split by units, so that each thread reads its share of the large Wp once)."""
    cdef Py_ssize_t n = net.n, D = net.D
    cdef Py_ssize_t u0 = block_start(n, net.nub, blk), u1 = block_start(n, net.nub, blk + 1)
    if u1 <= u0:
        return
    gemm_rm(False, True, <int> net.B, <int> (u1 - u0), <int> D, <floating> 1, <const floating*> net.X,
            <int> D, <const floating*> net.Wp + u0 * D, <int> D, <floating> 0, <floating*> net.cur + u0,
            <int> n)


cdef void samples_block(Net* net, Py_ssize_t blk, floating* tag) noexcept nogil:
    """Block ``blk`` of the samples: their ranking (ranking rule) or relaxation (dynamics)."""
    cdef Py_ssize_t b, n = net.n
    cdef Py_ssize_t b0 = block_start(net.B, net.nsb, blk), b1 = block_start(net.B, net.nsb, blk + 1)
    cdef floating* I = <floating*> net.cur
    cdef int s
    for b in range(b0, b1):
        if net.mode == RANKING:
            rank_sample(I + b * n, n, net.k, net.idx + b * net.k, <floating*> net.val + b * net.k,
                        net.e_unit + 2 * b, net.e_unit + 2 * b + 1)
        else:
            s = relax_sample(I + b * n, net.h + b * n, n, net.w_inh, net.dt, net.max_steps, net.tol)
            net.relax_failed[b] = s < 0


cdef void group_entries(Net* net, floating* tag) noexcept nogil:
    """The entries (unit, sample, g) grouped by unit with a counting sort that keeps their order
    (sample order), so that every row's sum runs in a fixed order; sets T and the next counts."""
    cdef Py_ssize_t e, u, b, j, E = 0, T = 0, n = net.n
    cdef floating* g = <floating*> net.e_g
    cdef floating minus_delta = <floating> (-net.delta)
    cdef double hv
    if net.mode == RANKING:
        E = 2 * net.B
    else:
        net.failed = 0
        for b in range(net.B):
            net.failed += net.relax_failed[b]
            for j in range(n):
                hv = net.h[b * n + j]
                if hv >= 0:
                    net.e_unit[E] = <int> j
                    net.e_sample[E] = <int> b
                    g[E] = 1 if hv >= net.h_star else minus_delta
                    E += 1
    net.E = E
    for u in range(n + 1):
        net.start[u] = 0
    for e in range(E):
        net.start[net.e_unit[e] + 1] += 1
    for u in range(n):
        if net.start[u + 1] > 0:
            net.touched[T] = <int> u
            T += 1
        net.start[u + 1] += net.start[u]
    for e in range(E):  # start[u] moves to the end of unit u's entries, then back
        u = net.e_unit[e]
        net.order[net.start[u]] = <int> e
        net.start[u] += 1
    for u in range(n, 0, -1):
        net.start[u] = net.start[u - 1]
    net.start[0] = 0
    net.T = T
    net.counts[4] = T
    net.counts[6] = T


cdef void ds_row(Net* net, Py_ssize_t t, floating* tag) noexcept nogil:
    """ds_u = Σ_e g_e x_(b_e) − (Σ_e g_e I_(b_e)u) W_u for touched unit u = touched[t]; its max |ds|."""
    cdef Py_ssize_t q, j, e, b, D = net.D, n = net.n
    cdef int u = net.touched[t]
    cdef floating* ds = <floating*> net.ds + t * D
    cdef const floating* X = <const floating*> net.X
    cdef const floating* I = <const floating*> net.cur
    cdef const floating* W = <const floating*> net.W + u * D
    cdef const floating* G = <const floating*> net.e_g
    cdef floating g, xx = 0, v
    cdef double m = 0
    for j in range(D):
        ds[j] = 0
    for q in range(net.start[u], net.start[u + 1]):
        e = net.order[q]
        b = net.e_sample[e]
        g = G[e]
        xx = xx + g * I[b * n + u]
        for j in range(D):
            ds[j] = ds[j] + g * X[b * D + j]
    for j in range(D):
        v = ds[j] - xx * W[j]
        ds[j] = v
        if fabs(v) > m or v != v:
            m = fabs(v) if v == v else v
    net.rowmax[t] = m


cdef void normaliser(Net* net) noexcept nogil:
    cdef Py_ssize_t t
    cdef double nc = 0
    for t in range(net.T):
        if net.rowmax[t] > nc or net.rowmax[t] != net.rowmax[t]:
            nc = net.rowmax[t]
    net.nc = nc if nc >= net.precision or nc != nc else net.precision


cdef void update_row(Net* net, Py_ssize_t t, floating* tag) noexcept nogil:
    """W_u += eps·ds_u/nc, and the powered row when the caller keeps it."""
    cdef Py_ssize_t j, D = net.D
    cdef int u = net.touched[t]
    cdef floating* W = <floating*> net.W
    cdef const floating* ds = <const floating*> net.ds + t * D
    cdef floating nc = <floating> net.nc, eps = <floating> net.eps
    for j in range(D):
        W[u * D + j] = W[u * D + j] + eps * (ds[j] / nc)
    if net.keep_wp:
        power_rows(W, <floating*> net.Wp, u, u + 1, D, net.p)


# The phases of a step, run by pk_team: 0 the full powered pass (only without the caller's
# powered weights, p ≠ 2), 1 blocks of units (the currents), 2 blocks of samples (ranking or
# relaxation), 3 grouping (one item), 4 the touched rows' ds, 5 the normaliser (one item),
# 6 the touched rows' update.
cdef void phase_powered(void* ctx, Py_ssize_t s, Py_ssize_t i) noexcept nogil:
    cdef Net* net = <Net*> ctx
    if net.dbl:
        powered_block(net, i, <double*> NULL)
    else:
        powered_block(net, i, <float*> NULL)


cdef void phase_currents(void* ctx, Py_ssize_t s, Py_ssize_t i) noexcept nogil:
    cdef Net* net = <Net*> ctx
    if net.dbl:
        currents_block(net, i, <double*> NULL)
    else:
        currents_block(net, i, <float*> NULL)


cdef void phase_samples(void* ctx, Py_ssize_t s, Py_ssize_t i) noexcept nogil:
    cdef Net* net = <Net*> ctx
    if net.dbl:
        samples_block(net, i, <double*> NULL)
    else:
        samples_block(net, i, <float*> NULL)


cdef void phase_group(void* ctx, Py_ssize_t s, Py_ssize_t i) noexcept nogil:
    cdef Net* net = <Net*> ctx
    if net.dbl:
        group_entries(net, <double*> NULL)
    else:
        group_entries(net, <float*> NULL)


cdef void phase_ds(void* ctx, Py_ssize_t s, Py_ssize_t i) noexcept nogil:
    cdef Net* net = <Net*> ctx
    if net.dbl:
        ds_row(net, i, <double*> NULL)
    else:
        ds_row(net, i, <float*> NULL)


cdef void phase_norm(void* ctx, Py_ssize_t s, Py_ssize_t i) noexcept nogil:
    normaliser(<Net*> ctx)


cdef void phase_update(void* ctx, Py_ssize_t s, Py_ssize_t i) noexcept nogil:
    cdef Net* net = <Net*> ctx
    if net.dbl:
        update_row(net, i, <double*> NULL)
    else:
        update_row(net, i, <float*> NULL)


cdef void step_network(Net* net, int nt) noexcept nogil:
    """One step of one network on ``nt`` threads (one team: pk_team)."""
    cdef pk_task tasks[7]
    tasks[0], tasks[1], tasks[2], tasks[3] = phase_powered, phase_currents, phase_samples, phase_group
    tasks[4], tasks[5], tasks[6] = phase_ds, phase_norm, phase_update
    net.counts[0] = net.nrb if (net.Wp != net.W and not net.keep_wp) else 0
    net.counts[1] = net.nub
    net.counts[2] = net.nsb
    net.counts[3] = 1
    net.counts[4] = 0    # set by the grouping phase
    net.counts[5] = 1
    net.counts[6] = 0    # set by the grouping phase
    pk_team(nt, 1, 7, tasks, net.counts, net)


cdef size_t ALIGN = 64


cdef inline size_t rounded(size_t size) noexcept nogil:
    return (size + ALIGN - 1) // ALIGN * ALIGN


cdef size_t workspace_size(Py_ssize_t n, Py_ssize_t D, Py_ssize_t B, int k, int mode, size_t item,
                           bint full_wp) noexcept nogil:
    """Bytes of one network's workspace (see ``set_workspace``)."""
    cdef Py_ssize_t cap = 2 * B if mode == RANKING else B * n
    cdef Py_ssize_t rows = n if n < cap else cap
    cdef size_t size = rounded(B * n * item) + rounded(cap * 2 * sizeof(int)) + rounded(cap * item)
    size += rounded((n + 1) * sizeof(int)) + rounded(cap * sizeof(int)) + rounded(n * sizeof(int))
    size += rounded((rows if rows > 0 else 1) * D * item) + rounded(n * sizeof(double))
    if mode == RANKING:
        size += rounded(B * k * sizeof(int)) + rounded(B * k * item)
    else:
        size += rounded(B * n * sizeof(double)) + rounded(B * sizeof(int))
    if full_wp:
        size += rounded(n * D * item)
    return size + ALIGN


cdef void set_workspace(Net* net, char* raw, size_t item, bint full_wp) noexcept nogil:
    cdef Py_ssize_t n = net.n, D = net.D, B = net.B
    cdef Py_ssize_t cap = 2 * B if net.mode == RANKING else B * n
    cdef Py_ssize_t rows = n if n < cap else cap
    cdef char* p = <char*> ((<size_t> raw + ALIGN - 1) // ALIGN * ALIGN)
    net.cap = cap
    net.cur = p; p += rounded(B * n * item)
    net.e_sample = <int*> p; net.e_unit = net.e_sample + cap; p += rounded(cap * 2 * sizeof(int))
    net.e_g = p; p += rounded(cap * item)
    net.start = <int*> p; p += rounded((n + 1) * sizeof(int))
    net.order = <int*> p; p += rounded(cap * sizeof(int))
    net.touched = <int*> p; p += rounded(n * sizeof(int))
    net.ds = p; p += rounded((rows if rows > 0 else 1) * D * item)
    net.rowmax = <double*> p; p += rounded(n * sizeof(double))
    if net.mode == RANKING:
        net.idx = <int*> p; p += rounded(B * net.k * sizeof(int))
        net.val = p; p += rounded(B * net.k * item)
    else:
        net.h = <double*> p; p += rounded(B * n * sizeof(double))
        net.relax_failed = <int*> p; p += rounded(B * sizeof(int))
    if full_wp:
        net.Wp = p


cdef void ranking_entries(Net* net, floating minus_delta) noexcept nogil:
    """Entries of the ranking rule: per sample b, (top, b, 1) then (k-th, b, −Δ)."""
    cdef Py_ssize_t b
    cdef floating* g = <floating*> net.e_g
    for b in range(net.B):
        net.e_sample[2 * b] = <int> b
        net.e_sample[2 * b + 1] = <int> b
        g[2 * b] = 1
        g[2 * b + 1] = minus_delta


def ranking_step(floating[:, ::1] W, const floating[:, ::1] X, double eps, double p, int k, double delta,
                 double precision, int[:, ::1] winners=None, int num_threads=0, int replicas=1,
                 floating[:, ::1] powered=None):
    """One mini-batch of the ranking rule on ``W`` (N × D) in place for inputs ``X`` (B × D).

    For each network (a block of n rows of W, see ``replicas``):

        I_bμ = Σ_i sign(W_μi)|W_μi|^(p−1) x_bi            B × n, one BLAS product
        g_bμ = 1 for the strongest unit of sample b, −Δ for its k-th strongest (ties: lower index
               first), 0 otherwise
        ds_μ = Σ_b g_bμ x_b − (Σ_b g_bμ I_bμ) W_μ          only the rows with some g ≠ 0
        W   += eps · ds / max(max|ds|, precision)          max over the network's own n rows

    ``powered`` (optional, N × D): sign(W)|W|^(p−1) of the ``W`` passed in, kept by the caller
    between steps; the kernel then recomputes only the rows that change (at most 2·B per
    network) instead of all N, bit for bit the same values.  Without it (and p ≠ 2) the powered
    weights are computed afresh.  For p = 2 they are W itself and ``powered`` is ignored.

    Replicas: ``replicas`` = R independent networks of n = N/R units each that see the same batch
    are stepped in one call, their rows stacked in W (network r is rows r·n … (r+1)·n − 1).  Each
    block is stepped exactly as a call on that network alone (its own product, its own ranking
    among its n units, its own normaliser), so the result equals R separate calls
    ``ranking_step(W[r*n:(r+1)*n], X, ...)`` bit for bit.  Requires R ≥ 1 dividing N and 2 ≤ k ≤ n.

    ``winners`` (optional, (R·B) × 2 int32; B × 2 for one network) receives each sample's strongest
    and k-th strongest unit, network r's in rows r·B … (r+1)·B − 1, as unit indices within the
    network (0 … n−1).

    Threads: ``num_threads`` (≤ 0: :func:`plasticity_kit.threads.get_threads`) in one OpenMP team
    (``team.h``), BLAS single-threaded inside it.  Several replicas: one network per thread.  One
    network: each thread takes blocks of units (their share of the product), of samples (their
    ranking), then rows of the update.  Blocks are fixed by the shape and every row's sum runs in sample order, so the
    result is the same bit for bit on any number of threads.

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
    if powered is not None and (powered.shape[0] != N or powered.shape[1] != D):
        raise ValueError(f"powered must be N x D = {N} x {D}, got {powered.shape[0]}x{powered.shape[1]}")
    norms_arr = np.zeros(R, dtype=np.float64)
    cdef double[::1] norms = norms_arr
    if B == 0:
        return 0.0 if R == 1 else norms_arr
    cdef int nt = num_threads if num_threads > 0 else get_threads()
    cdef int across = <int> (nt if nt < R else R) if R > 1 else 1
    cdef int team = nt if R == 1 else 1
    cdef bint keep = powered is not None and p != 2.0
    cdef bint full_wp = p != 2.0 and not keep
    cdef size_t item = sizeof(floating)
    cdef size_t one = workspace_size(n, D, B, k, RANKING, item, full_wp)
    cdef char* raw = <char*> malloc(one * across)
    cdef Net* nets = <Net*> calloc(R, sizeof(Net))
    cdef int* units = <int*> malloc(R * 2 * B * sizeof(int))
    if raw == NULL or nets == NULL or units == NULL:
        free(raw); free(nets); free(units)
        raise MemoryError()
    for r in range(R):
        nets[r].W = &W[0, 0] + r * n * D
        nets[r].Wp = nets[r].W if p == 2.0 else (&powered[0, 0] + r * n * D if keep else NULL)
        nets[r].keep_wp = keep
        nets[r].X = &X[0, 0]
        nets[r].n = n
        nets[r].D = D
        nets[r].B = B
        nets[r].mode = RANKING
        nets[r].k = k
        nets[r].dbl = floating is double
        nets[r].p = p
        nets[r].eps = eps
        nets[r].precision = precision
        nets[r].delta = delta
        nets[r].nub = pk_blocks(n, MIN_UNITS)
        nets[r].nsb = pk_blocks(B, MIN_SAMPLES)
        nets[r].nrb = pk_blocks(n, MIN_ROWS)
    cdef floating minus_delta = <floating> (-delta)
    try:
        with single_blas():
            with nogil:
                if across > 1:
                    for r in prange(R, num_threads=across, schedule="dynamic"):
                        run_ranking(&nets[r], raw + one * threadid(), item, full_wp, units + r * 2 * B,
                                    minus_delta, 1, &norms[r])
                else:
                    for r in range(R):
                        run_ranking(&nets[r], raw, item, full_wp, units + r * 2 * B, minus_delta, team,
                                    &norms[r])
        if winners is not None:
            for b in range(R * B):
                winners[b, 0] = units[2 * b]
                winners[b, 1] = units[2 * b + 1]
    finally:
        free(raw); free(nets); free(units)
    return norms[0] if R == 1 else norms_arr


cdef void run_ranking(Net* net, char* ws, size_t item, bint full_wp, int* units, floating minus_delta,
                      int nt, double* norm) noexcept nogil:
    set_workspace(net, ws, item, full_wp)
    net.e_unit = units  # the winners stay after the call
    ranking_entries(net, minus_delta)
    step_network(net, nt)
    norm[0] = net.nc


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
    cdef int nt = num_threads if num_threads > 0 else get_threads()
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

    ``h_out`` (optional, B × N float64) receives the steady states.  Threads as ``ranking_step``
    (one team; each thread takes blocks of units — their currents —, of samples — their
    relaxation —, then rows of the update; the same bits on any number of threads).  Returns (max|ds| floored at
    ``precision``, number of samples whose relaxation did not converge).
    """
    cdef Py_ssize_t N = W.shape[0], D = W.shape[1], B = X.shape[0], b, j
    if X.shape[1] != D:
        raise ValueError(f"shape mismatch: W {N}x{D}, X {B}x{X.shape[1]}")
    if h_out is not None and (h_out.shape[0] != B or h_out.shape[1] != N):
        raise ValueError("h_out must be B x N")
    if B == 0:
        return 0.0, 0
    cdef int nt = num_threads if num_threads > 0 else get_threads()
    cdef bint full_wp = p != 2.0
    cdef size_t item = sizeof(floating)
    cdef char* raw = <char*> malloc(workspace_size(N, D, B, 2, DYNAMICS, item, full_wp))
    cdef Net net
    if raw == NULL:
        raise MemoryError()
    net.W = &W[0, 0]
    net.Wp = net.W
    net.keep_wp = False
    net.X = &X[0, 0]
    net.n = N
    net.D = D
    net.B = B
    net.mode = DYNAMICS
    net.k = 2
    net.dbl = floating is double
    net.p = p
    net.eps = eps
    net.precision = precision
    net.delta = delta
    net.h_star = h_star
    net.w_inh = w_inh
    net.dt = dt
    net.max_steps = max_steps
    net.tol = tol
    net.nub = pk_blocks(N, MIN_UNITS)
    net.nsb = pk_blocks(B, MIN_SAMPLES)
    net.nrb = pk_blocks(N, MIN_ROWS)
    try:
        with single_blas():
            with nogil:
                set_workspace(&net, raw, item, full_wp)
                step_network(&net, nt)
        if h_out is not None:
            for b in range(B):
                for j in range(N):
                    h_out[b, j] = net.h[b * N + j]
        return net.nc, net.failed
    finally:
        free(raw)
