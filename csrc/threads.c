/* threads.c: the thread-count setting, fork safety, the split of work
 * over the thread team (csrc/team.c) and the thread-count tuner (see
 * threads.h and docs/threads.md). */
#include "threads.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "vaefast.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static atomic_int setting;       /* threads per call; 0 until first use */
static atomic_uint fork_count;   /* see vf_fork_generation */
static int tuner_off;            /* VAEFAST_TUNE_THREADS=0: always the setting */
static vf_os_once init_once = VF_OS_ONCE_INIT;
static vf_os_mutex relock_mutex = VF_OS_MUTEX_INIT; /* vf_rwlock_lock */

static VF_OS_THREAD_LOCAL int cap;           /* 0: none */
static VF_OS_THREAD_LOCAL int started_team;  /* may own a libgomp pool */
static VF_OS_THREAD_LOCAL int orphaned_pool; /* owned one in the parent of a fork */

/* Runs in the child of fork(), on the one thread it has: if that thread
 * started teams in the parent, its pool's workers were not copied. */
static void after_fork_in_child(void)
{
    if (started_team)
        orphaned_pool = 1;
    vf_os_mutex_init(&relock_mutex); /* a parent's thread may hold it */
    vf_team_after_fork();
    atomic_fetch_add(&fork_count, 1u);
}

static void init(void)
{
    int n = 1;
#ifdef _OPENMP
    n = omp_get_max_threads(); /* OMP_NUM_THREADS, else the CPU count */
#endif
    int unset = 0;
    atomic_compare_exchange_strong(&setting, &unset, n < 1 ? 1 : n);
    const char *tune = getenv("VAEFAST_TUNE_THREADS");
    tuner_off = tune && strcmp(tune, "0") == 0;
    (void)vf_os_at_fork_child(after_fork_in_child);
}

void vf_set_num_threads(int n)
{
    vf_os_once_run(&init_once, init);
#ifndef _OPENMP
    n = 1; /* a build without OpenMP runs single-threaded (vf_openmp_version) */
#endif
    atomic_store(&setting, n < 1 ? 1 : n);
}

int vf_openmp_version(void)
{
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}

int vf_get_num_threads(void)
{
    vf_os_once_run(&init_once, init);
    return atomic_load(&setting);
}

unsigned vf_fork_generation(void)
{
    return atomic_load_explicit(&fork_count, memory_order_relaxed);
}

int vf_threads_cap(int n)
{
    int old = cap;
    cap = n > 0 ? n : 0;
    return old;
}

int vf_threads_for(int64_t work, int64_t min_work)
{
    vf_os_once_run(&init_once, init);
    if (work < min_work || orphaned_pool || vf_team_alone_here())
        return 1;
#ifdef _OPENMP
    if (omp_in_parallel())
        return 1;
#endif
    int n = atomic_load_explicit(&setting, memory_order_relaxed);
    if (cap > 0 && cap < n)
        n = cap;
    if (n > 1)
        started_team = 1;
    return n;
}

void vf_threads_sync(void)
{
#ifdef _OPENMP
    int n = vf_threads_for(1, 0);
    if (omp_get_max_threads() != n)
        omp_set_num_threads(n);
#endif
}

int vf_rwlock_init(vf_rwlock *l)
{
    vf_os_once_run(&init_once, init); /* the fork handler counts generations */
    const int st = vf_os_rwlock_init(&l->rw);
    atomic_store(&l->generation, vf_fork_generation());
    return st == 0 ? VF_OK : VF_ERR_NOMEM;
}

void vf_rwlock_destroy(vf_rwlock *l)
{
    vf_os_rwlock_destroy(&l->rw);
}

void vf_rwlock_lock(vf_rwlock *l, int write)
{
    const unsigned g = vf_fork_generation();
    if (atomic_load(&l->generation) != g) {
        vf_os_mutex_lock(&relock_mutex);
        if (atomic_load(&l->generation) != g) /* first use in a child of fork() */
            (void)vf_rwlock_init(l);
        vf_os_mutex_unlock(&relock_mutex);
    }
    vf_os_rwlock_lock(&l->rw, write);
}

void vf_rwlock_unlock(vf_rwlock *l)
{
    vf_os_rwlock_unlock(&l->rw);
}

int64_t vf_split_range(int64_t n, int nt, vf_range_fn fn, const void *ctx)
{
    if (n <= 0)
        return 0;
    /* about 4 units per thread: enough for a late thread to cost little */
    const int64_t units = 4 * (int64_t)(nt > 1 ? nt : 1);
    return vf_team_for(nt, n, (n + units - 1) / units, fn, ctx);
}

/* ------------------------------------------------------------------ tuner */

#define VF_TUNER_TRY_SHARE 0.02 /* at most this share of time spent on tries */
#define VF_TUNER_EMA 0.25       /* weight of a new timing of the current choice */

static double seconds_now(void)
{
    return 1e-9 * (double)vf_os_now_ns();
}

void vf_tuner_begin(vf_thread_tuner *t, int64_t rows)
{
    t->running = -1;
    if (vf_threads_for(1, 0) <= 1 || tuner_off)
        return; /* nothing to choose */
    int c = t->wide;
    const double mine = t->per_row[c], other = t->per_row[!c];
    if (mine > 0 && (other == 0 ||
                     t->since_try * VF_TUNER_TRY_SHARE >= (other - mine) * (double)rows))
        c = !c; /* try the other choice */
    t->running = c;
    t->old_cap = vf_threads_cap(c ? 0 : 1);
    t->t0 = seconds_now();
}

void vf_tuner_end(vf_thread_tuner *t, int64_t rows)
{
    if (t->running < 0)
        return;
    const double dt = seconds_now() - t->t0;
    vf_threads_cap(t->old_cap);
    const int c = t->running;
    const double per_row = dt / (double)(rows > 0 ? rows : 1);
    if (c == t->wide && t->per_row[c] > 0) {
        t->per_row[c] += VF_TUNER_EMA * (per_row - t->per_row[c]);
        t->since_try += dt;
    } else { /* a try, or the first timing: an improvement is believed at
              * once, a slow-down half-way (one unlucky step must not bench
              * the choice for long) */
        const double old = t->per_row[c];
        t->per_row[c] = old == 0 || per_row < old ? per_row : 0.5 * (old + per_row);
        if (c != t->wide)
            t->since_try = 0;
    }
    if (t->per_row[0] > 0 && t->per_row[1] > 0)
        t->wide = t->per_row[1] < t->per_row[0];
}

static int size_class(int64_t units)
{
    int c = 0;
    for (int64_t u = units / (4 * VF_TUNE_MIN_UNITS); u > 0 && c < VF_TUNER_CLASSES - 1; u >>= 2)
        ++c;
    return c;
}

int64_t vf_tune_units(double macs)
{
    return macs < 0x1p62 ? (int64_t)(macs / 65536.0) : INT64_C(1) << 46;
}

int vf_sized_tuner_begin(vf_sized_tuner *t, int64_t units)
{
    if (units < VF_TUNE_MIN_UNITS)
        return -1;
    if (atomic_exchange_explicit(&t->busy, 1, memory_order_acquire))
        return -1; /* another thread is timing a call */
    const int c = size_class(units);
    vf_thread_tuner *tt = &t->by_size[c];
    if (!t->warm[c]) { /* the first call: on the setting, untimed */
        t->warm[c] = 1;
        tt->wide = 1;
        atomic_store_explicit(&t->busy, 0, memory_order_release);
        return -1;
    }
    vf_tuner_begin(tt, units);
    return c;
}

void vf_sized_tuner_end(vf_sized_tuner *t, int cls, int64_t units)
{
    if (cls < 0)
        return;
    vf_tuner_end(&t->by_size[cls], units);
    atomic_store_explicit(&t->busy, 0, memory_order_release);
}
