/* The products of a BCM step in the span of the samples (bcm.pyx, dual_steps), in the state's
   type T (float or double):

       Z[i, j] = Z0[i, idx_j] + Σ_p C[i, p] · G[idx_j, p]   (n × B: the batch's responses,
                                                              C n × P, G P × P, Z0 = W₀·Xᵀ)
       Y[i, j] = Σ_k F[i, k] · Z[k, j]                       (n × B: the lateral interactions F = (I − L)⁻¹)

   Every Z[i, j] is summed the same way wherever it lies in a tile: p ≡ l (mod L) into lane l in
   increasing p (L = 8 floats or 4 doubles, one 256-bit vector), the lanes combined pairwise
   ((l₀ + l₁) + (l₂ + l₃), …), then the last P mod L terms in order, then Z0 added; Y[i, j] over
   k in increasing order.  So a network's results depend on its own numbers only — never on how
   many replicas are computed beside it, nor on the thread — and the tiles (5 rows × 2 batch
   columns in registers, G's rows read in place) are free to follow the shape.
   A BLAS call on these small shapes (n ≈ 25, B = 10..100, P = 400) spent more time packing its
   operands than multiplying them, and its blocking could depend on the shape.

   Compiled twice on x86-64 (AVX2 + FMA, and the baseline), the one the CPU runs chosen at run
   time; both sum in the order above (FMA rounds a product and its sum once, so the two builds
   can differ in the last bit, as two BLAS builds do). */
#ifndef PK_SAMPLE_SPACE_H
#define PK_SAMPLE_SPACE_H
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define PK_SS_X86 1
#define PK_SS_V3 __attribute__((target("arch=x86-64-v3")))
#define PK_SS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PK_SS_V3
#define PK_SS_CLONES
#endif

/* In the AVX2 build a C vector is pinned in a register once loaded: GCC would otherwise fold its
   load into both of its FMAs, 12 loads per 10 FMAs instead of 7, and the loads were the limit
   (~1.3× slower).  The baseline build holds a 256-bit vector in two registers: no pin. */
#define PK_SS_PIN(w) __asm__("" : "+v"(w))
#define PK_SS_NO_PIN(w) ((void)0)

#define PK_SS_ROWS 5  /* rows of C in a tile (fewer in the last one); out[2·i + j]: row i, column j */
#define PK_SS_COLS 2  /* batch columns (rows of G) in a tile */

typedef float pk_v8f __attribute__((vector_size(32)));
typedef double pk_v4d __attribute__((vector_size(32)));

#if defined(__clang__)
#define PK_SS_SHUFFLE(V, M, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define PK_SS_SHUFFLE(V, M, a, b, ...) __builtin_shuffle(a, b, (M){__VA_ARGS__})
#endif
typedef int pk_v8i __attribute__((vector_size(32)));
typedef long long pk_v4l __attribute__((vector_size(32)));
#define PK_SS_EVEN8(a, b) PK_SS_SHUFFLE(pk_v8f, pk_v8i, a, b, 0, 2, 8, 10, 4, 6, 12, 14)
#define PK_SS_ODD8(a, b) PK_SS_SHUFFLE(pk_v8f, pk_v8i, a, b, 1, 3, 9, 11, 5, 7, 13, 15)
#define PK_SS_EVEN4(a, b) PK_SS_SHUFFLE(pk_v4d, pk_v4l, a, b, 0, 4, 2, 6)
#define PK_SS_ODD4(a, b) PK_SS_SHUFFLE(pk_v4d, pk_v4l, a, b, 1, 5, 3, 7)

/* The lane sums of four accumulators a, b, c, d at once, each ((l₀ + l₁) + (l₂ + l₃)) +
   ((l₄ + l₅) + (l₆ + l₇)) in float and (l₀ + l₁) + (l₂ + l₃) in double, written to out[0..3]
   (shuffles as AVX's hadd, then the two 128-bit halves added). */
static inline void pk_sums4_f(pk_v8f a, pk_v8f b, pk_v8f c, pk_v8f d, float out[4]) {
    const pk_v8f ab = PK_SS_EVEN8(a, b) + PK_SS_ODD8(a, b);
    const pk_v8f cd = PK_SS_EVEN8(c, d) + PK_SS_ODD8(c, d);
    const pk_v8f abcd = PK_SS_EVEN8(ab, cd) + PK_SS_ODD8(ab, cd);
    for (int k = 0; k < 4; k++) out[k] = abcd[k] + abcd[k + 4];
}
static inline void pk_sums4_d(pk_v4d a, pk_v4d b, pk_v4d c, pk_v4d d, double out[4]) {
    const pk_v4d ab = PK_SS_EVEN4(a, b) + PK_SS_ODD4(a, b);
    const pk_v4d cd = PK_SS_EVEN4(c, d) + PK_SS_ODD4(c, d);
    out[0] = ab[0] + ab[2];
    out[1] = ab[1] + ab[3];
    out[2] = cd[0] + cd[2];
    out[3] = cd[1] + cd[3];
}

/* SFX: f or d; T: the element type; V: its 256-bit vector; L: lanes.
   PK_SS_TILE:            one 5 × 2 tile, ten accumulators of L lanes in registers, their lane
                          sums four at a time (pk_sums4).
   pk_dual_responses_SFX: (the AVX2 build where the CPU has it, else the baseline one)
                          Z (n × B, row stride ldz) = Z0[:, idx] + C · G[idx]ᵀ (Z0, C and G with
                          row stride ldp ≥ P, best a whole number of cache lines).  The last
                          n mod 5 rows take a tile of that many rows; at an odd B the last tile
                          repeats its column and drops it.  A tile's shape never changes how an
                          element is summed, so every element is computed the same way.
   pk_dual_mix_SFX:       Y (n × B, compact) = F · Z, Z's row stride ldz a multiple of L (its
                          columns B..ldz − 1 finite, e.g. 0): four rows of Y at a time, L columns
                          a vector, so each Z vector loaded serves four rows. */
#define PK_SS_TILE(T, SFX, V, L, NAME, ATTR, PIN)                                                  \
static inline __attribute__((always_inline)) ATTR void NAME(                                       \
        const T *const a[PK_SS_ROWS], const T *const b[PK_SS_COLS], ptrdiff_t P,                   \
        T out[PK_SS_ROWS * PK_SS_COLS], const int R) {                                             \
    V c[PK_SS_ROWS * PK_SS_COLS];                                                                  \
    for (int k = 0; k < R * PK_SS_COLS; k++) c[k] = (V){0};                                        \
    const ptrdiff_t PL = P / L * L;                                                                \
    for (ptrdiff_t p = 0; p < PL; p += L) {                                                        \
        V x[PK_SS_COLS], w;                                                                        \
        for (int j = 0; j < PK_SS_COLS; j++) memcpy(&x[j], b[j] + p, sizeof(V));                   \
        for (int i = 0; i < R; i++) {                                                              \
            memcpy(&w, a[i] + p, sizeof(V));                                                       \
            PIN(w);                                                                                \
            for (int j = 0; j < PK_SS_COLS; j++) c[i * PK_SS_COLS + j] += w * x[j];                \
        }                                                                                          \
    }                                                                                              \
    const int K = R * PK_SS_COLS;                                                                  \
    for (int k = 0; k < K; k += 4) {                                                               \
        T s4[4];                                                                                   \
        pk_sums4_##SFX(c[k], c[k + 1 < K ? k + 1 : K - 1], c[k + 2 < K ? k + 2 : K - 1],           \
                       c[k + 3 < K ? k + 3 : K - 1], s4);                                          \
        for (int q = 0; q < 4 && k + q < K; q++) out[k + q] = s4[q];                               \
    }                                                                                              \
    if (PL < P)                                                                                    \
        for (int i = 0; i < R; i++)                                                                \
            for (int j = 0; j < PK_SS_COLS; j++)                                                   \
                for (ptrdiff_t p = PL; p < P; p++) out[i * PK_SS_COLS + j] += a[i][p] * b[j][p];   \
}

#define PK_SS_RESPONSES(T, NAME, TILE, ATTR)                                                       \
static ATTR void NAME(const T *C, ptrdiff_t n, ptrdiff_t P, ptrdiff_t ldp, const T *G,            \
                      const int *idx, ptrdiff_t B, const T *Z0, T *Z, ptrdiff_t ldz) {             \
    T out[PK_SS_ROWS * PK_SS_COLS];                                                                \
    const T *a[PK_SS_ROWS], *b[PK_SS_COLS];                                                        \
    for (ptrdiff_t j = 0; j < B; j += PK_SS_COLS) {                                                \
        for (int jj = 0; jj < PK_SS_COLS; jj++)                                                    \
            b[jj] = G + (ptrdiff_t)idx[j + jj < B ? j + jj : B - 1] * ldp;                         \
        for (ptrdiff_t i = 0; i < n; i += PK_SS_ROWS) {                                            \
            const int rows = n - i < PK_SS_ROWS ? (int)(n - i) : PK_SS_ROWS;                       \
            for (int ii = 0; ii < rows; ii++) a[ii] = C + (i + ii) * ldp;                          \
            switch (rows) { /* each a copy of the tile for that many rows */                      \
                case 1: TILE(a, b, P, out, 1); break;                                              \
                case 2: TILE(a, b, P, out, 2); break;                                              \
                case 3: TILE(a, b, P, out, 3); break;                                              \
                case 4: TILE(a, b, P, out, 4); break;                                              \
                default: TILE(a, b, P, out, PK_SS_ROWS);                                           \
            }                                                                                      \
            for (int ii = 0; ii < rows; ii++)                                                      \
                for (int jj = 0; jj < PK_SS_COLS && j + jj < B; jj++)                              \
                    Z[(i + ii) * ldz + j + jj] = Z0[(i + ii) * ldp + idx[j + jj]]                  \
                                                 + out[ii * PK_SS_COLS + jj];                      \
        }                                                                                          \
    }                                                                                              \
}

#define PK_SS_MIX(T, SFX, V, L)                                                                    \
PK_SS_CLONES void pk_dual_mix_##SFX(const T *F, const T *Z, ptrdiff_t n, ptrdiff_t ldz,           \
                                    ptrdiff_t B, T *Y) {                                           \
    for (ptrdiff_t i = 0; i < n; i += 4) {                                                         \
        const int rows = n - i < 4 ? (int)(n - i) : 4;                                             \
        const T *f[4];                                                                             \
        for (int r = 0; r < 4; r++) f[r] = F + (i + (r < rows ? r : rows - 1)) * n;                \
        for (ptrdiff_t j = 0; j < B; j += L) {                                                     \
            V y0 = {0}, y1 = {0}, y2 = {0}, y3 = {0}, z;                                           \
            for (ptrdiff_t k = 0; k < n; k++) {                                                    \
                memcpy(&z, Z + k * ldz + j, sizeof(V));                                            \
                y0 += f[0][k] * z;                                                                 \
                y1 += f[1][k] * z;                                                                 \
                y2 += f[2][k] * z;                                                                 \
                y3 += f[3][k] * z;                                                                 \
            }                                                                                      \
            const V y[4] = {y0, y1, y2, y3};                                                       \
            const size_t bytes = (size_t)(B - j < L ? B - j : L) * sizeof(T);                      \
            for (int r = 0; r < rows; r++) memcpy(Y + (i + r) * B + j, &y[r], bytes);              \
        }                                                                                          \
    }                                                                                              \
}

#define PK_SS_DEFINE(T, SFX, V, L)                                                                  \
PK_SS_TILE(T, SFX, V, L, pk_dual_tile_##SFX, , PK_SS_NO_PIN)                                        \
PK_SS_RESPONSES(T, pk_dual_responses_##SFX##_base, pk_dual_tile_##SFX, )                           \
PK_SS_MIX(T, SFX, V, L)

PK_SS_DEFINE(float, f, pk_v8f, 8)
PK_SS_DEFINE(double, d, pk_v4d, 4)

#ifdef PK_SS_X86
PK_SS_TILE(float, f, pk_v8f, 8, pk_dual_tile_f_v3, PK_SS_V3, PK_SS_PIN)
PK_SS_RESPONSES(float, pk_dual_responses_f_v3, pk_dual_tile_f_v3, PK_SS_V3)
PK_SS_TILE(double, d, pk_v4d, 4, pk_dual_tile_d_v3, PK_SS_V3, PK_SS_PIN)
PK_SS_RESPONSES(double, pk_dual_responses_d_v3, pk_dual_tile_d_v3, PK_SS_V3)
#endif

#ifdef PK_SS_X86
static inline int pk_ss_v3(void) {  /* three bit tests of libgcc's CPU model: ~1 ns a step */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
}
#define PK_SS_PICK(SFX) (pk_ss_v3() ? pk_dual_responses_##SFX##_v3 : pk_dual_responses_##SFX##_base)
#else
#define PK_SS_PICK(SFX) pk_dual_responses_##SFX##_base
#endif

#define PK_SS_DISPATCH(T, SFX)                                                                      \
static void pk_dual_responses_##SFX(const T *C, ptrdiff_t n, ptrdiff_t P, ptrdiff_t ldp,           \
                                    const T *G, const int *idx, ptrdiff_t B, const T *Z0, T *Z,     \
                                    ptrdiff_t ldz) {                                                \
    PK_SS_PICK(SFX)(C, n, P, ldp, G, idx, B, Z0, Z, ldz);                                           \
}
PK_SS_DISPATCH(float, f)
PK_SS_DISPATCH(double, d)

#endif
