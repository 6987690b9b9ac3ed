/* cmd_multiconn.c: multiconn-server and multiconn-client, the tutorial's event-driven pair. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int cmd_multiconn_server(int argc, char **argv);
int cmd_multiconn_client(int argc, char **argv);

static const char *server_help =
    "Usage: msgsock multiconn-server [OPTIONS] [HOST [PORT]]\n"
    "\n"
    "Echoes every byte back on any number of connections at once, on event\n"
    "loops; keeps serving until SIGINT or SIGTERM, then closes every connection\n"
    "cleanly and exits 0. Prints 'listening on ADDR' on stdout once ready.\n"
    "\n"
    "  HOST PORT            address to listen on (default 127.0.0.1 65432; 0 = any free port)\n"
    "  --listen ADDR        HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name\n"
    "  --threads N          event loops (default: one per CPU)\n"
    "  --max-conns N        open connections at most; more are closed at once (default:\n"
    "                       the descriptor limit minus a reserve of 32 + 4 per thread)\n"
    "  --idle-timeout MS    drop a connection idle this long (default 300000; 0 = never)\n"
    "  --framing F          raw (default: echo bytes as they come), or len16, len32,\n"
    "                       len64: big-endian length-prefixed messages, each echoed\n"
    "                       whole with the same framing\n"
    "  --max-msg SIZE       largest message accepted (default 16M; with raw, the\n"
    "                       most bytes echoed at a time)\n"
    "  --msg-timeout MS     drop a peer whose started message is not complete this\n"
    "                       long after it began (default 30000; framed only)\n"
    "  --out-high SIZE      queued output that pauses reading (default 1M)\n"
    "  --out-low SIZE       queued output that resumes reading (default out-high/4)\n"
    "  --out-max SIZE       drop a peer that lets more than this queue up (default 64M)\n"
    "  --linger MS          after closing, drain unread input this long (default 2000)\n"
    "  --keepalive SECS[,INTVL,COUNT]  TCP keepalive: first probe after SECS idle,\n"
    "                       then COUNT probes INTVL s apart (default 60,10,6); 0 = off\n"
    "  --backend NAME       event loop backend: epoll or poll (default epoll)\n"
    "  -v, --verbose        log every dropped connection, resets included\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version\n";

static const char *client_help =
    "Usage: msgsock multiconn-client [OPTIONS] HOST PORT NUM_CONNS\n"
    "       msgsock multiconn-client [OPTIONS] --connect ADDR NUM_CONNS\n"
    "\n"
    "Opens NUM_CONNS connections at once on one event loop; each sends\n"
    "'Message 1 from client.' and 'Message 2 from client.', reads the 44 bytes\n"
    "back and closes. Prints what each connection does, as the Python original\n"
    "does. Exits 1 if any connection failed.\n"
    "\n"
    "  --connect ADDR       HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name\n"
    "  --timeout MS         limit for connecting and for the whole run (default 10000)\n"
    "  -q, --quiet          print one summary line instead\n"
    "  --backend NAME       event loop backend: epoll or poll (default epoll)\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version\n";

/* Connections at once need descriptors: take what the hard limit allows. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int verbose;

static void server_log(void *user, int level, const char *msg)
{
    (void)user;
    if (level <= 1 || verbose)
        cli_err("multiconn-server", "%s", msg);
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

int cmd_multiconn_server(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"threads", required_argument, 0, 't'},
        {"max-conns", required_argument, 0, 'm'},
        {"idle-timeout", required_argument, 0, 'i'},
        {"out-high", required_argument, 0, 'H'},
        {"out-low", required_argument, 0, 'L'},
        {"out-max", required_argument, 0, 'M'},
        {"linger", required_argument, 0, 'g'},
        {"keepalive", required_argument, 0, 'k'},
        {"framing", required_argument, 0, 'f'},
        {"max-msg", required_argument, 0, 'x'},
        {"msg-timeout", required_argument, 0, 'w'},
        {"backend", required_argument, 0, 'b'},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    const char *cmd = "multiconn-server";
    ms_server_config cfg = {.handle_signals = 1, .log = server_log, .cb = {.on_message = echo_message}};
    const char *listen_opt = NULL;
    long v;
    int c;
    verbose = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hVv", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen_opt = optarg; break;
        case 't':
            if (cli_parse_long(optarg, 1, 256, &v) < 0)
                return cli_usage(cmd, "--threads wants 1..256, got '%s'", optarg);
            cfg.threads = (int)v;
            break;
        case 'm':
            if (cli_parse_long(optarg, 1, 10000000, &v) < 0)
                return cli_usage(cmd, "--max-conns wants a positive number, got '%s'", optarg);
            cfg.limits.max_conns = (int)v;
            break;
        case 'i':
            if (cli_parse_long(optarg, 0, 86400000, &v) < 0)
                return cli_usage(cmd, "--idle-timeout wants milliseconds, got '%s'", optarg);
            cfg.limits.conn.idle_timeout_ms = v ? (int)v : -1;
            break;
        case 'g':
            if (cli_parse_long(optarg, 1, 600000, &v) < 0)
                return cli_usage(cmd, "--linger wants milliseconds, got '%s'", optarg);
            cfg.limits.conn.linger_ms = (int)v;
            break;
        case 'k':
        {
            int idle, intvl = 0, count = 0, used = 0;
            int n = sscanf(optarg, "%d%n,%d,%d%n", &idle, &used, &intvl, &count, &used);
            if ((n != 1 && n != 3) || optarg[used] || idle < 0 || idle > 86400 ||
                (n == 3 && (intvl < 1 || intvl > 3600 || count < 1 || count > 127)))
                return cli_usage(cmd, "--keepalive wants SECS or IDLE,INTVL,COUNT (0: off), got '%s'",
                                 optarg);
            cfg.limits.conn.keepalive = idle ? 1 : -1;
            cfg.limits.conn.keepalive_idle_s = idle;
            cfg.limits.conn.keepalive_intvl_s = intvl ? intvl : MS_CONN_DEFAULT_KEEPALIVE_INTVL_S;
            cfg.limits.conn.keepalive_count = count ? count : MS_CONN_DEFAULT_KEEPALIVE_COUNT;
            break;
        }
        case 'f':
            if (strcmp(optarg, "raw") == 0)
                cfg.frame.kind = MS_FRAME_RAW;
            else if (strcmp(optarg, "len16") == 0)
                cfg.frame.kind = MS_FRAME_LEN16;
            else if (strcmp(optarg, "len32") == 0)
                cfg.frame.kind = MS_FRAME_LEN32;
            else if (strcmp(optarg, "len64") == 0)
                cfg.frame.kind = MS_FRAME_LEN64;
            else
                return cli_usage(cmd, "--framing wants raw, len16, len32 or len64, got '%s'", optarg);
            cfg.cb.on_message = cfg.frame.kind == MS_FRAME_RAW ? echo_message : echo_framed;
            break;
        case 'x':
            if (cli_parse_size(optarg, MS_FRAME_LIMIT_MAX, &cfg.frame.max_msg) < 0 ||
                cfg.frame.max_msg == 0)
                return cli_usage(cmd, "--max-msg wants a size such as 64k or 16M, got '%s'", optarg);
            break;
        case 'w':
            if (cli_parse_long(optarg, 1, 86400000, &v) < 0)
                return cli_usage(cmd, "--msg-timeout wants milliseconds, got '%s'", optarg);
            cfg.limits.conn.msg_timeout_ms = (int)v;
            break;
        case 'H':
        case 'L':
        case 'M': {
            size_t sz;
            if (cli_parse_size(optarg, (size_t)1 << 40, &sz) < 0 || sz == 0)
                return cli_usage(cmd, "bad size '%s'", optarg);
            if (c == 'H')
                cfg.limits.conn.out_high = sz;
            else if (c == 'L')
                cfg.limits.conn.out_low = sz;
            else
                cfg.limits.conn.out_max = sz;
            break;
        }
        case 'b': cfg.backend = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': fputs(server_help, stdout); return CLI_OK;
        case 'V': printf("msgsock %s\n", ms_version()); return CLI_OK;
        default: return cli_usage(cmd, "bad option");
        }
    }
    int npos = argc - optind;
    if (npos > 2 || (listen_opt && npos > 0))
        return cli_usage(cmd, "too many arguments");
    char addr[512];
    if (cli_addr_text(addr, sizeof addr, listen_opt, npos > 0 ? argv[optind] : NULL,
                      npos > 1 ? argv[optind + 1] : NULL) < 0)
        return cli_usage(cmd, "address too long");
    cfg.listen = addr;
    raise_nofile();

    ms_server *s;
    int rc = ms_server_create(&s, &cfg);
    if (rc < 0) {
        if (rc == MS_EBADADDR)
            return cli_usage(cmd, "bad address '%s': %s", addr, ms_strerror(rc));
        if (rc == MS_EINVAL && cfg.backend)
            return cli_usage(cmd, "unknown backend '%s'", cfg.backend);
        cli_err(cmd, "listen %s: %s", addr, ms_strerror(rc));
        return CLI_FAIL;
    }
    cli_print_listening(ms_server_listen_fd(s));
    rc = ms_server_run(s);
    ms_server_free(s);
    if (rc < 0) {
        cli_err(cmd, "%s", ms_strerror(rc));
        return CLI_FAIL;
    }
    return CLI_OK;
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
} mc_conn;

struct mc_run {
    int quiet;
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
    (void)c;
    mc_conn *k = user;
    k->conn = NULL;
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

int cmd_multiconn_client(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},
        {"backend", required_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    const char *cmd = "multiconn-client";
    const char *connect_opt = NULL, *backend = NULL;
    long timeout = 10000, nconns;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hVq", opts, NULL)) != -1) {
        switch (c) {
        case 'c': connect_opt = optarg; break;
        case 't':
            if (cli_parse_long(optarg, 1, 86400000, &timeout) < 0)
                return cli_usage(cmd, "--timeout wants milliseconds, got '%s'", optarg);
            break;
        case 'q': quiet = 1; break;
        case 'b': backend = optarg; break;
        case 'h': fputs(client_help, stdout); return CLI_OK;
        case 'V': printf("msgsock %s\n", ms_version()); return CLI_OK;
        default: return cli_usage(cmd, "bad option");
        }
    }
    int npos = argc - optind;
    const char *host = NULL, *port = NULL, *num;
    if (connect_opt) {
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
    char addr[512];
    if (cli_addr_text(addr, sizeof addr, connect_opt, host, port) < 0)
        return cli_usage(cmd, "address too long");
    /* How the Python original names the server: ('127.0.0.1', 65432). */
    char shown[600];
    if (connect_opt)
        snprintf(shown, sizeof shown, "%s", addr);
    else
        snprintf(shown, sizeof shown, "('%s', %s)", host, port);
    raise_nofile();

    mc_run run = {.quiet = quiet};
    memcpy(run.expect, messages[0], 22);
    memcpy(run.expect + 22, messages[1], 22);
    ms_loop_opts lo = {.backend = backend};
    int rc = ms_loop_create(&run.loop, &lo);
    if (rc < 0) {
        if (rc == MS_EINVAL && backend)
            return cli_usage(cmd, "unknown backend '%s'", backend);
        cli_err(cmd, "event loop: %s", ms_strerror(rc));
        return CLI_FAIL;
    }
    mc_conn *ks = calloc((size_t)nconns, sizeof *ks);
    if (!ks || ms_timer_create(run.loop, &run.timer) < 0) {
        cli_err(cmd, "%s", ms_strerror(MS_ENOMEM));
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
        if (!quiet)
            printf("Starting connection %d to %s\n", ks[i].id, shown);
        rc = ms_conn_connect(run.loop, addr, NULL, &lim, &cb, &ks[i], (int)timeout, &ks[i].conn);
        if (rc < 0) {
            if (rc == MS_EBADADDR && i == 0) {
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
            cli_err(cmd, "connection %d to %s: %s (%zu of %d bytes back)", ks[i].id, addr,
                    ms_strerror(r), ks[i].got, MSG_TOTAL);
    }
    if (failed > 20)
        cli_err(cmd, "... and %d more failed connections", failed - 20);
    if (quiet)
        printf("%ld connections to %s: %llu ok, %d failed\n", nconns, addr,
               (unsigned long long)ok, failed);
    ms_timer_free(run.timer);
    ms_loop_free(run.loop);
    free(ks);
    if (fflush(stdout) != 0)
        return CLI_FAIL;
    return failed ? CLI_FAIL : CLI_OK;
}
