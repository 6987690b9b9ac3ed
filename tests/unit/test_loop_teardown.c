/* test_loop_teardown.c: ms_loop_free ends every connection still on the
 * loop (connected, still connecting, with output queued; an on_close that
 * aborts others meanwhile) and ms_loop_foreach_conn walks a loop's
 * connections, a server's too; each test on epoll, poll and io_uring. And
 * the loop's mechanism beneath: state of a higher layer ended first. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"
#include "loop/loop_ext.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helper_backend.h"
#include "helper_thread.h"

/* Sent by a client as it opens, to a peer that never reads: most of it
 * stays queued (loopback buffers take a few MiB). */
#define BIG (16u << 20)

enum { NMAX = 8 };

typedef struct tcl tcl;

typedef struct world {
    ms_loop *loop;
    tcl *k;
    int n;
    int want_open, nopen;
    int nclosed;
    int timed_out;
    char up[MS_ADDR_STRLEN];   /* a listener that completes connects, never accepts */
} world;

struct tcl {
    world *w;
    int idx;
    ms_conn *c;          /* NULL once closed */
    int fd;
    int opened, closed, reason;
    int close_order;     /* 0 for the first on_close */
    int left_at_close;   /* ms_loop_foreach_conn in its on_close */
    int big;             /* on_open: send BIG bytes */
    int abort_a, abort_b; /* on_close: ms_conn_abort these clients (-1: none) */
    int reconnect;       /* on_close: ms_conn_connect on the same loop */
    int reconnect_rc;
};

static void nothing(ms_conn *c, void *arg)
{
    (void)c;
    (*(int *)arg)++;
}

static void cl_open(ms_conn *c, void *user)
{
    tcl *k = user;
    world *w = k->w;
    k->opened++;
    if (k->big) {
        uint8_t *p = calloc(1, BIG);
        assert_non_null(p);
        assert_int_equal(ms_conn_send(c, p, BIG), 0);
        free(p);
    }
    if (++w->nopen == w->want_open)
        ms_loop_stop(w->loop);
}

static void stray_close(ms_conn *c, int reason, void *user)
{
    (void)c;
    (void)reason;
    (*(int *)user)++;
}

static void cl_close(ms_conn *c, int reason, void *user)
{
    tcl *k = user;
    world *w = k->w;
    assert_ptr_equal(c, k->c);
    k->c = NULL;
    k->closed++;
    k->reason = reason;
    k->close_order = w->nclosed++;
    int seen = 0;
    k->left_at_close = ms_loop_foreach_conn(ms_conn_loop(c), nothing, &seen);
    assert_int_equal(seen, k->left_at_close);
    if (k->abort_a >= 0 && w->k[k->abort_a].c)
        ms_conn_abort(w->k[k->abort_a].c);
    if (k->abort_b >= 0 && w->k[k->abort_b].c)
        ms_conn_abort(w->k[k->abort_b].c);
    if (k->reconnect) {
        static int stray_closes;
        ms_conn_callbacks cb = {.on_close = stray_close};
        ms_conn *nc = NULL;
        ms_connect_opts o = {.addr = w->up, .cb = cb, .user = &stray_closes, .timeout_ms = 5000};
        k->reconnect_rc = ms_conn_connect(ms_conn_loop(c), &o, &nc);
        assert_null(nc);
        assert_int_equal(stray_closes, 0);
    }
}

static void watchdog(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    ((world *)arg)->timed_out = 1;
    ms_loop_stop(loop);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void fd_addr(int fd, char *out, size_t cap)
{
    ms_addr a;
    assert_int_equal(ms_sock_local(fd, &a), 0);
    assert_true(ms_addr_format(&a, out, cap) > 0);
}

/* A listener that never accepts: connects complete in the kernel. */
static int up_listener(char *addr, size_t cap)
{
    int fd = ms_listen_text("127.0.0.1:0", NULL);
    assert_true(fd >= 0);
    fd_addr(fd, addr, cap);
    return fd;
}

/* A listener whose accept queue is full: the kernel drops a further
 * connect's SYN, so that connect stays in progress (retrying for minutes).
 * Fillers are connected (or the last, pending) sockets that keep it full. */
static int full_listener(char *addr, size_t cap, int *fill, int *nfill)
{
    ms_listen_opts o = {.backlog = 1};
    int fd = ms_listen_text("127.0.0.1:0", &o);
    assert_true(fd >= 0);
    fd_addr(fd, addr, cap);
    ms_addr a;
    assert_int_equal(ms_addr_parse(&a, addr), 0);
    *nfill = 0;
    for (int i = 0; i < 8; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(s >= 0);
        int r = connect(s, (const struct sockaddr *)&a.ss, a.len);
        assert_true(r == 0 || errno == EINPROGRESS);
        fill[(*nfill)++] = s;
        struct pollfd p = {.fd = s, .events = POLLOUT};
        /* The first SYN retransmission is a second away. */
        if (r < 0 && poll(&p, 1, 300) == 0)
            return fd;
    }
    fail_msg("the listen queue never filled");
    return -1;
}

static void client(world *w, int i, const char *addr)
{
    tcl *k = &w->k[i];
    k->w = w;
    k->idx = i;
    ms_conn_callbacks cb = {.on_open = cl_open, .on_close = cl_close};
    ms_connect_opts o = {.addr = addr, .cb = cb, .user = k, .timeout_ms = 60000};
    assert_int_equal(ms_conn_connect(w->loop, &o, &k->c), 0);
    assert_non_null(k->c);
    ms_conn_set_userdata(k->c, k);
    w->n = i + 1;
}

/* A fresh w (its up address kept) with clients k and a loop. */
static void loop_new(world *w, tcl *k)
{
    char up[MS_ADDR_STRLEN];
    memcpy(up, w->up, sizeof up);
    memset(w, 0, sizeof *w);
    memcpy(w->up, up, sizeof up);
    memset(k, 0, NMAX * sizeof *k);
    for (int i = 0; i < NMAX; i++)
        k[i].abort_a = k[i].abort_b = -1;
    w->k = k;
    ms_loop_opts lo = {.backend = backend};
    assert_int_equal(ms_loop_create(&w->loop, &lo), 0);
    backend_check(ms_loop_backend(w->loop), "the clients' loop");
}

/* Runs until want_open clients have opened (their on_open stops it). */
static void run_until_open(world *w)
{
    ms_timer *t;
    assert_int_equal(ms_timer_create(w->loop, &t), 0);
    assert_int_equal(ms_timer_start(t, 10000, 0, watchdog, w), 0);
    assert_int_equal(ms_loop_run(w->loop), 0);
    assert_int_equal(w->timed_out, 0);
    assert_int_equal(w->nopen, w->want_open);
    ms_timer_free(t);
}

/* Connected, connecting and queued-output clients, freed after
 * ms_loop_run returned through ms_loop_stop. */
static void test_free_ends_every_conn(void **state)
{
    (void)state;
    backend_require(test_name);
    char never[MS_ADDR_STRLEN];
    int fill[8], nfill;
    world w;
    tcl k[NMAX];
    int up = up_listener(w.up, sizeof w.up);
    int blk = full_listener(never, sizeof never, fill, &nfill);
    int fds_before = count_fds();

    loop_new(&w, k);
    enum { NUP = 4, N = 6 };
    for (int i = 0; i < N; i++)
        client(&w, i, i < NUP ? w.up : never);
    k[1].big = 1;
    w.want_open = NUP;
    run_until_open(&w);

    int seen = 0;
    assert_int_equal(ms_loop_foreach_conn(w.loop, nothing, &seen), N);
    assert_int_equal(seen, N);
    assert_true(ms_conn_out_queued(k[1].c) > 0);
    for (int i = 0; i < N; i++) {
        ms_conn_info info;
        ms_conn_info_get(k[i].c, &info);
        assert_int_equal(info.state, i < NUP ? MS_CONN_OPEN : MS_CONN_CONNECTING);
        k[i].fd = info.fd;
        assert_true(k[i].fd >= 0);
        assert_true(fd_open(k[i].fd));
    }
    assert_true(count_fds() > fds_before);

    ms_loop_free(w.loop);
    for (int i = 0; i < N; i++) {
        assert_int_equal(k[i].closed, 1);
        assert_int_equal(k[i].reason, MS_ECLOSED);
        assert_int_equal(k[i].opened, i < NUP);
        assert_false(fd_open(k[i].fd));
        /* Each on_close sees the ones not yet ended, the last none. */
        assert_int_equal(k[i].left_at_close, N - 1 - k[i].close_order);
    }
    assert_int_equal(w.nclosed, N);
    assert_int_equal(count_fds(), fds_before);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(blk);
    close(up);
}

/* A loop that never ran: connects still in progress are ended too. */
static void test_free_never_run(void **state)
{
    (void)state;
    backend_require(test_name);
    world w;
    tcl k[NMAX];
    int up = up_listener(w.up, sizeof w.up);
    int fds_before = count_fds();
    loop_new(&w, k);
    for (int i = 0; i < 3; i++)
        client(&w, i, w.up);
    assert_int_equal(ms_loop_foreach_conn(w.loop, nothing, &(int){0}), 3);
    ms_loop_free(w.loop);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(k[i].closed, 1);
        assert_int_equal(k[i].reason, MS_ECLOSED);
        assert_int_equal(k[i].opened, 0);
    }
    assert_int_equal(count_fds(), fds_before);
    close(up);
}

/* An on_close run by ms_loop_free aborts the next connection (the one the
 * teardown holds) and a later one, and cannot start a new one. */
static void test_free_on_close_aborts_others(void **state)
{
    (void)state;
    backend_require(test_name);
    world w;
    tcl k[NMAX];
    int up = up_listener(w.up, sizeof w.up);
    int fds_before = count_fds();
    loop_new(&w, k);
    enum { N = 6 };
    for (int i = 0; i < N; i++)
        client(&w, i, w.up);
    w.want_open = N;
    run_until_open(&w);
    k[0].abort_a = 1;
    k[0].abort_b = 4;
    k[0].reconnect = 1;
    k[2].abort_a = 5;
    k[2].abort_b = 0; /* already over: its pointer is NULL by then */
    assert_int_equal(ms_loop_foreach_conn(w.loop, nothing, &(int){0}), N);

    ms_loop_free(w.loop);
    for (int i = 0; i < N; i++) {
        assert_int_equal(k[i].closed, 1);
        assert_int_equal(k[i].reason, MS_ECLOSED);
        assert_int_equal(k[i].opened, 1);
    }
    assert_int_equal(w.nclosed, N);
    assert_int_equal(k[0].reconnect_rc, MS_ECLOSED);
    /* 4 ended inside 0's on_close, 1 (held) right after it returned. */
    assert_int_equal(k[0].close_order, 0);
    assert_int_equal(k[4].close_order, 1);
    assert_int_equal(k[1].close_order, 2);
    assert_int_equal(count_fds(), fds_before);
    close(up);
}

/* ---- ms_loop_foreach_conn on a running client loop ---- */

typedef struct walk_ctx {
    world *w;
    int visited[NMAX];
    int abort_odd;   /* fn aborts the odd clients it is given */
    int abort_next;  /* fn, given client i, aborts client i + 2 */
} walk_ctx;

static void walk_fn(ms_conn *c, void *arg)
{
    walk_ctx *x = arg;
    tcl *k = ms_conn_userdata(c);
    assert_non_null(k);
    assert_ptr_equal(k->c, c);
    x->visited[k->idx]++;
    /* Its on_close runs once fn has returned: the walk holds it. */
    if (x->abort_odd && k->idx % 2)
        ms_conn_abort(c);
    if (x->abort_next && k->idx + 2 < x->w->n && x->w->k[k->idx + 2].c)
        ms_conn_abort(x->w->k[k->idx + 2].c);
}

static void test_foreach_conn_clients(void **state)
{
    (void)state;
    backend_require(test_name);
    world w;
    tcl k[NMAX];
    int up = up_listener(w.up, sizeof w.up);
    loop_new(&w, k);
    assert_int_equal(ms_loop_foreach_conn(w.loop, nothing, &(int){0}), 0);
    assert_int_equal(ms_loop_foreach_conn(NULL, nothing, NULL), MS_EINVAL);
    assert_int_equal(ms_loop_foreach_conn(w.loop, NULL, NULL), MS_EINVAL);
    enum { N = 5 };
    for (int i = 0; i < N; i++)
        client(&w, i, w.up);
    w.want_open = N;
    run_until_open(&w);

    /* Every one once, in the order made; each odd one closes itself. */
    walk_ctx x = {.w = &w, .abort_odd = 1};
    assert_int_equal(ms_loop_foreach_conn(w.loop, walk_fn, &x), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(x.visited[i], 1);
        assert_int_equal(k[i].closed, i % 2);
    }
    assert_int_equal(k[1].reason, MS_ECLOSED);
    assert_int_equal(k[3].reason, MS_ECLOSED);

    /* Left: 0, 2, 4. Given 0, fn aborts 2 (next in the walk, not visited
     * then); given 4, nothing to abort. */
    walk_ctx y = {.w = &w, .abort_next = 1};
    assert_int_equal(ms_loop_foreach_conn(w.loop, walk_fn, &y), 2);
    assert_int_equal(y.visited[0], 1);
    assert_int_equal(y.visited[2], 0);
    assert_int_equal(y.visited[4], 1);
    assert_int_equal(k[2].closed, 1);
    assert_int_equal(ms_loop_foreach_conn(w.loop, nothing, &(int){0}), 2);

    /* One closed gracefully (nothing sent: at once), the last at free. */
    ms_conn_close(k[0].c);
    ms_loop_free(w.loop);
    for (int i = 0; i < N; i++)
        assert_int_equal(k[i].closed, 1);
    assert_int_equal(k[4].reason, MS_ECLOSED);
    close(up);
}

/* ---- ms_loop_foreach_conn on a server's loop ---- */

typedef struct tsrv {
    ms_server *s;
    pthread_t th;
    int run_rc;
    atomic_int opens, closes;
} tsrv;

static void srv_open(ms_conn *c, void *user)
{
    (void)c;
    atomic_fetch_add(&((tsrv *)user)->opens, 1);
}

static void srv_close(ms_conn *c, int reason, void *user)
{
    (void)c;
    (void)reason;
    atomic_fetch_add(&((tsrv *)user)->closes, 1);
}

static void abort_others(ms_conn *c, void *arg)
{
    if (c != arg)
        ms_conn_abort(c);
}

/* "count": replies how many connections the server's loop drives;
 * "abort": aborts all the others, replies how many were visited. */
static void srv_msg(ms_conn *c, const ms_frame *m, void *user)
{
    (void)user;
    int n;
    int dummy = 0;
    if (m->len == 5 && memcmp(m->data, "abort", 5) == 0)
        n = ms_loop_foreach_conn(ms_conn_loop(c), abort_others, c);
    else
        n = ms_loop_foreach_conn(ms_conn_loop(c), nothing, &dummy);
    char reply[16];
    int len = snprintf(reply, sizeof reply, "%d", n);
    int rc = ms_conn_send(c, reply, (size_t)len);
    offthread_check(rc == 0, "send: %s", ms_err_name(rc));
}

static void *srv_thread(void *arg)
{
    tsrv *t = arg;
    t->run_rc = ms_server_run(t->s);
    return NULL;
}

static void quiet_log(void *user, int level, const char *msg)
{
    (void)user;
    (void)level;
    (void)msg;
}

static void ask(int fd, const char *q, const char *want)
{
    char line[32];
    int n = snprintf(line, sizeof line, "%s\n", q);
    assert_int_equal(ms_send_all(fd, line, (size_t)n, 5000, NULL), 0);
    size_t wl = strlen(want);
    char got[32] = {0};
    assert_int_equal(ms_recv_exact(fd, got, wl + 1, 5000, NULL), 0);
    assert_memory_equal(got, want, wl);
    assert_int_equal(got[wl], '\n');
}

static void test_foreach_conn_server(void **state)
{
    (void)state;
    backend_require(test_name);
    offthread_reset();
    tsrv t;
    memset(&t, 0, sizeof t);
    ms_server_config cfg = {
        .listen = "127.0.0.1:0",
        .threads = 1,
        .backend = backend,
        .frame = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1},
        .cb = {.on_open = srv_open, .on_message = srv_msg, .on_close = srv_close},
        .user = &t,
        .log = quiet_log,
        .drain_timeout_ms = 5000,
    };
    assert_int_equal(ms_server_create(&t.s, &cfg), 0);
    ms_addr a;
    assert_int_equal(ms_server_local_addr(t.s, &a), 0);
    assert_int_equal(pthread_create(&t.th, NULL, srv_thread, &t), 0);
    enum { N = 3 };
    int fd[N];
    for (int i = 0; i < N; i++) {
        fd[i] = ms_connect(&a, 5000, 0);
        assert_true(fd[i] >= 0);
    }
    /* Accepted in order, so the last one's message finds all of them. */
    ask(fd[N - 1], "count", "3");
    ask(fd[N - 1], "abort", "3");
    for (int i = 0; i < N - 1; i++) {
        char b;
        ssize_t r = ms_recv_some(fd[i], &b, 1, 5000);
        assert_true(r == MS_EOF || r == MS_ECONNRESET);
    }
    ask(fd[N - 1], "count", "1");
    for (int i = 0; i < N; i++)
        close(fd[i]);
    ms_server_stop(t.s);
    assert_int_equal(pthread_join(t.th, NULL), 0);
    assert_int_equal(t.run_rc, 0);
    ms_server_free(t.s);
    offthread_verify();
    assert_int_equal(atomic_load(&t.opens), N);
    assert_int_equal(atomic_load(&t.closes), N);
}

/* ---- the loop's hooks (loop/loop_ext.h) ---- */

typedef struct ext_rec {
    char order[8];
    int n;
    int found_self, set_rc, timer_ok;
    ms_timer *t;
} ext_rec;

static const char key_a = 'a', key_b = 'b', key_c = 'c';

static void fini_note(ms_loop *loop, void *data, char which)
{
    ext_rec *r = data;
    r->order[r->n++] = which;
    /* Everything of the loop still works: its timers too. */
    r->timer_ok += ms_timer_start(r->t, 1000, 0, watchdog, NULL) == 0 && ms_timer_active(r->t);
    (void)loop;
}

static void fini_a(ms_loop *loop, void *data) { fini_note(loop, data, 'a'); }
static void fini_c(ms_loop *loop, void *data) { fini_note(loop, data, 'c'); }

static void fini_b(ms_loop *loop, void *data)
{
    ext_rec *r = data;
    fini_note(loop, data, 'b');
    r->found_self = msi_loop_ext(loop, &key_b) == data;
    r->set_rc = msi_loop_ext_set(loop, &key_c, r, fini_c);
}

static void test_loop_ext_hooks(void **state)
{
    (void)state;
    backend_require(test_name);
    ms_loop *loop;
    ms_loop_opts lo = {.backend = backend};
    assert_int_equal(ms_loop_create(&loop, &lo), 0);
    ext_rec r;
    memset(&r, 0, sizeof r);
    assert_int_equal(ms_timer_create(loop, &r.t), 0);
    assert_null(msi_loop_ext(loop, &key_a));
    assert_int_equal(msi_loop_ext_set(loop, &key_a, &r, fini_a), 0);
    assert_int_equal(msi_loop_ext_set(loop, &key_b, &r, fini_b), 0);
    assert_int_equal(msi_loop_ext_set(loop, &key_a, &r, fini_a), MS_EEXIST);
    assert_int_equal(msi_loop_ext_set(loop, &key_c, &r, NULL), MS_EINVAL);
    assert_ptr_equal(msi_loop_ext(loop, &key_a), &r);
    assert_null(msi_loop_ext(loop, &key_c));
    ms_loop_free(loop);
    /* The latest first, each findable during its own fini; one set then
     * ends next. */
    assert_string_equal(r.order, "bca");
    assert_int_equal(r.found_self, 1);
    assert_int_equal(r.set_rc, 0);
    assert_int_equal(r.timer_ok, 3);
}

#define ON(fn, setup) cmocka_unit_test_prestate_setup_teardown(fn, setup, NULL, (void *)#fn)
#define ALL(fn) ON(fn, use_epoll), ON(fn, use_poll), ON(fn, use_uring)

int main(void)
{
    struct CMUnitTest tests[] = {
        ALL(test_free_ends_every_conn),
        ALL(test_free_never_run),
        ALL(test_free_on_close_aborts_others),
        ALL(test_foreach_conn_clients),
        ALL(test_foreach_conn_server),
        ON(test_loop_ext_hooks, use_epoll),
    };
    size_t n = backend_filter(tests, sizeof tests / sizeof tests[0]);
    return _cmocka_run_group_tests("test_loop_teardown", tests, n, NULL, NULL);
}
