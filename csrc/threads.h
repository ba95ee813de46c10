/* threads.h: how many threads a call may use, the thread team that runs
 * parallel loops (csrc/team.c), and the per-model thread-count tuner
 * (internal).
 *
 * The setting (vf_set_num_threads) is process-wide. A call runs on fewer
 * threads than the setting when
 *   - it is too small to repay a team (work < min_work),
 *   - it already runs inside a parallel region, or inside a unit of the
 *     team while the team's one nested job is taken or is this unit's (a
 *     loop inside a unit is the nested job, which idle workers help with),
 *   - its thread inherited a started OpenMP pool across fork() (the
 *     likelihood kernels' loop): libgomp's workers do not exist in the
 *     child, and a team of more than one thread would wait for them
 *     forever; that thread runs serially (any thread the child starts gets
 *     a fresh pool),
 *   - the calling thread has a cap (vf_threads_cap), set by the tuner.
 * Work is cut into whole items (rows, blocks, panels, tiles) computed the
 * same way whoever runs them, so results depend neither on the thread
 * count nor on the schedule. */
#ifndef VF_THREADS_H
#define VF_THREADS_H

#include <stdatomic.h>
#include <stdint.h>

#include "platform.h"

/* Team size for a call of `work` units that pays for threads from
 * `min_work` units on (min_work 0: any size). */
int vf_threads_for(int64_t work, int64_t min_work);

/* Makes OpenMP's own count for the calling thread (omp_get_max_threads,
 * read by the OpenMP loops left: csrc/likelihood.c) equal to
 * vf_threads_for(1, 0). */
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
    vf_os_rwlock rw;
    atomic_uint generation; /* vf_fork_generation() when (re)created */
} vf_rwlock;
int vf_rwlock_init(vf_rwlock *l);
void vf_rwlock_destroy(vf_rwlock *l);
void vf_rwlock_lock(vf_rwlock *l, int write);
void vf_rwlock_unlock(vf_rwlock *l);

/* fn(ctx, lo, hi) over ranges [lo, hi) covering [0, n) once, on up to nt
 * threads; returns the sum of the results (integers: order-free). Which
 * thread runs a range, and where ranges start, may differ from call to
 * call: fn must compute each item the same way whatever range holds it. */
typedef int64_t (*vf_range_fn)(const void *ctx, int64_t lo, int64_t hi);
int64_t vf_split_range(int64_t n, int nt, vf_range_fn fn, const void *ctx);

/* The thread team (csrc/team.c): fn over [0, n) in units of `grain` items
 * (the last one shorter), claimed one at a time by the calling thread and
 * up to nt - 1 pool workers; returns when every unit is done, with the sum
 * of fn's results. The caller always works, so a worker that is asleep or
 * descheduled delays the call by at most one unit. Runs fn(ctx, 0, n) on
 * the caller alone when nt <= 1, when there is one unit, when another
 * call owns the pool (one job at a time), for a while after a loop the
 * team lost (the caller waited longer than it worked), or after an idle
 * gap until the caller has been busy for 1 ms (csrc/team.c). */
int64_t vf_team_for(int nt, int64_t n, int64_t grain, vf_range_fn fn, const void *ctx);
/* 1 where a loop would run on its thread alone: inside a unit of the
 * nested job, or inside a unit while the nested job is taken (a loop
 * called from inside a unit is published as the pool's nested job, which
 * idle workers help with: csrc/team.c). */
int vf_team_alone_here(void);
/* vf_team_hold(1) ... vf_team_hold(0) around a call made of many loops
 * with short serial parts between them (a training call's steps): idle
 * workers spin longer before they sleep meanwhile (csrc/team.c). */
void vf_team_hold(int on);
/* Called in the child of fork(): the pool's workers were not copied. */
void vf_team_after_fork(void);
/* Running totals of the team into out[0..n-1] (csrc/team.c, enum ST_*:
 * jobs, helped jobs, work and join ns, lost jobs, back-offs, wakes, wake
 * ns, woken, loops run alone while the workers slept, nested jobs, helped
 * nested jobs), for benchmarks and tests. */
void vf_team_stats(int64_t *out, int n);

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

/* Tuners for calls of any size (inference: encode, decode, elbo; the
 * public products), one per size class of work, since per-unit times of
 * small and large calls do not compare. Work is counted in units of 2^16
 * multiply-adds. A call under VF_TUNE_MIN_UNITS (about a millisecond on
 * one thread) is not tuned: one wake-up of a sleeping worker would swamp
 * its timing, and the team's own deferral (team.c) already keeps short
 * calls off sleeping workers. One call at a time is timed (a try-lock): a
 * call made meanwhile, from another thread, runs on the setting untimed.
 * Zero-initialised = fresh. A class's first call runs on the setting
 * untimed (it may start threads, fault in AMX state, fill caches: a cold
 * timing would bench the team for hundreds of calls), its second too,
 * timed, and its third tries one thread. */
#define VF_TUNE_MIN_UNITS 1024 /* 64M multiply-adds */
#define VF_TUNER_CLASSES 6     /* units: 1K-4K, 4K-16K, ..., 1M and more */
typedef struct vf_sized_tuner {
    atomic_int busy;
    vf_thread_tuner by_size[VF_TUNER_CLASSES];
    int warm[VF_TUNER_CLASSES]; /* the class's first call (untimed) has run */
} vf_sized_tuner;

/* Returns the class timed for this call (pass it to vf_sized_tuner_end),
 * or -1 if the call runs untimed on the setting. */
int vf_sized_tuner_begin(vf_sized_tuner *t, int64_t units);
void vf_sized_tuner_end(vf_sized_tuner *t, int cls, int64_t units);
/* Units of `macs` multiply-adds (saturating). */
int64_t vf_tune_units(double macs);

#endif
