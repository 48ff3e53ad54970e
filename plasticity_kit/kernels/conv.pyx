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
                also a_f = Σ_rows y_f u_f

L = OH·OW, OH = (H + 2p − k)/s + 1.  Everything runs without the GIL, OpenMP over samples
(rows for soft_wta), on ``num_threads`` threads (≤ 0: the package's count,
:func:`plasticity_kit.threads.get_threads`); BLAS runs single-threaded inside the team.  The numpy references are :func:`plasticity_kit.model.conv.im2col_reference`
and :func:`plasticity_kit.rules.softhebb.soft_wta_reference`.
"""
from cython.parallel cimport prange
from libc.math cimport exp, expf

import numpy as np

from plasticity_kit.threads import get_threads, single_blas

from plasticity_kit.kernels.blas cimport gemm_rm, floating

cdef extern from "team.h" nogil:
    Py_ssize_t pk_blocks(Py_ssize_t size, Py_ssize_t least) noexcept nogil


cdef int threads(int num_threads):
    """``num_threads``, or (≤ 0) the package's count, :func:`plasticity_kit.threads.get_threads`."""
    return num_threads if num_threads > 0 else get_threads()


cdef inline void gather(const floating* x, int H, int W, int C, int k, int stride, int padding,
                        int OH, int OW, floating* out) noexcept nogil:
    """The L × K patches of one image ``x`` into ``out``."""
    cdef int oy, ox, ky, kx, c, y, xx
    cdef Py_ssize_t K = k * k * C
    cdef const floating* src
    cdef floating* dst = out
    for oy in range(OH):
        for ox in range(OW):
            for ky in range(k):
                y = oy * stride - padding + ky
                for kx in range(k):
                    xx = ox * stride - padding + kx
                    if 0 <= y < H and 0 <= xx < W:
                        src = x + (<Py_ssize_t> y * W + xx) * C
                        for c in range(C):
                            dst[c] = src[c]
                    else:
                        for c in range(C):
                            dst[c] = 0
                    dst += C


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


def soft_wta(floating[:, ::1] U, double inverse_temperature, floating[:, ::1] Y, double[::1] yu,
             int num_threads=0):
    """Y = the anti-Hebbian soft winner-take-all of every row of U (see the module docstring) and
    yu[f] = Σ_rows Y[r, f]·U[r, f]; ties go to the lower channel."""
    cdef Py_ssize_t R = U.shape[0], F = U.shape[1], r, f, best
    if Y.shape[0] != R or Y.shape[1] != F or yu.shape[0] != F:
        raise ValueError("Y must have U's shape and yu one value per channel")
    cdef int nt = threads(num_threads)
    cdef double total, t = inverse_temperature, v
    cdef floating top
    cdef const floating* u
    cdef floating* y
    with nogil:
        for r in prange(R, num_threads=nt, schedule="static"):
            u = &U[r, 0]
            y = &Y[r, 0]
            best = 0
            top = u[0]
            for f in range(1, F):
                if u[f] > top:
                    top = u[f]
                    best = f
            total = 0
            for f in range(F):
                v = t * (u[f] - top)
                if v < -80:  # exp(-80) < 2e-35: 0, rather than a (slow) denormal
                    v = 0
                elif floating is float:
                    v = expf(<float> v)
                else:
                    v = exp(v)
                y[f] = <floating> v
                total = total + v
            total = 1.0 / total
            for f in range(F):
                y[f] = <floating> (-y[f] * total)
            y[best] = -y[best]
        for f in range(F):
            yu[f] = 0
        for r in range(R):  # serial: a deterministic order of the sums
            for f in range(F):
                yu[f] += Y[r, f] * U[r, f]


def matmul_abt(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C, int num_threads=0):
    """C = A·Bᵀ (A m×k, B n×k, C m×n): the rows of A cut into fixed blocks, one single-threaded
    BLAS product per block, the blocks shared out by an OpenMP team."""
    cdef Py_ssize_t m = A.shape[0], k = A.shape[1], n = B.shape[0], i, r0, r1
    if B.shape[1] != k or C.shape[0] != m or C.shape[1] != n:
        raise ValueError(f"matmul_abt: A {m}x{k}, B {n}x{B.shape[1]}, C {C.shape[0]}x{C.shape[1]}")
    if m == 0 or n == 0:
        return
    cdef Py_ssize_t nb = pk_blocks(m, 256)
    cdef int nt = threads(num_threads)
    with single_blas(), nogil:
        for i in prange(nb, num_threads=nt, schedule="dynamic"):
            r0 = m * i // nb
            r1 = m * (i + 1) // nb
            if r1 > r0:
                gemm_rm(False, True, <int> (r1 - r0), <int> n, <int> k, <floating> 1, &A[r0, 0], <int> k,
                        &B[0, 0], <int> k, <floating> 0, &C[r0, 0], <int> n)


def matmul_atb(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C, int num_threads=0):
    """C = Aᵀ·B (A m×p, B m×q, C p×q): the columns of B and C cut into fixed blocks, each summed
    over all m rows by one single-threaded BLAS product, the blocks shared out by an OpenMP team."""
    cdef Py_ssize_t m = A.shape[0], p = A.shape[1], q = B.shape[1], i, c0, c1
    if B.shape[0] != m or C.shape[0] != p or C.shape[1] != q:
        raise ValueError(f"matmul_atb: A {m}x{p}, B {B.shape[0]}x{q}, C {C.shape[0]}x{C.shape[1]}")
    if p == 0 or q == 0:
        return
    if m == 0:
        C[:, :] = 0
        return
    cdef Py_ssize_t nb = pk_blocks(q, 128)
    cdef int nt = threads(num_threads)
    with single_blas(), nogil:
        for i in prange(nb, num_threads=nt, schedule="dynamic"):
            c0 = q * i // nb // 16 * 16
            c1 = q if i == nb - 1 else q * (i + 1) // nb // 16 * 16
            if c1 > c0:
                gemm_rm(True, False, <int> p, <int> (c1 - c0), <int> m, <floating> 1, &A[0, 0], <int> p,
                        &B[0, c0], <int> q, <floating> 0, &C[0, c0], <int> q)
