/* team_spin.h: how the thread team's threads wait (csrc/team.c): a spin
 * that counts only the time its thread ran, then sleep; for a worker, a
 * look at whether its caller was kept off its CPU meanwhile. */
#ifndef VF_TEAM_SPIN_H
#define VF_TEAM_SPIN_H

#include <stdint.h>

#define VF_TEAM_SPIN_NS 50000 /* idle spin before sleeping: 50 µs of running */

/* A spin of VF_TEAM_SPIN_NS (VF_TEAM_HOLD_SPIN_NS while a call holds the
 * team) of the thread's own running time: vf_spin_begin, then
 * vf_spin_over at every look. */
typedef struct vf_spin {
    int64_t last, until, limit;
    /* a worker's: the caller it waits for and its waiting time, read once
     * the spin reaches probe_at (then 0: read) */
    int64_t owner, owner_waited, probe_at;
} vf_spin;

void vf_spin_begin(vf_spin *s);
/* 1 once the spin's budget of running time is spent */
int vf_spin_over(vf_spin *s);
/* Reads the waiting time of the caller `owner` (vf_os_thread_id); call
 * once the spin's last look reaches s->probe_at. */
void vf_spin_probe_owner(vf_spin *s, int64_t owner);
/* 1 if the probed caller was kept off its CPU for most of the spin since
 * the last call (and then the budget starts again) */
int vf_spin_owner_kept_off(vf_spin *s);

/* A worker yielding its caller's CPU (csrc/team.c) watches whether anybody
 * takes it: vf_yield_watch_begin, then vf_yield_watch_idle instead of each
 * yield. */
typedef struct vf_yield_watch {
    int64_t back_since; /* the first of the yields that came straight back (-1: none) */
} vf_yield_watch;

void vf_yield_watch_begin(vf_yield_watch *w);
/* Yields the CPU once; 1 once every yield for VF_CPU_IDLE_NS came straight
 * back: no other thread wants this CPU (its caller is asleep, or runs on
 * another CPU now). */
int vf_yield_watch_idle(vf_yield_watch *w);

/* vf_team_hold (threads.h) counts here; after fork() no call holds it. */
void vf_team_hold_reset(void);

#endif
