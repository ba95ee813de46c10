/* platform_posix.c: csrc/platform.h on POSIX systems (Linux, macOS, the
 * BSDs): pthreads, pthread_atfork, posix_memalign, CLOCK_MONOTONIC,
 * sched_yield, and on Linux the scheduler probe (/proc's schedstat) and the
 * current CPU (sched_getcpu). */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np, sched_getcpu (glibc) */
#include "platform.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__linux__)
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

int vf_os_thread_start(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    const int st = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return st;
}

void vf_os_mutex_init(vf_os_mutex *m) { pthread_mutex_init(m, NULL); }
void vf_os_mutex_lock(vf_os_mutex *m) { pthread_mutex_lock(m); }
void vf_os_mutex_unlock(vf_os_mutex *m) { pthread_mutex_unlock(m); }
void vf_os_cond_init(vf_os_cond *c) { pthread_cond_init(c, NULL); }
void vf_os_cond_wait(vf_os_cond *c, vf_os_mutex *m) { pthread_cond_wait(c, m); }
void vf_os_cond_broadcast(vf_os_cond *c) { pthread_cond_broadcast(c); }
void vf_os_once_run(vf_os_once *o, void (*fn)(void)) { pthread_once(o, fn); }

int vf_os_rwlock_init(vf_os_rwlock *l)
{
    pthread_rwlockattr_t attr;
    if (pthread_rwlockattr_init(&attr) != 0)
        return -1;
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    const int st = pthread_rwlock_init(l, &attr);
    pthread_rwlockattr_destroy(&attr);
    return st;
}

void vf_os_rwlock_destroy(vf_os_rwlock *l) { pthread_rwlock_destroy(l); }

void vf_os_rwlock_lock(vf_os_rwlock *l, int write)
{
    if (write)
        pthread_rwlock_wrlock(l);
    else
        pthread_rwlock_rdlock(l);
}

void vf_os_rwlock_unlock(vf_os_rwlock *l) { pthread_rwlock_unlock(l); }

int vf_os_tls_create(vf_os_tls *key, void (*dtor)(void *)) { return pthread_key_create(key, dtor); }
void *vf_os_tls_get(vf_os_tls key) { return pthread_getspecific(key); }
int vf_os_tls_set(vf_os_tls key, void *value) { return pthread_setspecific(key, value); }

int vf_os_at_fork_child(void (*fn)(void)) { return pthread_atfork(NULL, NULL, fn); }

void *vf_os_aligned_alloc(size_t align, size_t bytes)
{
    void *p = NULL;
    if (bytes > SIZE_MAX - (align - 1))
        return NULL;
    bytes = (bytes + align - 1) / align * align;
    return posix_memalign(&p, align, bytes ? bytes : align) == 0 ? p : NULL;
}

void vf_os_aligned_free(void *p) { free(p); }

void vf_os_yield(void) { sched_yield(); }

int64_t vf_os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#if defined(__linux__)
static _Thread_local int64_t cached_tid; /* 0: not read yet */
static pthread_once_t tid_once = PTHREAD_ONCE_INIT;

/* fork()'s child runs on a copy of the forking thread, TLS included, but
 * with a tid of its own */
static void forget_tid(void) { cached_tid = 0; }
static void register_forget_tid(void) { (void)pthread_atfork(NULL, NULL, forget_tid); }

int64_t vf_os_thread_id(void)
{
    if (cached_tid == 0) {
        pthread_once(&tid_once, register_forget_tid);
        cached_tid = (int64_t)syscall(SYS_gettid);
    }
    return cached_tid;
}

int64_t vf_os_thread_waited_ns(int64_t id)
{
    if (id <= 0)
        return -1;
    char path[64], text[96];
    snprintf(path, sizeof path, "/proc/self/task/%lld/schedstat", (long long)id);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    const ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    long long run, wait; /* "time on the CPU, time waiting for one, slices" */
    return sscanf(text, "%lld %lld", &run, &wait) == 2 ? (int64_t)wait : -1;
}

int vf_os_current_cpu(void) { return sched_getcpu(); }
#else
int64_t vf_os_thread_id(void) { return 0; }
int vf_os_current_cpu(void) { return -1; }
int64_t vf_os_thread_waited_ns(int64_t id)
{
    (void)id;
    return -1;
}
#endif
