/* One OpenMP team for all the steps of a kernel call (see plasticity_kit/threads.py).

   pk_team runs `steps` steps; each step runs `phases` phases in order; phase k calls
   tasks[k](ctx, step, item) for item = 0 .. counts[k] - 1.  The items of a phase are shared out
   among the `nt` threads (dynamically: a thread slowed down by other work on the machine takes
   fewer), with a barrier between phases; counts[k] is read when phase k starts, so a phase may
   set the count of a later one.  The threads wait passively (OMP_WAIT_POLICY=PASSIVE, set by the
   package).  Which thread runs an item never matters to the result: items write disjoint
   memory and each sum is computed inside one item, so any nt gives the same bits.  nt <= 1
   runs the same items in order on the calling thread, with no team. */
#ifndef PK_TEAM_H
#define PK_TEAM_H
#include <stddef.h>

typedef void (*pk_task)(void *ctx, ptrdiff_t step, ptrdiff_t item);

/* The number of blocks a dimension of `size` is cut into: the largest power of two up to
   PK_MAX_BLOCKS that leaves `least` per block.  A function of the shape only, never of the
   number of threads, so the block boundaries (and every sum inside a block) are the same
   whatever the team. */
#define PK_MAX_BLOCKS 16
static inline ptrdiff_t pk_blocks(ptrdiff_t size, ptrdiff_t least) {
    ptrdiff_t k = PK_MAX_BLOCKS;
    while (k > 1 && size < k * least)
        k /= 2;
    return k;
}

static void pk_team(int nt, ptrdiff_t steps, int phases, const pk_task *tasks,
                    const ptrdiff_t *counts, void *ctx) {
    if (nt <= 1) {
        for (ptrdiff_t s = 0; s < steps; s++)
            for (int k = 0; k < phases; k++)
                for (ptrdiff_t i = 0; i < counts[k]; i++)
                    tasks[k](ctx, s, i);
        return;
    }
    #pragma omp parallel num_threads(nt)
    for (ptrdiff_t s = 0; s < steps; s++) {
        for (int k = 0; k < phases; k++) {
            ptrdiff_t count = counts[k];
            #pragma omp for schedule(dynamic, 1)
            for (ptrdiff_t i = 0; i < count; i++)
                tasks[k](ctx, s, i);
        }
    }
}
#endif
