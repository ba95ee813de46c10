/* platform_win32.c: csrc/platform.h on Windows (Vista and later): slim
 * reader/writer locks, condition variables, one-time initialization, fiber
 * local storage (whose callback frees a thread's value when it ends),
 * _aligned_malloc and QueryPerformanceCounter. There is no fork, so no
 * fork handler. Built and tested with MinGW-w64 under Wine (.ci/portable-c);
 * MSVC is untested. */
#if !defined(_WIN64)
/* 32-bit Windows calls the FLS callback as __stdcall, which the thread-exit
 * functions given to vf_os_tls_create are not; x64 has one convention. */
#error "vaefast's Windows platform layer is for 64-bit Windows"
#endif
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <malloc.h>
#include <process.h>
#include <stdlib.h>

#include "platform.h"

/* The opaque types of platform.h hold the Windows objects themselves. */
_Static_assert(sizeof(SRWLOCK) == sizeof(vf_os_mutex), "vf_os_mutex holds an SRWLOCK");
_Static_assert(sizeof(CONDITION_VARIABLE) == sizeof(vf_os_cond), "vf_os_cond holds a CONDITION_VARIABLE");
_Static_assert(sizeof(INIT_ONCE) == sizeof(vf_os_once), "vf_os_once holds an INIT_ONCE");
_Static_assert(sizeof(DWORD) <= sizeof(vf_os_tls), "vf_os_tls holds an FLS index");
#define SRW(x) ((SRWLOCK *)&(x)->opaque)

/* the thread's function and argument, passed from vf_os_thread_start to
 * the new thread (which frees them) */
typedef struct {
    void *(*fn)(void *);
    void *arg;
} start_args;

static unsigned __stdcall thread_main(void *p)
{
    const start_args a = *(start_args *)p;
    free(p);
    (void)a.fn(a.arg);
    return 0;
}

int vf_os_thread_start(void *(*fn)(void *), void *arg)
{
    start_args *a = malloc(sizeof *a);
    if (!a)
        return -1;
    *a = (start_args){fn, arg};
    /* _beginthreadex, not CreateThread: the C runtime sets up the thread */
    const uintptr_t h = _beginthreadex(NULL, 0, thread_main, a, 0, NULL);
    if (h == 0) {
        free(a);
        return -1;
    }
    CloseHandle((HANDLE)h); /* detached */
    return 0;
}

void vf_os_mutex_init(vf_os_mutex *m) { InitializeSRWLock(SRW(m)); }
void vf_os_mutex_lock(vf_os_mutex *m) { AcquireSRWLockExclusive(SRW(m)); }
void vf_os_mutex_unlock(vf_os_mutex *m) { ReleaseSRWLockExclusive(SRW(m)); }
void vf_os_cond_init(vf_os_cond *c) { InitializeConditionVariable((CONDITION_VARIABLE *)&c->opaque); }

void vf_os_cond_wait(vf_os_cond *c, vf_os_mutex *m)
{
    SleepConditionVariableSRW((CONDITION_VARIABLE *)&c->opaque, SRW(m), INFINITE, 0);
}

void vf_os_cond_broadcast(vf_os_cond *c) { WakeAllConditionVariable((CONDITION_VARIABLE *)&c->opaque); }

typedef struct {
    void (*fn)(void);
} once_args;

static BOOL CALLBACK once_main(INIT_ONCE *once, void *param, void **context)
{
    (void)once;
    (void)context;
    ((once_args *)param)->fn();
    return TRUE;
}

void vf_os_once_run(vf_os_once *o, void (*fn)(void))
{
    once_args a = {fn};
    InitOnceExecuteOnce((INIT_ONCE *)&o->opaque, once_main, &a, NULL);
}

/* SRW locks do not promise that waiting writers go first. */
int vf_os_rwlock_init(vf_os_rwlock *l)
{
    InitializeSRWLock(SRW(l));
    l->exclusive = 0;
    return 0;
}

void vf_os_rwlock_destroy(vf_os_rwlock *l) { (void)l; }

void vf_os_rwlock_lock(vf_os_rwlock *l, int write)
{
    if (write) {
        AcquireSRWLockExclusive(SRW(l));
        l->exclusive = 1;
    } else {
        AcquireSRWLockShared(SRW(l));
    }
}

void vf_os_rwlock_unlock(vf_os_rwlock *l)
{
    if (l->exclusive) { /* only the writer can see 1 here: readers exclude it */
        l->exclusive = 0;
        ReleaseSRWLockExclusive(SRW(l));
    } else {
        ReleaseSRWLockShared(SRW(l));
    }
}

int vf_os_tls_create(vf_os_tls *key, void (*dtor)(void *))
{
    const DWORD k = FlsAlloc((PFLS_CALLBACK_FUNCTION)dtor); /* same convention on x64 */
    if (k == FLS_OUT_OF_INDEXES)
        return -1;
    *key = k;
    return 0;
}

void *vf_os_tls_get(vf_os_tls key) { return FlsGetValue((DWORD)key); }
int vf_os_tls_set(vf_os_tls key, void *value) { return FlsSetValue((DWORD)key, value) ? 0 : -1; }

int vf_os_at_fork_child(void (*fn)(void))
{
    (void)fn; /* no fork on Windows */
    return 0;
}

void *vf_os_aligned_alloc(size_t align, size_t bytes)
{
    if (bytes > SIZE_MAX - (align - 1))
        return NULL;
    bytes = (bytes + align - 1) / align * align;
    return _aligned_malloc(bytes ? bytes : align, align);
}

void vf_os_aligned_free(void *p) { _aligned_free(p); }

int64_t vf_os_now_ns(void)
{
    static LARGE_INTEGER freq; /* fixed at boot: a race only rewrites the same value */
    LARGE_INTEGER t;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&t);
    /* whole seconds and the remainder apart, so that ticks * 1e9 cannot overflow */
    const int64_t s = t.QuadPart / freq.QuadPart, r = t.QuadPart % freq.QuadPart;
    return s * 1000000000 + r * 1000000000 / freq.QuadPart;
}

/* No scheduler probe here: GetThreadTimes advances only at the scheduler's
 * tick (about 15.6 ms), too coarse for the team's spins. */
int64_t vf_os_thread_id(void) { return 0; }
int64_t vf_os_thread_waited_ns(int64_t id)
{
    (void)id;
    return -1;
}

void vf_os_yield(void) { SwitchToThread(); }

int vf_os_current_cpu(void) { return (int)GetCurrentProcessorNumber(); }
