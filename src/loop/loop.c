/* loop.c: the event loop: fd watches over a poller backend, a timer min-heap,
 * signalfd signals and eventfd wakeups. */
#include "msgsock/loop.h"
#include "loop/loop_ext.h"
#include "loop/loop_int.h"
#include "loop/poller.h"
#include "loop/ring.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

enum { SLOT_USED = 1, SLOT_INTERNAL = 2 };

/* One per fd number, indexed by fd: 24 bytes on LP64. */
struct slot {
    ms_io_cb cb;
    void *arg;
    /* The batch during which fd was watched: events of that batch were
     * gathered before the watch and belong to an older use of the number. */
    uint32_t born;
    uint8_t interest;
    uint8_t flags;
};
_Static_assert(sizeof(void *) != 8 || sizeof(struct slot) <= 24,
               "memory per watched descriptor is part of the design");

#define NOT_ARMED SIZE_MAX

struct ms_timer {
    ms_loop *loop;
    ms_timer *prev, *next; /* every timer of the loop, for ms_loop_free */
    int64_t due;
    uint64_t seq;
    int64_t repeat;
    ms_timer_cb cb;
    void *arg;
    size_t idx; /* position in the heap, or NOT_ARMED */
};

struct ext {
    struct ext *next;
    const void *key;
    void *data;
    void (*fini)(ms_loop *, void *);
};

struct wake_item {
    struct wake_item *next;
    void (*cb)(ms_loop *, void *);
    void *arg;
};

/* A msi_loop_call waiting for its turn, on the caller's stack. */
struct call_item {
    struct call_item *next;
    void (*fn)(ms_loop *, void *);
    void *arg;
    int done; /* under wake_mu */
};

struct ms_loop {
    const msi_poller_ops *ops;
    msi_poller *poller;
    int ring_fallback; /* io_uring asked for, epoll used: why */
    msi_poll_event *events;
    int max_events;

    struct slot *slots;
    int nslots;
    int nwatched; /* user watches; the internal eventfd and signalfd do not count */
    uint32_t batch;
    int ncalls; /* callbacks run in the current iteration */
    int64_t now;

    ms_timer **heap;
    size_t heap_n, heap_cap;
    size_t ntimers;
    uint64_t timer_seq;
    ms_timer *timers;

    int wake_fd;
    pthread_mutex_t wake_mu;
    struct wake_item *wake_head, *wake_tail;
    int wake_signalled; /* under wake_mu: wake_fd already written */
    atomic_int stop;

    struct ext *exts; /* most recently set first */
    /* Who runs the loop, for msi_loop_call; all under wake_mu. */
    int run_depth;           /* ms_loop_run / ms_loop_run_once nesting on runner */
    pthread_t runner;
    int direct;              /* a msi_loop_call runs fn on direct_th, no thread running */
    pthread_t direct_th;
    struct call_item *call_head, *call_tail;
    pthread_cond_t call_cv;  /* a call done, or a direct one over */
    int call_cv_ok;

    int sig_fd;
    sigset_t sig_set;
    struct {
        ms_signal_cb cb;
        void *arg;
    } sigs[NSIG];
};

static int64_t mono_ms(int round_up)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return ms + (round_up && ts.tv_nsec % 1000000 != 0);
}

/* ---- descriptors ---- */

static int slots_reserve(ms_loop *loop, int fd)
{
    if (fd < loop->nslots)
        return 0;
    size_t cap = loop->nslots ? (size_t)loop->nslots : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    struct slot *s = realloc(loop->slots, cap * sizeof *s);
    if (!s)
        return MS_ENOMEM;
    memset(s + loop->nslots, 0, (cap - (size_t)loop->nslots) * sizeof *s);
    loop->slots = s;
    loop->nslots = (int)cap;
    return 0;
}

static int watch(ms_loop *loop, int fd, int events, ms_io_cb cb, void *arg, int flags)
{
    if (!loop || !cb || (events & ~(MS_EV_READ | MS_EV_WRITE)))
        return MS_EINVAL;
    if (fd < 0)
        return MS_EBADF;
    int rc = slots_reserve(loop, fd);
    if (rc)
        return rc;
    struct slot *s = &loop->slots[fd];
    if (s->flags & SLOT_USED)
        return MS_EEXIST;
    if (events && (rc = loop->ops->add(loop->poller, fd, events)) != 0)
        return rc;
    *s = (struct slot){.cb = cb, .arg = arg, .born = loop->batch,
                       .interest = (uint8_t)events, .flags = (uint8_t)(SLOT_USED | flags)};
    if (!(flags & SLOT_INTERNAL))
        loop->nwatched++;
    return 0;
}

int ms_loop_watch(ms_loop *loop, int fd, int events, ms_io_cb cb, void *arg)
{
    return watch(loop, fd, events, cb, arg, 0);
}

static struct slot *user_slot(const ms_loop *loop, int fd)
{
    if (!loop || fd < 0 || fd >= loop->nslots)
        return NULL;
    struct slot *s = &loop->slots[fd];
    return (s->flags & (SLOT_USED | SLOT_INTERNAL)) == SLOT_USED ? s : NULL;
}

int ms_loop_modify(ms_loop *loop, int fd, int events)
{
    if (events & ~(MS_EV_READ | MS_EV_WRITE))
        return MS_EINVAL;
    struct slot *s = user_slot(loop, fd);
    if (!s)
        return MS_ENOENT;
    if (s->interest == events)
        return 0;
    int rc;
    if (!events)
        rc = loop->ops->del(loop->poller, fd);
    else if (!s->interest)
        rc = loop->ops->add(loop->poller, fd, events);
    else
        rc = loop->ops->modify(loop->poller, fd, events);
    if (rc)
        return rc;
    s->interest = (uint8_t)events;
    return 0;
}

int ms_loop_interest(const ms_loop *loop, int fd)
{
    const struct slot *s = user_slot(loop, fd);
    return s ? s->interest : MS_ENOENT;
}

int ms_loop_unwatch(ms_loop *loop, int fd)
{
    struct slot *s = user_slot(loop, fd);
    if (!s)
        return MS_ENOENT;
    int rc = s->interest ? loop->ops->del(loop->poller, fd) : 0;
    memset(s, 0, sizeof *s);
    loop->nwatched--;
    /* Closed before unwatch: the kernel has already forgotten it. */
    if (rc == MS_EBADF || rc == MS_ENOENT)
        rc = 0;
    return rc;
}

static void dispatch_io(ms_loop *loop, int n)
{
    for (int i = 0; i < n; i++) {
        int fd = loop->events[i].fd;
        if (fd < 0 || fd >= loop->nslots)
            continue;
        /* Re-read the slot for every event: an earlier callback may have
         * unwatched, modified or re-watched it, or grown the array. */
        struct slot *s = &loop->slots[fd];
        if (!(s->flags & SLOT_USED) || s->born == loop->batch || !s->interest)
            continue;
        int ev = loop->events[i].events;
        /* On error or hang-up also report the interest bits, so a reader
         * that only looks at MS_EV_READ still reads and meets EOF or the error. */
        if (ev & MS_EV_ERR)
            ev |= s->interest;
        ev &= s->interest | MS_EV_ERR;
        if (!ev)
            continue;
        if (!(s->flags & SLOT_INTERNAL))
            loop->ncalls++;
        s->cb(loop, fd, ev, s->arg);
    }
}

/* ---- timers ---- */

static int timer_less(const ms_timer *a, const ms_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(ms_loop *loop, size_t i, ms_timer *t)
{
    loop->heap[i] = t;
    t->idx = i;
}

static void sift_up(ms_loop *loop, size_t i)
{
    ms_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_less(t, loop->heap[parent]))
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void sift_down(ms_loop *loop, size_t i)
{
    ms_timer *t = loop->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= loop->heap_n)
            break;
        if (c + 1 < loop->heap_n && timer_less(loop->heap[c + 1], loop->heap[c]))
            c++;
        if (!timer_less(loop->heap[c], t))
            break;
        heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    heap_set(loop, i, t);
}

static void heap_remove(ms_loop *loop, ms_timer *t)
{
    size_t i = t->idx;
    ms_timer *last = loop->heap[--loop->heap_n];
    t->idx = NOT_ARMED;
    if (i == loop->heap_n)
        return;
    heap_set(loop, i, last);
    sift_up(loop, i);
    sift_down(loop, last->idx);
}

/* Sets t's deadline and places it in the heap; never allocates, because
 * ms_timer_create reserved a heap entry for every timer. */
static void timer_arm(ms_timer *t, int64_t due)
{
    ms_loop *loop = t->loop;
    t->due = due;
    t->seq = loop->timer_seq++;
    if (t->idx == NOT_ARMED) {
        t->idx = loop->heap_n++;
        loop->heap[t->idx] = t;
    }
    sift_up(loop, t->idx);
    sift_down(loop, t->idx);
}

int ms_timer_create(ms_loop *loop, ms_timer **out)
{
    if (!loop || !out)
        return MS_EINVAL;
    if (loop->ntimers == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        ms_timer **h = realloc(loop->heap, cap * sizeof *h);
        if (!h)
            return MS_ENOMEM;
        loop->heap = h;
        loop->heap_cap = cap;
    }
    ms_timer *t = calloc(1, sizeof *t);
    if (!t)
        return MS_ENOMEM;
    t->loop = loop;
    t->idx = NOT_ARMED;
    t->next = loop->timers;
    if (loop->timers)
        loop->timers->prev = t;
    loop->timers = t;
    loop->ntimers++;
    *out = t;
    return 0;
}

int ms_timer_start(ms_timer *t, int64_t timeout_ms, int64_t repeat_ms, ms_timer_cb cb, void *arg)
{
    /* Bounds keep the deadline arithmetic far from overflow (~146 million years). */
    const int64_t max_ms = INT64_C(1) << 52;
    if (!t || !cb || repeat_ms < 0 || repeat_ms > max_ms)
        return MS_EINVAL;
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (timeout_ms > max_ms)
        timeout_ms = max_ms;
    t->cb = cb;
    t->arg = arg;
    t->repeat = repeat_ms;
    /* A fresh clock rounded up, not the cached loop time: the timer never
     * fires before timeout_ms has passed since this call. */
    timer_arm(t, mono_ms(1) + timeout_ms);
    return 0;
}

void ms_timer_stop(ms_timer *t)
{
    if (t && t->idx != NOT_ARMED)
        heap_remove(t->loop, t);
}

int ms_timer_active(const ms_timer *t)
{
    return t && t->idx != NOT_ARMED;
}

int64_t ms_timer_due(const ms_timer *t)
{
    return t && t->idx != NOT_ARMED ? t->due : -1;
}

void ms_timer_free(ms_timer *t)
{
    if (!t)
        return;
    ms_loop *loop = t->loop;
    ms_timer_stop(t);
    if (t->prev)
        t->prev->next = t->next;
    else
        loop->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    loop->ntimers--;
    free(t);
}

static void run_timers(ms_loop *loop)
{
    int64_t now = loop->now;
    /* Timers armed from here on (restarts, repeats) wait for the next
     * iteration, so a callback that re-arms with timeout 0 cannot spin. */
    uint64_t limit = loop->timer_seq;
    while (loop->heap_n) {
        ms_timer *t = loop->heap[0];
        if (t->due > now || t->seq >= limit)
            break;
        if (t->repeat > 0)
            timer_arm(t, mono_ms(1) + t->repeat);
        else
            heap_remove(loop, t);
        loop->ncalls++;
        t->cb(loop, t, t->arg);
    }
}

/* ---- wakeups ---- */

/* Runs the msi_loop_call requests queued so far (on the loop's thread). */
static void run_calls(ms_loop *loop)
{
    pthread_mutex_lock(&loop->wake_mu);
    while (loop->call_head) {
        struct call_item *c = loop->call_head;
        loop->call_head = loop->call_tail = NULL;
        pthread_mutex_unlock(&loop->wake_mu);
        for (struct call_item *n; c; c = n) {
            /* c lives on a stack that is gone once done is seen. */
            n = c->next;
            loop->ncalls++;
            c->fn(loop, c->arg);
            pthread_mutex_lock(&loop->wake_mu);
            c->done = 1;
            pthread_cond_broadcast(&loop->call_cv);
            pthread_mutex_unlock(&loop->wake_mu);
        }
        pthread_mutex_lock(&loop->wake_mu);
    }
    pthread_mutex_unlock(&loop->wake_mu);
}

static void on_wake(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    (void)arg;
    uint64_t v;
    /* Drain before taking the queue: a wake queued after the drain either
     * lands in this queue or writes the eventfd again. */
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&loop->wake_mu);
    struct wake_item *it = loop->wake_head;
    loop->wake_head = loop->wake_tail = NULL;
    loop->wake_signalled = 0;
    pthread_mutex_unlock(&loop->wake_mu);
    run_calls(loop);
    while (it) {
        struct wake_item *next = it->next;
        void (*cb)(ms_loop *, void *) = it->cb;
        void *cb_arg = it->arg;
        free(it);
        loop->ncalls++;
        cb(loop, cb_arg);
        it = next;
    }
}

/* Called with wake_mu held, after queueing work for the loop: releases it
 * and makes wake_fd readable unless a signal is already pending. */
static void unlock_and_signal(ms_loop *loop)
{
    int need = !loop->wake_signalled;
    loop->wake_signalled = 1;
    pthread_mutex_unlock(&loop->wake_mu);
    if (need) {
        uint64_t one = 1;
        /* EAGAIN means the counter is saturated: already readable. */
        while (write(loop->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
}

int ms_loop_wake(ms_loop *loop, void (*cb)(ms_loop *, void *), void *arg)
{
    if (!loop)
        return MS_EINVAL;
    struct wake_item *it = NULL;
    if (cb) {
        it = malloc(sizeof *it);
        if (!it)
            return MS_ENOMEM;
        *it = (struct wake_item){.cb = cb, .arg = arg};
    }
    pthread_mutex_lock(&loop->wake_mu);
    if (it) {
        if (loop->wake_tail)
            loop->wake_tail->next = it;
        else
            loop->wake_head = it;
        loop->wake_tail = it;
    }
    unlock_and_signal(loop);
    return 0;
}

void ms_loop_stop(ms_loop *loop)
{
    if (!loop)
        return;
    atomic_store(&loop->stop, 1);
    uint64_t one = 1;
    /* Not through ms_loop_wake: no lock, so this is safe in a signal handler. */
    while (write(loop->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

/* ---- signals ---- */

static void on_signal(ms_loop *loop, int fd, int events, void *arg)
{
    (void)events;
    (void)arg;
    struct signalfd_siginfo si[8];
    for (;;) {
        ssize_t r = read(fd, si, sizeof si);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < (ssize_t)sizeof si[0])
            return;
        for (size_t i = 0; i < (size_t)r / sizeof si[0]; i++) {
            int signo = (int)si[i].ssi_signo;
            if (signo <= 0 || signo >= NSIG || !loop->sigs[signo].cb)
                continue;
            loop->ncalls++;
            loop->sigs[signo].cb(loop, signo, loop->sigs[signo].arg);
        }
    }
}

int ms_loop_signal(ms_loop *loop, int signo, ms_signal_cb cb, void *arg)
{
    if (!loop || signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
        return MS_EINVAL;
    sigset_t set = loop->sig_set;
    if (!cb) {
        if (!sigismember(&set, signo))
            return MS_ENOENT;
        sigdelset(&set, signo);
    } else {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, signo);
        int rc = pthread_sigmask(SIG_BLOCK, &one, NULL);
        if (rc)
            return ms_err_from_errno(rc);
        sigaddset(&set, signo);
    }
    int fd = signalfd(loop->sig_fd, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return ms_err_from_errno(errno);
    if (loop->sig_fd < 0) {
        int rc = watch(loop, fd, MS_EV_READ, on_signal, NULL, SLOT_INTERNAL);
        if (rc) {
            close(fd);
            return rc;
        }
        loop->sig_fd = fd;
    }
    loop->sig_set = set;
    loop->sigs[signo].cb = cb;
    loop->sigs[signo].arg = arg;
    return 0;
}

/* ---- state of the layers above ---- */

void *msi_loop_ext(const ms_loop *loop, const void *key)
{
    for (const struct ext *e = loop->exts; e; e = e->next)
        if (e->key == key)
            return e->data;
    return NULL;
}

int msi_loop_ext_set(ms_loop *loop, const void *key, void *data,
                     void (*fini)(ms_loop *loop, void *data))
{
    if (!loop || !key || !fini)
        return MS_EINVAL;
    for (const struct ext *e = loop->exts; e; e = e->next)
        if (e->key == key)
            return MS_EEXIST;
    struct ext *e = malloc(sizeof *e);
    if (!e)
        return MS_ENOMEM;
    *e = (struct ext){.next = loop->exts, .key = key, .data = data, .fini = fini};
    loop->exts = e;
    return 0;
}

/* ---- the loop ---- */

static const msi_poller_ops *find_backend(const char *name)
{
    if (!name || !*name || strcmp(name, "epoll") == 0)
        return &msi_poller_epoll;
    if (strcmp(name, "poll") == 0)
        return &msi_poller_poll;
    if (strcmp(name, "io_uring") == 0 || strcmp(name, "auto") == 0)
        return &msi_poller_uring;
    return NULL;
}

int ms_loop_create(ms_loop **out, const ms_loop_opts *opts)
{
    if (!out)
        return MS_EINVAL;
    const char *name = opts && opts->backend ? opts->backend : getenv("MSGSOCK_BACKEND");
    const msi_poller_ops *ops = find_backend(name);
    int max_events = opts && opts->max_events ? opts->max_events : 256;
    if (!ops || max_events < 0)
        return MS_EINVAL;
    ms_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return MS_ENOMEM;
    loop->ops = ops;
    loop->max_events = max_events;
    loop->wake_fd = -1;
    loop->sig_fd = -1;
    sigemptyset(&loop->sig_set);
    atomic_init(&loop->stop, 0);
    loop->now = mono_ms(0);
    int rc = pthread_mutex_init(&loop->wake_mu, NULL);
    if (rc) {
        free(loop);
        return ms_err_from_errno(rc);
    }
    rc = pthread_cond_init(&loop->call_cv, NULL);
    if (rc) {
        pthread_mutex_destroy(&loop->wake_mu);
        free(loop);
        return ms_err_from_errno(rc);
    }
    loop->call_cv_ok = 1;
    loop->events = calloc((size_t)max_events, sizeof *loop->events);
    if (!loop->events)
        rc = MS_ENOMEM;
    if (!rc)
        rc = ops->create(&loop->poller, max_events);
    if (rc && rc != MS_ENOMEM && ops == &msi_poller_uring) {
        /* "auto" asked for the best there is: falling back is not news. */
        loop->ring_fallback = strcmp(name, "auto") == 0 ? 0 : rc;
        loop->ops = ops = &msi_poller_epoll;
        rc = ops->create(&loop->poller, max_events);
    }
    if (!rc) {
        loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (loop->wake_fd < 0)
            rc = ms_err_from_errno(errno);
    }
    if (!rc)
        rc = watch(loop, loop->wake_fd, MS_EV_READ, on_wake, NULL, SLOT_INTERNAL);
    if (rc) {
        ms_loop_free(loop);
        return rc;
    }
    *out = loop;
    return 0;
}

void ms_loop_free(ms_loop *loop)
{
    if (!loop)
        return;
    /* First, while everything they may use still works. Each stays
     * findable during its fini (so its layer can refuse new work); one
     * set meanwhile is ended next. */
    while (loop->exts) {
        struct ext *e = loop->exts;
        e->fini(loop, e->data);
        struct ext **pp = &loop->exts;
        while (*pp != e)
            pp = &(*pp)->next;
        *pp = e->next;
        free(e);
    }
    while (loop->timers)
        ms_timer_free(loop->timers);
    while (loop->wake_head) {
        struct wake_item *next = loop->wake_head->next;
        free(loop->wake_head);
        loop->wake_head = next;
    }
    if (loop->poller)
        loop->ops->free(loop->poller);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    if (loop->sig_fd >= 0)
        close(loop->sig_fd);
    pthread_mutex_destroy(&loop->wake_mu);
    if (loop->call_cv_ok)
        pthread_cond_destroy(&loop->call_cv);
    free(loop->heap);
    free(loop->slots);
    free(loop->events);
    free(loop);
}

const char *ms_loop_backend(const ms_loop *loop)
{
    return loop ? loop->ops->name : NULL;
}

msi_ring *msi_loop_ring(ms_loop *loop)
{
    return loop->ops->ring ? loop->ops->ring(loop->poller) : NULL;
}

int msi_loop_ring_fallback(const ms_loop *loop)
{
    return loop->ring_fallback;
}

int64_t ms_loop_now(const ms_loop *loop)
{
    return loop->now;
}

void ms_loop_update_time(ms_loop *loop)
{
    loop->now = mono_ms(0);
}

static int wait_timeout(ms_loop *loop, int timeout_ms)
{
    if (!loop->heap_n)
        return timeout_ms;
    int64_t d = loop->heap[0]->due - mono_ms(0);
    if (d < 0)
        d = 0;
    if (d > INT_MAX)
        d = INT_MAX;
    return timeout_ms < 0 || d < timeout_ms ? (int)d : timeout_ms;
}

/* Entering and leaving ms_loop_run / ms_loop_run_once: the calling thread
 * becomes the loop's runner (after a direct msi_loop_call is over); the
 * last leave answers the calls still queued before the loop has no runner. */
static void run_enter(ms_loop *loop)
{
    pthread_t self = pthread_self();
    pthread_mutex_lock(&loop->wake_mu);
    if (loop->run_depth > 0 && pthread_equal(loop->runner, self)) {
        loop->run_depth++;
    } else {
        while (loop->direct && !pthread_equal(loop->direct_th, self))
            pthread_cond_wait(&loop->call_cv, &loop->wake_mu);
        loop->run_depth = 1;
        loop->runner = self;
    }
    pthread_mutex_unlock(&loop->wake_mu);
}

static void run_leave(ms_loop *loop)
{
    pthread_mutex_lock(&loop->wake_mu);
    /* The queue is seen empty and the runner gone under one lock: a call
     * queued later finds no runner and runs directly. */
    while (loop->run_depth == 1 && loop->call_head) {
        pthread_mutex_unlock(&loop->wake_mu);
        run_calls(loop);
        pthread_mutex_lock(&loop->wake_mu);
    }
    loop->run_depth--;
    pthread_mutex_unlock(&loop->wake_mu);
}

int msi_loop_running(ms_loop *loop, int *self)
{
    pthread_mutex_lock(&loop->wake_mu);
    int running = loop->run_depth > 0;
    if (self)
        *self = running && pthread_equal(loop->runner, pthread_self());
    pthread_mutex_unlock(&loop->wake_mu);
    return running;
}

int msi_loop_call(ms_loop *loop, void (*fn)(ms_loop *, void *), void *arg)
{
    if (!loop || !fn)
        return MS_EINVAL;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&loop->wake_mu);
    for (;;) {
        if ((loop->run_depth > 0 && pthread_equal(loop->runner, self)) ||
            (loop->direct && pthread_equal(loop->direct_th, self))) {
            pthread_mutex_unlock(&loop->wake_mu);
            fn(loop, arg);
            return 0;
        }
        if (loop->run_depth > 0)
            break;
        if (!loop->direct) {
            loop->direct = 1;
            loop->direct_th = self;
            pthread_mutex_unlock(&loop->wake_mu);
            fn(loop, arg);
            pthread_mutex_lock(&loop->wake_mu);
            loop->direct = 0;
            pthread_cond_broadcast(&loop->call_cv);
            pthread_mutex_unlock(&loop->wake_mu);
            return 0;
        }
        pthread_cond_wait(&loop->call_cv, &loop->wake_mu);
    }
    struct call_item it = {.fn = fn, .arg = arg};
    if (loop->call_tail)
        loop->call_tail->next = &it;
    else
        loop->call_head = &it;
    loop->call_tail = &it;
    unlock_and_signal(loop);
    pthread_mutex_lock(&loop->wake_mu);
    while (!it.done)
        pthread_cond_wait(&loop->call_cv, &loop->wake_mu);
    pthread_mutex_unlock(&loop->wake_mu);
    return 0;
}

static int run_once(ms_loop *loop, int timeout_ms)
{
    loop->ncalls = 0;
    int n = loop->ops->wait(loop->poller, loop->events, loop->max_events,
                            wait_timeout(loop, timeout_ms));
    if (n < 0)
        return n;
    loop->batch++;
    loop->now = mono_ms(0);
    /* Completions first: a send settled there is no longer queued when a
     * wake callback (a snapshot) looks. */
    if (loop->ops->dispatch)
        loop->ncalls += loop->ops->dispatch(loop->poller);
    dispatch_io(loop, n);
    run_timers(loop);
    return loop->ncalls;
}

int ms_loop_run_once(ms_loop *loop, int timeout_ms)
{
    if (!loop)
        return MS_EINVAL;
    run_enter(loop);
    int rc = run_once(loop, timeout_ms);
    run_leave(loop);
    return rc;
}

static int alive(ms_loop *loop)
{
    if (loop->nwatched > 0 || loop->heap_n > 0)
        return 1;
    if (loop->ops->busy && loop->ops->busy(loop->poller))
        return 1;
    pthread_mutex_lock(&loop->wake_mu);
    int queued = loop->wake_head != NULL;
    pthread_mutex_unlock(&loop->wake_mu);
    return queued;
}

int ms_loop_run(ms_loop *loop)
{
    if (!loop)
        return MS_EINVAL;
    int rc = 0;
    run_enter(loop);
    while (!atomic_load(&loop->stop) && alive(loop)) {
        rc = run_once(loop, -1);
        if (rc < 0)
            break;
        rc = 0;
    }
    atomic_store(&loop->stop, 0);
    run_leave(loop);
    return rc;
}
