# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Locally connected layer: forward pass, wake updates and sleep phases (Pogodin et al. 2021).

A layer of P positions × F output channels; position p sees the k×k×C patch x_p of the (zero
padded) image whose top-left corner is (py·stride − padding, px·stride − padding), flattened in
(ky, kx, c) order (K = k·k·C), and has its own filters W_p (F × K):

    forward   z_p = W_p x_p
    wake      ΔW_p = lr [ ⟨z_p x_pᵀ⟩ − mask(⟨z_p z_pᵀ⟩) W_p − λ W_p ]
              mask = 0 (Hebbian with decay λ), diag (Oja), lower triangle (Sanger's GHA)
    sleep     for each of T iterations, every group of positions that sees the same patch x
              (B samples):  r_p = z_p − mean_{q∈group} z_q
              (inhibitory circuit: r_p = c_diff (z_p − z̄) + c_mean z̄, the exact solution of its ODEs)
              W_p ← W_p − lr [ ⟨r_p xᵀ⟩ + γ (W_p − W_p^start) ]

Everything runs without the GIL, BLAS single-threaded inside OpenMP loops (so any number of
threads gives the same bits).  Per-position products (different filters and patches) go to BLAS
from inside an OpenMP loop over positions.  In the sleep phase every group's input is a
cyclic shift — a permutation — of one random tile, so once per phase the filters are sorted by
group and permuted into tile coordinates: each iteration is then two large products for all
positions at once (in 16 fixed blocks of filter rows shared out among the threads), with the centring, the γ pull and the SNR_w in OpenMP loops around them
(serial when the work is too small to pay for threads).
The numpy references of the same equations are in ``plasticity_kit.rules.weight_sharing``.
"""
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.string cimport memcpy

import numpy as np

from plasticity_kit.kernels.blas cimport gemm_rm, floating
from plasticity_kit.threads import get_threads, single_blas

cdef enum:
    WAKE_HEBBIAN = 0
    WAKE_OJA = 1
    WAKE_SANGER = 2


cdef inline void gather_patches(const floating* X, Py_ssize_t n, Py_ssize_t D, int H, int Wd, int C,
                                int k, int y0, int x0, floating* patch) noexcept nogil:
    """patch[b, (ky·k + kx)·C + c] = image_b[y0 + ky, x0 + kx, c] (0 outside the image)."""
    cdef Py_ssize_t b, K = k * k * C
    cdef int ky, kx, c, y, x
    cdef const floating* src
    cdef floating* dst
    for b in range(n):
        dst = patch + b * K
        for ky in range(k):
            y = y0 + ky
            for kx in range(k):
                x = x0 + kx
                if 0 <= y < H and 0 <= x < Wd:
                    src = X + b * D + (<Py_ssize_t> y * Wd + x) * C
                    for c in range(C):
                        dst[c] = src[c]
                else:
                    for c in range(C):
                        dst[c] = 0
                dst += C


def threads(int num_threads):
    return num_threads if num_threads > 0 else get_threads()


cdef enum:
    SNR_BLOCK = 256        # columns per OpenMP chunk of the SNR pass (rows are read contiguously)
    SMALL_WORK = 32768     # below this many values an OpenMP region costs more than it saves
    SLEEP_BLOCKS = 16      # the sleep products are split into this many blocks of filter rows


cdef inline int threads_for(Py_ssize_t work, int nt) noexcept nogil:
    return 1 if work < SMALL_WORK else nt


def _check_geometry(Py_ssize_t P, Py_ssize_t K, Py_ssize_t D, int height, int width, int channels,
                    int kernel, int stride, int padding, int out_w):
    if kernel < 1 or stride < 1 or padding < 0 or out_w < 1 or channels < 1:
        raise ValueError("invalid geometry")
    if K != kernel * kernel * channels:
        raise ValueError(f"filters have {K} weights, expected k·k·C = {kernel * kernel * channels}")
    if D != height * width * channels:
        raise ValueError(f"inputs have {D} values, expected H·W·C = {height * width * channels}")
    if P % out_w != 0:
        raise ValueError("the number of positions is not a multiple of the output width")


def lc_forward(const floating[:, :, ::1] W, const floating[:, ::1] X, int height, int width, int channels,
               int kernel, int stride, int padding, int out_w, floating[:, :, ::1] out, int num_threads=0):
    """Responses out[b, p, f] = W[p, f] · x_p(X[b]) of a locally connected layer.

    ``W``: (P, F, K) filters, ``X``: (n, H·W·C) images flattened in (y, x, c) order, ``out``:
    (n, P, F), written in place.  Positions run in row-major order over the output grid of width
    ``out_w``.
    """
    cdef Py_ssize_t P = W.shape[0], F = W.shape[1], K = W.shape[2], n = X.shape[0], D = X.shape[1]
    _check_geometry(P, K, D, height, width, channels, kernel, stride, padding, out_w)
    if out.shape[0] != n or out.shape[1] != P or out.shape[2] != F:
        raise ValueError("out must be (n, P, F)")
    if n == 0 or P == 0 or F == 0:
        return
    cdef int nt = threads(num_threads)
    scratch_np = np.empty((nt, n * K), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] scratch = scratch_np
    cdef Py_ssize_t p
    cdef floating* patch
    with single_blas(), nogil:
        for p in prange(P, num_threads=threads_for(P * n * K, nt), schedule="static"):
            patch = &scratch[threadid(), 0]
            gather_patches(&X[0, 0], n, D, height, width, channels, kernel,
                           <int> (p // out_w) * stride - padding, <int> (p % out_w) * stride - padding, patch)
            gemm_rm(False, True, <int> n, <int> F, <int> K, <floating> 1, patch, <int> K,
                    &W[p, 0, 0], <int> K, <floating> 0, &out[0, p, 0], <int> (P * F))


def lc_wake_step(floating[:, :, ::1] W, const floating[:, ::1] X, int height, int width, int channels,
                 int kernel, int stride, int padding, int out_w, int rule, double lr, double decay,
                 int num_threads=0):
    """One wake mini-batch step on every position's filters, in place.

    ΔW_p = lr [ (Z_pᵀ X_p − mask(Z_pᵀ Z_p) W_p) / B − λ W_p ],  Z_p = X_p W_pᵀ (B × F),
    ``rule`` 0: Hebbian with decay (mask = 0), 1: Oja (diagonal), 2: Sanger's GHA (lower triangle
    with the diagonal).  Positions are independent and run in parallel (OpenMP).
    """
    cdef Py_ssize_t P = W.shape[0], F = W.shape[1], K = W.shape[2], B = X.shape[0], D = X.shape[1]
    _check_geometry(P, K, D, height, width, channels, kernel, stride, padding, out_w)
    if rule not in (WAKE_HEBBIAN, WAKE_OJA, WAKE_SANGER):
        raise ValueError(f"unknown wake rule code {rule}")
    if B == 0 or P == 0 or F == 0:
        return
    cdef int nt = threads(num_threads)
    cdef Py_ssize_t per_thread = B * K + B * F + F * F + F * K
    scratch_np = np.empty((nt, per_thread), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] scratch = scratch_np
    cdef Py_ssize_t p, i, j
    cdef floating* patch
    cdef floating* Z
    cdef floating* G
    cdef floating* dW
    cdef floating* Wp
    cdef floating shrink = <floating> (1.0 - lr * decay)
    cdef floating step = <floating> (lr / B)
    with single_blas(), nogil:
        for p in prange(P, num_threads=threads_for(P * B * K, nt), schedule="static"):
            patch = &scratch[threadid(), 0]
            Z = patch + B * K
            G = Z + B * F
            dW = G + F * F
            Wp = &W[p, 0, 0]
            gather_patches(&X[0, 0], B, D, height, width, channels, kernel,
                           <int> (p // out_w) * stride - padding, <int> (p % out_w) * stride - padding, patch)
            gemm_rm(False, True, <int> B, <int> F, <int> K, <floating> 1, patch, <int> K,
                    Wp, <int> K, <floating> 0, Z, <int> F)
            gemm_rm(True, False, <int> F, <int> K, <int> B, <floating> 1, Z, <int> F,
                    patch, <int> K, <floating> 0, dW, <int> K)
            if rule != WAKE_HEBBIAN:
                gemm_rm(True, False, <int> F, <int> F, <int> B, <floating> 1, Z, <int> F,
                        Z, <int> F, <floating> 0, G, <int> F)
                for i in range(F):
                    for j in range(F):
                        if j > i or (rule == WAKE_OJA and j != i):
                            G[i * F + j] = 0
                gemm_rm(False, False, <int> F, <int> K, <int> F, <floating> -1, G, <int> F,
                        Wp, <int> K, <floating> 1, dW, <int> K)
            for i in range(F * K):
                Wp[i] = Wp[i] * shrink + step * dW[i]


cdef double snr_rows(const floating* w, Py_ssize_t N, Py_ssize_t M, const long long* cols,
                     Py_ssize_t K, const long long* row_perm, double* sums, double* sq, int nt) noexcept nogil:
    """SNR_w = (1/M) Σ_j mean_i(w_ij)² / var_i(w_ij) of an N × M row-major matrix.

    Two passes (mean, then Σ (w − mean)²), each column summed in row order like numpy's axis-0
    reduction; OpenMP over blocks of columns.  With ``cols`` (N row offsets into a permutation
    table of K entries each) entry j of row i is read from column ⌊j/K⌋K + cols[i][j mod K]
    (``row_perm`` + ``cols[i]``); NULL reads rows as they are.  ``sums``, ``sq``: M doubles.
    """
    cdef Py_ssize_t blk, i, j, j0, j1, nblocks = (M + SNR_BLOCK - 1) // SNR_BLOCK
    cdef double m, d, total = 0
    cdef const floating* row
    cdef const long long* perm
    for blk in prange(nblocks, num_threads=threads_for(N * M, nt), schedule="static"):
        j0 = blk * SNR_BLOCK
        j1 = min(j0 + SNR_BLOCK, M)
        for j in range(j0, j1):
            sums[j] = 0
            sq[j] = 0
        for i in range(N):
            row = w + i * M
            if cols == NULL:
                for j in range(j0, j1):
                    sums[j] = sums[j] + row[j]
            else:
                perm = row_perm + cols[i]
                for j in range(j0, j1):
                    sums[j] = sums[j] + row[(j // K) * K + perm[j % K]]
        for j in range(j0, j1):
            sums[j] = sums[j] / N
        for i in range(N):
            row = w + i * M
            if cols == NULL:
                for j in range(j0, j1):
                    d = row[j] - sums[j]
                    sq[j] = sq[j] + d * d
            else:
                perm = row_perm + cols[i]
                for j in range(j0, j1):
                    d = row[(j // K) * K + perm[j % K]] - sums[j]
                    sq[j] = sq[j] + d * d
    for j in range(M):
        m = sums[j]
        d = sq[j] / N
        if d > 0:
            total += m * m / d
        elif m != 0:
            total += INFINITY
    return total / M


def weight_sharing_snr(const floating[:, :, ::1] W, int num_threads=0):
    """SNR_w of the filters ``W`` (P, F, K) across positions (the kernel's own computation)."""
    cdef Py_ssize_t P = W.shape[0], M = W.shape[1] * W.shape[2]
    if P == 0 or M == 0:
        raise ValueError("empty weights")
    buf = np.empty((2, M), dtype=np.float64)
    cdef double[:, ::1] b = buf
    cdef double out
    cdef int nt = threads(num_threads)
    with nogil:
        out = snr_rows(&W[0, 0, 0], P, M, NULL, 1, NULL, &b[0, 0], &b[1, 0], nt)
    return out


def tile_permutations(const long long[:, ::1] offsets, int k, int channels):
    """perm[g, (ky·k + kx)·C + c] = ((oy + ky) mod k · k + (ox + kx) mod k)·C + c: where, in the tile,
    patch weight j of group g (tile shift (oy, ox)) lies."""
    G = offsets.shape[0]
    ky, kx, c = np.meshgrid(np.arange(k), np.arange(k), np.arange(channels), indexing="ij")
    perm = np.empty((G, k * k * channels), dtype=np.int64)
    for g in range(G):
        oy, ox = offsets[g, 0], offsets[g, 1]
        perm[g] = ((((oy + ky) % k) * k + (ox + kx) % k) * channels + c).ravel()
    return perm


def lc_sleep_phase(floating[:, :, ::1] W, const floating[:, :, :, :, ::1] tiles,
                   const long long[::1] order, const long long[::1] group_ptr, const long long[:, ::1] offsets,
                   double lr, double gamma, double c_diff, double c_mean, double[::1] snr_out,
                   int num_threads=0):
    """One sleep phase of T Hebbian iterations on the filters ``W`` (P, F, K), in place.

    ``tiles`` (T, B, k, k, C): the random tile of each iteration and sample; group g (positions
    ``order[group_ptr[g]:group_ptr[g+1]]``) sees it cyclically shifted by ``offsets[g]`` = (oy, ox):
    x[(ky·k + kx)·C + c] = tile[(oy + ky) mod k, (ox + kx) mod k, c].  Per iteration and group:

        Z = X Wᵀ,   R = c_diff (Z − Z̄) + c_mean Z̄     (Z̄: mean over the group's positions)
        W ← W − lr γ (W − W_start) − (lr/B) Rᵀ X

    c_diff = 1, c_mean = 0 is the exact Hebbian sleep; the inhibitory circuit gives other
    coefficients (``plasticity_kit.rules.weight_sharing.circuit_coefficients``).
    ``snr_out`` (T + 1): SNR_w before the first and after every iteration.

    A group's input is a permutation of the tile, X_g = X Π_g, so with each group's filters
    stored in tile coordinates (W Π_gᵀ, for the whole phase) every group's responses and updates
    use the tile itself: one product X Wᵀ and one Rᵀ X per iteration for all positions.
    """
    cdef Py_ssize_t P = W.shape[0], F = W.shape[1], K = W.shape[2]
    cdef Py_ssize_t T = tiles.shape[0], B = tiles.shape[1], k = tiles.shape[2], C = tiles.shape[4]
    cdef Py_ssize_t G = group_ptr.shape[0] - 1
    if tiles.shape[3] != k or K != k * k * C:
        raise ValueError(f"tiles must be (T, B, k, k, C) with k·k·C = {K}")
    if order.shape[0] != P or G < 1 or offsets.shape[0] != G or offsets.shape[1] != 2:
        raise ValueError("order must hold the P positions and offsets one (oy, ox) per group")
    if group_ptr[0] != 0 or group_ptr[G] != P:
        raise ValueError("group_ptr must run from 0 to P")
    if snr_out.shape[0] != T + 1:
        raise ValueError("snr_out must have T + 1 entries")
    cdef Py_ssize_t g, i
    for g in range(G):
        if group_ptr[g + 1] <= group_ptr[g]:
            raise ValueError("every group needs at least one position")
    seen = np.zeros(P, dtype=bool)
    for i in range(P):
        if order[i] < 0 or order[i] >= P or seen[order[i]]:
            raise ValueError("order must be a permutation of the positions")
        seen[order[i]] = True
    perm_np = tile_permutations(offsets, <int> k, <int> C)
    identity = bool((perm_np == np.arange(K)).all())
    row_cols_np = (np.repeat(np.arange(G), np.diff(np.asarray(group_ptr))) * K).astype(np.int64)
    cdef long long[:, ::1] perm = perm_np
    cdef long long[::1] row_cols = row_cols_np
    cdef const long long* cols = NULL if identity else &row_cols[0]
    cdef int nt = threads(num_threads)
    cdef Py_ssize_t FK = F * K, PF = P * F
    dtype = np.float32 if floating is float else np.float64
    Ws_np = np.empty((P, FK), dtype=dtype)
    W0_np = np.empty((P, FK), dtype=dtype)
    Z_np = np.empty((B, PF), dtype=dtype)
    acc_np = np.empty((2, FK), dtype=np.float64)
    cdef floating[:, ::1] Ws = Ws_np
    cdef floating[:, ::1] W0 = W0_np
    cdef floating[:, ::1] Z = Z_np
    cdef double[:, ::1] acc = acc_np

    cdef Py_ssize_t t, q, j, f, triple, b, ng, first
    cdef const long long* pg
    cdef const floating* src
    cdef floating* dst
    cdef floating* row
    cdef const floating* X
    cdef double s, mean, pull = lr * gamma, shift = c_mean - c_diff
    cdef floating step = <floating> (-lr / B)
    cdef Py_ssize_t blk, r0, r1
    with single_blas(), nogil:
        for i in range(P):                       # sorted by group, in tile coordinates
            pg = &perm[0, 0] + (row_cols[i] if cols != NULL else 0)
            src = &W[order[i], 0, 0]
            dst = &Ws[i, 0]
            for f in range(F):
                for j in range(K):
                    dst[f * K + pg[j]] = src[f * K + j]
        memcpy(&W0[0, 0], &Ws[0, 0], P * FK * sizeof(floating))
        snr_out[0] = snr_rows(&Ws[0, 0], P, FK, cols, K, &perm[0, 0], &acc[0, 0], &acc[1, 0], nt)
        for t in range(T):
            X = &tiles[t, 0, 0, 0, 0]            # B × K, row-major (ky, kx, c)
            # Z = X·Wsᵀ and Ws += step·Zᵀ·X in fixed blocks of filter rows, one per item
            for blk in prange(SLEEP_BLOCKS, num_threads=threads_for(B * PF * K, nt), schedule="dynamic"):
                r0 = PF * blk // SLEEP_BLOCKS
                r1 = PF * (blk + 1) // SLEEP_BLOCKS
                if r1 > r0:
                    gemm_rm(False, True, <int> B, <int> (r1 - r0), <int> K, <floating> 1, X, <int> K,
                            &Ws[0, 0] + r0 * K, <int> K, <floating> 0, &Z[0, 0] + r0, <int> PF)
            for triple in prange(B * G * F, num_threads=threads_for(B * PF, nt), schedule="static"):
                b = triple // (G * F)
                g = (triple // F) % G
                f = triple % F
                first = group_ptr[g]
                ng = group_ptr[g + 1] - first
                row = &Z[b, 0] + first * F + f
                s = 0
                for q in range(ng):
                    s = s + row[q * F]
                mean = s / ng
                for q in range(ng):
                    row[q * F] = <floating> (c_diff * row[q * F] + shift * mean)
            if pull != 0:
                for i in prange(PF, num_threads=threads_for(PF * K, nt), schedule="static"):
                    for j in range(K):
                        Ws[0, i * K + j] = <floating> (Ws[0, i * K + j] - pull * (Ws[0, i * K + j] - W0[0, i * K + j]))
            for blk in prange(SLEEP_BLOCKS, num_threads=threads_for(B * PF * K, nt), schedule="dynamic"):
                r0 = PF * blk // SLEEP_BLOCKS
                r1 = PF * (blk + 1) // SLEEP_BLOCKS
                if r1 > r0:
                    gemm_rm(True, False, <int> (r1 - r0), <int> K, <int> B, step, &Z[0, 0] + r0, <int> PF,
                            X, <int> K, <floating> 1, &Ws[0, 0] + r0 * K, <int> K)
            snr_out[t + 1] = snr_rows(&Ws[0, 0], P, FK, cols, K, &perm[0, 0], &acc[0, 0], &acc[1, 0], nt)
        for i in range(P):
            pg = &perm[0, 0] + (row_cols[i] if cols != NULL else 0)
            src = &Ws[i, 0]
            dst = &W[order[i], 0, 0]
            for f in range(F):
                for j in range(K):
                    dst[f * K + j] = src[f * K + pg[j]]
