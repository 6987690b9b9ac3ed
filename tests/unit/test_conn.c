/* test_conn.c: buffered connections and the event server, each test on both
 * loop backends (and io_uring): echo, framing, backpressure (also with a
 * message limit below what it holds), output limit, half-close,
 * timeouts, self-closing callbacks, connection limit, 1000 connections,
 * event-driven clients, the lingering close's byte cap and the blocking
 * driver. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "msgsock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helper_backend.h"
#include "helper_thread.h"
#include "helper_wait.h"


/* ---- a server on its own thread ---- */

typedef struct tsrv {
    ms_server *s;
    pthread_t th;
    char addr[MS_ADDR_STRLEN];
    int mode;                     /* what the handler does, see on_msg */
    atomic_int closes;
    atomic_int last_reason;
    atomic_size_t max_queued;
    atomic_size_t max_len;        /* the largest message on_msg got */
    atomic_int saw_paused;
    atomic_int send_rc;
    atomic_int nodelay, keepalive, keepidle; /* of the last accepted socket, at on_open */
    int run_rc;                   /* ms_server_run's, read after the join */
    _Atomic(const char *) loop_backend; /* ms_loop_backend of a connection's loop */
    _Atomic(ms_server *) conn_server;   /* ms_conn_server, at on_open */
    atomic_size_t sendv_queued;   /* M_SENDV: ms_conn_out_queued after the vector */
    atomic_size_t later_queued;   /* M_SENDV: the same at the next message */
    atomic_ullong closed_bytes_in; /* ms_conn_info's bytes_in at the last on_close */
} tsrv;

/* The callbacks run on the server's thread: they check with
 * offthread_check, and srv_stop (on the test's thread) fails on what they
 * recorded. */
enum { M_ECHO, M_REFRAME, M_FLOOD, M_CLOSE_SELF, M_ABORT_OPEN, M_BACKPRESSURE, M_ACCESSORS,
       M_SENDV };

/* Any thread: -1 (recorded as a failed check) if getsockopt fails. */
static int sockopt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    int rc = getsockopt(fd, level, name, &v, &len);
    offthread_check(rc == 0, "getsockopt(%d, %d, %d): %s", fd, level, name, strerror(errno));
    return rc == 0 ? v : -1;
}

/* M_ACCESSORS: what each connection keeps through ms_conn_set_userdata. */
typedef struct per_conn {
    int msgs;
} per_conn;

static void on_open(ms_conn *c, void *user)
{
    tsrv *t = user;
    ms_conn_info info;
    ms_conn_info_get(c, &info);
    atomic_store(&t->loop_backend, ms_loop_backend(ms_conn_loop(c)));
    atomic_store(&t->conn_server, ms_conn_server(c));
    if (t->mode == M_ACCESSORS) {
        offthread_check(ms_conn_userdata(c) == NULL, "a new connection has userdata %p",
                        ms_conn_userdata(c));
        per_conn *pc = calloc(1, sizeof *pc);
        offthread_check(pc != NULL, "calloc");
        ms_conn_set_userdata(c, pc);
        offthread_check(ms_conn_userdata(c) == pc, "userdata %p, set %p", ms_conn_userdata(c),
                        (void *)pc);
    }
    atomic_store(&t->keepalive, sockopt(info.fd, SOL_SOCKET, SO_KEEPALIVE));
    atomic_store(&t->keepidle, sockopt(info.fd, IPPROTO_TCP, TCP_KEEPIDLE));
    /* Last: check_accepted waits on it, then reads the other two. */
    atomic_store(&t->nodelay, sockopt(info.fd, IPPROTO_TCP, TCP_NODELAY));
    if (t->mode == M_ABORT_OPEN) {
        ms_conn_send_raw(c, "bye", 3);
        ms_conn_abort(c);
        ms_conn_abort(c);
        int rc = ms_conn_send_raw(c, "x", 1);
        offthread_check(rc == MS_ECLOSED, "send after abort: %s", ms_err_name(rc));
    }
}

/* M_ACCESSORS: counts the server's connections and whether self is one. */
struct census {
    ms_conn *self;
    int n, found, without_data;
};

static void count_conn(ms_conn *c, void *arg)
{
    struct census *k = arg;
    k->n++;
    k->found += c == k->self;
    k->without_data += ms_conn_userdata(c) == NULL;
}

/* Replies "MSGS CONNS FOUND": this connection's messages so far (kept in
 * its userdata), the server's open connections (ms_server_foreach_conn,
 * valid here: one loop, on its thread) and whether this one was among them. */
static void accessors_msg(tsrv *t, ms_conn *c)
{
    per_conn *pc = ms_conn_userdata(c);
    if (!offthread_check(pc != NULL, "no userdata at on_message"))
        return;
    pc->msgs++;
    ms_server *s = ms_conn_server(c);
    offthread_check(s == t->s, "ms_conn_server %p, the server is %p", (void *)s, (void *)t->s);
    struct census k = {.self = c};
    ms_server_foreach_conn(t->s, count_conn, &k);
    offthread_check(k.without_data == 0, "%d connections without userdata", k.without_data);
    char reply[32];
    int n = snprintf(reply, sizeof reply, "%d %d %d", pc->msgs, k.n, k.found);
    int rc = ms_conn_send_raw(c, reply, (size_t)n);
    offthread_check(rc == 0, "send: %s", ms_err_name(rc));
}

/* M_SENDV: the vector's pieces, sizes in bytes; zeros included, and more
 * pieces than one ring send takes (MSI_RING_IOV, 64). Filled with
 * sendv_byte(offset in the whole). */
enum { SENDV_PIECES = 70 };

static size_t sendv_piece_len(int i)
{
    static const size_t lens[] = {1, 0, 3u << 20, 0, 0, 65537, 4, 0, 5u << 20, 7};
    return i < 10 ? lens[i] : i % 3 == 0 ? 0 : (size_t)i;
}

static uint8_t sendv_byte(size_t off)
{
    return (uint8_t)(off * 31 + (off >> 12) + (off >> 20));
}

static size_t sendv_total(void)
{
    size_t total = 0;
    for (int i = 0; i < SENDV_PIECES; i++)
        total += sendv_piece_len(i);
    return total;
}

/* At the first message: the whole vector, out_queued recorded after it
 * (the client does not read yet, so most is queued); at the next, the
 * queue (empty once the client has read everything) and "ok". */
static void sendv_msg(tsrv *t, ms_conn *c)
{
    size_t total = sendv_total();
    if (atomic_load(&t->sendv_queued) != SIZE_MAX) {
        atomic_store(&t->later_queued, ms_conn_out_queued(c));
        int rc = ms_conn_send_raw(c, "ok", 2);
        offthread_check(rc == 0, "send: %s", ms_err_name(rc));
        return;
    }
    uint8_t *data = malloc(total);
    if (!offthread_check(data != NULL, "malloc %zu", total))
        return;
    for (size_t k = 0; k < total; k++)
        data[k] = sendv_byte(k);
    struct iovec iov[SENDV_PIECES];
    size_t off = 0;
    for (int i = 0; i < SENDV_PIECES; i++) {
        iov[i] = (struct iovec){data + off, sendv_piece_len(i)};
        off += iov[i].iov_len;
    }
    int rc = ms_conn_sendv_raw(c, iov, SENDV_PIECES);
    offthread_check(rc == 0, "sendv: %s", ms_err_name(rc));
    ms_conn_info info;
    ms_conn_info_get(c, &info);
    size_t q = ms_conn_out_queued(c);
    offthread_check(q == info.out_queued, "out_queued %zu, info says %zu", q, info.out_queued);
    atomic_store(&t->sendv_queued, q);
    /* The payload stays the caller's: scribbling on it now must not
     * change what the peer gets. */
    memset(data, 0xee, total);
    free(data);
}

static void on_msg(ms_conn *c, const ms_frame *m, void *user)
{
    tsrv *t = user;
    if (m->len > atomic_load(&t->max_len))
        atomic_store(&t->max_len, m->len);
    switch (t->mode) {
    case M_ECHO:
    case M_BACKPRESSURE: {
        int rc = ms_conn_send_raw(c, m->data, m->len);
        offthread_check(rc == 0, "echo %zu bytes: %s", m->len, ms_err_name(rc));
        break;
    }
    case M_REFRAME: {
        int rc = ms_conn_send(c, m->data, m->len);
        offthread_check(rc == 0, "reframe %zu bytes: %s", m->len, ms_err_name(rc));
        break;
    }
    case M_ACCESSORS:
        accessors_msg(t, c);
        break;
    case M_SENDV:
        sendv_msg(t, c);
        break;
    case M_FLOOD: {
        static uint8_t block[65536];
        int rc = 0;
        for (int i = 0; i < 1000 && rc == 0; i++)
            rc = ms_conn_send_raw(c, block, sizeof block);
        atomic_store(&t->send_rc, rc);
        break;
    }
    case M_CLOSE_SELF: {
        int rc = ms_conn_send_raw(c, m->data, m->len);
        offthread_check(rc == 0, "send: %s", ms_err_name(rc));
        ms_conn_close(c);
        ms_conn_close(c);
        rc = ms_conn_send_raw(c, "late", 4);
        offthread_check(rc == MS_ECLOSED, "send after close: %s", ms_err_name(rc));
        break;
    }
    }
    ms_conn_info info;
    ms_conn_info_get(c, &info);
    if (info.out_queued > atomic_load(&t->max_queued))
        atomic_store(&t->max_queued, info.out_queued);
    if (info.reading_paused)
        atomic_store(&t->saw_paused, 1);
}

static void on_close(ms_conn *c, int reason, void *user)
{
    tsrv *t = user;
    if (t->mode == M_ACCESSORS) {
        free(ms_conn_userdata(c));
        ms_conn_set_userdata(c, NULL);
    }
    ms_conn_info info;
    ms_conn_info_get(c, &info);
    atomic_store(&t->closed_bytes_in, info.bytes_in);
    atomic_store(&t->last_reason, reason);
    atomic_fetch_add(&t->closes, 1);
}

static void *srv_thread(void *arg)
{
    tsrv *t = arg;
    t->run_rc = ms_server_run(t->s);
    return NULL;
}

/* A server on the test's backend; on io_uring the test is skipped
 * (visibly) where the kernel refuses it. */
static tsrv *srv_start(int mode, const ms_frame_config *frame, const ms_server_limits *lim)
{
    backend_require(test_name);
    offthread_reset();
    tsrv *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->mode = mode;
    atomic_store(&t->sendv_queued, SIZE_MAX);
    ms_server_config cfg = {
        .listen = "127.0.0.1:0",
        .threads = 1,
        .backend = backend,
        .cb = {.on_open = on_open, .on_message = on_msg, .on_close = on_close},
        .user = t,
    };
    if (frame)
        cfg.frame = *frame;
    if (lim)
        cfg.limits = *lim;
    assert_int_equal(ms_server_create(&t->s, &cfg), 0);
    ms_addr a;
    assert_int_equal(ms_server_local_addr(t->s, &a), 0);
    assert_true(ms_addr_port(&a) > 0);
    assert_true(ms_addr_format(&a, t->addr, sizeof t->addr) > 0);
    assert_int_equal(pthread_create(&t->th, NULL, srv_thread, t), 0);
    return t;
}

/* Stops and frees t, then fails on what its callbacks recorded, and
 * unless the server's loop ran on the backend asked for. */
static void srv_stop(tsrv *t)
{
    ms_server_stop(t->s);
    assert_int_equal(pthread_join(t->th, NULL), 0);
    int rc = t->run_rc;
    const char *ran_on = atomic_load(&t->loop_backend);
    ms_server_free(t->s);
    free(t);
    offthread_verify();
    if (rc != 0)
        fail_msg("%s: ms_server_run: %s", backend, ms_err_name(rc));
    if (!ran_on)
        fail_msg("%s: the server opened no connection, so its loop's backend is unknown", backend);
    backend_check(ran_on, "the server's loop");
}

static ms_server_stats stats(tsrv *t)
{
    ms_server_stats st;
    ms_server_stats_get(t->s, &st);
    return st;
}

static int dial(tsrv *t)
{
    int fd = ms_connect_text(t->addr, 5000, 0);
    if (fd < 0)
        fail_msg("%s: dial %s: %s", backend, t->addr, ms_err_name(fd));
    return fd;
}

#define wait_until(cond, t, ms) wait_for(cond, t, ms, #cond)

/* ---- tests ---- */

static void test_echo(void **state)
{
    (void)state;
    tsrv *t = srv_start(M_ECHO, NULL, NULL);
    int fd = dial(t);
    const char msg[] = "Message 1 from client.Message 2 from client.";
    assert_int_equal(ms_send_all(fd, msg, 44, 5000, NULL), 0);
    char back[44];
    assert_int_equal(ms_recv_exact(fd, back, 44, 5000, NULL), 0);
    assert_memory_equal(back, msg, 44);
    close(fd);
    srv_stop(t);
}

static int counted_bad_input(void *arg)
{
    tsrv *t = arg;
    return stats(t).dropped_bad_input >= 1;
}

static void test_len32_framing(void **state)
{
    (void)state;
    ms_frame_config fc = {.kind = MS_FRAME_LEN32};
    tsrv *t = srv_start(M_REFRAME, &fc, NULL);
    int fd = dial(t);
    /* 50 messages of growing sizes, written one byte at a time at first,
     * then in one piece: the server sees whole messages either way. */
    size_t total = 0;
    uint8_t *wire = malloc(50 * (4 + 40000));
    for (uint32_t i = 0; i < 50; i++) {
        uint32_t len = i * 797;
        ms_put_be32(wire + total, len);
        for (uint32_t k = 0; k < len; k++)
            wire[total + 4 + k] = (uint8_t)(i + k);
        total += 4 + len;
    }
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(ms_send_all(fd, wire + i, 1, 5000, NULL), 0);
    assert_int_equal(ms_send_all(fd, wire + 40, total - 40, 5000, NULL), 0);
    uint8_t *back = malloc(total);
    assert_int_equal(ms_recv_exact(fd, back, total, 5000, NULL), 0);
    assert_memory_equal(back, wire, total);
    /* An over-size length is refused before its bytes arrive. */
    uint8_t big[4];
    ms_put_be32(big, 0x7fffffffu);
    assert_int_equal(ms_send_all(fd, big, 4, 5000, NULL), 0);
    char x;
    assert_true(ms_recv_some(fd, &x, 1, 5000) < 0);
    close(fd);
    wait_until(counted_bad_input, t, 3000);
    assert_int_equal(stats(t).dropped_bad_input, 1);
    assert_int_equal(atomic_load(&t->last_reason), MS_ETOOLARGE);
    free(wire);
    free(back);
    srv_stop(t);
}

typedef struct writer {
    int fd;
    size_t len;
    int rc;
} writer;

static void *write_thread(void *arg)
{
    writer *w = arg;
    uint8_t buf[65536];
    size_t done = 0;
    w->rc = 0;
    while (done < w->len && w->rc == 0) {
        size_t n = w->len - done < sizeof buf ? w->len - done : sizeof buf;
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)((done + k) * 7 + ((done + k) >> 16));
        w->rc = ms_send_all(w->fd, buf, n, 20000, NULL);
        done += n;
    }
    return NULL;
}

static int paused_seen(void *arg)
{
    tsrv *t = arg;
    return atomic_load(&t->saw_paused);
}

/* What the library promises: reading pauses once out_high bytes are queued,
 * and whatever was received before the pause took effect is held and
 * delivered once the queue drains to out_low, one message at a time, each
 * reply meeting the out_high check before the next message goes out. So
 * the queue passes out_high by at most the reply to one message, and a RAW
 * message is at most one read's worth (64 KiB). (How much is held differs:
 * readiness stops at the read that paused; io_uring keeps reporting what
 * its multishot receive took in until the cancellation lands, megabytes at
 * a time.) Backpressure that did not pause, or that delivered held input
 * regardless, queues megabytes of 4-64 KiB replies here: the 48 MiB the
 * writer pushes would hit out_max. */
static void check_queue_bound(tsrv *t)
{
    size_t queued = atomic_load(&t->max_queued), len = atomic_load(&t->max_len);
    if (len > 65536)
        fail_msg("%s: a RAW message of %zu bytes, more than one read brings", backend, len);
    if (queued > 65536 + len)
        fail_msg("%s: %zu bytes queued, bound out_high + largest message %zu = %zu", backend,
                 queued, len, 65536 + len);
}

/* Bytes wait in the client's send queue: the server's receive buffer is
 * full, the server is not reading. */
static int writer_stalled(void *arg)
{
    writer *w = arg;
    int q = 0;
    return ioctl(w->fd, SIOCOUTQ, &q) == 0 && q > 0;
}

static void backpressure(size_t max_msg)
{
    ms_server_limits lim = {.conn = {.out_high = 65536, .out_low = 16384, .out_max = 8u << 20}};
    ms_frame_config fc = {.kind = MS_FRAME_RAW, .max_msg = max_msg};
    tsrv *t = srv_start(M_BACKPRESSURE, &fc, &lim);
    int fd = dial(t);
    /* On the heap: after a failure the writer runs on, and must not write
     * through a frame the next test reuses. */
    writer *w = calloc(1, sizeof *w);
    assert_non_null(w);
    *w = (writer){.fd = fd, .len = 48u << 20};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_thread, w), 0);
    /* Nobody reads yet: the server pauses reading instead of queueing (once
     * the socket buffers between are full: how soon depends on the load),
     * and stays paused a while. */
    wait_until(paused_seen, t, 10000);
    wait_until(writer_stalled, w, 10000);
    check_queue_bound(t);
    /* Now read everything back: reading resumes and every byte arrives. */
    uint8_t buf[65536];
    size_t got = 0;
    while (got < w->len) {
        ssize_t n = ms_recv_some(fd, buf, sizeof buf, 10000);
        if (n <= 0)
            fail_msg("%s: %s after %zu of %zu bytes (server: %d closed, reason %s)", backend,
                     ms_err_name((int)n), got, w->len, atomic_load(&t->closes),
                     ms_err_name(atomic_load(&t->last_reason)));
        for (ssize_t k = 0; k < n; k++) {
            size_t p = got + (size_t)k;
            if (buf[k] != (uint8_t)(p * 7 + (p >> 16)))
                fail_msg("%s: byte %zu differs", backend, p);
        }
        got += (size_t)n;
    }
    pthread_join(th, NULL);
    assert_int_equal(w->rc, 0);
    free(w);
    check_queue_bound(t);
    close(fd);
    srv_stop(t);
}

static void test_backpressure(void **state)
{
    (void)state;
    backpressure(0);
}

/* Input held behind backpressure is many messages, not one: a message
 * limit below what is held must not end the connection (io_uring held
 * megabytes and closed it with MS_ETOOLARGE). */
static void test_backpressure_small_msg(void **state)
{
    (void)state;
    backpressure(16384);
}

static int closed_once(void *arg)
{
    tsrv *t = arg;
    return atomic_load(&t->closes) >= 1;
}

/* The server counts an end in its stats after on_close has returned (on
 * its thread; every model does), so a test that saw on_close waits for the
 * count as well. open drops before the reason's counter rises. */
static int counted_output(void *arg)
{
    tsrv *t = arg;
    return stats(t).dropped_output >= 1;
}
static int counted_timeout(void *arg)
{
    tsrv *t = arg;
    return stats(t).timed_out >= 1;
}
static int none_open(void *arg)
{
    tsrv *t = arg;
    return stats(t).open == 0;
}

static void test_output_limit(void **state)
{
    (void)state;
    ms_server_limits lim = {.conn = {.out_high = 65536, .out_max = 1u << 20}};
    tsrv *t = srv_start(M_FLOOD, NULL, &lim);
    int fd = dial(t);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_int_equal(ms_send_all(fd, "go", 2, 5000, NULL), 0);
    wait_until(closed_once, t, 5000);
    assert_int_equal(atomic_load(&t->last_reason), MS_EOUTPUTLIMIT);
    assert_int_equal(atomic_load(&t->send_rc), MS_EOUTPUTLIMIT);
    assert_true(atomic_load(&t->max_queued) <= (1u << 20));
    wait_until(counted_output, t, 5000);
    assert_int_equal(stats(t).dropped_output, 1);
    assert_int_equal(stats(t).open, 0);
    close(fd);
    srv_stop(t);
}

static void test_half_close(void **state)
{
    (void)state;
    tsrv *t = srv_start(M_ECHO, NULL, NULL);
    int fd = dial(t);
    size_t len = 3u << 20;
    uint8_t *req = malloc(len), *back = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        req[i] = (uint8_t)(i * 13);
    /* Send everything, then shut the write side; the reply must be whole. */
    size_t got = 0;
    size_t sent = 0;
    ms_sock_set_nonblock(fd, 1);
    while (got < len) {
        if (sent < len) {
            ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            if (sent == len)
                assert_int_equal(ms_sock_shutdown_write(fd), 0);
        }
        ssize_t n = ms_recv_some(fd, back + got, len + 1 - got, sent < len ? 10 : 5000);
        if (n == MS_ETIMEDOUT)
            continue;
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(got, len);
    assert_memory_equal(back, req, len);
    char x;
    assert_int_equal(ms_recv_some(fd, &x, 1, 5000), MS_EOF);
    wait_until(closed_once, t, 5000);
    assert_int_equal(atomic_load(&t->last_reason), 0);
    close(fd);
    free(req);
    free(back);
    srv_stop(t);
}

static int closed_80(void *arg)
{
    tsrv *t = arg;
    return atomic_load(&t->closes) >= 80;
}

/* Connections that end and others that start at once reuse the loop's
 * per-connection slots (descriptor numbers, io_uring handles): each new
 * one must get its own bytes back. */
static void test_reuse_after_close(void **state)
{
    (void)state;
    ms_server_limits lim = {.conn = {.linger_ms = 100}};
    tsrv *t = srv_start(M_ECHO, NULL, &lim);
    for (int round = 0; round < 20; round++) {
        int fd[4];
        for (int i = 0; i < 4; i++)
            fd[i] = dial(t);
        for (int i = 0; i < 4; i++) {
            char msg[16], back[16];
            int n = snprintf(msg, sizeof msg, "r%d c%d", round, i);
            assert_int_equal(ms_send_all(fd[i], msg, (size_t)n, 5000, NULL), 0);
            assert_int_equal(ms_recv_exact(fd[i], back, (size_t)n, 5000, NULL), 0);
            assert_memory_equal(back, msg, (size_t)n);
            /* The first two end before the next round's connect. */
            if (i < 2)
                close(fd[i]);
        }
        close(fd[2]);
        close(fd[3]);
    }
    wait_until(closed_80, t, 5000);
    assert_int_equal(atomic_load(&t->closes), 80);
    srv_stop(t);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    ms_server_limits lim = {.conn = {.idle_timeout_ms = 200}};
    tsrv *t = srv_start(M_ECHO, NULL, &lim);
    int fd = dial(t);
    int64_t t0 = ms_now_ms();
    char x;
    ssize_t n = ms_recv_some(fd, &x, 1, 5000);
    int64_t took = ms_now_ms() - t0;
    assert_true(n == MS_EOF || n == MS_ECONNRESET);
    assert_true(took >= 150 && took < 2000);
    wait_until(closed_once, t, 2000);
    assert_int_equal(atomic_load(&t->last_reason), MS_EIDLE);
    wait_until(counted_timeout, t, 2000);
    assert_int_equal(stats(t).timed_out, 1);
    close(fd);
    srv_stop(t);
}

static void test_slowloris(void **state)
{
    (void)state;
    ms_frame_config fc = {.kind = MS_FRAME_LEN32};
    ms_server_limits lim = {.conn = {.idle_timeout_ms = 5000, .msg_timeout_ms = 300}};
    tsrv *t = srv_start(M_REFRAME, &fc, &lim);
    int fd = dial(t);
    uint8_t hdr[4];
    ms_put_be32(hdr, 1000);
    assert_int_equal(ms_send_all(fd, hdr, 4, 5000, NULL), 0);
    /* One byte every 50 ms keeps it from being idle, never completes. */
    int64_t t0 = ms_now_ms();
    int dropped = 0;
    while (ms_now_ms() - t0 < 3000) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) != 1 || closed_once(t)) {
            dropped = 1;
            break;
        }
        usleep(50000);
    }
    assert_true(dropped);
    wait_until(closed_once, t, 2000);
    assert_true(ms_now_ms() - t0 < 2000);
    assert_int_equal(atomic_load(&t->last_reason), MS_ESLOW);
    wait_until(counted_timeout, t, 2000);
    assert_int_equal(stats(t).timed_out, 1);
    close(fd);
    srv_stop(t);
}

static void test_callback_closes_self(void **state)
{
    (void)state;
    tsrv *t = srv_start(M_CLOSE_SELF, NULL, NULL);
    int fd = dial(t);
    assert_int_equal(ms_send_all(fd, "last words", 10, 5000, NULL), 0);
    char back[32];
    size_t got = 0;
    int rc = ms_recv_exact(fd, back, sizeof back, 5000, &got);
    assert_int_equal(rc, MS_ETRUNCATED);
    assert_int_equal(got, 10);
    assert_memory_equal(back, "last words", 10);
    wait_until(closed_once, t, 5000);
    assert_int_equal(atomic_load(&t->last_reason), 0);
    close(fd);
    srv_stop(t);

    /* Aborted in on_open: the reset can reach the client before its
     * connect is done with (a non-blocking connect's result is read from
     * SO_ERROR once the socket is writable, after the server's loop may
     * have accepted and reset it; a blocking connect() races the same
     * way), so the dial may fail with exactly that reset. */
    t = srv_start(M_ABORT_OPEN, NULL, NULL);
    fd = ms_connect_text(t->addr, 5000, 0);
    if (fd < 0 && fd != MS_ECONNRESET)
        fail_msg("%s: dial %s: %s", backend, t->addr, ms_err_name(fd));
    wait_until(closed_once, t, 5000);
    assert_int_equal(atomic_load(&t->last_reason), MS_ECLOSED);
    wait_until(none_open, t, 5000);
    if (fd >= 0)
        close(fd);
    srv_stop(t);
}

static int refused_50(void *arg)
{
    tsrv *t = arg;
    return stats(t).refused >= 50;
}

static void test_conn_limit_flood(void **state)
{
    (void)state;
    ms_server_limits lim = {.max_conns = 10};
    tsrv *t = srv_start(M_ECHO, NULL, &lim);
    int fds[60];
    for (int i = 0; i < 60; i++)
        fds[i] = dial(t);
    wait_until(refused_50, t, 5000);
    ms_server_stats st = stats(t);
    assert_int_equal(st.accepted, 10);
    assert_int_equal(st.refused, 50);
    assert_int_equal(st.open, 10);
    /* The first ten are served; the rest read EOF. */
    for (int i = 0; i < 60; i++) {
        char b[2];
        if (i < 10) {
            assert_int_equal(ms_send_all(fds[i], "hi", 2, 5000, NULL), 0);
            assert_int_equal(ms_recv_exact(fds[i], b, 2, 5000, NULL), 0);
            assert_memory_equal(b, "hi", 2);
        } else {
            ssize_t n = ms_recv_some(fds[i], b, 1, 5000);
            assert_true(n == MS_EOF || n == MS_ECONNRESET);
        }
        close(fds[i]);
    }
    /* Once they are gone, new clients are served again. */
    wait_until(none_open, t, 5000);
    int fd = dial(t);
    char b[3];
    assert_int_equal(ms_send_all(fd, "abc", 3, 5000, NULL), 0);
    assert_int_equal(ms_recv_exact(fd, b, 3, 5000, NULL), 0);
    assert_memory_equal(b, "abc", 3);
    close(fd);
    srv_stop(t);
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void test_1000_conns(void **state)
{
    (void)state;
    raise_nofile(4096);
    tsrv *t = srv_start(M_ECHO, NULL, NULL);
    enum { N = 1000 };
    int *fds = malloc(N * sizeof *fds);
    for (int i = 0; i < N; i++)
        fds[i] = dial(t);
    for (int i = 0; i < N; i++) {
        char m[32];
        int l = snprintf(m, sizeof m, "connection %d", i);
        assert_int_equal(ms_send_all(fds[i], m, (size_t)l, 5000, NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        char m[32], b[32];
        int l = snprintf(m, sizeof m, "connection %d", i);
        assert_int_equal(ms_recv_exact(fds[i], b, (size_t)l, 5000, NULL), 0);
        assert_memory_equal(b, m, (size_t)l);
    }
    assert_int_equal(stats(t).open, N);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    free(fds);
    srv_stop(t);
}

/* ---- event-driven clients ---- */

typedef struct cl {
    int opened, closed, reason;
    size_t got;
    char buf[64];
} cl;

static void cl_open(ms_conn *c, void *user)
{
    cl *k = user;
    k->opened = 1;
    assert_null(ms_conn_server(c)); /* a client's; this runs on the test's thread */
    assert_int_equal(ms_conn_send(c, "Message 1 from client.", 22), 0);
    assert_int_equal(ms_conn_send(c, "Message 2 from client.", 22), 0);
}

static void cl_msg(ms_conn *c, const ms_frame *m, void *user)
{
    cl *k = user;
    assert_true(k->got + m->len <= sizeof k->buf);
    memcpy(k->buf + k->got, m->data, m->len);
    k->got += m->len;
    if (k->got == 44)
        ms_conn_close(c);
}

static void cl_close(ms_conn *c, int reason, void *user)
{
    (void)c;
    cl *k = user;
    k->closed++;
    k->reason = reason;
}

static void test_client(void **state)
{
    (void)state;
    tsrv *t = srv_start(M_ECHO, NULL, NULL);
    ms_loop *loop;
    ms_loop_opts lo = {.backend = backend};
    assert_int_equal(ms_loop_create(&loop, &lo), 0);
    backend_check(ms_loop_backend(loop), "the clients' loop");
    ms_conn_callbacks cb = {cl_open, cl_msg, cl_close};
    enum { N = 20 };
    cl k[N];
    memset(k, 0, sizeof k);
    for (int i = 0; i < N; i++) {
        ms_conn *c;
        ms_connect_opts o = {.addr = t->addr, .cb = cb, .user = &k[i], .timeout_ms = 5000};
        assert_int_equal(ms_conn_connect(loop, &o, &c), 0);
        assert_non_null(c);
    }
    assert_int_equal(ms_loop_run(loop), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(k[i].opened, 1);
        assert_int_equal(k[i].closed, 1);
        assert_int_equal(k[i].reason, 0);
        assert_int_equal(k[i].got, 44);
        assert_memory_equal(k[i].buf, "Message 1 from client.Message 2 from client.", 44);
    }
    /* Refused: on_close with the error, never on_open. */
    ms_addr a;
    ms_server_local_addr(t->s, &a);
    srv_stop(t);
    char dead[MS_ADDR_STRLEN];
    ms_addr_format(&a, dead, sizeof dead);
    cl r = {0};
    ms_connect_opts o = {.addr = dead, .cb = cb, .user = &r, .timeout_ms = 5000};
    assert_int_equal(ms_conn_connect(loop, &o, NULL), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    assert_int_equal(r.opened, 0);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.reason, MS_ECONNREFUSED);
    /* A bad address fails at once, with no callback. */
    cl b = {0};
    o = (ms_connect_opts){.addr = "nonsense", .cb = cb, .user = &b};
    assert_int_equal(ms_conn_connect(loop, &o, NULL), MS_EBADADDR);
    assert_int_equal(b.closed, 0);
    ms_loop_free(loop);
}

/* ---- socket options ---- */

static int opened(void *arg)
{
    tsrv *t = arg;
    return atomic_load(&t->nodelay) >= 0;
}

/* Accepted sockets: TCP_NODELAY and keepalive unless turned off. */
static void check_accepted(const ms_server_limits *lim, int nodelay, int keepalive, int idle)
{
    tsrv *t = srv_start(M_ECHO, NULL, lim);
    atomic_store(&t->nodelay, -1);
    int fd = dial(t);
    wait_until(opened, t, 5000);
    assert_int_equal(atomic_load(&t->nodelay) != 0, nodelay);
    assert_int_equal(atomic_load(&t->keepalive) != 0, keepalive);
    if (keepalive)
        assert_int_equal(atomic_load(&t->keepidle), idle);
    close(fd);
    srv_stop(t);
}

typedef struct optcl {
    int nodelay;
    int closed;
} optcl;

static void optcl_open(ms_conn *c, void *user)
{
    optcl *k = user;
    ms_conn_info info;
    ms_conn_info_get(c, &info);
    k->nodelay = sockopt(info.fd, IPPROTO_TCP, TCP_NODELAY);
    ms_conn_close(c);
}

static void optcl_close(ms_conn *c, int reason, void *user)
{
    (void)c;
    (void)reason;
    ((optcl *)user)->closed++;
}

static int server_opened_one(void *arg)
{
    tsrv *t = arg;
    return atomic_load(&t->loop_backend) != NULL;
}

static int client_nodelay(const char *addr, const ms_conn_limits *lim)
{
    ms_loop *loop;
    ms_loop_opts lo = {.backend = backend};
    assert_int_equal(ms_loop_create(&loop, &lo), 0);
    backend_check(ms_loop_backend(loop), "the client's loop");
    ms_conn_callbacks cb = {.on_open = optcl_open, .on_close = optcl_close};
    optcl k = {.nodelay = -1};
    ms_connect_opts o = {.addr = addr, .cb = cb, .user = &k, .timeout_ms = 5000};
    if (lim)
        o.limits = *lim;
    assert_int_equal(ms_conn_connect(loop, &o, NULL), 0);
    assert_int_equal(ms_loop_run(loop), 0);
    offthread_verify(); /* sockopt's check, on this thread too */
    assert_int_equal(k.closed, 1);
    ms_loop_free(loop);
    return k.nodelay;
}

static void test_sockopts(void **state)
{
    (void)state;
    check_accepted(NULL, 1, 1, MS_CONN_DEFAULT_KEEPALIVE_IDLE_S);
    ms_server_limits lim = {.conn = {.nodelay = MS_OFF, .keepalive = MS_OFF}};
    check_accepted(&lim, 0, 0, 0);
    lim = (ms_server_limits){.conn = {.nodelay = MS_ON, .keepalive = MS_ON, .keepalive_idle_s = 77}};
    check_accepted(&lim, 1, 1, 77);

    tsrv *t = srv_start(M_ECHO, NULL, NULL);
    assert_true(client_nodelay(t->addr, NULL) != 0);
    ms_conn_limits on = {.nodelay = MS_ON};
    assert_true(client_nodelay(t->addr, &on) != 0);
    ms_conn_limits off = {.nodelay = MS_OFF};
    assert_int_equal(client_nodelay(t->addr, &off), 0);
    /* The clients close at once: the server may not have opened either yet. */
    wait_until(server_opened_one, t, 5000);
    srv_stop(t);
}

/* ---- accessors, and a vector of pieces ---- */

static int three_open(void *arg)
{
    tsrv *t = arg;
    return stats(t).open == 3;
}

static int two_open(void *arg)
{
    tsrv *t = arg;
    return stats(t).open == 2;
}

/* One message on fd; the M_ACCESSORS reply must be want. */
static void ask(int fd, const char *want)
{
    size_t n = strlen(want);
    char got[32] = "";
    assert_int_equal(ms_send_all(fd, "?", 1, 5000, NULL), 0);
    int rc = ms_recv_exact(fd, got, n, 5000, NULL);
    if (rc != 0 || memcmp(got, want, n) != 0)
        fail_msg("%s: reply '%.*s' (%s), want '%s'", backend, (int)n, got,
                 rc ? ms_err_name(rc) : "whole", want);
}

/* ms_conn_set_userdata/ms_conn_userdata keep each connection's own
 * state, ms_conn_server names the server, ms_server_foreach_conn sees
 * exactly the open connections (replies: "MSGS CONNS FOUND"). */
static void test_accessors(void **state)
{
    (void)state;
    tsrv *t = srv_start(M_ACCESSORS, NULL, NULL);
    int fd[3];
    for (int i = 0; i < 3; i++)
        fd[i] = dial(t);
    wait_until(three_open, t, 5000);
    ask(fd[0], "1 3 1");
    ask(fd[1], "1 3 1");
    ask(fd[0], "2 3 1");
    ask(fd[2], "1 3 1");
    ask(fd[0], "3 3 1");
    close(fd[2]);
    wait_until(two_open, t, 5000);
    ask(fd[1], "2 2 1");
    assert_ptr_equal(atomic_load(&t->conn_server), t->s);
    close(fd[0]);
    close(fd[1]);
    srv_stop(t);
}

static int sendv_done(void *arg)
{
    tsrv *t = arg;
    return atomic_load(&t->sendv_queued) != SIZE_MAX;
}

/* ms_conn_sendv_raw with 70 pieces, empty ones among them, 8 MiB in all:
 * more than the socket buffers hold while the client does not read (the
 * server's send buffer grows to tcp_wmem's 4 MiB at most, the unread
 * receive buffer does not grow), so ms_conn_out_queued reports the rest
 * queued; every byte then arrives in order, and the queue is empty by the
 * next message. */
static void test_sendv_pieces(void **state)
{
    (void)state;
    tsrv *t = srv_start(M_SENDV, NULL, NULL);
    int fd = dial(t);
    assert_int_equal(ms_send_all(fd, "v", 1, 5000, NULL), 0);
    wait_until(sendv_done, t, 10000);
    size_t total = sendv_total(), queued = atomic_load(&t->sendv_queued);
    if (queued == 0 || queued > total)
        fail_msg("%s: out_queued %zu after a vector of %zu bytes nobody reads", backend, queued,
                 total);
    uint8_t *buf = malloc(65536);
    assert_non_null(buf);
    size_t got = 0;
    while (got < total) {
        ssize_t n = ms_recv_some(fd, buf, total - got < 65536 ? total - got : 65536, 10000);
        if (n <= 0)
            fail_msg("%s: %s after %zu of %zu bytes", backend, ms_err_name((int)n), got, total);
        for (ssize_t k = 0; k < n; k++)
            if (buf[k] != sendv_byte(got + (size_t)k))
                fail_msg("%s: byte %zu is %u, want %u", backend, got + (size_t)k, buf[k],
                         sendv_byte(got + (size_t)k));
        got += (size_t)n;
    }
    free(buf);
    char ok[2];
    assert_int_equal(ms_send_all(fd, "v", 1, 5000, NULL), 0);
    assert_int_equal(ms_recv_exact(fd, ok, 2, 5000, NULL), 0);
    assert_memory_equal(ok, "ok", 2);
    assert_int_equal(atomic_load(&t->later_queued), 0);
    close(fd);
    srv_stop(t);
}

/* ---- the blocking driver ---- */

/* On the blocking driver's thread. */
static void echo16(ms_conn *c, const ms_frame *m, void *user)
{
    (void)user;
    int rc = ms_conn_send(c, m->data, m->len);
    offthread_check(rc == 0, "echo: %s", ms_err_name(rc));
}

typedef struct bjob {
    int fd;
    int rc;
} bjob;

static void *blocking_thread(void *arg)
{
    bjob *j = arg;
    ms_frame_config fc = {.kind = MS_FRAME_LEN16};
    ms_conn_callbacks cb = {.on_message = echo16};
    j->rc = ms_conn_serve_fd(j->fd, &fc, NULL, &cb, NULL);
    return NULL;
}

static void test_serve_fd(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    offthread_reset();
    bjob j = {.fd = sv[1], .rc = 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocking_thread, &j), 0);
    uint8_t wire[] = {0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0, 2, 'o', 'k'};
    assert_int_equal(ms_send_all(sv[0], wire, sizeof wire, 5000, NULL), 0);
    uint8_t back[sizeof wire];
    assert_int_equal(ms_recv_exact(sv[0], back, sizeof back, 5000, NULL), 0);
    assert_memory_equal(back, wire, sizeof wire);
    assert_int_equal(ms_sock_shutdown_write(sv[0]), 0);
    pthread_join(th, NULL);
    offthread_verify();
    assert_int_equal(j.rc, 0);
    close(sv[0]);
    close(sv[1]);
}

/* ---- the linger cap ---- */

/* What the library's lingering close discards at most (MSI_LINGER_DISCARD). */
#define LINGER_CAP (4u << 20)
/* What a flooding peer sends at most: the cap plus every socket buffer on
 * the way, many times over. */
#define FLOOD_MAX (64u << 20)

/* Sends zeros in 64 KiB pieces until a send fails or FLOOD_MAX went out,
 * or stop(arg) says so (checked whenever a piece waits 100 ms). Returns
 * the failing send's code, or 0. */
static int flood(int fd, int (*stop)(void *arg), void *arg, size_t *sent)
{
    static const uint8_t zeros[65536];
    *sent = 0;
    while (*sent < FLOOD_MAX) {
        size_t k = 0;
        int rc = ms_send_all(fd, zeros, sizeof zeros, stop ? 100 : 10000, &k);
        *sent += k;
        if (rc == MS_ETIMEDOUT && stop && !stop(arg))
            continue;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A peer that keeps sending after the server's graceful close is cut off
 * once the lingering close has discarded LINGER_CAP, long before a linger
 * deadline of a minute, on every loop driver (readiness on epoll and
 * poll, the ring on io_uring); the bytes discarded count in bytes_in and
 * the close is still a clean one. */
static void test_linger_cap(void **state)
{
    (void)state;
    ms_server_limits lim = {.conn = {.linger_ms = 60000, .idle_timeout_ms = 60000}};
    tsrv *t = srv_start(M_CLOSE_SELF, NULL, &lim);
    int fd = dial(t);
    assert_int_equal(ms_send_all(fd, "bye", 3, 5000, NULL), 0);
    char back[3], x;
    assert_int_equal(ms_recv_exact(fd, back, 3, 5000, NULL), 0);
    assert_memory_equal(back, "bye", 3);
    /* The write side is shut: the server lingers. */
    assert_int_equal(ms_recv_some(fd, &x, 1, 5000), MS_EOF);
    size_t sent;
    int rc = flood(fd, NULL, NULL, &sent);
    if (rc == 0)
        fail_msg("%s: %zu bytes sent after the close were all taken", backend, sent);
    if (rc != MS_ECONNRESET && rc != MS_EPIPE)
        fail_msg("%s: the flood ended with %s", backend, ms_err_name(rc));
    wait_until(closed_once, t, 5000);
    assert_int_equal(atomic_load(&t->last_reason), 0);
    unsigned long long in = atomic_load(&t->closed_bytes_in);
    if (in < 3 + LINGER_CAP || in > 3 + (unsigned long long)sent)
        fail_msg("%s: bytes_in %llu at on_close, %zu sent after the reply", backend, in, sent);
    close(fd);
    srv_stop(t);
}

typedef struct ljob {
    tsrv *t;
    int fd;
    int rc;
    atomic_int done;
} ljob;

static void *linger_thread(void *arg)
{
    ljob *j = arg;
    ms_conn_callbacks cb = {.on_message = on_msg, .on_close = on_close};
    ms_conn_limits lim = {.linger_ms = 60000};
    j->rc = ms_conn_serve_fd(j->fd, NULL, &lim, &cb, j->t);
    atomic_store(&j->done, 1);
    return NULL;
}

static int ljob_done(void *arg)
{
    return atomic_load(&((ljob *)arg)->done);
}

/* The same cap in the blocking driver (ms_conn_serve_fd returns, the
 * descriptor still the caller's), with what it discarded in bytes_in. */
static void test_linger_cap_serve_fd(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    offthread_reset();
    tsrv t = {.mode = M_CLOSE_SELF};
    ljob j = {.t = &t, .fd = sv[1], .rc = 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, linger_thread, &j), 0);
    assert_int_equal(ms_send_all(sv[0], "bye", 3, 5000, NULL), 0);
    char back[3], x;
    assert_int_equal(ms_recv_exact(sv[0], back, 3, 5000, NULL), 0);
    assert_memory_equal(back, "bye", 3);
    assert_int_equal(ms_recv_some(sv[0], &x, 1, 5000), MS_EOF);
    size_t sent;
    int rc = flood(sv[0], ljob_done, &j, &sent);
    if (!ljob_done(&j))
        fail_msg("%zu bytes sent after the close, the flood ended with %s, the driver still runs",
                 sent, ms_err_name(rc));
    pthread_join(th, NULL);
    offthread_verify();
    assert_int_equal(j.rc, 0);
    assert_int_equal(atomic_load(&t.closes), 1);
    unsigned long long in = atomic_load(&t.closed_bytes_in);
    if (in < 3 + LINGER_CAP || in > 3 + (unsigned long long)sent)
        fail_msg("bytes_in %llu at on_close, %zu sent after the reply", in, sent);
    close(sv[0]);
    close(sv[1]);
}

/* ---- limits that are not an ms_toggle ---- */

static void count_call(ms_conn *c, void *user)
{
    (void)c;
    ++*(int *)user;
}

static void count_close(ms_conn *c, int reason, void *user)
{
    (void)c;
    (void)reason;
    ++*(int *)user;
}

/* A toggle outside ms_toggle (an old -1 for "off" among them) is refused
 * where the limits are resolved, before anything runs. */
static void test_bad_toggles(void **state)
{
    (void)state;
    static const ms_conn_limits bad[] = {
        {.nodelay = (ms_toggle)-1},
        {.keepalive = (ms_toggle)-1},
        {.nodelay = (ms_toggle)3},
        {.keepalive = (ms_toggle)(MS_OFF + 1)},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int m = MS_MODEL_EVENT; m <= MS_MODEL_ITERATIVE; m++) {
            ms_server *s = NULL;
            ms_server_config cfg = {.listen = "127.0.0.1:0", .threads = 1,
                                    .model = (ms_server_model)m, .limits = {.conn = bad[i]}};
            assert_int_equal(ms_server_create(&s, &cfg), MS_EINVAL);
            assert_null(s);
        }

        int calls = 0;
        ms_conn_callbacks cb = {.on_open = count_call, .on_close = count_close};
        ms_loop *loop;
        assert_int_equal(ms_loop_create(&loop, NULL), 0);
        ms_conn *c = (ms_conn *)&calls;
        ms_connect_opts o = {.addr = "127.0.0.1:1", .limits = bad[i], .cb = cb, .user = &calls,
                             .timeout_ms = 5000};
        assert_int_equal(ms_conn_connect(loop, &o, &c), MS_EINVAL);
        assert_null(c);
        assert_int_equal(ms_loop_run(loop), 0);
        ms_loop_free(loop);

        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(ms_conn_serve_fd(sv[1], NULL, &bad[i], &cb, &calls), MS_EINVAL);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal(calls, 0);
    }
    /* Every named value is taken. */
    for (int v = MS_DEFAULT; v <= MS_OFF; v++) {
        ms_server *s = NULL;
        ms_server_config cfg = {.listen = "127.0.0.1:0", .threads = 1,
                                .limits = {.conn = {.nodelay = (ms_toggle)v,
                                                    .keepalive = (ms_toggle)v}}};
        assert_int_equal(ms_server_create(&s, &cfg), 0);
        ms_server_free(s);
    }
}

/* Each backend's setup gets the test's name (test_name, for SKIP-REASON). */
#define ON(fn, setup) cmocka_unit_test_prestate_setup_teardown(fn, setup, NULL, (void *)#fn)
#define BOTH(fn) ON(fn, use_epoll), ON(fn, use_poll), ON(fn, use_uring)

int main(void)
{
    struct CMUnitTest tests[] = {
        BOTH(test_echo),
        BOTH(test_len32_framing),
        BOTH(test_backpressure),
        BOTH(test_backpressure_small_msg),
        BOTH(test_output_limit),
        BOTH(test_half_close),
        BOTH(test_idle_timeout),
        BOTH(test_slowloris),
        BOTH(test_callback_closes_self),
        BOTH(test_conn_limit_flood),
        BOTH(test_1000_conns),
        BOTH(test_client),
        BOTH(test_reuse_after_close),
        BOTH(test_sockopts),
        BOTH(test_accessors),
        BOTH(test_sendv_pieces),
        BOTH(test_linger_cap),
        cmocka_unit_test(test_serve_fd),
        cmocka_unit_test(test_linger_cap_serve_fd),
        cmocka_unit_test(test_bad_toggles),
    };
    size_t n = backend_filter(tests, sizeof tests / sizeof tests[0]);
    return _cmocka_run_group_tests("test_conn", tests, n, NULL, NULL);
}
