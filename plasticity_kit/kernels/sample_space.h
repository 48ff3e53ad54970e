/* The products of a BCM step in the span of the samples (bcm.pyx, dual_steps), in double:

       Z[i, j] = Σ_p C[i, p] · G[idx_j, p]       (n × B: the batch's responses, C n × P, G P × P)
       Y[i, j] = Σ_k F[i, k] · Z[k, j]           (n × B: the lateral interactions F = (I − L)⁻¹)

   Every Z[i, j] is summed the same way wherever it lies in a tile: p ≡ l (mod 4) into lane l in
   increasing p, the lanes combined as (l₀ + l₁) + (l₂ + l₃), then the last P mod 4 terms in
   order; Y[i, j] over k in increasing order.  So a network's results depend on its own numbers
   only — never on how many replicas are computed beside it, nor on the thread — and the tiles
   (4 rows × 3 batch columns in registers, G's rows read in place, one tile shape) are free to follow the shape.
   A BLAS call on these small shapes (n ≈ 25, B = 10..100, P = 400) spent more time packing its
   operands than multiplying them, and its blocking could depend on the shape.

   Compiled twice on x86-64 (AVX2 + FMA, and the baseline), the loader picking the clone the CPU
   runs; both clones sum in the order above (FMA rounds a product and its sum once, so the two
   clones can differ in the last bit, as two BLAS builds do). */
#ifndef PK_SAMPLE_SPACE_H
#define PK_SAMPLE_SPACE_H
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define PK_SS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#ifndef PK_SS_CLONES
#define PK_SS_CLONES
#endif

typedef double pk_v4d __attribute__((vector_size(32)));

#define PK_LOAD4(v, p) memcpy(&(v), (p), sizeof(pk_v4d)) /* unaligned */

/* One 4 × 3 tile: Z[i][j] = Σ_p a_i[p]·b_j[p] for four rows a_i of C and three rows b_j of G,
   twelve accumulators of 4 lanes held in registers. */
static inline void pk_dual_tile(const double *a0, const double *a1, const double *a2, const double *a3,
                                const double *b0, const double *b1, const double *b2, ptrdiff_t P,
                                double out[4][3]) {
    const pk_v4d zero = {0, 0, 0, 0};
    pk_v4d c00 = zero, c01 = zero, c02 = zero, c10 = zero, c11 = zero, c12 = zero;
    pk_v4d c20 = zero, c21 = zero, c22 = zero, c30 = zero, c31 = zero, c32 = zero;
    const ptrdiff_t P4 = P / 4 * 4;
    for (ptrdiff_t p = 0; p < P4; p += 4) {
        pk_v4d x0, x1, x2, a;
        PK_LOAD4(x0, b0 + p);
        PK_LOAD4(x1, b1 + p);
        PK_LOAD4(x2, b2 + p);
        PK_LOAD4(a, a0 + p);
        c00 += a * x0; c01 += a * x1; c02 += a * x2;
        PK_LOAD4(a, a1 + p);
        c10 += a * x0; c11 += a * x1; c12 += a * x2;
        PK_LOAD4(a, a2 + p);
        c20 += a * x0; c21 += a * x1; c22 += a * x2;
        PK_LOAD4(a, a3 + p);
        c30 += a * x0; c31 += a * x1; c32 += a * x2;
    }
    const pk_v4d acc[4][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32}};
    const double *rows_a[4] = {a0, a1, a2, a3}, *rows_b[3] = {b0, b1, b2};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            double s = (acc[i][j][0] + acc[i][j][1]) + (acc[i][j][2] + acc[i][j][3]);
            for (ptrdiff_t p = P4; p < P; p++)
                s += rows_a[i][p] * rows_b[j][p];
            out[i][j] = s;
        }
}

/* Z (n × B) = C · G[idx]ᵀ.  At the edges (n mod 4 rows, B mod 3 columns) the tile repeats the
   last row or column and drops those results, so every element is computed the same way. */
PK_SS_CLONES void pk_dual_responses(const double *C, ptrdiff_t n, ptrdiff_t P, const double *G,
                                    const int *idx, ptrdiff_t B, double *Z) {
    double out[4][3];
    const double *a[4], *b[3];
    for (ptrdiff_t j = 0; j < B; j += 3) {
        for (int jj = 0; jj < 3; jj++)
            b[jj] = G + (ptrdiff_t)idx[j + jj < B ? j + jj : B - 1] * P;
        for (ptrdiff_t i = 0; i < n; i += 4) {
            for (int ii = 0; ii < 4; ii++)
                a[ii] = C + (i + ii < n ? i + ii : n - 1) * P;
            pk_dual_tile(a[0], a[1], a[2], a[3], b[0], b[1], b[2], P, out);
            for (int ii = 0; ii < 4 && i + ii < n; ii++)
                for (int jj = 0; jj < 3 && j + jj < B; jj++)
                    Z[(i + ii) * B + j + jj] = out[ii][jj];
        }
    }
}

/* Y (n × B) = F · Z, F (n × n) in float or double, each Y[i, j] summed over k in order: four
   rows of Y at a time, four columns a vector, so each Z vector loaded serves four rows. */
#define PK_DUAL_MIX(name, T)                                                                     \
PK_SS_CLONES void name(const T *F, const double *Z, ptrdiff_t n, ptrdiff_t B, double *Y) {      \
    const ptrdiff_t B4 = B / 4 * 4;                                                              \
    for (ptrdiff_t i = 0; i < n; i += 4) {                                                       \
        const int rows = n - i < 4 ? (int)(n - i) : 4;                                           \
        const T *f[4];                                                                           \
        for (int r = 0; r < 4; r++) f[r] = F + (i + (r < rows ? r : rows - 1)) * n;              \
        for (ptrdiff_t j = 0; j < B4; j += 4) {                                                  \
            const pk_v4d zero = {0, 0, 0, 0};                                                    \
            pk_v4d y0 = zero, y1 = zero, y2 = zero, y3 = zero, z;                                \
            for (ptrdiff_t k = 0; k < n; k++) {                                                  \
                PK_LOAD4(z, Z + k * B + j);                                                      \
                y0 += (double)f[0][k] * z;                                                       \
                y1 += (double)f[1][k] * z;                                                       \
                y2 += (double)f[2][k] * z;                                                       \
                y3 += (double)f[3][k] * z;                                                       \
            }                                                                                    \
            const pk_v4d y[4] = {y0, y1, y2, y3};                                                \
            for (int r = 0; r < rows; r++) memcpy(Y + (i + r) * B + j, &y[r], sizeof(pk_v4d));  \
        }                                                                                        \
        for (int r = 0; r < rows; r++)                                                           \
            for (ptrdiff_t j = B4; j < B; j++) {                                                 \
                double v = 0;                                                                    \
                for (ptrdiff_t k = 0; k < n; k++) v += (double)f[r][k] * Z[k * B + j];           \
                Y[(i + r) * B + j] = v;                                                          \
            }                                                                                    \
    }                                                                                            \
}
PK_DUAL_MIX(pk_dual_mix_f, float)
PK_DUAL_MIX(pk_dual_mix_d, double)

#endif
