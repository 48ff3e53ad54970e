# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""BCM mini-batch step (Law & Cooper 1994; lateral interactions of Castellani et al. 1999).

    Y   = σ(F · W · Xᵀ)                      F = (I−L)⁻¹ (skipped when L = 0)
    θ  ← γ·θ + (1−γ)·⟨y²⟩_batch
    ΔW  = ⟨ y (y − θ*) x ⟩_batch / max(θ*, ε)   θ* = θ (moving average) or ⟨y²⟩_batch
    W  ← optimizer(W, ΔW)                     SGD, momentum or Adam

Everything runs without the GIL.  The two large products go to BLAS (scipy's, through
``cython_blas``, single-threaded).  Around them, two fused passes: one over the responses
(activation, ⟨y²⟩, θ, φ, in place in the product's buffer) and one over the weights (the
optimizer: moments and weights updated in one sweep, SGD folded into the second product).  Both
are SIMD loops (``#pragma omp simd``) in C below.

Threads: one OpenMP team per call (``team.h``; see ``plasticity_kit/threads.py``).  Replicas
are shared out among its threads, one network per thread; a single network's steps are split
into items — blocks of samples for Z = W·Xᵀ, blocks of neurons for the response pass, blocks of
input columns for ΔW = φ·X and the optimizer — each thread calling BLAS on its own blocks.
Block boundaries are fixed by the shape (``pk_blocks`` in team.h), never by the number of threads, and
every sum lies inside one block, so the trajectory is the same bit for bit on any number of
threads.

Memory: the response and ΔW buffers are kept between calls (one workspace per module, taken
under the GIL, so concurrent callers get a private one): allocating them afresh each step made
the kernel page-fault (and the OS zero) ~0.7 MB per step.

The numpy reference of the same equations is ``plasticity_kit.rules.bcm.reference_step``.
"""
from cython.parallel cimport prange, threadid
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy
from libc.stdint cimport uintptr_t
import numpy as np

from plasticity_kit.threads import get_threads, single_blas

from plasticity_kit.kernels.blas cimport gemm_rm, floating

cdef extern from "sample_space.h" nogil:
    void pk_dual_responses_f(const float* C, Py_ssize_t n, Py_ssize_t P, Py_ssize_t ldp, const float* G,
                             const int* idx, Py_ssize_t B, const float* Z0, float* Z, Py_ssize_t ldz) noexcept nogil
    void pk_dual_responses_d(const double* C, Py_ssize_t n, Py_ssize_t P, Py_ssize_t ldp, const double* G,
                             const int* idx, Py_ssize_t B, const double* Z0, double* Z, Py_ssize_t ldz) noexcept nogil
    void pk_dual_mix_f(const float* F, const float* Z, Py_ssize_t n, Py_ssize_t ldz, Py_ssize_t B,
                       float* Y) noexcept nogil
    void pk_dual_mix_d(const double* F, const double* Z, Py_ssize_t n, Py_ssize_t ldz, Py_ssize_t B,
                       double* Y) noexcept nogil

cdef extern from "team.h" nogil:
    ctypedef void (*pk_task)(void* ctx, Py_ssize_t step, Py_ssize_t item) noexcept nogil
    void pk_team(int nt, Py_ssize_t steps, int phases, const pk_task* tasks, const Py_ssize_t* counts,
                 void* ctx) noexcept nogil
    Py_ssize_t pk_blocks(Py_ssize_t size, Py_ssize_t least) noexcept nogil

cdef extern from *:
    """
    #include <math.h>
    #include <float.h>
    #include <stddef.h>
    #if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
    #include <emmintrin.h>
    #define PK_SSE2 1
    #endif
    #if defined(_OPENMP) && (defined(__GNUC__) || defined(__clang__))
    #define PK_SIMD _Pragma("omp simd")
    #define PK_SIMD_SUM_S _Pragma("omp simd reduction(+:s)")
    #else
    #define PK_SIMD
    #define PK_SIMD_SUM_S
    #endif

    enum { PK_LINEAR = 0, PK_RELU = 1, PK_LOGISTIC = 2, PK_TANH = 3 };

    /* Subnormal -> 0 (NaN is kept).  A silent neuron's optimizer moments decay into
       subnormals that never reach zero (the smallest one times 0.9 rounds back to itself), and
       subnormal arithmetic is ~100x slower; the numpy optimizers flush the same way. */
    #define PK_FLUSH(x, ABS, TINY) (ABS(x) < (TINY) ? 0 : (x))

    /* The loops are written so that GCC/Clang vectorize them at the baseline ISA (SSE2 on
       x86-64): one operation per loop, no branches, `omp simd` for the sums. */
    #define PK_DEFINE(T, SFX, ABS, TINY)                                                         \\
    /* Rows [r0, r1) of the N x B responses Y (in place): y = act(z), theta, phi/B. */         \\
    static void pk_rows_##SFX(T *Y, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t B, int act,         \\
                              double gamma, int batch_thr, double eps, T *theta) {            \\
        for (ptrdiff_t i = r0; i < r1; i++) {                                                 \\
            T *y = Y + i * B;                                                                 \\
            double s = 0;                                                                     \\
            if (act == PK_RELU) {                                                             \\
                PK_SIMD /* y < 0 ? 0 : y keeps NaN, as np.maximum(z, 0) */                     \\
                for (ptrdiff_t j = 0; j < B; j++) y[j] = y[j] < 0 ? (T)0 : y[j];               \\
            } else if (act == PK_LOGISTIC) {                                                  \\
                for (ptrdiff_t j = 0; j < B; j++) y[j] = (T)(1.0 / (1.0 + exp(-(double)y[j]))); \\
            } else if (act == PK_TANH) {                                                      \\
                for (ptrdiff_t j = 0; j < B; j++) y[j] = (T)tanh((double)y[j]);               \\
            }                                                                                 \\
            PK_SIMD_SUM_S                                                                     \\
            for (ptrdiff_t j = 0; j < B; j++) s += (double)y[j] * (double)y[j];               \\
            double m2 = s / (double)B;                                                        \\
            theta[i] = (T)(gamma * (double)theta[i] + (1.0 - gamma) * m2);                    \\
            double tu = batch_thr ? m2 : (double)theta[i];                                    \\
            /* phi/B, so that the product phi.X is the batch mean <phi x> */                  \\
            double inv = 1.0 / ((tu > eps ? tu : eps) * (double)B);                           \\
            PK_SIMD                                                                           \\
            for (ptrdiff_t j = 0; j < B; j++) {                                               \\
                double v = y[j];                                                              \\
                y[j] = (T)(v * (v - tu) * inv);                                               \\
            }                                                                                 \\
        }                                                                                     \\
    }                                                                                         \\
    /* Heavy-ball momentum on n contiguous weights: v = mu v + dW, W += lr v. */              \\
    static void pk_momentum_##SFX(T *W, T *vel, const T *d, ptrdiff_t n, T mu, T lr) {       \\
        PK_SIMD                                                                               \\
        for (ptrdiff_t j = 0; j < n; j++) {                                                   \\
            T vj = mu * vel[j] + d[j];                                                        \\
            vj = PK_FLUSH(vj, ABS, TINY);                                                     \\
            vel[j] = vj;                                                                      \\
            W[j] = W[j] + lr * vj;                                                            \\
        }                                                                                     \\
    }                                                                                         \\
    /* Adam on n contiguous weights, moments in T, the step in double (as the numpy         \\
       reference).  Scalar: without -fno-math-errno no compiler vectorizes sqrt. */           \\
    static void pk_adam_scalar_##SFX(T *W, T *m, T *v, const T *d, ptrdiff_t n, T b1,         \\
                                     T omb1, T b2, T omb2, double lr, double c1, double c2,   \\
                                     double eps) {                                            \\
        for (ptrdiff_t j = 0; j < n; j++) {                                                   \\
            T dj = d[j];                                                                      \\
            T mj = m[j] * b1 + omb1 * dj;                                                     \\
            T vj = v[j] * b2 + omb2 * dj * dj;                                                \\
            mj = PK_FLUSH(mj, ABS, TINY);                                                     \\
            vj = PK_FLUSH(vj, ABS, TINY);                                                     \\
            m[j] = mj;                                                                        \\
            v[j] = vj;                                                                        \\
            W[j] = W[j] + (T)(lr * ((double)mj * c1) / (sqrt((double)vj * c2) + eps));        \\
        }                                                                                     \\
    }

    PK_DEFINE(float, f, fabsf, FLT_MIN)
    PK_DEFINE(double, d, fabs, DBL_MIN)


    /* Adam with SSE2 intrinsics: the same operations in the same order as the scalar loop
       (no FMA), so the results are bit-identical; 4-5x faster than the scalar loop. */
    #ifdef PK_SSE2
    static inline __m128 pk_flush_ps(__m128 x) {
        __m128 ax = _mm_andnot_ps(_mm_set1_ps(-0.0f), x);
        return _mm_andnot_ps(_mm_cmplt_ps(ax, _mm_set1_ps(FLT_MIN)), x);
    }
    static inline __m128d pk_flush_pd(__m128d x) {
        __m128d ax = _mm_andnot_pd(_mm_set1_pd(-0.0), x);
        return _mm_andnot_pd(_mm_cmplt_pd(ax, _mm_set1_pd(DBL_MIN)), x);
    }
    /* lr * (m c1) / (sqrt(v c2) + eps) */
    static inline __m128d pk_adam_step_pd(__m128d m, __m128d v, __m128d lr, __m128d c1,
                                          __m128d c2, __m128d eps) {
        return _mm_div_pd(_mm_mul_pd(lr, _mm_mul_pd(m, c1)),
                          _mm_add_pd(_mm_sqrt_pd(_mm_mul_pd(v, c2)), eps));
    }
    #endif

    static void pk_adam_f(float *W, float *m, float *v, const float *d, ptrdiff_t n, float b1,
                          float omb1, float b2, float omb2, double lr, double c1, double c2,
                          double eps) {
        ptrdiff_t j = 0;
    #ifdef PK_SSE2
        const __m128 B1 = _mm_set1_ps(b1), OB1 = _mm_set1_ps(omb1);
        const __m128 B2 = _mm_set1_ps(b2), OB2 = _mm_set1_ps(omb2);
        const __m128d LR = _mm_set1_pd(lr), C1 = _mm_set1_pd(c1), C2 = _mm_set1_pd(c2);
        const __m128d EPS = _mm_set1_pd(eps);
        for (; j + 4 <= n; j += 4) {
            __m128 dj = _mm_loadu_ps(d + j);
            __m128 mj = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + j), B1), _mm_mul_ps(OB1, dj));
            __m128 vj = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + j), B2),
                                   _mm_mul_ps(_mm_mul_ps(OB2, dj), dj));
            mj = pk_flush_ps(mj);
            vj = pk_flush_ps(vj);
            _mm_storeu_ps(m + j, mj);
            _mm_storeu_ps(v + j, vj);
            __m128d lo = pk_adam_step_pd(_mm_cvtps_pd(mj), _mm_cvtps_pd(vj), LR, C1, C2, EPS);
            __m128d hi = pk_adam_step_pd(_mm_cvtps_pd(_mm_movehl_ps(mj, mj)),
                                         _mm_cvtps_pd(_mm_movehl_ps(vj, vj)), LR, C1, C2, EPS);
            __m128 u = _mm_movelh_ps(_mm_cvtpd_ps(lo), _mm_cvtpd_ps(hi));
            _mm_storeu_ps(W + j, _mm_add_ps(_mm_loadu_ps(W + j), u));
        }
    #endif
        pk_adam_scalar_f(W + j, m + j, v + j, d + j, n - j, b1, omb1, b2, omb2, lr, c1, c2, eps);
    }

    static void pk_adam_d(double *W, double *m, double *v, const double *d, ptrdiff_t n,
                          double b1, double omb1, double b2, double omb2, double lr, double c1,
                          double c2, double eps) {
        ptrdiff_t j = 0;
    #ifdef PK_SSE2
        const __m128d B1 = _mm_set1_pd(b1), OB1 = _mm_set1_pd(omb1);
        const __m128d B2 = _mm_set1_pd(b2), OB2 = _mm_set1_pd(omb2);
        const __m128d LR = _mm_set1_pd(lr), C1 = _mm_set1_pd(c1), C2 = _mm_set1_pd(c2);
        const __m128d EPS = _mm_set1_pd(eps);
        for (; j + 2 <= n; j += 2) {
            __m128d dj = _mm_loadu_pd(d + j);
            __m128d mj = _mm_add_pd(_mm_mul_pd(_mm_loadu_pd(m + j), B1), _mm_mul_pd(OB1, dj));
            __m128d vj = _mm_add_pd(_mm_mul_pd(_mm_loadu_pd(v + j), B2),
                                    _mm_mul_pd(_mm_mul_pd(OB2, dj), dj));
            mj = pk_flush_pd(mj);
            vj = pk_flush_pd(vj);
            _mm_storeu_pd(m + j, mj);
            _mm_storeu_pd(v + j, vj);
            _mm_storeu_pd(W + j, _mm_add_pd(_mm_loadu_pd(W + j),
                                            pk_adam_step_pd(mj, vj, LR, C1, C2, EPS)));
        }
    #endif
        pk_adam_scalar_d(W + j, m + j, v + j, d + j, n - j, b1, omb1, b2, omb2, lr, c1, c2, eps);
    }
    """
    void pk_rows_f(float* Y, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t B, int act, double gamma,
                   int batch_thr, double eps, float* theta) noexcept nogil
    void pk_rows_d(double* Y, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t B, int act, double gamma,
                   int batch_thr, double eps, double* theta) noexcept nogil
    void pk_adam_f(float* W, float* m, float* v, const float* d, Py_ssize_t n, float b1,
                   float omb1, float b2, float omb2, double lr, double c1, double c2,
                   double eps) noexcept nogil
    void pk_adam_d(double* W, double* m, double* v, const double* d, Py_ssize_t n, double b1,
                   double omb1, double b2, double omb2, double lr, double c1, double c2,
                   double eps) noexcept nogil
    void pk_momentum_f(float* W, float* vel, const float* d, Py_ssize_t n, float mu,
                       float lr) noexcept nogil
    void pk_momentum_d(double* W, double* vel, const double* d, Py_ssize_t n, double mu,
                       double lr) noexcept nogil

cdef extern from "<math.h>" nogil:
    double pow(double, double)

cdef enum:
    OPT_SGD = 0
    OPT_MOMENTUM = 1
    OPT_ADAM = 2

# Workspaces up to this size are kept between calls; larger ones are allocated per call.
cdef size_t KEEP_MAX = 64 << 20
cdef enum:
    ALIGN = 64        # bytes; each buffer of the workspace starts on a cache line
    MIN_SAMPLES = 16  # fewest samples in a block of the product W·Xᵀ
    MIN_COLUMNS = 128 # fewest input columns in a block of the product φ·X
    COL_ALIGN = 16    # column blocks start on multiples of this many columns
    ROWS_PER_ITEM = 8 # neurons per item of the response pass



cdef inline Py_ssize_t block_start(Py_ssize_t size, Py_ssize_t blocks, Py_ssize_t b,
                                   Py_ssize_t align) noexcept nogil:
    if b >= blocks:
        return size
    return (size * b // blocks) // align * align


cdef inline void rows(floating* Y, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t B, int act,
                      double gamma, int batch_thr, double eps, floating* theta) noexcept nogil:
    if floating is float:
        pk_rows_f(Y, r0, r1, B, act, gamma, batch_thr, eps, theta)
    else:
        pk_rows_d(Y, r0, r1, B, act, gamma, batch_thr, eps, theta)


cdef inline void update(int optimizer, floating* W, floating* first, floating* second,
                        const floating* d, Py_ssize_t n, double lr, double a, double b,
                        double eps, double c1, double c2) noexcept nogil:
    if optimizer == OPT_MOMENTUM:
        if floating is float:
            pk_momentum_f(W, first, d, n, <float> a, <float> lr)
        else:
            pk_momentum_d(W, first, d, n, a, lr)
    else:
        if floating is float:
            pk_adam_f(W, first, second, d, n, <float> a, <float> (1.0 - a), <float> b,
                      <float> (1.0 - b), lr, c1, c2, eps)
        else:
            pk_adam_d(W, first, second, d, n, a, 1.0 - a, b, 1.0 - b, lr, c1, c2, eps)


# The kept workspace.  Taken and given back with the GIL held, so two threads calling the
# kernel at once never share it (the second one allocates its own).
cdef char* _ws_raw = NULL
cdef size_t _ws_size = 0
cdef bint _ws_busy = False


cdef char* _aligned(char* raw) noexcept nogil:
    return <char*> ((<uintptr_t> raw + ALIGN - 1) & ~(<uintptr_t> (ALIGN - 1)))


cdef struct Net:
    # One network's step: its state, the data, the rule's constants and its workspace.
    void* W
    void* theta
    void* first
    void* second
    long long* t
    const void* X
    const int* batches
    const void* factor
    Py_ssize_t n, D, B
    Py_ssize_t ns, nd   # blocks of samples, of input columns
    bint dbl            # float64 state
    int act, batch_thr, optimizer
    double gamma, eps, lr, a, b, opt_eps
    void* Z
    void* Y
    void* dW
    void* Xb


cdef void responses(Net* net, Py_ssize_t s, Py_ssize_t blk, floating* tag) noexcept nogil:
    """Block ``blk`` of the batch's samples: gather them, Z = W·Xᵀ and Y = F·Z on their columns."""
    cdef Py_ssize_t D = net.D, B = net.B, n = net.n, j
    cdef Py_ssize_t j0 = block_start(B, net.ns, blk, 1), j1 = block_start(B, net.ns, blk + 1, 1)
    cdef const floating* X = <const floating*> net.X
    cdef floating* Xs = <floating*> X
    cdef floating* Z = <floating*> net.Z
    if j1 <= j0:
        return
    if net.batches != NULL:
        Xs = <floating*> net.Xb
        for j in range(j0, j1):
            memcpy(Xs + j * D, X + <Py_ssize_t> net.batches[s * B + j] * D, D * sizeof(floating))
    gemm_rm(False, True, <int> n, <int> (j1 - j0), <int> D, <floating> 1, <floating*> net.W, <int> D,
            Xs + j0 * D, <int> D, <floating> 0, Z + j0, <int> B)
    if net.factor != NULL:
        gemm_rm(False, False, <int> n, <int> (j1 - j0), <int> n, <floating> 1, <const floating*> net.factor,
                <int> n, Z + j0, <int> B, <floating> 0, <floating*> net.Y + j0, <int> B)


cdef void learn(Net* net, long long step, Py_ssize_t blk, floating* tag) noexcept nogil:
    """Block ``blk`` of the input columns: ΔW = φ·X there and the optimizer on those weights."""
    cdef Py_ssize_t D = net.D, B = net.B, n = net.n, i
    cdef Py_ssize_t d0 = block_start(D, net.nd, blk, COL_ALIGN), d1 = block_start(D, net.nd, blk + 1, COL_ALIGN)
    cdef const floating* Xs = <const floating*> net.X if net.batches == NULL else <const floating*> net.Xb
    cdef floating* W = <floating*> net.W
    cdef floating* dW = <floating*> net.dW
    cdef floating* f1 = <floating*> net.first
    cdef floating* f2 = <floating*> net.second
    cdef double c1 = 0, c2 = 0
    if d1 <= d0:
        return
    if net.optimizer == OPT_SGD:
        gemm_rm(False, False, <int> n, <int> (d1 - d0), <int> B, <floating> net.lr, <floating*> net.Y,
                <int> B, Xs + d0, <int> D, <floating> 1, W + d0, <int> D)
        return
    gemm_rm(False, False, <int> n, <int> (d1 - d0), <int> B, <floating> 1, <floating*> net.Y, <int> B,
            Xs + d0, <int> D, <floating> 0, dW + d0, <int> D)
    if net.optimizer == OPT_ADAM:
        c1 = 1.0 / (1.0 - pow(net.a, <double> step))
        c2 = 1.0 / (1.0 - pow(net.b, <double> step))
    for i in range(n):
        update(net.optimizer, W + i * D + d0, f1 + i * D + d0, f2 + i * D + d0 if f2 != NULL else NULL,
               dW + i * D + d0, d1 - d0, net.lr, net.a, net.b, net.opt_eps, c1, c2)


cdef void set_workspace(Net* net, char* base, size_t nzb, size_t ndw, bint has_factor) noexcept nogil:
    net.Z = base
    net.Y = base + nzb if has_factor else base
    net.dW = base + nzb * (2 if has_factor else 1) if ndw else NULL
    net.Xb = base + nzb * (2 if has_factor else 1) + ndw


cdef void task_responses(void* ctx, Py_ssize_t s, Py_ssize_t blk) noexcept nogil:
    cdef Net* net = <Net*> ctx
    if net.dbl:
        responses(net, s, blk, <double*> NULL)
    else:
        responses(net, s, blk, <float*> NULL)


cdef void task_rows(void* ctx, Py_ssize_t s, Py_ssize_t blk) noexcept nogil:
    cdef Net* net = <Net*> ctx
    cdef Py_ssize_t r0 = blk * ROWS_PER_ITEM, r1 = min(r0 + ROWS_PER_ITEM, net.n)
    if net.dbl:
        rows(<double*> net.Y, r0, r1, net.B, net.act, net.gamma, net.batch_thr, net.eps, <double*> net.theta)
    else:
        rows(<float*> net.Y, r0, r1, net.B, net.act, net.gamma, net.batch_thr, net.eps, <float*> net.theta)


cdef void task_learn(void* ctx, Py_ssize_t s, Py_ssize_t blk) noexcept nogil:
    cdef Net* net = <Net*> ctx
    if net.dbl:
        learn(net, net.t[0] + s + 1, blk, <double*> NULL)
    else:
        learn(net, net.t[0] + s + 1, blk, <float*> NULL)


cdef void primal_steps(Net* net, Py_ssize_t S, int nt) noexcept nogil:
    """S steps of one network in the weight space.  Per step three phases, each split into
    items fixed by the shape: blocks of samples (gather, Z = W·Xᵀ, Y = F·Z), of neurons
    (activation, θ, φ) and of input columns (ΔW = φ·X, optimizer).  ``nt`` > 1: one OpenMP team
    runs all S steps (``pk_team``), the items of each phase shared out among its threads."""
    cdef pk_task tasks[3]
    cdef Py_ssize_t counts[3]
    tasks[0], tasks[1], tasks[2] = task_responses, task_rows, task_learn
    counts[0] = net.ns
    counts[1] = (net.n + ROWS_PER_ITEM - 1) // ROWS_PER_ITEM
    counts[2] = net.nd
    pk_team(nt, S, 3, tasks, counts, net)
    net.t[0] += S


cdef int dual_steps(floating* Wr, floating* th, const floating* X, Py_ssize_t P, Py_ssize_t D,
                    const int* batches, Py_ssize_t S, Py_ssize_t B, const floating* G, Py_ssize_t ldp,
                    const floating* factor, Py_ssize_t n, int act, double gamma, int batch_thr,
                    double eps, double lr, long long* t, const int* marks, Py_ssize_t nm,
                    floating* snap, Py_ssize_t N) noexcept nogil:
    """S SGD steps of one network in the span of the samples (see ``bcm_steps``); −1: no memory.
    θ is copied to row m of ``snap`` (row stride N) after step ``marks[m]``.

    W = W₀ + C·X with C (n×P) starting at 0, so the batch's responses are
    Z = (W₀·Xᵀ)[:, idx] + C·G[idx]ᵀ and the step is C[:, idx] += lr·φ/B.  W₀·Xᵀ and the final
    W₀ + C·X are BLAS products; C, the steps and their products (fixed-order register tiles,
    sample_space.h) are in the state's type, as the weight-space steps.  G (P×P) and the rows
    of Z₀ and C start on cache lines (row stride ``ldp``): the tiles' loads never straddle two.
    """
    cdef Py_ssize_t i, j, s, m = 0
    cdef Py_ssize_t lanes = 32 // sizeof(floating)
    cdef Py_ssize_t ldz = (B + lanes - 1) // lanes * lanes if factor != NULL else B
    cdef size_t count = 2 * n * ldp + n * ldz + n * B
    cdef char* raw = <char*> calloc(count * sizeof(floating) + ALIGN, 1)
    if raw == NULL:
        return -1
    cdef floating* Z0 = <floating*> _aligned(raw)  # W₀·Xᵀ (n×P)
    cdef floating* C = Z0 + n * ldp                 # coefficients (n×P), from 0
    cdef floating* Zb = C + n * ldp                 # the batch's responses (n×ldz; columns B.. stay 0)
    cdef floating* Yb = Zb + n * ldz                # F·Z (n×B)
    cdef floating* Ys
    cdef const int* idx
    gemm_rm(False, True, <int> n, <int> P, <int> D, <floating> 1, Wr, <int> D, X, <int> D,
            <floating> 0, Z0, <int> ldp)
    for s in range(S):
        idx = batches + s * B
        Ys = Zb
        if floating is float:
            pk_dual_responses_f(C, n, P, ldp, G, idx, B, Z0, Zb, ldz)
            if factor != NULL:
                pk_dual_mix_f(factor, Zb, n, ldz, B, Yb)
                Ys = Yb
            pk_rows_f(Ys, 0, n, B, act, gamma, batch_thr, eps, th)
        else:
            pk_dual_responses_d(C, n, P, ldp, G, idx, B, Z0, Zb, ldz)
            if factor != NULL:
                pk_dual_mix_d(factor, Zb, n, ldz, B, Yb)
                Ys = Yb
            pk_rows_d(Ys, 0, n, B, act, gamma, batch_thr, eps, th)
        for i in range(n):
            for j in range(B):
                C[i * ldp + idx[j]] += <floating> lr * Ys[i * B + j]
        t[0] += 1
        if m < nm and marks[m] == s + 1:
            memcpy(snap + m * N, th, n * sizeof(floating))
            m += 1
    gemm_rm(False, False, <int> n, <int> D, <int> P, <floating> 1, C, <int> ldp, X, <int> D,
            <floating> 1, Wr, <int> D)
    free(raw)
    return 0


def bcm_step(floating[:, ::1] W, floating[::1] theta, const floating[:, ::1] X,
             const floating[:, ::1] factor, int activation,
             double memory_factor, bint batch_threshold, double epsilon,
             int optimizer, double lr, double opt_a, double opt_b, double opt_eps,
             floating[:, ::1] opt_first, floating[:, ::1] opt_second, long long[::1] opt_t,
             int num_threads=0, int replicas=1):
    """Apply one BCM step to ``W`` (N×D) and ``theta`` (N) in place for the batch ``X`` (B×D).

    The one-batch form of :func:`bcm_steps` (the whole of ``X`` is the batch); arguments as there.
    """
    bcm_steps(W, theta, X, None, factor, activation, memory_factor, batch_threshold, epsilon,
              optimizer, lr, opt_a, opt_b, opt_eps, opt_first, opt_second, opt_t,
              None, num_threads, replicas)


def bcm_steps(floating[:, ::1] W, floating[::1] theta, const floating[:, ::1] X,
              const int[:, ::1] batches, const floating[:, ::1] factor, int activation,
              double memory_factor, bint batch_threshold, double epsilon,
              int optimizer, double lr, double opt_a, double opt_b, double opt_eps,
              floating[:, ::1] opt_first, floating[:, ::1] opt_second, long long[::1] opt_t,
              const floating[:, ::1] gram=None, int num_threads=0, int replicas=1,
              const int[::1] marks=None, floating[:, ::1] snapshots=None):
    """Apply S BCM steps in place: step s uses the batch ``X[batches[s]]`` (``batches``: S×B
    sample indices into ``X``, P×D); ``batches`` None makes the whole of ``X`` one batch.

    Replicas: ``replicas`` = R independent networks of n = N/R neurons that see the same batches
    are trained in one call, their rows stacked in W, θ and the optimizer state, each with its
    own step counter ``opt_t[r]``.  Each block of n rows is run exactly as a call for that
    network alone (same operations, same order), so the result equals R separate calls bit for
    bit.  Each network runs through all S steps at once, so that its state stays in cache.

    ``gram`` (P×P, = X·Xᵀ, in W's type) selects the sample-space form, for SGD only: within the
    call every network's weights stay W₀ + C·X (each step adds lr·φ/B·X_batch), so the
    responses are W₀·Xᵀ + C·G and a step costs n·B·P instead of 2·n·B·D operations; W is
    formed at the end.  The same equations in the same type; worth it when P ≪ D (few images,
    many pixels: the reference study's 10 faces of 4096 pixels).

    ``marks`` (sample-space form only): increasing step counts 1 ≤ m < S after which θ (all
    replicas, N values) is copied to the rows of ``snapshots`` (len(marks) × N) — the θ of a
    call made with the first m batches, bit for bit, without forming W there.

    ``factor``: (I−L)⁻¹ (n×n) or None.  ``activation``: 0 linear, 1 relu, 2 logistic, 3 tanh.
    ``optimizer``: 0 SGD(lr), 1 momentum(lr, μ=opt_a; opt_first = velocity), 2 Adam(lr, β1=opt_a,
    β2=opt_b, ε=opt_eps; opt_first = m, opt_second = v).

    Threads: ``num_threads`` (≤ 0: :func:`plasticity_kit.threads.get_threads`) in one OpenMP
    team; BLAS runs single-threaded inside it.  With several replicas the team shares out the
    networks (each on one thread); one network (weight space) shares out fixed blocks of
    samples, neurons and input columns.  Block boundaries depend on the shape only, so the
    result is the same bit for bit for any number of threads.  The sample-space form of one
    network runs on one thread.
    """
    global _ws_raw, _ws_size, _ws_busy
    cdef Py_ssize_t N = W.shape[0], D = W.shape[1], P = X.shape[0]
    cdef Py_ssize_t S = 1 if batches is None else batches.shape[0]
    cdef Py_ssize_t B = P if batches is None else batches.shape[1]
    if X.shape[1] != D or theta.shape[0] != N:
        raise ValueError(f"shape mismatch: W {W.shape[0]}x{W.shape[1]}, theta {theta.shape[0]}, X {X.shape[0]}x{X.shape[1]}")
    if replicas < 1 or N % replicas != 0:
        raise ValueError(f"replicas must divide the {N} rows of W, got {replicas}")
    cdef Py_ssize_t R = replicas, n = N // replicas, r, i
    cdef bint has_factor = factor is not None
    if has_factor and (factor.shape[0] != n or factor.shape[1] != n):
        raise ValueError(f"factor must be {n} x {n} (neurons per replica), got {factor.shape[0]}x{factor.shape[1]}")
    if optimizer != OPT_SGD and (opt_first is None or opt_first.shape[0] != N or opt_first.shape[1] != D):
        raise ValueError("optimizer state must be N x D")
    if optimizer == OPT_ADAM and (opt_second is None or opt_second.shape[0] != N or opt_second.shape[1] != D):
        raise ValueError("Adam second moment must be N x D")
    if opt_t is None or opt_t.shape[0] != R:
        raise ValueError(f"opt_t must hold one step counter per replica ({R}), got {0 if opt_t is None else opt_t.shape[0]}")
    if activation < 0 or activation > 3 or optimizer < 0 or optimizer > 2:
        raise ValueError(f"unknown activation {activation} or optimizer {optimizer}")
    if batches is not None:
        for r in range(S):
            for i in range(B):
                if batches[r, i] < 0 or batches[r, i] >= P:
                    raise ValueError(f"batches[{r}, {i}] = {batches[r, i]} is not a row of X (0..{P - 1})")
    if gram is not None:
        if optimizer != OPT_SGD:
            raise ValueError("the sample-space form (gram) needs the SGD optimizer")
        if gram.shape[0] != P or gram.shape[1] != P:
            raise ValueError(f"gram must be X·Xᵀ, {P} x {P}, got {gram.shape[0]}x{gram.shape[1]}")
        if batches is None:
            batches = np.arange(P, dtype=np.int32)[None, :]
    cdef Py_ssize_t nm = 0 if marks is None else marks.shape[0]
    if nm:
        if gram is None:
            raise ValueError("marks need the sample-space form (gram)")
        if snapshots is None or snapshots.shape[0] != nm or snapshots.shape[1] != N:
            raise ValueError(f"snapshots must be {nm} x {N} (one row of θ per mark)")
        for i in range(nm):
            if marks[i] < 1 or marks[i] >= S or (i and marks[i] <= marks[i - 1]):
                raise ValueError(f"marks must increase within 1..{S - 1}, got {list(marks)}")
    if B == 0 or S == 0 or n == 0:
        return
    cdef int nt = num_threads if num_threads > 0 else get_threads()
    cdef int team = nt if R == 1 else 1        # threads inside one network
    cdef int across = nt if R > 1 else 1       # threads across networks
    if across > R:
        across = <int> R
    cdef const floating* F = &factor[0, 0] if has_factor else NULL
    cdef const int* idx = &batches[0, 0] if batches is not None else NULL
    cdef floating* first = &opt_first[0, 0] if optimizer != OPT_SGD else NULL
    cdef floating* second = &opt_second[0, 0] if optimizer == OPT_ADAM else NULL
    cdef int failed = 0

    cdef Py_ssize_t ldp
    cdef char* graw
    cdef floating* Ga
    if gram is not None:  # G copied once per call, its rows on cache lines
        ldp = (P * sizeof(floating) + ALIGN - 1) // ALIGN * ALIGN // sizeof(floating)
        graw = <char*> malloc(P * ldp * sizeof(floating) + ALIGN)
        if graw == NULL:
            raise MemoryError()
        Ga = <floating*> _aligned(graw)
        for r in range(P):
            memcpy(Ga + r * ldp, &gram[r, 0], P * sizeof(floating))
        try:
            with single_blas():
                with nogil:
                    for r in prange(R, num_threads=across, schedule="dynamic"):
                        if dual_steps(&W[0, 0] + r * n * D, &theta[0] + r * n, &X[0, 0], P, D, idx, S, B,
                                      Ga, ldp, F, n, activation, memory_factor, batch_threshold,
                                      epsilon, lr, &opt_t[r], &marks[0] if nm else NULL, nm,
                                      &snapshots[0, 0] + r * n if nm else NULL, N) != 0:
                            failed += 1
        finally:
            free(graw)
        if failed:
            raise MemoryError()
        return

    # Workspace of one network: Z (n×B), Y (n×B) when there is a factor, ΔW (n×D) unless SGD,
    # the gathered batch (B×D) when batches are indices; one per thread working across networks.
    cdef size_t nzb = ((n * B * sizeof(floating) + ALIGN - 1) // ALIGN) * ALIGN
    cdef size_t ndw = ((n * D * sizeof(floating) + ALIGN - 1) // ALIGN) * ALIGN if optimizer != OPT_SGD else 0
    cdef size_t nxb = ((B * D * sizeof(floating) + ALIGN - 1) // ALIGN) * ALIGN if batches is not None else 0
    cdef size_t one = nzb * (2 if has_factor else 1) + ndw + nxb
    cdef size_t need = one * across + ALIGN
    cdef char* raw
    cdef bint kept = not _ws_busy and need <= KEEP_MAX
    if kept:
        if _ws_size < need:
            free(_ws_raw)
            _ws_raw = <char*> malloc(need)
            _ws_size = need if _ws_raw != NULL else 0
        raw = _ws_raw
    else:
        raw = <char*> malloc(need)
    if raw == NULL:
        raise MemoryError()
    if kept:
        _ws_busy = True
    cdef char* base = _aligned(raw)
    cdef Net* nets = <Net*> malloc(R * sizeof(Net))
    cdef char* mine
    if nets == NULL:
        if kept:
            _ws_busy = False
        else:
            free(raw)
        raise MemoryError()
    for r in range(R):
        nets[r].W = &W[0, 0] + r * n * D
        nets[r].theta = &theta[0] + r * n
        nets[r].first = first + r * n * D if first != NULL else NULL
        nets[r].second = second + r * n * D if second != NULL else NULL
        nets[r].t = &opt_t[r]
        nets[r].X = &X[0, 0]
        nets[r].batches = idx
        nets[r].factor = F
        nets[r].n = n
        nets[r].D = D
        nets[r].B = B
        nets[r].ns = pk_blocks(B, MIN_SAMPLES)
        nets[r].nd = pk_blocks(D, MIN_COLUMNS)
        nets[r].dbl = floating is double
        nets[r].act = activation
        nets[r].batch_thr = batch_threshold
        nets[r].optimizer = optimizer
        nets[r].gamma = memory_factor
        nets[r].eps = epsilon
        nets[r].lr = lr
        nets[r].a = opt_a
        nets[r].b = opt_b
        nets[r].opt_eps = opt_eps
    try:
        with single_blas():
            with nogil:
                if across > 1:
                    for r in prange(R, num_threads=across, schedule="dynamic"):
                        mine = base + one * threadid()
                        set_workspace(&nets[r], mine, nzb, ndw, has_factor)
                        primal_steps(&nets[r], S, 1)
                else:
                    for r in range(R):
                        set_workspace(&nets[r], base, nzb, ndw, has_factor)
                        primal_steps(&nets[r], S, team)
    finally:
        free(nets)
        if kept:
            _ws_busy = False
        else:
            free(raw)

