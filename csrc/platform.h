/* platform.h: what the core needs from the operating system and the
 * compiler, stated once (internal). Every OS or compiler #if of csrc/ is in
 * this header and its three implementations:
 *   csrc/platform_posix.c  threads, locks, fork handlers, memory, clock (POSIX)
 *   csrc/platform_win32.c  the same on Windows (MinGW-w64; MSVC untested)
 *   csrc/platform_cpu.c    CPU feature detection (vf_cpu_features)
 * CMakeLists.txt compiles one of the first two. The kernels and drivers
 * call only the vf_os_* names below (tests/test_structure_c.py checks).
 *
 * The lock types are opaque on Windows (one pointer-sized word, as SRWLOCK,
 * CONDITION_VARIABLE and INIT_ONCE are), so that <windows.h> stays inside
 * platform_win32.c. */
#ifndef VF_PLATFORM_H
#define VF_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define VF_OS_WIN32 1
typedef struct vf_os_mutex { void *opaque; } vf_os_mutex;
typedef struct vf_os_cond { void *opaque; } vf_os_cond;
typedef struct vf_os_once { void *opaque; } vf_os_once;
/* `exclusive` is written only by the writer holding the lock (Windows
 * releases shared and exclusive holds by different calls) */
typedef struct vf_os_rwlock { void *opaque; int exclusive; } vf_os_rwlock;
typedef unsigned long vf_os_tls;
#define VF_OS_MUTEX_INIT {0}
#define VF_OS_COND_INIT {0}
#define VF_OS_ONCE_INIT {0}
#else
#include <pthread.h>
typedef pthread_mutex_t vf_os_mutex;
typedef pthread_cond_t vf_os_cond;
typedef pthread_once_t vf_os_once;
typedef pthread_rwlock_t vf_os_rwlock;
typedef pthread_key_t vf_os_tls;
#define VF_OS_MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
#define VF_OS_COND_INIT PTHREAD_COND_INITIALIZER
#define VF_OS_ONCE_INIT PTHREAD_ONCE_INIT
#endif

/* The AArch64 bf16 route (BFMLALT/BFMLALB, csrc/isa/gemm_bf16_neon.h) is
 * built where GCC's per-function target("arch=armv8.2-a+bf16") is known to
 * work; elsewhere AArch64 runs the emulation. */
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#define VF_BFMLAL_ROUTE 1
#else
#define VF_BFMLAL_ROUTE 0
#endif

/* Thread-local storage and a spin-wait hint, by compiler. */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define VF_OS_THREAD_LOCAL __declspec(thread)
#if defined(_M_ARM64)
#define vf_os_cpu_relax() __yield()
#else
#define vf_os_cpu_relax() _mm_pause()
#endif
#else
#define VF_OS_THREAD_LOCAL _Thread_local
#if defined(__x86_64__) || defined(__i386__)
#define vf_os_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define vf_os_cpu_relax() __asm__ __volatile__("yield")
#else
#define vf_os_cpu_relax() ((void)0)
#endif
#endif

/* ---------------------------------------------------------------- threads */

/* Starts fn(arg) on a new detached thread (fn's result is dropped); 0 on
 * success. */
int vf_os_thread_start(void *(*fn)(void *), void *arg);

void vf_os_mutex_init(vf_os_mutex *m);
void vf_os_mutex_lock(vf_os_mutex *m);
void vf_os_mutex_unlock(vf_os_mutex *m);
void vf_os_cond_init(vf_os_cond *c);
void vf_os_cond_wait(vf_os_cond *c, vf_os_mutex *m);
void vf_os_cond_broadcast(vf_os_cond *c);

/* Runs fn once per process (per fork: see vf_os_at_fork_child). */
void vf_os_once_run(vf_os_once *o, void (*fn)(void));

/* A readers-writer lock whose waiting writers go first where the OS offers
 * that (glibc); 0 on success. */
int vf_os_rwlock_init(vf_os_rwlock *l);
void vf_os_rwlock_destroy(vf_os_rwlock *l);
void vf_os_rwlock_lock(vf_os_rwlock *l, int write);
void vf_os_rwlock_unlock(vf_os_rwlock *l);

/* A thread-local pointer whose value, if not NULL, is passed to `dtor`
 * when its thread ends; 0 on success. */
int vf_os_tls_create(vf_os_tls *key, void (*dtor)(void *));
void *vf_os_tls_get(vf_os_tls key);
int vf_os_tls_set(vf_os_tls key, void *value);

/* Registers fn to run in the child of fork(), on its one thread; 0 on
 * success. Where there is no fork (Windows) it does nothing. */
int vf_os_at_fork_child(void (*fn)(void));

/* ------------------------------------------------------- memory and time */

/* `bytes` (rounded up to a multiple of `align`, a power of two) aligned to
 * `align`, or NULL; release with vf_os_aligned_free (Windows' aligned
 * blocks cannot go to free()). */
void *vf_os_aligned_alloc(size_t align, size_t bytes);
void vf_os_aligned_free(void *p);

/* A monotonic clock in nanoseconds (arbitrary origin). */
int64_t vf_os_now_ns(void);

/* ------------------------------------------------------ scheduler probe */

/* The calling thread's id for vf_os_thread_waited_ns (Linux: its tid), or
 * 0 where there is no probe. */
int64_t vf_os_thread_id(void);

/* The nanoseconds thread `id` of this process has spent runnable but
 * waiting for a CPU (preempted, or woken and not yet run) since it started
 * (Linux: /proc's schedstat), or -1 where that is not known (another OS,
 * id 0, a thread that has ended). A few microseconds a call: not for hot
 * loops. */
int64_t vf_os_thread_waited_ns(int64_t id);

/* Gives the CPU to another runnable thread, if there is one. */
void vf_os_yield(void);

/* The CPU the calling thread runs on now (it may move at any time), or -1
 * where that is not known. Tens of nanoseconds (Linux: the vDSO's getcpu). */
int vf_os_current_cpu(void);

#endif
