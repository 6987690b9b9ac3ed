/* many_clients.c: one event loop drives many client connections at once,
 * each sending length-prefixed messages to an echo server and checking that
 * every one comes back whole and unchanged.
 *
 *     msgsock multiconn-server --framing len32 127.0.0.1 0   # prints its port
 *     many_clients [--conns N] [--msgs M] [--leave-open K] HOST:PORT
 *
 * Defaults: 100 connections, 10 messages each, the last 5 left open. Every
 * failure, a refused connect as much as a wrong echo, arrives through
 * on_close; any one makes the exit status 1. The connections left open are
 * ended by ms_loop_free, which calls each one's on_close(MS_ECLOSED) once:
 * the program counts that too. */
#include <msgsock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSG 4096

typedef struct client {
    struct run *run;
    int id;
    int sent, echoed;
    int closes;       /* on_close calls: must end up exactly 1 */
    int reason;       /* on_close's reason */
    int left_open;    /* 1: kept open until ms_loop_free */
    int by_free;      /* 1: on_close ran inside ms_loop_free */
    int failed;       /* 1: counted as failed (and said why) */
} client;

typedef struct run {
    ms_loop *loop;
    int msgs;         /* messages per connection */
    int pending;      /* connections neither closed nor done and left open */
    int failed;       /* connections that failed */
    int printed;      /* failures printed: the first 10 */
    int freeing;      /* inside ms_loop_free */
    long long bytes;
} run;

/* Message m of connection id: its length and bytes both depend on both, so
 * an echo sent to the wrong connection or out of order does not match. */
static size_t make_msg(uint8_t *buf, int id, int m)
{
    size_t len = 1 + (size_t)(id * 37 + m * 131) % (MAX_MSG - 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(id + m * 7 + i);
    return len;
}

/* Counts cl as failed, saying why the first time (for 10 connections at most). */
static void fail(client *cl, const char *what, int err)
{
    if (cl->failed++)
        return;
    cl->run->failed++;
    if (cl->run->printed++ < 10)
        fprintf(stderr, "many_clients: connection %d: %s%s%s\n", cl->id, what,
                err ? ": " : "", err ? ms_strerror(err) : "");
}

static void send_next(ms_conn *c, client *cl)
{
    uint8_t buf[MAX_MSG];
    size_t len = make_msg(buf, cl->id, cl->sent);
    int rc = ms_conn_send(c, buf, len);
    if (rc < 0)
        return; /* the connection is being dropped: on_close says why */
    cl->sent++;
}

static void on_open(ms_conn *c, void *user)
{
    send_next(c, user);
}

static void on_message(ms_conn *c, const ms_frame *msg, void *user)
{
    client *cl = user;
    uint8_t want[MAX_MSG];
    size_t len = make_msg(want, cl->id, cl->echoed);
    if (msg->len != len || memcmp(msg->data, want, len) != 0) {
        fail(cl, "echo does not match what was sent", 0);
        ms_conn_abort(c); /* on_close(MS_ECLOSED) runs once we return */
        return;
    }
    cl->echoed++;
    cl->run->bytes += (long long)len;
    if (cl->echoed < cl->run->msgs) {
        send_next(c, cl);
    } else if (cl->left_open) {
        if (--cl->run->pending == 0)
            ms_loop_stop(cl->run->loop);
    } else {
        ms_conn_close(c); /* graceful: on_close(0) once the server has closed too */
    }
}

static void on_close(ms_conn *c, int reason, void *user)
{
    (void)c;
    client *cl = user;
    run *r = cl->run;
    cl->closes++;
    cl->reason = reason;
    if (r->freeing) {
        cl->by_free = 1; /* checked after ms_loop_free */
        return;
    }
    if (reason != 0)
        fail(cl, cl->echoed < r->msgs ? "ended early" : "ended", reason);
    else if (cl->echoed < r->msgs)
        fail(cl, "the server closed before every echo came back", 0);
    if (!(cl->left_open && cl->echoed == r->msgs) && --r->pending == 0)
        ms_loop_stop(r->loop);
}

static int usage(void)
{
    fprintf(stderr, "usage: many_clients [--conns N] [--msgs M] [--leave-open K] HOST:PORT\n");
    return 2;
}

int main(int argc, char **argv)
{
    int conns = 100, msgs = 10, leave_open = 5;
    const char *addr = NULL;
    for (int i = 1; i < argc; i++) {
        int *opt = !strcmp(argv[i], "--conns")        ? &conns
                   : !strcmp(argv[i], "--msgs")       ? &msgs
                   : !strcmp(argv[i], "--leave-open") ? &leave_open
                                                      : NULL;
        if (opt && i + 1 < argc)
            *opt = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !addr)
            addr = argv[i];
        else
            return usage();
    }
    if (!addr || conns < 1 || conns > 10000 || msgs < 1 || leave_open < 0 || leave_open > conns)
        return usage();

    run r = {.msgs = msgs, .pending = conns};
    client *cls = calloc((size_t)conns, sizeof *cls);
    if (!cls)
        return 1;
    int rc = ms_loop_create(&r.loop, NULL);
    if (rc < 0) {
        fprintf(stderr, "many_clients: loop: %s\n", ms_strerror(rc));
        free(cls);
        return 1;
    }

    ms_connect_opts opts = {
        .addr = addr,
        .frame = {.kind = MS_FRAME_LEN32, .max_msg = MAX_MSG},
        .cb = {on_open, on_message, on_close},
        .timeout_ms = 10000,
        /* A server that stops answering ends its connections with MS_EIDLE
         * after 10 s instead of holding the loop forever. */
        .limits = {.idle_timeout_ms = 10000},
    };
    for (int i = 0; i < conns; i++) {
        cls[i] = (client){.run = &r, .id = i, .left_open = i >= conns - leave_open};
        opts.user = &cls[i];
        /* A failure here is a bad argument (no callback will run); a
         * failure to connect comes later, through on_close. */
        if ((rc = ms_conn_connect(r.loop, &opts, NULL)) < 0) {
            fprintf(stderr, "many_clients: %s: %s\n", addr, ms_strerror(rc));
            r.freeing = 1;
            ms_loop_free(r.loop); /* ends the ones already started: on_close(MS_ECLOSED) */
            free(cls);
            return 1;
        }
    }

    if ((rc = ms_loop_run(r.loop)) < 0) {
        fprintf(stderr, "many_clients: loop: %s\n", ms_strerror(rc));
        r.failed++;
    }

    /* The connections left open are still open here: freeing the loop ends
     * each of them with on_close(MS_ECLOSED), exactly once. */
    r.freeing = 1;
    ms_loop_free(r.loop);
    int ended_by_free = 0;
    for (int i = 0; i < conns; i++) {
        client *cl = &cls[i];
        if (cl->closes != 1)
            fail(cl, cl->closes ? "on_close ran more than once" : "on_close never ran", 0);
        else if (cl->by_free && cl->reason == MS_ECLOSED)
            ended_by_free++;
        else if (cl->by_free)
            fail(cl, "ms_loop_free ended it with the wrong reason", cl->reason);
    }

    long long echoed = 0;
    for (int i = 0; i < conns; i++)
        echoed += cls[i].echoed;
    printf("%d connections, %lld messages echoed (%lld bytes), %d failed\n", conns, echoed,
           r.bytes, r.failed);
    printf("%d left open, ended by ms_loop_free: on_close(%s, \"%s\") once each\n",
           ended_by_free, ms_err_name(MS_ECLOSED), ms_strerror(MS_ECLOSED));
    free(cls);
    return r.failed ? 1 : 0;
}
