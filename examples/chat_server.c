/* chat_server.c: a line chat. Every line a client sends goes to every other
 * client, prefixed with the sender's address; the sender gets nothing back.
 *
 *     chat_server [PORT]        listens on 127.0.0.1:PORT (default 65432;
 *                               0: any free port), prints "listening on ADDR"
 *     nc 127.0.0.1 PORT         (in two or more terminals) and type
 *
 * One event loop, the server's own (ms_server_loop), carries the clients,
 * a 1 s timer that prints the number of clients when it has changed, and
 * the SIGINT/SIGTERM watch: a signal stops the server, which lets every
 * client's queued lines go out, closes them and returns; exit status 0. A
 * second signal closes what is left at once. */
#include <msgsock.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 1024

typedef struct chat {
    ms_server *server;
    int clients, shown;  /* open now; as last printed */
    int stopping;
} chat;

/* Server output goes through ms_server_log_write: a stdout that nobody
 * reads drops lines instead of stalling every client. */
static void say(chat *ch, const char *fmt, ...)
{
    char line[MS_ADDR_STRLEN + 64];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len > 0 && (size_t)len < sizeof line)
        ms_server_log_write(ch->server, 1, line, (size_t)len);
}

typedef struct broadcast {
    ms_conn *from;
    const char *text;
    size_t len;
} broadcast;

static void send_line(ms_conn *c, void *arg)
{
    broadcast *b = arg;
    if (c != b->from)
        ms_conn_send(c, b->text, b->len); /* a failure drops c; its on_close says why */
}

static void on_message(ms_conn *c, const ms_frame *msg, void *user)
{
    chat *ch = user;
    ms_addr peer;
    ms_conn_peer(c, &peer);
    char text[MS_ADDR_STRLEN + 2 + MAX_LINE];
    int n = ms_addr_format(&peer, text, MS_ADDR_STRLEN);
    memcpy(text + n, ": ", 2);
    memcpy(text + n + 2, msg->data, msg->len); /* msg->len <= MAX_LINE: the framing checked */
    broadcast b = {c, text, (size_t)n + 2 + msg->len};
    ms_server_foreach_conn(ch->server, send_line, &b);
}

static void on_open(ms_conn *c, void *user)
{
    chat *ch = user;
    ms_conn_set_userdata(c, ch); /* marks it counted: on_close may come without on_open */
    ch->clients++;
}

static void on_close(ms_conn *c, int reason, void *user)
{
    chat *ch = user;
    if (ms_conn_userdata(c))
        ch->clients--;
    if (reason != 0 && reason != MS_ECLOSED) {
        ms_addr peer;
        char name[MS_ADDR_STRLEN];
        ms_conn_peer(c, &peer);
        ms_addr_format(&peer, name, sizeof name);
        say(ch, "%s dropped: %s\n", name, ms_strerror(reason));
    }
}

static void on_tick(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)loop, (void)t;
    chat *ch = arg;
    if (ch->clients != ch->shown) {
        ch->shown = ch->clients;
        say(ch, "%d client%s\n", ch->clients, ch->clients == 1 ? "" : "s");
    }
}

static void on_signal(ms_loop *loop, int signo, void *arg)
{
    (void)loop, (void)signo;
    chat *ch = arg;
    if (ch->stopping++) {
        ms_server_drain(ch->server, 0); /* second signal: close what is left now */
        return;
    }
    say(ch, "stopping: %d client%s\n", ch->clients, ch->clients == 1 ? "" : "s");
    ms_server_stop(ch->server);
}

int main(int argc, char **argv)
{
    char *end;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : 65432;
    if (argc > 2 || (argc == 2 && (*end || end == argv[1] || port < 0 || port > 65535))) {
        fprintf(stderr, "usage: chat_server [PORT]\n");
        return 2;
    }
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%ld", port);

    chat ch = {0};
    ms_server_config cfg = {
        .listen = listen,
        .frame = {.kind = MS_FRAME_DELIM, .delim = "\n", .delim_len = 1, .max_line = MAX_LINE},
        .limits.conn = {
            /* One client that stops reading must not make the server keep
             * every line for it: once out_high bytes wait for it, reading
             * from it pauses; past out_max it is dropped with
             * MS_EOUTPUTLIMIT. The others chat on meanwhile. */
            .out_high = 64 * 1024,
            .out_max = 1 << 20,
            /* A chat client may be silent for hours: no idle timeout, but
             * keepalive probes find a peer that vanished without a FIN
             * (MS_ETIMEDOUT after about 60 + 10 * 6 s). */
            .idle_timeout_ms = -1,
            .keepalive = MS_ON,
            .keepalive_idle_s = 60,
            .keepalive_intvl_s = 10,
            .keepalive_count = 6,
        },
        .threads = 1, /* one loop: the callbacks, the timer and the signal share it */
        .cb = {on_open, on_message, on_close},
        .user = &ch,
        .log = ms_log_stderr,
        .drain_timeout_ms = 5000,
    };
    int rc = ms_server_create(&ch.server, &cfg);
    if (rc < 0) {
        fprintf(stderr, "chat_server: %s: %s\n", listen, ms_strerror(rc));
        return 1;
    }

    ms_loop *loop = ms_server_loop(ch.server, 0);
    ms_timer *tick;
    if ((rc = ms_timer_create(loop, &tick)) == 0)
        rc = ms_timer_start(tick, 1000, 1000, on_tick, &ch);
    if (rc == 0)
        rc = ms_loop_signal(loop, SIGINT, on_signal, &ch);
    if (rc == 0)
        rc = ms_loop_signal(loop, SIGTERM, on_signal, &ch);
    if (rc < 0) {
        fprintf(stderr, "chat_server: loop: %s\n", ms_strerror(rc));
        ms_server_free(ch.server);
        return 1;
    }

    ms_addr bound;
    char name[MS_ADDR_STRLEN];
    ms_server_local_addr(ch.server, &bound);
    ms_addr_format(&bound, name, sizeof name);
    say(&ch, "listening on %s\n", name);

    rc = ms_server_run(ch.server); /* returns once the stop's drain is over */
    ms_server_stats stats;
    ms_server_stats_get(ch.server, &stats);
    ms_server_free(ch.server); /* frees its loop, and the timer on it */
    if (rc < 0) {
        fprintf(stderr, "chat_server: %s\n", ms_strerror(rc));
        return 1;
    }
    printf("served %llu clients, %llu lines\n", (unsigned long long)stats.accepted,
           (unsigned long long)stats.msgs_in);
    return 0;
}
