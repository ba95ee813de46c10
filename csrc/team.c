/* team.c: vaefast's own thread team (see threads.h, docs/threads.md).
 *
 * One process-wide pool of worker threads, started lazily. A parallel loop
 * (vf_team_for) publishes one job, a range of units; the calling thread
 * and the workers claim units one at a time from a shared counter and the
 * call returns once every unit is done. So:
 *   - the caller works too: a worker that is still asleep, or descheduled
 *     because another library's threads hold its core, costs at most the
 *     unit it holds, never a fixed share of the loop; a worker that never
 *     turns up costs nothing (the caller does all units);
 *   - idle workers spin briefly (VF_TEAM_SPIN_NS) watching for the next
 *     job, then sleep on a condition variable, so a quiet process leaves
 *     its neighbours their cores within tens of microseconds;
 *   - a loop in which the caller waited longer than it worked lost by having
 *     a team (a worker was preempted holding a unit): later loops run on
 *     the caller alone for a while (VF_BACKOFF_*), then the team is retried.
 * Units are fixed by the caller (rows, panels, tiles): who computes one
 * never changes its bits.
 *
 * The job lives in the pool, not on the caller's stack, so a worker that
 * wakes up late can never touch a finished call's data: every claim is a
 * compare-and-swap of one word holding the job's generation, its unit
 * count and the next unit, so a stale worker's claim fails. A worker
 * reads the job's function and context before its claim; a claim that
 * succeeds proves the job was still open, i.e. those fields were its own.
 *
 * One caller at a time owns the pool; a second caller (another Python
 * thread) runs its loop alone, as does a call made inside an OpenMP
 * region or from a forked child before its pool is rebuilt. */
#include "threads.h"

#include <stdatomic.h>
#include <stdint.h>

#define VF_TEAM_SPIN_NS 50000 /* idle spin before sleeping: 50 µs */
/* A call whose caller waited for others' units longer than it worked
 * (plus a spin) lost by having a team: a worker was preempted holding a
 * unit. Later calls then run alone for a while, 1 ms at first, doubling
 * (to 128 ms) while team calls keep losing, back to 1 ms when one wins. */
#define VF_BACKOFF_MIN_NS 1000000
#define VF_BACKOFF_MAX_NS 128000000
#define VF_TEAM_MAX 64        /* workers at most */

/* The claim word: generation (16 bits) | units (24 bits) | next (24 bits). */
#define VF_FIELD 24
#define VF_MASK ((UINT64_C(1) << VF_FIELD) - 1)
#define VF_MAX_UNITS ((int64_t)VF_MASK)

typedef struct vf_pool {
    _Atomic uint64_t claim;
    atomic_uint gen;                 /* bumped per job; workers watch it */
    atomic_llong done, sum;          /* units done, sum of their results */
    _Atomic(vf_range_fn) fn;
    _Atomic(const void *) ctx;
    atomic_llong n, grain;           /* items, items per unit */
    atomic_int nt;                   /* team size of the job */
    atomic_int owned;                /* a caller owns the pool */
    atomic_int sleepers, owner_waits;
    atomic_int started;              /* workers running */
    atomic_llong alone_until;        /* vf_os_now_ns() before which calls run alone */
    int64_t backoff;                 /* next back-off (the owner's) */
    vf_os_mutex lock;                /* sleeping, starting workers */
    vf_os_cond wake, finished;
} vf_pool;

static vf_pool pool = {
    .lock = VF_OS_MUTEX_INIT,
    .wake = VF_OS_COND_INIT,
    .finished = VF_OS_COND_INIT,
};

static uint64_t claim_word(unsigned gen, int64_t units, int64_t next)
{
    return ((uint64_t)(gen & 0xFFFF) << (2 * VF_FIELD)) | ((uint64_t)units << VF_FIELD) |
           (uint64_t)next;
}

static VF_OS_THREAD_LOCAL int inside; /* running a unit */

int vf_team_inside(void)
{
    return inside;
}

/* Claims and runs units of job `gen` until none is left. */
static void work(unsigned gen)
{
    const vf_range_fn fn = atomic_load_explicit(&pool.fn, memory_order_relaxed);
    const void *ctx = atomic_load_explicit(&pool.ctx, memory_order_relaxed);
    const int64_t n = atomic_load_explicit(&pool.n, memory_order_relaxed);
    const int64_t grain = atomic_load_explicit(&pool.grain, memory_order_relaxed);
    uint64_t w = atomic_load_explicit(&pool.claim, memory_order_acquire);
    for (;;) {
        const int64_t units = (int64_t)((w >> VF_FIELD) & VF_MASK), next = (int64_t)(w & VF_MASK);
        if ((w >> (2 * VF_FIELD)) != (gen & 0xFFFF) || next >= units)
            return; /* another job, or nothing left */
        if (!atomic_compare_exchange_weak_explicit(&pool.claim, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        const int64_t lo = next * grain, hi = lo + grain < n ? lo + grain : n;
        inside = 1;
        const int64_t r = fn(ctx, lo, hi);
        inside = 0;
        if (r)
            atomic_fetch_add_explicit(&pool.sum, r, memory_order_relaxed);
        if (atomic_fetch_add(&pool.done, 1) + 1 == units && atomic_load(&pool.owner_waits)) {
            vf_os_mutex_lock(&pool.lock);
            vf_os_cond_broadcast(&pool.finished);
            vf_os_mutex_unlock(&pool.lock);
        }
        w = atomic_load_explicit(&pool.claim, memory_order_acquire);
    }
}

static void *worker_main(void *arg)
{
    const int id = (int)(intptr_t)arg; /* 1.. (the caller is 0) */
    unsigned seen = atomic_load(&pool.gen);
    for (;;) {
        /* spin a little, then sleep until the generation moves on */
        const int64_t until = vf_os_now_ns() + VF_TEAM_SPIN_NS;
        unsigned g;
        for (int i = 0; (g = atomic_load(&pool.gen)) == seen; ++i) {
            vf_os_cpu_relax();
            if ((i & 63) == 63 && vf_os_now_ns() > until) {
                vf_os_mutex_lock(&pool.lock);
                atomic_fetch_add(&pool.sleepers, 1);
                while ((g = atomic_load(&pool.gen)) == seen)
                    vf_os_cond_wait(&pool.wake, &pool.lock);
                atomic_fetch_sub(&pool.sleepers, 1);
                vf_os_mutex_unlock(&pool.lock);
                break;
            }
        }
        seen = g;
        if (id < atomic_load_explicit(&pool.nt, memory_order_relaxed))
            work(g);
    }
    return NULL;
}

/* Makes sure workers 1..nt-1 run; returns how many do. */
static int start_workers(int nt)
{
    if (nt - 1 > VF_TEAM_MAX)
        nt = VF_TEAM_MAX + 1;
    int have = atomic_load(&pool.started);
    if (have >= nt - 1)
        return have;
    vf_os_mutex_lock(&pool.lock);
    while (pool.started < nt - 1) {
        if (vf_os_thread_start(worker_main, (void *)(intptr_t)(pool.started + 1)) != 0)
            break; /* run with the workers there are */
        atomic_fetch_add(&pool.started, 1);
    }
    have = atomic_load(&pool.started);
    vf_os_mutex_unlock(&pool.lock);
    return have;
}

int64_t vf_team_for(int nt, int64_t n, int64_t grain, vf_range_fn fn, const void *ctx)
{
    if (n <= 0)
        return 0;
    if (grain < 1)
        grain = 1;
    if ((n + grain - 1) / grain > VF_MAX_UNITS)
        grain = (n + VF_MAX_UNITS - 1) / VF_MAX_UNITS;
    const int64_t units = (n + grain - 1) / grain;
    int free_ = 0;
    if (nt <= 1 || units <= 1 || vf_os_now_ns() < atomic_load(&pool.alone_until) ||
        !atomic_compare_exchange_strong(&pool.owned, &free_, 1))
        return fn(ctx, 0, n); /* alone: one call over everything */
    const int workers = start_workers(nt);
    if (workers == 0) {
        atomic_store(&pool.owned, 0);
        return fn(ctx, 0, n);
    }
    /* the job: fields first, then the claim word, then the generation */
    atomic_store_explicit(&pool.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&pool.n, n, memory_order_relaxed);
    atomic_store_explicit(&pool.grain, grain, memory_order_relaxed);
    atomic_store_explicit(&pool.nt, nt, memory_order_relaxed);
    atomic_store(&pool.done, 0);
    atomic_store(&pool.sum, 0);
    const unsigned gen = (atomic_load(&pool.gen) + 1) & 0xFFFF;
    atomic_store(&pool.claim, claim_word(gen, units, 0));
    atomic_store(&pool.gen, gen);
    if (atomic_load(&pool.sleepers) > 0) {
        vf_os_mutex_lock(&pool.lock);
        vf_os_cond_broadcast(&pool.wake);
        vf_os_mutex_unlock(&pool.lock);
    }
    const int64_t t0 = vf_os_now_ns();
    work(gen);
    const int64_t t1 = vf_os_now_ns();
    /* the units others still hold: spin a little, then sleep */
    const int64_t until = t1 + VF_TEAM_SPIN_NS;
    for (int i = 0; atomic_load(&pool.done) < units; ++i) {
        vf_os_cpu_relax();
        if ((i & 63) == 63 && vf_os_now_ns() > until) {
            vf_os_mutex_lock(&pool.lock);
            atomic_store(&pool.owner_waits, 1);
            while (atomic_load(&pool.done) < units)
                vf_os_cond_wait(&pool.finished, &pool.lock);
            atomic_store(&pool.owner_waits, 0);
            vf_os_mutex_unlock(&pool.lock);
        }
    }
    const int64_t sum = atomic_load(&pool.sum);
    const int64_t t2 = vf_os_now_ns();
    if (t2 - t1 > (t1 - t0) + VF_TEAM_SPIN_NS) { /* the team lost: run alone a while */
        pool.backoff = pool.backoff < VF_BACKOFF_MIN_NS ? VF_BACKOFF_MIN_NS
                       : pool.backoff < VF_BACKOFF_MAX_NS ? 2 * pool.backoff
                                                          : VF_BACKOFF_MAX_NS;
        atomic_store(&pool.alone_until, t2 + pool.backoff);
    } else {
        pool.backoff = 0;
    }
    atomic_store(&pool.owned, 0);
    return sum;
}

/* In a child of fork() only the forking thread exists: the pool starts
 * over (its lock may have been held by a thread of the parent). */
void vf_team_after_fork(void)
{
    vf_os_mutex_init(&pool.lock);
    vf_os_cond_init(&pool.wake);
    vf_os_cond_init(&pool.finished);
    atomic_store(&pool.started, 0);
    atomic_store(&pool.sleepers, 0);
    atomic_store(&pool.owner_waits, 0);
    atomic_store(&pool.owned, 0);
}
