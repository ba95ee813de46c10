/* team.c: vaefast's own thread team (see threads.h, docs/threads.md).
 *
 * One process-wide pool of worker threads, started lazily. A parallel loop
 * (vf_team_for) publishes one job, a range of units cut into one home
 * range per thread (thread t's is the t-th of nt equal parts, as a static
 * split would give it); each thread claims units one at a time from its
 * home range, then from the others' in turn, and the call returns once
 * every unit is done. So:
 *   - when every thread is there, each computes its own home range: loops
 *     over the same items (packing a panel, then the tiles that read it)
 *     find the data in their own core's cache, as with a static split;
 *   - the caller works too: a worker that is still asleep, or descheduled
 *     because another library's threads hold its core, costs at most the
 *     unit it holds, never a fixed share of the loop; a worker that never
 *     turns up costs nothing (the caller does all units);
 *   - idle workers spin briefly (VF_TEAM_SPIN_NS of their own running
 *     time) watching for the next job, then sleep on a condition variable,
 *     so a quiet process leaves its neighbours their cores within tens of
 *     microseconds;
 *   - after an idle gap, loops run on the caller alone until it has been
 *     busy a while (VF_TEAM_WAKE_AFTER_NS), then the workers are woken;
 *   - a loop in which the caller waited longer than it worked lost by having
 *     a team (a worker was preempted holding a unit): later loops run on
 *     the caller alone for a while (VF_BACKOFF_*), then the team is retried;
 *   - a worker that finds itself on its caller's CPU takes no unit there:
 *     two threads on one core only take turns, and each unit it ran there
 *     took the core from the caller. It yields that CPU to the caller, and
 *     stays runnable, so that the OS can move it to an idle CPU (a sleeping
 *     thread is not moved, and a wake-up tends to put it back beside the
 *     thread that woke it); if nobody takes the CPU it yields for 100 µs,
 *     the caller is not waiting for it (asleep in a unit, or moved), and
 *     the worker runs units there after all. A worker whose spin ends
 *     still there was not moved: the other cores are taken (another
 *     pool's spinner, another process), and loops run alone for a while
 *     (VF_SHARED_*) instead of waking it there again.
 * Units are fixed by the caller (rows, panels, tiles): who computes one
 * never changes its bits.
 *
 * A loop called from inside a unit (a training step's two lanes, each a
 * chain of loops: vae_step.c) is published as the pool's nested job when
 * that is free (the first lane to start a loop takes it; the other lane's
 * loops run alone meanwhile, as fast as they can while nobody is idle).
 * Workers whose own units are done help with it from their idle spin: the
 * caller's lane, the longer one in the scVI step, gets the worker once
 * the worker's lane is done. A loop inside a nested unit, or called while
 * the nested job is taken, runs on its thread alone. The caller waiting
 * for its job's units does not help: a second slot for the worker's lane
 * and the caller helping it made the scVI step slower on two threads
 * (the worker's lane updates the weights whose gradient it computed, in
 * its own core's cache).
 *
 * The job lives in the pool, not on the caller's stack, so a worker that
 * wakes up late can never touch a finished call's data: every claim is a
 * compare-and-swap of one home range's word holding the job's generation,
 * the range's end and its next unit, so a stale worker's claim fails. A
 * worker reads the job's function and context before its claim; a claim
 * that succeeds proves the job was still open (the next job is published
 * only when every unit is done), i.e. those fields were its own.
 *
 * One caller at a time owns the pool; a second caller (another Python
 * thread) runs its loop alone, as does a call made inside an OpenMP
 * region or from a forked child before its pool is rebuilt. While two or
 * more callers are inside loops (Dask's worker threads, a thread pool of
 * the user's), each runs alone: they already keep the cores busy, and a
 * team on top would put more threads than cores on the machine. */
#include "threads.h"
#include "team_spin.h"

#include <stdatomic.h>
#include <stdint.h>

/* After an idle gap (no loop for VF_TEAM_GAP_NS: a server between
 * requests, a loop waiting on I/O) with every worker asleep, loops run on
 * the caller alone until it has been busy for VF_TEAM_WAKE_AFTER_NS, then
 * the workers are woken: a short call (a small request) never pays for a
 * wake-up, or waits for a cold worker holding a unit, and a long one
 * loses at most this much of its second thread. After a shorter pause
 * (NumPy's BLAS between two calls, Python code) the workers are woken at
 * once, as the process is busy and the wake-up is repaid. */
#define VF_TEAM_GAP_NS 2000000
#define VF_TEAM_WAKE_AFTER_NS 1000000
/* A call whose caller waited for others' units longer than it worked
 * (plus a spin) lost by having a team: a worker was preempted holding a
 * unit. Later calls then run alone for a while, 1 ms at first, doubling
 * (to 128 ms) while team calls keep losing, back to 1 ms when one wins. */
#define VF_BACKOFF_MIN_NS 1000000
#define VF_BACKOFF_MAX_NS 128000000
/* A worker whose spin ended on its caller's CPU: later loops run alone
 * for VF_SHARED_MIN_NS, doubling (to VF_SHARED_MAX_NS) while the worker
 * keeps landing there, back to the minimum when it works elsewhere. Short:
 * PyTorch's idle workers spin for about 4 ms after an op (OpenBLAS's for
 * about 0.1 s: docs/threads.md), and a back-off outlasting the neighbour
 * costs the caller its second thread; a look costs the caller about two
 * context switches. */
#define VF_SHARED_MIN_NS 1000000
#define VF_SHARED_MAX_NS 8000000
#define VF_TEAM_MAX 64        /* workers at most */

/* Counters read by vf_team_stats (bench/bench_neighbours.py --stats), each
 * a running total since the process started. */
enum {
    ST_JOBS,        /* loops run by the team */
    ST_HELPED,      /* ... of which a worker ran at least one unit */
    ST_WORK_NS,     /* caller's time running units in team loops */
    ST_JOIN_NS,     /* caller's time waiting for workers' units */
    ST_LOST,        /* team loops lost (join wait > work + spin) */
    ST_BACKOFF,     /* loops run alone because of a back-off */
    ST_WAKES,       /* broadcasts to sleeping workers */
    ST_WAKE_NS,     /* broadcast to a woken worker running, summed */
    ST_WOKEN,       /* wake-ups timed in ST_WAKE_NS */
    ST_DEFERRED,    /* loops run alone while the workers slept (VF_TEAM_WAKE_AFTER_NS) */
    ST_NESTED,      /* nested jobs (loops published from inside a unit) */
    ST_NESTED_HELPED, /* ... of which a worker ran at least one unit */
    ST_SHARED,      /* jobs a worker found itself on their publisher's CPU for */
    VF_TEAM_STATS
};

/* A home range's claim word: generation (16 bits) | end (24 bits) | next
 * (24 bits), unit indices of the whole job. */
#define VF_FIELD 24
#define VF_MASK ((UINT64_C(1) << VF_FIELD) - 1)
#define VF_MAX_UNITS ((int64_t)VF_MASK)

/* one claim word per cache line: threads claiming from their own home
 * ranges do not contend */
typedef struct vf_claim {
    _Alignas(64) _Atomic uint64_t w;
} vf_claim;

/* One published loop (the pool's job, or its nested job). */
typedef struct vf_job {
    vf_claim claim[VF_TEAM_MAX + 1]; /* home range of thread t (its publisher 0) */
    atomic_uint gen;                 /* bumped per job; workers watch it */
    atomic_llong done, sum;          /* units done, sum of their results */
    _Atomic(vf_range_fn) fn;
    _Atomic(const void *) ctx;
    atomic_llong n, grain;           /* items, items per unit */
    atomic_int nt;                   /* team size of the job */
    atomic_int owner_waits;          /* its publisher sleeps until it is done */
    atomic_llong worker_units;       /* units run by others than its publisher */
    atomic_int cpu;                  /* its publisher's CPU when published, or -1 */
} vf_job;

typedef struct vf_pool {
    vf_job job;                      /* a caller's loop */
    vf_job nested;                   /* a loop called from inside one of job's units */
    atomic_int nested_owned;         /* a unit owns the nested job */
    atomic_int owned;                /* a caller owns the pool */
    atomic_int callers;              /* threads inside vf_team_for now */
    atomic_int sleepers;
    atomic_int wake_sent;            /* a broadcast is on its way to the sleepers */
    atomic_int started;              /* workers running */
    atomic_llong alone_until;        /* vf_os_now_ns() before which calls run alone */
    int64_t backoff;                 /* next back-off (the owner's) */
    int64_t burst_start;             /* the owner's busy run, see VF_TEAM_WAKE_AFTER_NS */
    atomic_llong last_end;           /* end of the last loop that could use the team */
    atomic_llong wake_at;            /* vf_os_now_ns() of the last broadcast */
    atomic_llong owner_id;           /* the last job's caller, vf_os_thread_id */
    atomic_llong shared_backoff;     /* the next VF_SHARED_* back-off (the workers') */
    atomic_llong stats[VF_TEAM_STATS]; /* see vf_team_stats */
    vf_os_mutex lock;                /* sleeping, starting workers */
    vf_os_cond wake, finished;
} vf_pool;

static vf_pool pool = {
    .lock = VF_OS_MUTEX_INIT,
    .wake = VF_OS_COND_INIT,
    .finished = VF_OS_COND_INIT,
};

static void stat_add(int which, int64_t v)
{
    atomic_fetch_add_explicit(&pool.stats[which], v, memory_order_relaxed);
}

void vf_team_stats(int64_t *out, int n)
{
    for (int i = 0; i < n && i < VF_TEAM_STATS; ++i)
        out[i] = atomic_load_explicit(&pool.stats[i], memory_order_relaxed);
}

static uint64_t claim_word(unsigned gen, int64_t end, int64_t next)
{
    return ((uint64_t)(gen & 0xFFFF) << (2 * VF_FIELD)) | ((uint64_t)end << VF_FIELD) |
           (uint64_t)next;
}

/* 0, or running a unit of the pool's job (1) or of its nested job (2) */
static VF_OS_THREAD_LOCAL int inside;

int vf_team_alone_here(void)
{
    return inside >= 2 ||
           (inside && atomic_load_explicit(&pool.nested_owned, memory_order_relaxed));
}

/* 1 if a thread other than J's publisher runs on the CPU J was published
 * from (see VF_SHARED_MIN_NS) */
static int on_publisher_cpu(vf_job *J)
{
    const int cpu = atomic_load_explicit(&J->cpu, memory_order_relaxed);
    return cpu >= 0 && vf_os_current_cpu() == cpu;
}

/* Claims and runs units of J's job `gen` (`units` of `grain` items, n in
 * all) from home range r until it is empty (or the job is another's); 0
 * once the job is seen to be stale, -1 when a worker (me > 0) stopped
 * because it runs on the publisher's CPU (unless spare_cpu is 0). */
static int work_range(vf_job *J, unsigned gen, int r, vf_range_fn fn, const void *ctx,
                      int64_t n, int64_t grain, int64_t units, int me, int spare_cpu)
{
    _Atomic uint64_t *word = &J->claim[r].w;
    const int outer = inside, level = J == &pool.job ? 1 : 2;
    uint64_t w = atomic_load_explicit(word, memory_order_acquire);
    for (;;) {
        const int64_t end = (int64_t)((w >> VF_FIELD) & VF_MASK), next = (int64_t)(w & VF_MASK);
        if ((w >> (2 * VF_FIELD)) != (gen & 0xFFFF))
            return 0; /* another job */
        if (next >= end)
            return 1; /* this range is done */
        if (me && spare_cpu && on_publisher_cpu(J))
            return -1; /* a unit here would take the publisher's own core */
        if (!atomic_compare_exchange_weak_explicit(word, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        const int64_t lo = next * grain, hi = lo + grain < n ? lo + grain : n;
        inside = level;
        const int64_t res = fn(ctx, lo, hi);
        inside = outer;
        if (res)
            atomic_fetch_add_explicit(&J->sum, res, memory_order_relaxed);
        if (me)
            atomic_fetch_add_explicit(&J->worker_units, 1, memory_order_relaxed);
        if (atomic_fetch_add(&J->done, 1) + 1 == units && atomic_load(&J->owner_waits)) {
            vf_os_mutex_lock(&pool.lock);
            vf_os_cond_broadcast(&pool.finished);
            vf_os_mutex_unlock(&pool.lock);
        }
        w = atomic_load_explicit(word, memory_order_acquire);
    }
}

/* Thread `me` runs units of J's job `gen`: its home range first, then the
 * others' (the next thread's first), until none is left; returns -1 if a
 * worker stopped because it runs on the publisher's CPU (spare_cpu: 1,
 * the rule; 0, run there all the same), else 0. */
static int work(vf_job *J, unsigned gen, int me, int spare_cpu)
{
    const vf_range_fn fn = atomic_load_explicit(&J->fn, memory_order_relaxed);
    const void *ctx = atomic_load_explicit(&J->ctx, memory_order_relaxed);
    const int64_t n = atomic_load_explicit(&J->n, memory_order_relaxed);
    const int64_t grain = atomic_load_explicit(&J->grain, memory_order_relaxed);
    const int nt = atomic_load_explicit(&J->nt, memory_order_relaxed);
    if (me >= nt)
        return 0; /* not in this job's team (team_for clamps nt to VF_TEAM_MAX + 1) */
    const int64_t units = (n + grain - 1) / grain;
    for (int k = 0; k < nt; ++k) {
        const int r = work_range(J, gen, (me + k) % nt, fn, ctx, n, grain, units, me, spare_cpu);
        if (r <= 0)
            return r;
    }
    return 0;
}

/* The back-off after `b` (0: none yet): lo at first, then doubling up to hi */
static int64_t next_backoff(int64_t b, int64_t lo, int64_t hi)
{
    return b < lo ? lo : b < hi ? 2 * b : hi;
}

/* A worker's spin ended on its caller's CPU: loops run alone for a while
 * (VF_SHARED_*), so they stop waking a worker that lands there. */
static void stuck_on_caller_cpu(void)
{
    /* two workers at once only blur the doubling */
    const int64_t b = next_backoff(atomic_load_explicit(&pool.shared_backoff,
                                                        memory_order_relaxed),
                                   VF_SHARED_MIN_NS, VF_SHARED_MAX_NS);
    atomic_store_explicit(&pool.shared_backoff, b, memory_order_relaxed);
    atomic_store(&pool.alone_until, vf_os_now_ns() + b);
}

/* Worker `me` runs units of J's job `gen` (work); while it is on the
 * publisher's CPU it takes none and yields that CPU instead, until the
 * job is done or the OS has moved the worker, or nobody else has wanted
 * that CPU for a while (the publisher sleeps, or the OS moved it): then
 * the worker runs the units left there. Returns 1 if it yielded. */
static int work_as_worker(vf_job *J, unsigned gen, int me)
{
    if (work(J, gen, me, 1) == 0)
        return 0;
    stat_add(ST_SHARED, 1);
    vf_yield_watch watch;
    vf_yield_watch_begin(&watch);
    for (;;) {
        if (vf_yield_watch_idle(&watch)) {
            work(J, gen, me, 0);
            break;
        }
        if (work(J, gen, me, 1) == 0)
            break;
    }
    return 1;
}

/* Worker `id`, idle, runs units of a nested job published since *seen (its
 * generation when the worker last looked), if there is one (its home
 * range: one of those after the publisher's); returns whether there was. */
static int help_nested(unsigned *seen, int id)
{
    const unsigned g = atomic_load(&pool.nested.gen);
    if (g == *seen)
        return 0;
    *seen = g;
    const int nt = atomic_load_explicit(&pool.nested.nt, memory_order_relaxed);
    if (nt > 1) /* else stale: a claim would fail anyway */
        work_as_worker(&pool.nested, g, 1 + (id - 1) % (nt - 1));
    return 1;
}

static void *worker_main(void *arg)
{
    const int id = (int)(intptr_t)arg; /* 1.. (the caller is 0) */
    unsigned seen = atomic_load(&pool.job.gen), nested_seen = atomic_load(&pool.nested.gen);
    for (;;) {
        /* spin a little, then sleep until the generation moves on */
        vf_spin spin;
        vf_spin_begin(&spin);
        unsigned g;
        for (int i = 0; (g = atomic_load(&pool.job.gen)) == seen; ++i) {
            vf_os_cpu_relax();
            if (help_nested(&nested_seen, id)) {
                vf_spin_begin(&spin); /* it was busy, not idle */
                continue;
            }
            if ((i & 15) != 15)
                continue;
            /* on the caller's CPU the spin would take the caller's turns */
            const int beside_caller = on_publisher_cpu(&pool.job);
            if (beside_caller)
                vf_os_yield();
            const int over = vf_spin_over(&spin);
            if (spin.probe_at && spin.last >= spin.probe_at)
                vf_spin_probe_owner(&spin, atomic_load_explicit(&pool.owner_id,
                                                                memory_order_relaxed));
            /* (a caller kept off its CPU by this very spin is no reason to go on) */
            if (over && (beside_caller || !vf_spin_owner_kept_off(&spin))) {
                if (beside_caller)
                    stuck_on_caller_cpu();
                vf_os_mutex_lock(&pool.lock);
                atomic_fetch_add(&pool.sleepers, 1);
                /* until a job or a nested job comes */
                while ((g = atomic_load(&pool.job.gen)) == seen &&
                       atomic_load(&pool.nested.gen) == nested_seen)
                    vf_os_cond_wait(&pool.wake, &pool.lock);
                atomic_fetch_sub(&pool.sleepers, 1);
                /* the first one up clears the flag (under the lock, where
                 * it was set) and times the wake-up */
                if (atomic_exchange(&pool.wake_sent, 0)) {
                    stat_add(ST_WAKE_NS, vf_os_now_ns() - atomic_load(&pool.wake_at));
                    stat_add(ST_WOKEN, 1);
                }
                vf_os_mutex_unlock(&pool.lock);
                break;
            }
        }
        if (g == seen)
            continue; /* woken for the nested job: the next spin helps with it */
        seen = g;
        if (!work_as_worker(&pool.job, g, id) &&
            atomic_load_explicit(&pool.shared_backoff, memory_order_relaxed))
            atomic_store_explicit(&pool.shared_backoff, 0, memory_order_relaxed);
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

/* Clamps *nt and *grain to what a job can hold; returns the units. */
static int64_t job_units(int *nt, int64_t n, int64_t *grain)
{
    if (*grain < 1)
        *grain = 1;
    if (*nt > VF_TEAM_MAX + 1)
        *nt = VF_TEAM_MAX + 1;
    if ((n + *grain - 1) / *grain > VF_MAX_UNITS)
        *grain = (n + VF_MAX_UNITS - 1) / VF_MAX_UNITS;
    return (n + *grain - 1) / *grain;
}

/* Publishes fn over [0, n) as J's next job (its publisher owns J);
 * returns its generation. The fields first, then the claim words, then
 * the generation, which the workers watch. */
static unsigned publish(vf_job *J, int nt, int64_t n, int64_t grain, int64_t units,
                        vf_range_fn fn, const void *ctx)
{
    atomic_store_explicit(&J->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&J->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&J->n, n, memory_order_relaxed);
    atomic_store_explicit(&J->grain, grain, memory_order_relaxed);
    atomic_store_explicit(&J->nt, nt, memory_order_relaxed);
    atomic_store_explicit(&J->cpu, vf_os_current_cpu(), memory_order_relaxed);
    atomic_store(&J->done, 0);
    atomic_store(&J->sum, 0);
    atomic_store_explicit(&J->worker_units, 0, memory_order_relaxed);
    const unsigned gen = (atomic_load(&J->gen) + 1) & 0xFFFF;
    for (int t = 0; t < nt; ++t) /* home ranges: nt equal parts */
        atomic_store(&J->claim[t].w, claim_word(gen, units * (t + 1) / nt, units * t / nt));
    atomic_store(&J->gen, gen);
    return gen;
}

/* Wakes the sleeping workers for a job just published, once: until a woken
 * worker runs (on a virtual machine that can take milliseconds) every loop
 * would see them still asleep and pay the lock and the system call again.
 * A sleeper that misses a job this way only costs that job its help: its
 * publisher takes every unit nobody claimed. The flag is set under the
 * lock and only while a worker sleeps there, so a sleeper is sure to clear
 * it: set outside, it could land just after a worker that was counted as
 * a sleeper saw this job, skipped the wait and left, and no later loop
 * would wake anyone again (the team ran on the caller alone for good). */
static void wake_sleepers(void)
{
    if (atomic_load(&pool.sleepers) == 0 || atomic_load(&pool.wake_sent))
        return;
    vf_os_mutex_lock(&pool.lock);
    if (atomic_load(&pool.sleepers) > 0 && !atomic_load(&pool.wake_sent)) {
        atomic_store(&pool.wake_sent, 1);
        atomic_store(&pool.wake_at, vf_os_now_ns());
        stat_add(ST_WAKES, 1);
        vf_os_cond_broadcast(&pool.wake);
    }
    vf_os_mutex_unlock(&pool.lock);
}

/* Waits until J's `units` are done: spins a little, then sleeps. */
static void join(vf_job *J, int64_t units)
{
    vf_spin spin;
    vf_spin_begin(&spin);
    for (int i = 0; atomic_load(&J->done) < units; ++i) {
        vf_os_cpu_relax();
        if ((i & 15) == 15 && vf_spin_over(&spin)) {
            vf_os_mutex_lock(&pool.lock);
            atomic_store(&J->owner_waits, 1);
            while (atomic_load(&J->done) < units)
                vf_os_cond_wait(&pool.finished, &pool.lock);
            atomic_store(&J->owner_waits, 0);
            vf_os_mutex_unlock(&pool.lock);
        }
    }
}

/* A loop called from inside a unit of the pool's job: the nested job when
 * it is free (idle workers help: help_nested), else run here alone. */
static int64_t nested_for(int nt, int64_t n, int64_t grain, vf_range_fn fn, const void *ctx)
{
    const int64_t units = job_units(&nt, n, &grain);
    int free_ = 0;
    if (nt <= 1 || units <= 1 || !atomic_compare_exchange_strong(&pool.nested_owned, &free_, 1))
        return fn(ctx, 0, n);
    const unsigned gen = publish(&pool.nested, nt, n, grain, units, fn, ctx);
    wake_sleepers(); /* a worker asleep since its own unit (a long idle spin) */
    work(&pool.nested, gen, 0, 0);
    join(&pool.nested, units);
    const int64_t sum = atomic_load(&pool.nested.sum);
    stat_add(ST_NESTED, 1);
    stat_add(ST_NESTED_HELPED,
             atomic_load_explicit(&pool.nested.worker_units, memory_order_relaxed) > 0);
    atomic_store(&pool.nested_owned, 0);
    return sum;
}

static int64_t team_for(int nt, int64_t n, int64_t grain, vf_range_fn fn, const void *ctx)
{
    const int64_t units = job_units(&nt, n, &grain);
    int free_ = 0;
    if (nt <= 1 || units <= 1)
        return fn(ctx, 0, n); /* alone: one call over everything */
    if (vf_os_now_ns() < atomic_load(&pool.alone_until)) {
        stat_add(ST_BACKOFF, 1);
        const int64_t sum = fn(ctx, 0, n);
        atomic_store_explicit(&pool.last_end, vf_os_now_ns(), memory_order_relaxed);
        return sum;
    }
    if (!atomic_compare_exchange_strong(&pool.owned, &free_, 1))
        return fn(ctx, 0, n);
    const int workers = start_workers(nt);
    const int64_t now = vf_os_now_ns();
    if (now - atomic_load_explicit(&pool.last_end, memory_order_relaxed) > VF_TEAM_GAP_NS)
        pool.burst_start = now; /* after an idle gap: a new busy run */
    if (workers == 0 || (atomic_load(&pool.sleepers) >= workers && !atomic_load(&pool.wake_sent) &&
                         now - pool.burst_start < VF_TEAM_WAKE_AFTER_NS)) {
        const int64_t sum = fn(ctx, 0, n); /* alone, no wake-up yet */
        atomic_store_explicit(&pool.last_end, vf_os_now_ns(), memory_order_relaxed);
        stat_add(ST_DEFERRED, 1);
        atomic_store(&pool.owned, 0);
        return sum;
    }
    atomic_store_explicit(&pool.owner_id, vf_os_thread_id(), memory_order_relaxed);
    const unsigned gen = publish(&pool.job, nt, n, grain, units, fn, ctx);
    wake_sleepers();
    const int64_t t0 = vf_os_now_ns();
    work(&pool.job, gen, 0, 0);
    const int64_t t1 = vf_os_now_ns();
    join(&pool.job, units); /* the units others still hold */
    const int64_t sum = atomic_load(&pool.job.sum);
    const int64_t t2 = vf_os_now_ns();
    stat_add(ST_JOBS, 1);
    stat_add(ST_HELPED, atomic_load_explicit(&pool.job.worker_units, memory_order_relaxed) > 0);
    stat_add(ST_WORK_NS, t1 - t0);
    stat_add(ST_JOIN_NS, t2 - t1);
    if (t2 - t1 > (t1 - t0) + VF_TEAM_SPIN_NS) { /* the team lost: run alone a while */
        stat_add(ST_LOST, 1);
        pool.backoff = next_backoff(pool.backoff, VF_BACKOFF_MIN_NS, VF_BACKOFF_MAX_NS);
        atomic_store(&pool.alone_until, t2 + pool.backoff);
    } else {
        pool.backoff = 0;
    }
    atomic_store_explicit(&pool.last_end, t2, memory_order_relaxed);
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
    atomic_store(&pool.job.owner_waits, 0);
    atomic_store(&pool.nested.owner_waits, 0);
    atomic_store(&pool.nested_owned, 0);
    atomic_store(&pool.owned, 0);
    atomic_store(&pool.wake_sent, 0);
    atomic_store(&pool.callers, 0); /* the parent's other threads are gone */
    vf_team_hold_reset();           /* and so are their training calls */
}

int64_t vf_team_for(int nt, int64_t n, int64_t grain, vf_range_fn fn, const void *ctx)
{
    if (n <= 0)
        return 0;
    if (inside >= 2) /* a nested unit's own loop: alone */
        return fn(ctx, 0, n);
    if (inside) /* a unit's own loop: the nested job, not another caller */
        return nested_for(nt, n, grain, fn, ctx);
    const int others = atomic_fetch_add(&pool.callers, 1);
    const int64_t sum = team_for(others ? 1 : nt, n, grain, fn, ctx);
    atomic_fetch_sub(&pool.callers, 1);
    return sum;
}
