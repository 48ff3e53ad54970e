# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Convolutional layers: patch extraction (im2col), the fused convolution product and the soft
winner-take-all competition across channels.

Images are rows of ``X`` (n × H·W·C, channel-last).  Output position (oy, ox) of a k×k layer with
``stride`` s and zero ``padding`` p sees the patch whose top-left corner is (oy·s − p, ox·s − p),
flattened in (ky, kx, c) order (K = k·k·C, the order of :mod:`locally_connected`):

    im2col      P[b·L + oy·OW + ox, (ky·k + kx)·C + c] = X_b[oy·s − p + ky, ox·s − p + kx, c]   (0 outside)
    conv        U_b = P_b Wᵀ          (L × F per sample, one BLAS product per sample)
    soft_wta    y = softmax(τ⁻¹ u) over the F channels of every row u of U, then the winner's y
                kept and every other channel's negated (the anti-Hebbian SoftHebb form);
                also a_f = Σ_rows y_f u_f  (soft_wta.h: exp vectorised, no library call)
    softhebb_products   U = P·Wᵀ, Y = soft_wta(U), a and ΔW = Yᵀ·P fused per block of rows

L = OH·OW, OH = (H + 2p − k)/s + 1.  Everything runs without the GIL, OpenMP over samples
(fixed blocks of rows for soft_wta and softhebb_products), on ``num_threads`` threads (≤ 0: the package's count,
:func:`plasticity_kit.threads.get_threads`); BLAS runs single-threaded inside the team.  The numpy references are :func:`plasticity_kit.model.conv.im2col_reference`
and :func:`plasticity_kit.rules.softhebb.soft_wta_reference`.
"""
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

import threading

import numpy as np

from plasticity_kit.threads import get_threads, single_blas

from plasticity_kit.kernels.blas cimport gemm_rm, floating

cdef extern from "team.h" nogil:
    Py_ssize_t pk_blocks(Py_ssize_t size, Py_ssize_t least) noexcept nogil

cdef extern from "soft_wta.h" nogil:
    void pk_soft_wta_rows_f(const float* u, float* y, Py_ssize_t rows, Py_ssize_t F, float t,
                            int anti_hebbian, double* a) noexcept nogil
    void pk_soft_wta_rows_d(const double* u, double* y, Py_ssize_t rows, Py_ssize_t F, double t,
                            int anti_hebbian, double* a) noexcept nogil


cdef inline void soft_wta_rows(const floating* u, floating* y, Py_ssize_t rows, Py_ssize_t F, double t,
                               bint anti_hebbian, double* a) noexcept nogil:
    """The soft winner-take-all of ``rows`` consecutive rows (soft_wta.h), a[f] += Σ y_f·u_f."""
    if floating is float:
        pk_soft_wta_rows_f(u, y, rows, F, <float> t, anti_hebbian, a)
    else:
        pk_soft_wta_rows_d(u, y, rows, F, t, anti_hebbian, a)


cdef void sum_blocks(const double* parts, Py_ssize_t nb, Py_ssize_t F, double[::1] out) noexcept nogil:
    """out[f] = Σ_i parts[i·F + f], the blocks added in their order."""
    cdef Py_ssize_t i, f
    for f in range(F):
        out[f] = 0
    for i in range(nb):
        for f in range(F):
            out[f] += parts[i * F + f]


cdef int threads(int num_threads):
    """``num_threads``, or (≤ 0) the package's count, :func:`plasticity_kit.threads.get_threads`."""
    return num_threads if num_threads > 0 else get_threads()


cdef inline void gather(const floating* x, int H, int W, int C, int k, int stride, int padding,
                        int OH, int OW, floating* out) noexcept nogil:
    """The L × K patches of one image ``x`` into ``out``: per patch row, the part inside the image
    copied as one run of (columns × C) values, zeros either side."""
    cdef int oy, ox, ky, y, x0, lo, hi
    cdef size_t kc = <size_t> k * C, width = sizeof(floating) * C
    cdef floating* dst = out
    for oy in range(OH):
        for ox in range(OW):
            x0 = ox * stride - padding
            lo = -x0 if x0 < 0 else 0
            hi = W - x0 if x0 + k > W else k
            for ky in range(k):
                y = oy * stride - padding + ky
                if y < 0 or y >= H or hi <= lo:
                    memset(dst, 0, width * k)
                else:
                    if lo > 0:
                        memset(dst, 0, width * lo)
                    memcpy(dst + lo * C, x + (<Py_ssize_t> y * W + x0 + lo) * C, width * (hi - lo))
                    if hi < k:
                        memset(dst + hi * C, 0, width * (k - hi))
                dst += kc


def output_side(int size, int k, int stride, int padding):
    """(size + 2·padding − k) // stride + 1: positions along one side."""
    return (size + 2 * padding - k) // stride + 1


def _geometry(Py_ssize_t n, Py_ssize_t D, int H, int W, int C, int k, int stride, int padding):
    if k < 1 or stride < 1 or padding < 0 or C < 1 or H < 1 or W < 1:
        raise ValueError("invalid geometry: kernel, stride, channels ≥ 1 and padding ≥ 0")
    if D != <Py_ssize_t> H * W * C:
        raise ValueError(f"rows hold {D} values, the image shape ({H}, {W}, {C}) needs {H * W * C}")
    OH, OW = output_side(H, k, stride, padding), output_side(W, k, stride, padding)
    if OH < 1 or OW < 1:
        raise ValueError(f"a {k}×{k} kernel with padding {padding} does not fit a {H}×{W} image")
    return OH, OW


def im2col(const floating[:, ::1] X, int H, int W, int C, int k, int stride, int padding,
           floating[:, ::1] out, int num_threads=0):
    """Patches of every image of ``X`` (n × H·W·C) into ``out`` (n·OH·OW × k·k·C), in place."""
    cdef Py_ssize_t n = X.shape[0], b, L, K = k * k * C
    OH, OW = _geometry(n, X.shape[1], H, W, C, k, stride, padding)
    L = OH * OW
    if out.shape[0] != n * L or out.shape[1] != K:
        raise ValueError(f"out must be ({n * L}, {K}), got ({out.shape[0]}, {out.shape[1]})")
    cdef int oh = OH, ow = OW, nt = threads(num_threads)
    with nogil:
        for b in prange(n, num_threads=nt, schedule="static"):
            gather(&X[b, 0], H, W, C, k, stride, padding, oh, ow, &out[b * L, 0])


def conv_forward(const floating[:, ::1] X, const floating[:, ::1] weights, int H, int W, int C, int k,
                 int stride, int padding, floating[:, ::1] out, floating[:, ::1] patches, int num_threads=0):
    """U = im2col(X)·Wᵀ into ``out`` (n·L × F), one BLAS product per sample inside an OpenMP loop;
    ``patches`` (n·L × K) receives the patches (the workspace, reusable by a learning step)."""
    cdef Py_ssize_t n = X.shape[0], b, L, K = k * k * C, F = weights.shape[0]
    OH, OW = _geometry(n, X.shape[1], H, W, C, k, stride, padding)
    L = OH * OW
    if weights.shape[1] != K:
        raise ValueError(f"weights must be (F, {K}) for a {k}×{k}×{C} kernel, got ({F}, {weights.shape[1]})")
    if out.shape[0] != n * L or out.shape[1] != F:
        raise ValueError(f"out must be ({n * L}, {F}), got ({out.shape[0]}, {out.shape[1]})")
    if patches.shape[0] != n * L or patches.shape[1] != K:
        raise ValueError(f"patches must be ({n * L}, {K}), got ({patches.shape[0]}, {patches.shape[1]})")
    cdef int oh = OH, ow = OW, nt = threads(num_threads), l = <int> L, f = <int> F, kk = <int> K
    with single_blas(), nogil:
        for b in prange(n, num_threads=nt, schedule="static"):
            gather(&X[b, 0], H, W, C, k, stride, padding, oh, ow, &patches[b * L, 0])
            gemm_rm(False, True, l, f, kk, <floating> 1, &patches[b * L, 0], kk, &weights[0, 0], kk,
                    <floating> 0, &out[b * L, 0], f)


ROWS_PER_BLOCK = 256  # the least rows in a block (pk_blocks): the blocks depend on the shape only

_scratch = threading.local()


def scratch(Py_ssize_t size, dtype):
    """A work array of ``size`` elements, kept between calls (per Python thread): fresh pages of a
    new array cost more page faults than a small learning step's arithmetic."""
    key = np.dtype(dtype).char
    arrays = _scratch.__dict__.setdefault("arrays", {})
    if key not in arrays or arrays[key].size < size:
        arrays[key] = np.empty(max(size, 2 * arrays[key].size if key in arrays else 0), dtype)
    return arrays[key][:size]


def soft_wta(const floating[:, ::1] U, double inverse_temperature, floating[:, ::1] Y, double[::1] yu,
             bint anti_hebbian=True, int num_threads=0):
    """Y = the soft winner-take-all of every row of U (see the module docstring; with
    ``anti_hebbian`` every non-winner negated; ties go to the lower channel) and
    yu[f] = Σ_rows Y[r, f]·U[r, f], summed in fixed blocks of rows added in order."""
    cdef Py_ssize_t R = U.shape[0], F = U.shape[1], i, r0, r1
    if Y.shape[0] != R or Y.shape[1] != F or yu.shape[0] != F:
        raise ValueError("Y must have U's shape and yu one value per channel")
    if R == 0 or F == 0:
        yu[:] = 0
        return
    cdef Py_ssize_t nb = pk_blocks(R, ROWS_PER_BLOCK)
    cdef double[::1] parts = np.zeros(nb * F)
    cdef int nt = threads(num_threads)
    with nogil:
        for i in prange(nb, num_threads=nt, schedule="dynamic"):
            r0 = R * i // nb
            r1 = R * (i + 1) // nb
            soft_wta_rows(&U[r0, 0], &Y[r0, 0], r1 - r0, F, inverse_temperature, anti_hebbian, &parts[i * F])
        sum_blocks(&parts[0], nb, F, yu)


def softhebb_products(const floating[:, ::1] X, const floating[:, ::1] weights, double inverse_temperature,
                      bint anti_hebbian, floating[:, ::1] dW, double[::1] yu, int num_threads=0):
    """The products of a SoftHebb step, fused per block of samples (rows of X, B × D):

        U = X·Wᵀ,  Y = soft_wta(U),  yu[f] = Σ_b y_bf·u_bf,  dW = Yᵀ·X

    Each fixed block of rows (``pk_blocks``) runs its two single-threaded BLAS products and the
    competition while its U is in cache; the blocks' dW and yu are then added in block order (so
    the result is the same at any thread count), dW's rows shared out by the team."""
    cdef Py_ssize_t R = X.shape[0], D = X.shape[1], F = weights.shape[0], i, j, r0, r1, f
    if weights.shape[1] != D or dW.shape[0] != F or dW.shape[1] != D or yu.shape[0] != F:
        raise ValueError(f"softhebb_products: X {R}x{D}, weights {F}x{weights.shape[1]}, "
                         f"dW {dW.shape[0]}x{dW.shape[1]}, yu {yu.shape[0]}")
    if R == 0 or F == 0 or D == 0:
        dW[:, :] = 0
        yu[:] = 0
        return
    cdef Py_ssize_t nb = pk_blocks(R, ROWS_PER_BLOCK), most = (R + nb - 1) // nb
    cdef int nt = threads(num_threads)
    # per thread: U and Y of one block of rows; per block: its dW (F × D)
    work = scratch(nt * 2 * most * F + nb * F * D, np.float32 if floating is float else np.float64)
    cdef floating[::1] w = work
    cdef floating* per_thread = &w[0]
    cdef floating* parts = &w[nt * 2 * most * F]
    cdef double[::1] yu_parts = np.zeros(nb * F)
    cdef floating total
    cdef floating* U
    cdef floating* Y
    with single_blas(), nogil:
        for i in prange(nb, num_threads=nt, schedule="dynamic"):
            r0 = R * i // nb
            r1 = R * (i + 1) // nb
            U = per_thread + threadid() * 2 * most * F
            Y = U + most * F
            gemm_rm(False, True, <int> (r1 - r0), <int> F, <int> D, <floating> 1, &X[r0, 0], <int> D,
                    &weights[0, 0], <int> D, <floating> 0, U, <int> F)
            soft_wta_rows(U, Y, r1 - r0, F, inverse_temperature, anti_hebbian, &yu_parts[i * F])
            gemm_rm(True, False, <int> F, <int> D, <int> (r1 - r0), <floating> 1, Y, <int> F,
                    &X[r0, 0], <int> D, <floating> 0, parts + i * F * D, <int> D)
        for f in prange(F, num_threads=nt, schedule="static"):
            for j in range(D):
                total = parts[f * D + j]
                for i in range(1, nb):
                    total = total + parts[(i * F + f) * D + j]
                dW[f, j] = total
        sum_blocks(&yu_parts[0], nb, F, yu)
