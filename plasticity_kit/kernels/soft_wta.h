/* The soft winner-take-all of one row (SoftHebb, Journé et al. 2023), written so that the
   compiler vectorises it: no library call per element, every sum over a fixed set of lanes.

   For a row u of F pre-activations and the inverse temperature t:

       e_f = exp(t·(u_f − max u))        (0 where t·(u_f − max u) < −80, not a slow denormal)
       y_f = ± e_f / Σ e                 (+ for the winner argmax u, lower index on ties; − for
                                          every other channel when anti_hebbian, else all +)
       a_f += y_f · u_f                  (the Oja-like decay term of the update, in double)

   exp is Cephes' (Moshier): exp(x) = 2ⁿ·exp(r), n = round(x/ln 2),
   r = x − n·ln 2 in two parts (Cody–Waite), exp(r) by a degree-6 polynomial (float, relative
   error < 2e-7) or the Padé form 1 + 2r·P(r²)/(Q(r²) − r·P(r²)) (double, < 2e-16); 2ⁿ is built
   in the exponent bits.  Each element's arithmetic is the same whichever lane or thread computes
   it, and the sums run over PK_LANES fixed lanes combined in a fixed order, so the result does
   not depend on the number of threads. */
#ifndef PK_SOFT_WTA_H
#define PK_SOFT_WTA_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PK_LANES 8
#define PK_EXP_FLOOR (-80.0)

static inline float pk_exp_nonpositive_f(float x) {
    /* exp(x) for −80 ≤ x ≤ 0 */
    const float shift = 12582912.0f; /* 1.5·2²³: adding and subtracting it rounds to an integer */
    float n = (x * 1.44269504088896341f + shift) - shift;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float biased = n + (127.0f + shift); /* the low mantissa bits now hold n + 127 */
    int32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    bits <<= 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline double pk_exp_nonpositive_d(double x) {
    /* exp(x) for −80 ≤ x ≤ 0 */
    const double shift = 6755399441055744.0; /* 1.5·2⁵² */
    double n = (x * 1.4426950408889634073599 + shift) - shift;
    double r = x - n * 6.93145751953125e-1;
    r = r - n * 1.42860682030941723212e-6;
    double rr = r * r;
    double px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
                     + 9.99999999999999999910e-1);
    double qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
                 + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0;
    double e = 1.0 + 2.0 * (px / (qx - px));
    double biased = n + (1023.0 + shift); /* the low mantissa bits now hold n + 1023 */
    int64_t bits;
    memcpy(&bits, &biased, sizeof bits);
    bits <<= 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}

/* PK_ROW_TOP(T, I, VT, VI): the row's maximum `top` and the first channel `best` that holds it,
   over VT / VI, GCC/Clang vectors of PK_LANES T / I (a cast between the two reinterprets bits).
   Each lane keeps its largest value and where it first met it (replaced only by a strictly
   larger one), then the lanes are joined — `top` from the same comparisons as a scalar scan,
   `best` the lowest channel equal to it.  A row whose maximum no lane holds (it is in the last
   F mod 8 channels, or the row has a NaN) is scanned from its first channel. */
#define PK_ROW_TOP(T, I, VT, VI)                                                                 \
    T top = u[0];                                                                                \
    ptrdiff_t best = -1;                                                                         \
    VT lane = {0};                                                                               \
    VI where = {0};                                                                              \
    if (full) {                                                                                  \
        VT next;                                                                                 \
        VI at, step;                                                                             \
        for (j = 0; j < PK_LANES; j++) { at[j] = (I)j; step[j] = (I)PK_LANES; }                  \
        where = at;                                                                              \
        memcpy(&lane, u, sizeof lane);                                                           \
        for (f = PK_LANES; f < full; f += PK_LANES) {                                            \
            memcpy(&next, u + f, sizeof next);                                                   \
            at += step;                                                                          \
            VI larger = (VI)(next > lane);                                                       \
            lane = (VT)(((VI)next & larger) | ((VI)lane & ~larger));                             \
            where = (at & larger) | (where & ~larger);                                           \
        }                                                                                        \
        for (j = 0; j < PK_LANES; j++) top = lane[j] > top ? lane[j] : top;                      \
    }                                                                                            \
    for (f = full; f < F; f++) top = u[f] > top ? u[f] : top;                                    \
    for (j = 0; j < PK_LANES && full; j++)                                                       \
        if (lane[j] == top && (best < 0 || (ptrdiff_t)where[j] < best)) best = where[j];         \
    if (best < 0) {                                                                              \
        best = 0;                                                                                \
        while (best < F - 1 && !(u[best] == top)) best++;                                        \
    }

/* PK_SOFT_WTA_ROW(name, T, I, EXP): one function per floating type (I: the integer of T's
   width); y receives the row's output.  Always inlined, so that each clone below compiles it for
   its own target.  One loop per operation: GCC vectorises each, not a clamp, an exp and a select
   fused in one loop ("control flow in loop"). */
#define PK_SOFT_WTA_ROW(name, T, I, EXP)                                                         \
typedef T name##_vt __attribute__((vector_size(PK_LANES * sizeof(T))));                          \
typedef I name##_vi __attribute__((vector_size(PK_LANES * sizeof(T))));                          \
static inline __attribute__((always_inline)) void                                                \
name(const T *restrict u, T *restrict y, ptrdiff_t F, T t, int anti_hebbian, double *restrict a) { \
    const ptrdiff_t full = F / PK_LANES * PK_LANES;                                              \
    const T floor_value = EXP((T)PK_EXP_FLOOR);                                                  \
    ptrdiff_t f, j;                                                                              \
    PK_ROW_TOP(T, I, name##_vt, name##_vi)                                                       \
    for (f = 0; f < F; f++) {                                                                    \
        T z = t * (u[f] - top);                                                                  \
        y[f] = z < (T)PK_EXP_FLOOR ? (T)PK_EXP_FLOOR : z;                                        \
    }                                                                                            \
    for (f = 0; f < F; f++) y[f] = EXP(y[f]);                                                    \
    for (f = 0; f < F; f++) y[f] = y[f] > floor_value ? y[f] : (T)0;                             \
    double sum[PK_LANES] = {0}, total = 0;                                                       \
    for (f = 0; f < full; f += PK_LANES)                                                         \
        for (j = 0; j < PK_LANES; j++) sum[j] += y[f + j];                                       \
    for (j = 0; j < PK_LANES; j++) total += sum[j];                                              \
    for (f = full; f < F; f++) total += y[f];                                                    \
    const T scale = (T)(1.0 / total), sign = anti_hebbian ? (T)-1 : (T)1;                        \
    for (f = 0; f < F; f++) y[f] = sign * (y[f] * scale);                                        \
    y[best] = sign * y[best];                                                                    \
    for (f = 0; f < F; f++) a[f] += (double)y[f] * (double)u[f];                                 \
}

PK_SOFT_WTA_ROW(pk_soft_wta_row_f, float, int32_t, pk_exp_nonpositive_f)
PK_SOFT_WTA_ROW(pk_soft_wta_row_d, double, int64_t, pk_exp_nonpositive_d)

/* Whole blocks of rows, compiled twice on x86-64 (GCC/Clang function multiversioning): for
   AVX2 + FMA (x86-64-v3, 8 floats a vector) and for the baseline, the loader picking the one
   the CPU runs.  The same clone runs on every thread, so the thread count still never changes
   a bit; another CPU may round differently (as its BLAS does). */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define PK_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#ifndef PK_CLONES
#define PK_CLONES
#endif

PK_CLONES void pk_soft_wta_rows_f(const float *u, float *y, ptrdiff_t rows, ptrdiff_t F, float t,
                                  int anti_hebbian, double *a) {
    for (ptrdiff_t r = 0; r < rows; r++)
        pk_soft_wta_row_f(u + r * F, y + r * F, F, t, anti_hebbian, a);
}

PK_CLONES void pk_soft_wta_rows_d(const double *u, double *y, ptrdiff_t rows, ptrdiff_t F, double t,
                                  int anti_hebbian, double *a) {
    for (ptrdiff_t r = 0; r < rows; r++)
        pk_soft_wta_row_d(u + r * F, y + r * F, F, t, anti_hebbian, a);
}

#endif
