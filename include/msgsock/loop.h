/* msgsock/loop.h: the event loop (layer 3): descriptors, timers, signals,
 * wakeups. It knows nothing of framing or connections. */
#ifndef MSGSOCK_LOOP_H
#define MSGSOCK_LOOP_H

#include "common.h"

typedef struct ms_loop ms_loop;
typedef struct ms_timer ms_timer;

/* Readiness bits, for interest and for what a callback is told. MS_EV_ERR
 * (error or hang-up) is never asked for: it is reported whenever the interest
 * is non-zero, together with the interest bits, so a callback that only looks
 * at MS_EV_READ or MS_EV_WRITE still makes the call that meets EOF or the
 * error. A watch with interest 0 is told nothing, not even MS_EV_ERR. */
enum { MS_EV_READ = 1, MS_EV_WRITE = 2, MS_EV_ERR = 4 };

typedef void (*ms_io_cb)(ms_loop *loop, int fd, int events, void *arg);
typedef void (*ms_timer_cb)(ms_loop *loop, ms_timer *t, void *arg);
typedef void (*ms_signal_cb)(ms_loop *loop, int signo, void *arg);

typedef struct ms_loop_opts {
    /* "epoll", "poll", "io_uring", "auto", or NULL: $MSGSOCK_BACKEND if
     * set, else epoll. "auto" is io_uring where the kernel allows it and
     * epoll otherwise, silently. "io_uring" falls back to epoll when the kernel refuses the
     * ring or lacks a feature it needs (multishot receive into provided
     * buffers, Linux 6.0); ms_loop_backend() then says "epoll". With
     * io_uring the loop waits on the ring and plain connections (ms_conn)
     * read and write through it; everything else works as with epoll. */
    const char *backend;
    /* Readiness events taken per wait (0: 256). */
    int max_events;
} ms_loop_opts;

/* Creates a loop; opts may be NULL. On success *out is the caller's until
 * ms_loop_free(). Returns 0, MS_EINVAL (unknown backend, also when named by
 * $MSGSOCK_BACKEND; negative max_events) or a system code. A loop belongs to
 * the thread that runs it: only ms_loop_stop() and ms_loop_wake() may be
 * called from other threads. */
MS_EXPORT int ms_loop_create(ms_loop **out, const ms_loop_opts *opts);
/* Frees the loop and its timers and signal watches (signals stay blocked).
 * Connections on it are ended first, each on_close(MS_ECLOSED) once; see
 * msgsock/conn.h. Other descriptors being watched are not closed (they were
 * never the loop's). Queued wake callbacks are dropped without running.
 * Not from a callback. */
MS_EXPORT void ms_loop_free(ms_loop *loop);
/* The backend in use: "epoll", "poll" or "io_uring". */
MS_EXPORT const char *ms_loop_backend(const ms_loop *loop);

/* Runs until ms_loop_stop(), or until nothing is watched and no timer is
 * armed and no wake callback is queued. A watch with interest 0 counts as
 * watched; signal watches and the loop's own descriptors do not keep it
 * running. One iteration: wait (bounded by the nearest timer), dispatch the
 * events of that one wait, then run the timers due (timers armed meanwhile
 * wait for the next iteration). Returns 0 or a negative code from the backend. */
MS_EXPORT int ms_loop_run(ms_loop *loop);
/* Waits at most timeout_ms (-1: until something happens) and dispatches
 * what is ready once. Returns the number of callbacks run, or an error. */
MS_EXPORT int ms_loop_run_once(ms_loop *loop, int timeout_ms);
/* Makes ms_loop_run() return after the current iteration (at once if it is
 * not running yet; it clears the request when it returns). Safe from any
 * thread, from a signal callback and from a signal handler. */
MS_EXPORT void ms_loop_stop(ms_loop *loop);
/* Wakes a loop blocked in its wait. Safe from any thread. cb, if not NULL,
 * runs on the loop's thread (once per wake, in order of the calls; one queued
 * from a wake callback runs in the next iteration). Returns 0, MS_EINVAL or
 * MS_ENOMEM (then cb never runs). */
MS_EXPORT int ms_loop_wake(ms_loop *loop, void (*cb)(ms_loop *, void *), void *arg);
/* Monotonic milliseconds, cached at the start of the current iteration. */
MS_EXPORT int64_t ms_loop_now(const ms_loop *loop);
/* Refreshes the cached time (after long work inside a callback). */
MS_EXPORT void ms_loop_update_time(ms_loop *loop);

/* ---- descriptors ----
 * Watches fd for events (MS_EV_READ|MS_EV_WRITE, may be 0 to only hold a
 * slot). One watch per fd; level-triggered. The fd stays the caller's;
 * unwatch before close. Costs the loop 24 bytes per fd number up to the
 * highest watched. An event gathered before this call, for an earlier use of
 * the same fd number, is never delivered. Returns 0, MS_EEXIST if fd is
 * already watched, MS_EBADF (fd < 0), MS_EINVAL or a system code. */
MS_EXPORT int ms_loop_watch(ms_loop *loop, int fd, int events, ms_io_cb cb, void *arg);
/* Changes interest; a no-op (no system call) when it is unchanged. Events
 * already gathered are filtered by the new interest. Returns 0, MS_ENOENT
 * (not watched), MS_EINVAL or a system code. */
MS_EXPORT int ms_loop_modify(ms_loop *loop, int fd, int events);
/* Current interest of fd, or MS_ENOENT. */
MS_EXPORT int ms_loop_interest(const ms_loop *loop, int fd);
/* Stops watching fd. Safe inside any callback, including fd's own: no
 * callback for fd runs after this returns (a later watch of the same number
 * gets only events gathered after it). Returns 0 or MS_ENOENT. */
MS_EXPORT int ms_loop_unwatch(ms_loop *loop, int fd);

/* ---- timers (monotonic clock, min-heap keyed by deadline then order of
 * arming, so timers due at the same millisecond fire in arming order) ---- */

/* Creates a disarmed timer owned by the loop until ms_timer_free() (or
 * ms_loop_free(), which frees every timer left). Returns 0, MS_EINVAL or
 * MS_ENOMEM. */
MS_EXPORT int ms_timer_create(ms_loop *loop, ms_timer **out);
/* Arms (or re-arms) t to call cb after timeout_ms, then every repeat_ms if
 * repeat_ms > 0. O(log n), never allocates. A timer never fires before
 * timeout_ms has passed since this call (it reads the clock, not the cached
 * ms_loop_now()). A negative timeout counts as 0. Safe inside any callback,
 * including t's own. Returns 0 or MS_EINVAL (cb NULL, repeat_ms < 0). */
MS_EXPORT int ms_timer_start(ms_timer *t, int64_t timeout_ms, int64_t repeat_ms,
                             ms_timer_cb cb, void *arg);
/* Disarms; safe if not armed, and inside its own callback. */
MS_EXPORT void ms_timer_stop(ms_timer *t);
/* 1 if armed, else 0. */
MS_EXPORT int ms_timer_active(const ms_timer *t);
/* The deadline, in the ms_loop_now() time base, or -1 if not armed. */
MS_EXPORT int64_t ms_timer_due(const ms_timer *t);
/* Disarms and frees; safe inside its own callback. */
MS_EXPORT void ms_timer_free(ms_timer *t);

/* ---- signals ----
 * Calls cb on the loop's thread when signo arrives (signalfd; the signal is
 * blocked for the calling thread, so call this before starting other
 * threads, which inherit the mask). Several signals may be watched on one
 * loop; calling again for the same signo replaces cb; cb NULL stops watching
 * signo (it stays blocked). Signal watches do not keep ms_loop_run() going.
 * Returns 0, MS_EINVAL (bad signo, SIGKILL, SIGSTOP), MS_ENOENT (cb NULL and
 * signo not watched) or a system code. */
MS_EXPORT int ms_loop_signal(ms_loop *loop, int signo, ms_signal_cb cb, void *arg);

#endif
