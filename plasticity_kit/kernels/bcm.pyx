# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""BCM mini-batch step (Law & Cooper 1994; lateral interactions of Castellani et al. 1999).

    Y   = σ(F · W · Xᵀ)                      F = (I−L)⁻¹ (skipped when L = 0)
    θ  ← γ·θ + (1−γ)·⟨y²⟩_batch
    ΔW  = ⟨ y (y − θ*) x ⟩_batch / max(θ*, ε)   θ* = θ (moving average) or ⟨y²⟩_batch
    W  ← optimizer(W, ΔW)                     SGD, momentum or Adam

Everything runs without the GIL: the two large products go to BLAS, the activation, threshold,
φ and optimizer passes are fused loops parallel over neurons (OpenMP).  The numpy reference of
the same equations is ``plasticity_kit.rules.bcm.reference_step``.
"""
from cython.parallel cimport prange
from libc.math cimport exp, tanh, sqrt, pow, fabs
from libc.float cimport FLT_MIN, DBL_MIN
from libc.stdlib cimport malloc, free
cimport openmp

from plasticity_kit.kernels.blas cimport gemm_rm, floating

cdef enum:
    ACT_LINEAR = 0
    ACT_RELU = 1
    ACT_LOGISTIC = 2
    ACT_TANH = 3

cdef enum:
    OPT_SGD = 0
    OPT_MOMENTUM = 1
    OPT_ADAM = 2


cdef inline floating flush(floating x) noexcept nogil:
    """Subnormal → 0.  A silent neuron's optimizer moments decay into subnormals that never
    reach zero (the smallest one times 0.9 rounds back to itself), and subnormal arithmetic is
    ~100× slower; the numpy optimizers flush the same way."""
    if floating is float:
        return 0 if fabs(x) < FLT_MIN else x
    else:
        return 0 if fabs(x) < DBL_MIN else x


cdef inline floating activate(floating z, int code) noexcept nogil:
    if code == ACT_RELU:
        return z if z > 0 else 0
    if code == ACT_LOGISTIC:
        return <floating> (1.0 / (1.0 + exp(-z)))
    if code == ACT_TANH:
        return <floating> tanh(z)
    return z


def bcm_step(floating[:, ::1] W, floating[::1] theta, const floating[:, ::1] X,
             const floating[:, ::1] factor, int activation,
             double memory_factor, bint batch_threshold, double epsilon,
             int optimizer, double lr, double opt_a, double opt_b, double opt_eps,
             floating[:, ::1] opt_first, floating[:, ::1] opt_second, long long[::1] opt_t,
             int num_threads=0):
    """Apply one BCM step to ``W`` (N×D) and ``theta`` (N) in place for the batch ``X`` (B×D).

    ``factor``: (I−L)⁻¹ (N×N) or None.  ``activation``: 0 linear, 1 relu, 2 logistic, 3 tanh.
    ``optimizer``: 0 SGD(lr), 1 momentum(lr, μ=opt_a; opt_first = velocity), 2 Adam(lr, β1=opt_a,
    β2=opt_b, ε=opt_eps; opt_first = m, opt_second = v).  ``opt_t`` (1 element) counts steps.
    ``num_threads`` ≤ 0 uses OpenMP's default.
    """
    cdef Py_ssize_t N = W.shape[0], D = W.shape[1], B = X.shape[0]
    if X.shape[1] != D or theta.shape[0] != N:
        raise ValueError(f"shape mismatch: W {W.shape[0]}x{W.shape[1]}, theta {theta.shape[0]}, X {X.shape[0]}x{X.shape[1]}")
    cdef bint has_factor = factor is not None
    if has_factor and (factor.shape[0] != N or factor.shape[1] != N):
        raise ValueError("factor must be N x N")
    if optimizer != OPT_SGD and (opt_first is None or opt_first.shape[0] != N or opt_first.shape[1] != D):
        raise ValueError("optimizer state must be N x D")
    if optimizer == OPT_ADAM and (opt_second is None or opt_second.shape[0] != N or opt_second.shape[1] != D):
        raise ValueError("Adam second moment must be N x D")
    if B == 0:
        return
    cdef int nt = num_threads if num_threads > 0 else openmp.omp_get_max_threads()
    cdef floating* Z = <floating*> malloc(N * B * sizeof(floating))
    cdef floating* Y = <floating*> malloc(N * B * sizeof(floating)) if has_factor else Z
    cdef floating* dW = <floating*> malloc(N * D * sizeof(floating)) if optimizer != OPT_SGD else NULL
    if Z == NULL or Y == NULL or (optimizer != OPT_SGD and dW == NULL):
        free(Z)
        if has_factor:
            free(Y)
        free(dW)
        raise MemoryError()

    cdef Py_ssize_t i, j
    cdef double s, m2, tu, y, c1 = 0, c2 = 0, mh, vh
    cdef floating d
    cdef double gamma = memory_factor
    cdef long long t
    with nogil:
        gemm_rm(False, True, <int> N, <int> B, <int> D, <floating> 1, &W[0, 0], <int> D,
                &X[0, 0], <int> D, <floating> 0, Z, <int> B)
        if has_factor:
            gemm_rm(False, False, <int> N, <int> B, <int> N, <floating> 1, &factor[0, 0], <int> N,
                    Z, <int> B, <floating> 0, Y, <int> B)
        for i in prange(N, num_threads=nt, schedule="static"):
            s = 0
            for j in range(B):
                Y[i * B + j] = activate(Y[i * B + j], activation)
                s = s + <double> Y[i * B + j] * Y[i * B + j]
            m2 = s / B
            theta[i] = <floating> (gamma * theta[i] + (1.0 - gamma) * m2)
            if batch_threshold:
                tu = m2
            else:
                tu = theta[i]
            # φ/B, so that the product below is the batch mean ⟨φ x⟩
            s = (tu if tu > epsilon else epsilon) * B
            for j in range(B):
                y = Y[i * B + j]
                Y[i * B + j] = <floating> (y * (y - tu) / s)

        opt_t[0] += 1
        t = opt_t[0]
        if optimizer == OPT_SGD:
            gemm_rm(False, False, <int> N, <int> D, <int> B, <floating> lr, Y, <int> B,
                    &X[0, 0], <int> D, <floating> 1, &W[0, 0], <int> D)
        else:
            gemm_rm(False, False, <int> N, <int> D, <int> B, <floating> 1, Y, <int> B,
                    &X[0, 0], <int> D, <floating> 0, dW, <int> D)
            if optimizer == OPT_MOMENTUM:
                for i in prange(N, num_threads=nt, schedule="static"):
                    for j in range(D):
                        opt_first[i, j] = flush(<floating> opt_a * opt_first[i, j] + dW[i * D + j])
                        W[i, j] = W[i, j] + <floating> lr * opt_first[i, j]
            else:
                c1 = 1.0 / (1.0 - pow(opt_a, <double> t))
                c2 = 1.0 / (1.0 - pow(opt_b, <double> t))
                for i in prange(N, num_threads=nt, schedule="static"):
                    for j in range(D):
                        d = dW[i * D + j]
                        opt_first[i, j] = flush(opt_first[i, j] * <floating> opt_a + <floating> (1.0 - opt_a) * d)
                        opt_second[i, j] = flush(opt_second[i, j] * <floating> opt_b + <floating> (1.0 - opt_b) * d * d)
                        mh = opt_first[i, j] * c1
                        vh = opt_second[i, j] * c2
                        W[i, j] = W[i, j] + <floating> (lr * mh / (sqrt(vh) + opt_eps))
    free(Z)
    if has_factor:
        free(Y)
    free(dW)
