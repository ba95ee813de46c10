/* team_spin.c: team_spin.h, the thread team's waits (csrc/team.c). */
#include "team_spin.h"

#include <stdatomic.h>

#include "platform.h"
#include "threads.h"

/* ... while a call holds the team (vf_team_hold: a training call's steps).
 * A step has short serial parts between its loops (a small product, a
 * batch norm, the loss's per-gene terms); with the short spin the worker
 * slept through many of them and the next loop paid its wake-up (scVI
 * step, 2 threads: epoch 0.174 s with it, 0.165 s spinning 100-150 µs). */
#define VF_TEAM_HOLD_SPIN_NS 500000
/* A spin counts only the time its thread ran: a jump of the clock of more
 * than VF_TEAM_JUMP_NS between two looks means it was descheduled (another
 * pool's spinner or another process held the core), and a worker that went
 * to sleep for that would cost the next loop a wake-up. VF_TEAM_SPIN_MAX_NS
 * bounds the spin in wall time all the same. */
#define VF_TEAM_JUMP_NS 20000
#define VF_TEAM_SPIN_MAX_NS 2000000
/* A worker's spin reads its caller's waiting time (vf_spin_owner_kept_off) only
 * once it has been idle this long: the read costs about 5 µs (a /proc
 * file on Linux), which a worker that read it as its spin began would add
 * to every loop that follows another at once (a step's loops do). */
#define VF_TEAM_PROBE_AFTER_NS 10000

static atomic_int holds; /* calls holding the team now (vf_team_hold) */

void vf_team_hold(int on)
{
    atomic_fetch_add(&holds, on ? 1 : -1);
}

void vf_team_hold_reset(void)
{
    atomic_store(&holds, 0);
}

/* the spin's budget of running time, read at every look: a hold that ends
 * shortens the spins in progress */
static int64_t spin_budget(void)
{
    return atomic_load_explicit(&holds, memory_order_relaxed) > 0 ? VF_TEAM_HOLD_SPIN_NS
                                                                    : VF_TEAM_SPIN_NS;
}

void vf_spin_begin(vf_spin *s)
{
    s->last = vf_os_now_ns();
    s->until = s->last; /* + the budget */
    s->limit = s->last + VF_TEAM_SPIN_MAX_NS;
    s->owner = s->owner_waited = -1;
    s->probe_at = s->last + VF_TEAM_PROBE_AFTER_NS;
}

int vf_spin_over(vf_spin *s)
{
    const int64_t t = vf_os_now_ns();
    if (t - s->last > VF_TEAM_JUMP_NS) /* descheduled meanwhile: not spent spinning */
        s->until += t - s->last;
    s->last = t;
    return t > s->until + spin_budget() || t > s->limit;
}

/* A worker whose spin is over keeps spinning while the caller it waits
 * for was kept off its CPU for most of the spin: runnable but preempted
 * (another pool's spinner, PyTorch's or OpenBLAS's, holds the caller's
 * core), it will publish its next loop when it runs again, and a worker
 * asleep by then costs that loop a wake-up (hundreds of microseconds on a
 * virtual machine beside a spinner). A caller that ran, or slept, without
 * a loop lets the worker sleep as before; VF_TEAM_SPIN_MAX_NS still bounds
 * the spin. Where the OS does not tell (vf_os_thread_waited_ns), never. */
void vf_spin_probe_owner(vf_spin *s, int64_t owner)
{
    s->owner = owner;
    s->owner_waited = vf_os_thread_waited_ns(s->owner);
    s->probe_at = 0;
}

int vf_spin_owner_kept_off(vf_spin *s)
{
    if (s->probe_at) /* not read yet (a spin is never over that early) */
        return 0;
    const int64_t waited = vf_os_thread_waited_ns(s->owner);
    const int kept_off = waited >= 0 && s->owner_waited >= 0 &&
                         waited - s->owner_waited > VF_TEAM_SPIN_NS / 2;
    s->owner_waited = waited;
    if (kept_off)
        s->until = s->last; /* a new budget */
    return kept_off;
}

/* A yield that gives the CPU to a runnable thread returns a time slice
 * later (milliseconds); one with nobody else to run comes straight back.
 * Linux's EEVDF scheduler (6.18) may also hand the CPU straight back to a
 * thread that yields beside a runnable one, but measured at most 3 times
 * in a row, over at most 21 µs (two threads pinned to one CPU, 6,000
 * yields), so an idle CPU is one whose yields came back for 100 µs. */
#define VF_YIELD_BACK_NS 20000
#define VF_CPU_IDLE_NS 100000

void vf_yield_watch_begin(vf_yield_watch *w)
{
    w->back_since = -1;
}

int vf_yield_watch_idle(vf_yield_watch *w)
{
    const int64_t t0 = vf_os_now_ns();
    vf_os_yield();
    const int64_t t1 = vf_os_now_ns();
    if (t1 - t0 > VF_YIELD_BACK_NS) { /* another thread ran meanwhile */
        w->back_since = -1;
        return 0;
    }
    if (w->back_since < 0)
        w->back_since = t0;
    return t1 - w->back_since >= VF_CPU_IDLE_NS;
}
