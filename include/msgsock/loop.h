/* msgsock/loop.h: the event loop (layer 3): descriptors, timers, signals,
 * wakeups. It knows nothing of framing or connections. */
#ifndef MSGSOCK_LOOP_H
#define MSGSOCK_LOOP_H

#include "common.h"

typedef struct ms_loop ms_loop;
typedef struct ms_timer ms_timer;

/* Readiness bits, for interest and for what a callback is told. MS_EV_ERR
 * (error or hang-up) is always reported, never asked for. */
enum { MS_EV_READ = 1, MS_EV_WRITE = 2, MS_EV_ERR = 4 };

typedef void (*ms_io_cb)(ms_loop *loop, int fd, int events, void *arg);
typedef void (*ms_timer_cb)(ms_loop *loop, ms_timer *t, void *arg);
typedef void (*ms_signal_cb)(ms_loop *loop, int signo, void *arg);

typedef struct ms_loop_opts {
    /* "epoll", "poll", or NULL: $MSGSOCK_BACKEND if set, else the best. */
    const char *backend;
    /* Readiness events taken per wait (0: 256). */
    int max_events;
} ms_loop_opts;

/* Creates a loop; opts may be NULL. On success *out is the caller's until
 * ms_loop_free(). Returns 0, MS_EINVAL (unknown backend) or a system code. */
MS_EXPORT int ms_loop_create(ms_loop **out, const ms_loop_opts *opts);
/* Frees the loop and its timers and signal watches. Descriptors being
 * watched are not closed (they were never the loop's). */
MS_EXPORT void ms_loop_free(ms_loop *loop);
/* "epoll" or "poll". */
MS_EXPORT const char *ms_loop_backend(const ms_loop *loop);

/* Runs until ms_loop_stop(), or until nothing is watched and no timer is
 * pending. Returns 0 or a negative code from the backend. */
MS_EXPORT int ms_loop_run(ms_loop *loop);
/* Waits at most timeout_ms (-1: until something happens) and dispatches
 * what is ready once. Returns the number of callbacks run, or an error. */
MS_EXPORT int ms_loop_run_once(ms_loop *loop, int timeout_ms);
/* Makes ms_loop_run() return after the current iteration. Safe from any
 * thread and from a signal callback. */
MS_EXPORT void ms_loop_stop(ms_loop *loop);
/* Wakes a loop blocked in its wait. Safe from any thread. cb, if not NULL,
 * runs on the loop's thread (once per wake, in order). Returns 0 or ENOMEM. */
MS_EXPORT int ms_loop_wake(ms_loop *loop, void (*cb)(ms_loop *, void *), void *arg);
/* Monotonic milliseconds, cached at the start of the current iteration. */
MS_EXPORT int64_t ms_loop_now(const ms_loop *loop);
/* Refreshes the cached time (after long work inside a callback). */
MS_EXPORT void ms_loop_update_time(ms_loop *loop);

/* ---- descriptors ----
 * Watches fd for events (MS_EV_READ|MS_EV_WRITE, may be 0 to only hold a
 * slot). One watch per fd. The fd stays the caller's; unwatch before close.
 * Returns 0, MS_EEXIST if fd is already watched, or a system code. */
MS_EXPORT int ms_loop_watch(ms_loop *loop, int fd, int events, ms_io_cb cb, void *arg);
/* Changes interest; a no-op (no system call) when it is unchanged. */
MS_EXPORT int ms_loop_modify(ms_loop *loop, int fd, int events);
/* Current interest of fd, or MS_ENOENT. */
MS_EXPORT int ms_loop_interest(const ms_loop *loop, int fd);
/* Stops watching fd. Safe inside any callback, including fd's own: no
 * callback for fd runs after this returns. */
MS_EXPORT int ms_loop_unwatch(ms_loop *loop, int fd);

/* ---- timers (monotonic clock, min-heap keyed by deadline then order of
 * arming, so timers due at the same millisecond fire in arming order) ---- */

/* Creates a disarmed timer owned by the loop until ms_timer_free(). */
MS_EXPORT int ms_timer_create(ms_loop *loop, ms_timer **out);
/* Arms (or re-arms) t to call cb after timeout_ms, then every repeat_ms if
 * repeat_ms > 0. O(log n). */
MS_EXPORT int ms_timer_start(ms_timer *t, int64_t timeout_ms, int64_t repeat_ms,
                             ms_timer_cb cb, void *arg);
/* Disarms; safe if not armed, and inside its own callback. */
MS_EXPORT void ms_timer_stop(ms_timer *t);
MS_EXPORT int ms_timer_active(const ms_timer *t);
/* Disarms and frees; safe inside its own callback. */
MS_EXPORT void ms_timer_free(ms_timer *t);

/* ---- signals ----
 * Calls cb on the loop's thread when signo arrives (signalfd; the signal is
 * blocked for the calling thread, so call this before starting other
 * threads, which inherit the mask). Returns 0 or a negative code. */
MS_EXPORT int ms_loop_signal(ms_loop *loop, int signo, ms_signal_cb cb, void *arg);

#endif
