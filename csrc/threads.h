/* threads.h: how many threads a call may use, the one contiguous split of
 * work over them, and the per-model thread-count tuner (internal).
 *
 * The setting (vf_set_num_threads) is process-wide. A call runs on fewer
 * threads than the setting when
 *   - it is too small to repay a team (work < min_work),
 *   - it already runs inside a parallel region (no nested teams),
 *   - its thread inherited a started OpenMP pool across fork(): libgomp's
 *     workers do not exist in the child, and a team of more than one thread
 *     would wait for them forever; that thread runs serially (any thread the
 *     child starts gets a fresh pool),
 *   - the calling thread has a cap (vf_threads_cap), set by the tuner.
 * Every split is a pure function of (n, nt) over whole items, so results do
 * not depend on the thread count. */
#ifndef VF_THREADS_H
#define VF_THREADS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Team size for a call of `work` units that pays for threads from
 * `min_work` units on (min_work 0: any size). */
int vf_threads_for(int64_t work, int64_t min_work);

/* Makes OpenMP's own count for the calling thread (omp_get_max_threads,
 * read by the GEMM driver) equal to vf_threads_for(1, 0). */
void vf_threads_sync(void);

/* Caps the calling thread at `cap` threads (0: no cap); returns the old cap. */
int vf_threads_cap(int cap);

/* Processes forked since load: bumped in every child, so that objects with
 * locks can re-create them (a lock held by a parent's thread at fork time
 * would stay held forever in the child). */
unsigned vf_fork_generation(void);

/* A readers-writer lock that survives fork(): waiting writers go first (so
 * a stream of readers cannot starve training), and a child process
 * re-creates it on first use (a parent's thread may have held it). */
typedef struct vf_rwlock {
    pthread_rwlock_t rw;
    atomic_uint generation; /* vf_fork_generation() when (re)created */
} vf_rwlock;
int vf_rwlock_init(vf_rwlock *l);
void vf_rwlock_destroy(vf_rwlock *l);
void vf_rwlock_lock(vf_rwlock *l, int write);
void vf_rwlock_unlock(vf_rwlock *l);

/* fn(ctx, lo, hi) for nt contiguous ranges [n·t/nt, n·(t+1)/nt) of [0, n),
 * one per thread; returns the sum of the results (integers: order-free). */
typedef int64_t (*vf_range_fn)(const void *ctx, int64_t lo, int64_t hi);
int64_t vf_split_range(int64_t n, int nt, vf_range_fn fn, const void *ctx);

/* Chooses, step after step, between one thread and the full setting by
 * measured wall time per row. Results are bit-identical either way, so the
 * choice only affects speed. The current choice is timed on every step (a
 * moving average); the other one is re-tried once its expected extra cost
 * has become small next to the time run since it was last tried (<= 2%),
 * so a machine that gets busy or idle is followed within about a second. */
typedef struct vf_thread_tuner {
    double per_row[2];   /* seconds per row with one / all threads; 0 unknown */
    double since_try;    /* seconds run since the other choice was tried */
    int wide;            /* current choice: 1 = all threads */
    int running;         /* choice timed by the open step */
    int old_cap;
    double t0;
} vf_thread_tuner;

void vf_tuner_begin(vf_thread_tuner *t, int64_t rows); /* caps this thread */
void vf_tuner_end(vf_thread_tuner *t, int64_t rows);   /* times the step, uncaps */

#endif
