/* cmd_multiconn.c: multiconn-server and multiconn-client, the tutorial's event-driven pair. */
#include "cli.h"
#include "client.h"
#include "serve.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int cmd_multiconn_server(int argc, char **argv);
int cmd_multiconn_client(int argc, char **argv);

static const char *server_help =
    "Usage: msgsock multiconn-server [OPTIONS] [HOST [PORT]]\n"
    "\n"
    "Echoes every byte back on any number of connections at once (event loops by\n"
    "default; --model picks another way); keeps serving until SIGINT or SIGTERM,\n"
    "then closes every connection cleanly and exits 0.\n"
    "\n"
    "  --framing F          raw (default: echo bytes as they come), or len16, len32,\n"
    "                       len64: big-endian length-prefixed messages, each echoed\n"
    "                       whole with the same framing (--max-msg: with raw, the\n"
    "                       most bytes echoed at a time; --msg-timeout: framed only)\n";

static const char *client_help =
    "Usage: msgsock multiconn-client [OPTIONS] HOST PORT NUM_CONNS\n"
    "       msgsock multiconn-client [OPTIONS] --connect ADDR NUM_CONNS\n"
    "\n"
    "Opens NUM_CONNS connections at once on one event loop; each sends\n"
    "'Message 1 from client.' and 'Message 2 from client.', reads the 44 bytes\n"
    "back and closes. Prints what each connection does, as the Python original\n"
    "does. Exits 1 if any connection failed.\n"
    "\n"
    "  --connect ADDR     HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name\n"
    "  --timeout MS       limit for connecting and for the whole run (default 10000)\n"
    "  -q, --quiet        print one summary line instead\n"
    "  --backend NAME     event loop backend: epoll or poll (default epoll)\n"
    CLI_TLS_CLIENT_HELP
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

/* Connections at once need descriptors: take what the hard limit allows. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void echo_message(ms_conn *c, const ms_frame *m, void *user)
{
    (void)user;
    ms_conn_send_raw(c, m->data, m->len);
}

/* Framed echo: the payload goes back with the connection's own framing. */
static void echo_framed(ms_conn *c, const ms_frame *m, void *user)
{
    (void)user;
    ms_conn_send(c, m->data, m->len);
}

enum { O_FRAMING = 256 };

static int server_opt(cli_serve_spec *sp, int val, const char *arg)
{
    static const struct {
        const char *name;
        ms_frame_kind kind;
    } framings[] = {{"raw", MS_FRAME_RAW}, {"len16", MS_FRAME_LEN16},
                    {"len32", MS_FRAME_LEN32}, {"len64", MS_FRAME_LEN64}};
    (void)val;
    for (size_t i = 0; i < sizeof framings / sizeof framings[0]; i++)
        if (strcmp(arg, framings[i].name) == 0) {
            sp->frame.kind = framings[i].kind;
            sp->cb.on_message = framings[i].kind == MS_FRAME_RAW ? echo_message : echo_framed;
            return CLI_OK;
        }
    return cli_usage(sp->cmd, "--framing wants raw, len16, len32 or len64, got '%s'", arg);
}

int cmd_multiconn_server(int argc, char **argv)
{
    static const struct option opts[] = {
        {"framing", required_argument, 0, O_FRAMING},
        {0, 0, 0, 0},
    };
    cli_serve_spec sp = {
        .cmd = "multiconn-server",
        .help = server_help,
        .cb = {.on_message = echo_message},
        .opts = opts,
        .opt = server_opt,
        .verbose_echo = 1,
    };
    return cli_serve_main(&sp, argc, argv);
}

/* ---- client ---- */

static const char *const messages[] = {"Message 1 from client.", "Message 2 from client."};
#define MSG_TOTAL 44

typedef struct mc_run mc_run;

typedef struct mc_conn {
    mc_run *run;
    ms_conn *conn;      /* until on_close */
    int id;
    size_t got;
    int done;   /* 1 ok, -1 failed */
    int reason;
    char tls_why[96];   /* OpenSSL's words for a TLS failure */
} mc_conn;

struct mc_run {
    int quiet;
    const char *backend;
    int open;
    ms_loop *loop;
    ms_timer *timer;
    mc_conn *ks;
    long n;
    uint8_t expect[MSG_TOTAL];
};

static void mc_on_open(ms_conn *c, void *user)
{
    mc_conn *k = user;
    for (int i = 0; i < 2; i++) {
        if (!k->run->quiet) {
            fputs("Sending ", stdout);
            cli_print_pybytes(stdout, messages[i], strlen(messages[i]));
            printf(" to connection %d\n", k->id);
        }
        if (ms_conn_send(c, messages[i], strlen(messages[i])) < 0)
            return;
    }
}

static void mc_on_message(ms_conn *c, const ms_frame *m, void *user)
{
    mc_conn *k = user;
    if (!k->run->quiet) {
        fputs("Received ", stdout);
        cli_print_pybytes(stdout, m->data, m->len);
        printf(" from connection %d\n", k->id);
    }
    if (k->got + m->len > MSG_TOTAL ||
        memcmp(k->run->expect + k->got, m->data, m->len) != 0) {
        k->reason = MS_EMALFORMED;
        ms_conn_abort(c);
        return;
    }
    k->got += m->len;
    if (k->got == MSG_TOTAL) {
        if (!k->run->quiet)
            printf("Closing connection %d\n", k->id);
        ms_conn_close(c);
    }
}

static void mc_on_close(ms_conn *c, int reason, void *user)
{
    mc_conn *k = user;
    k->conn = NULL;
    const char *why = ms_conn_tls_error(c);
    if (why)
        snprintf(k->tls_why, sizeof k->tls_why, "%s", why);
    if (k->reason == 0)
        k->reason = reason;
    if (k->got != MSG_TOTAL && k->reason == 0)
        k->reason = MS_ETRUNCATED;
    k->done = k->reason == 0 ? 1 : -1;
    if (--k->run->open == 0) {
        ms_timer_stop(k->run->timer);
        ms_loop_stop(k->run->loop);
    }
}

static void mc_timeout(ms_loop *loop, ms_timer *t, void *arg)
{
    (void)t;
    mc_run *run = arg;
    for (long i = 0; i < run->n; i++)
        if (run->ks[i].conn) {
            run->ks[i].reason = MS_ETIMEDOUT;
            ms_conn_abort(run->ks[i].conn);
        }
    ms_loop_stop(loop);
}

static int mc_client_opt(cli_client *cl, int val, const char *arg)
{
    mc_run *run = cl->user;
    if (val == 'q')
        run->quiet = 1;
    else
        run->backend = arg;
    return CLI_OK;
}

int cmd_multiconn_client(int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, 0, 'q'},
        {"backend", required_argument, 0, 'b'},
        {0, 0, 0, 0},
    };
    mc_run run = {0};
    cli_client cl = {.cmd = "multiconn-client", .help = client_help, .timeout_ms = 10000,
                     .shortopts = "q", .opts = opts, .opt = mc_client_opt, .user = &run};
    int st = cli_client_parse(&cl, argc, argv);
    if (st >= 0)
        return st;
    const char *cmd = cl.cmd, *backend = run.backend;
    long timeout = cl.timeout_ms, nconns;
    int npos = argc - optind;
    const char *host = NULL, *port = NULL, *num;
    if (cl.connect) {
        if (npos != 1)
            return cli_usage(cmd, npos ? "too many arguments" : "NUM_CONNS is missing");
        num = argv[optind];
    } else {
        if (npos != 3)
            return cli_usage(cmd, npos > 3 ? "too many arguments" : "usage: HOST PORT NUM_CONNS");
        host = argv[optind];
        port = argv[optind + 1];
        num = argv[optind + 2];
    }
    if (cli_parse_long(num, 1, 1000000, &nconns) < 0)
        return cli_usage(cmd, "NUM_CONNS wants a positive number, got '%s'", num);
    if ((st = cli_client_addr(&cl, host, port)) != CLI_OK)
        return st;
    const char *addr = cl.addr;
    /* How the Python original names the server: ('127.0.0.1', 65432). */
    char shown[600];
    if (cl.connect)
        snprintf(shown, sizeof shown, "%s", addr);
    else
        snprintf(shown, sizeof shown, "('%s', %s)", host, port);
    if ((st = cli_client_tls(&cl)) != CLI_OK)
        return st;
    raise_nofile();

    memcpy(run.expect, messages[0], 22);
    memcpy(run.expect + 22, messages[1], 22);
    ms_loop_opts lo = {.backend = backend};
    int rc = ms_loop_create(&run.loop, &lo);
    if (rc < 0) {
        cli_client_free(&cl);
        if (rc == MS_EINVAL && backend)
            return cli_usage(cmd, "unknown backend '%s'", backend);
        cli_err(cmd, "event loop: %s", ms_strerror(rc));
        return CLI_FAIL;
    }
    mc_conn *ks = calloc((size_t)nconns, sizeof *ks);
    if (!ks || ms_timer_create(run.loop, &run.timer) < 0) {
        cli_err(cmd, "%s", ms_strerror(MS_ENOMEM));
        cli_client_free(&cl);
        free(ks);
        ms_loop_free(run.loop);
        return CLI_FAIL;
    }
    run.ks = ks;
    run.n = nconns;
    ms_conn_callbacks cb = {mc_on_open, mc_on_message, mc_on_close};
    ms_conn_limits lim = {.idle_timeout_ms = (int)timeout};
    int failed = 0;
    for (long i = 0; i < nconns; i++) {
        ks[i].run = &run;
        ks[i].id = (int)i + 1;
        if (!run.quiet)
            printf("Starting connection %d to %s\n", ks[i].id, shown);
        rc = cli_client_conn(&cl, run.loop, &lim, &cb, &ks[i], &ks[i].conn);
        if (rc < 0) {
            if (rc == MS_EBADADDR && i == 0) {
                cli_client_free(&cl);
                free(ks);
                ms_timer_free(run.timer);
                ms_loop_free(run.loop);
                return cli_usage(cmd, "bad address '%s': %s", addr, ms_strerror(rc));
            }
            ks[i].done = -1;
            ks[i].reason = rc;
            continue;
        }
        run.open++;
    }
    if (run.open > 0) {
        ms_timer_start(run.timer, timeout, 0, mc_timeout, &run);
        rc = ms_loop_run(run.loop);
    }
    uint64_t ok = 0;
    for (long i = 0; i < nconns; i++) {
        if (ks[i].done == 1) {
            ok++;
            continue;
        }
        failed++;
        int r = ks[i].done == 0 ? MS_ETIMEDOUT : ks[i].reason;
        if (failed <= 20)
            cli_err(cmd, "connection %d to %s: %s%s%s (%zu of %d bytes back)", ks[i].id, addr,
                    ms_strerror(r), ks[i].tls_why[0] ? ": " : "", ks[i].tls_why, ks[i].got,
                    MSG_TOTAL);
    }
    if (failed > 20)
        cli_err(cmd, "... and %d more failed connections", failed - 20);
    if (run.quiet)
        printf("%ld connections to %s: %llu ok, %d failed\n", nconns, addr,
               (unsigned long long)ok, failed);
    ms_timer_free(run.timer);
    ms_loop_free(run.loop);
    cli_client_free(&cl);
    free(ks);
    if (fflush(stdout) != 0)
        return CLI_FAIL;
    return failed ? CLI_FAIL : CLI_OK;
}
