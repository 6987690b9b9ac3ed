/* serve.c: the server commands' shared front end: one option table, help, config, listen, run, exit on a stop signal. */
#include "serve.h"
#include "cli_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Common option values sit above any command's own (which start at 256). */
enum {
    O_LISTEN = 1000, O_MODEL, O_THREADS, O_MAX_CONNS, O_MAX_MSG, O_IDLE, O_MSG_TIMEOUT,
    O_OUT_HIGH, O_OUT_LOW, O_OUT_MAX, O_LINGER, O_KEEPALIVE, O_BACKEND, O_STATS,
    O_STATS_PUBLIC, O_NO_NODELAY, O_BACKLOG, O_METRICS, O_METRICS_PUBLIC,
    O_PROXY_PROTOCOL, O_DRAIN_TIMEOUT,
};

static const struct option common_opts[] = {
    {"listen", required_argument, 0, O_LISTEN},
    {"model", required_argument, 0, O_MODEL},
    {"threads", required_argument, 0, O_THREADS},
    {"max-conns", required_argument, 0, O_MAX_CONNS},
    {"max-msg", required_argument, 0, O_MAX_MSG},
    {"idle-timeout", required_argument, 0, O_IDLE},
    {"msg-timeout", required_argument, 0, O_MSG_TIMEOUT},
    {"out-high", required_argument, 0, O_OUT_HIGH},
    {"out-low", required_argument, 0, O_OUT_LOW},
    {"out-max", required_argument, 0, O_OUT_MAX},
    {"linger", required_argument, 0, O_LINGER},
    {"drain-timeout", required_argument, 0, O_DRAIN_TIMEOUT},
    {"keepalive", required_argument, 0, O_KEEPALIVE},
    {"no-nodelay", no_argument, 0, O_NO_NODELAY},
    {"backend", required_argument, 0, O_BACKEND},
    {"backlog", required_argument, 0, O_BACKLOG},
    {"stats", required_argument, 0, O_STATS},
    {"stats-public", no_argument, 0, O_STATS_PUBLIC},
    {"metrics", required_argument, 0, O_METRICS},
    {"metrics-public", no_argument, 0, O_METRICS_PUBLIC},
    {"proxy-protocol", no_argument, 0, O_PROXY_PROTOCOL},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    CLI_TLS_SERVER_LONGOPTS,
};
#define NCOMMON (sizeof common_opts / sizeof common_opts[0])

static const char common_help[] =
    "\n"
    "Server options (every model unless marked):\n"
    "  HOST PORT            address to listen on (default 127.0.0.1 65432); HOST ''\n"
    "                       is every interface ([::], IPv4 included; else 0.0.0.0),\n"
    "                       PORT 0 any free port\n"
    "  --listen ADDR        HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name; fd:N\n"
    "                       serves on inherited listening socket N. Under systemd\n"
    "                       socket activation (LISTEN_PID, LISTEN_FDS=1) the\n"
    "                       server serves on descriptor 3 instead of ADDR\n"
    "  --model MODEL        how connections are served: 'event' (default): event\n"
    "                       loops, any number at once; 'thread': a thread per\n"
    "                       connection; 'fork': a process per connection;\n"
    "                       'iterative': one connection at a time, the others wait\n"
    "                       (there a client silent for 1 s is closed)\n"
    "  --threads N          event loops, 1 to 256 (event; default %s)\n"
    "  --max-conns N        connections at once at most; more are closed at once and\n"
    "                       counted as refused (event, thread, fork: live children;\n"
    "                       default: the descriptor limit minus a reserve of 32 + 4\n"
    "                       per thread)\n"
    "  --max-msg SIZE       largest message accepted (default 16M)\n"
    "  --idle-timeout MS    drop a connection idle this long (default 300000;\n"
    "                       0 = never)\n"
    "  --msg-timeout MS     drop a peer whose started message is not complete this\n"
    "                       long after it began (default 30000)\n"
    "  --out-high SIZE      queued output that pauses reading (event; default 1M)\n"
    "  --out-low SIZE       queued output that resumes reading (event; default\n"
    "                       out-high/4)\n"
    "  --out-max SIZE       drop a peer that lets more than this queue up unread\n"
    "                       (event; default 64M). The blocking models queue nothing:\n"
    "                       a peer that does not read stalls its own connection for\n"
    "                       at most the idle timeout\n"
    "  --linger MS          after closing, drain unread input this long (default\n"
    "                       2000)\n"
    "  --drain-timeout MS   on SIGTERM, let connections finish this long, then\n"
    "                       close the rest (default 10000; 0 = no limit)\n"
    "  --keepalive SECS[,INTVL,COUNT]\n"
    "                       TCP keepalive: first probe after SECS idle, then COUNT\n"
    "                       probes INTVL s apart (default 60,10,6); 0 = off\n"
    "  --no-nodelay         leave Nagle's algorithm on (TCP_NODELAY is set by\n"
    "                       default)\n"
    "  --backend NAME       event loop backend: auto, epoll, poll or io_uring\n"
    "                       (default $MSGSOCK_BACKEND, else auto: io_uring where the\n"
    "                       kernel allows it, epoll otherwise; the blocking models\n"
    "                       use it for accepting only)\n"
    "  --backlog N          connections the kernel queues until accepted (default\n"
    "                       net.core.somaxconn, %d here, which also caps it)\n"
    "  --stats ADDR         answer each connection to ADDR with a table of the\n"
    "                       connections (peer, state, age, bytes and messages each\n"
    "                       way, queued output) and the totals; 'msgsock stats ADDR'\n"
    "                       prints it. Loopback or unix: addresses only, unless\n"
    "  --stats-public       is given too\n"
    "  --metrics ADDR       serve the totals for Prometheus: HTTP GET /metrics on\n"
    "                       ADDR. Loopback or unix: addresses only, unless\n"
    "  --metrics-public     is given too\n"
    "  --proxy-protocol     every connection starts with a PROXY protocol header, v1\n"
    "                       or v2 (HAProxy's send-proxy, send-proxy-v2): its client\n"
    "                       is the peer in stats and logs; a connection without a\n"
    "                       valid one in 5 s is closed unanswered (with TLS: the\n"
    "                       header before the handshake, as HAProxy's mode tcp)\n"
    "  --tls-cert FILE      serve TLS with this PEM certificate chain (every model)\n"
    "  --tls-key FILE       its PEM private key (default: read from --tls-cert)\n"
    "  --tls-ca FILE        require client certificates signed by these PEM CAs\n"
    "  --tls-ciphers LIST   TLS 1.2 suites, OpenSSL cipher-list syntax (default:\n"
    "                       ECDHE with AES-GCM or ChaCha20-Poly1305 only)\n"
    "  --tls-ciphersuites LIST\n"
    "                       TLS 1.3 suites, ':'-separated (default: OpenSSL's)\n"
    "  -v, --verbose        print on stdout what the tutorial's original prints:\n"
    "                       'Accepted connection from ('127.0.0.1', 54321)',\n"
    "                       'Closing connection to (...)', app-server's 'Received\n"
    "                       request ...', ...; and log every dropped connection on\n"
    "                       stderr, resets included\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version\n"
    "\n"
    "Prints 'listening on ADDR' on stdout once ready. SIGUSR1 prints the --stats\n"
    "table on stderr. SIGINT or SIGTERM drains: no new connections, requests\n"
    "under way are answered, then each connection is closed; exit 0. A second\n"
    "signal closes what is left at once.\n"
    "Log lines never hold a server up: a line stdout or stderr cannot take at\n"
    "once (a pipe nobody reads) is dropped and counted (stats: log_dropped).\n";

/* The command being run: its log lines carry its name. One per process. */
static const cli_serve_spec *running;
static int verbose;
/* The server whose log_dropped counts the lines dropped (NULL until it exists). */
static ms_server *log_server;

/* One line, at most 4 KiB (a pipe takes that whole or not at all). */
static void line_out(int fd, const char *prefix, const char *fmt, va_list ap)
{
    char line[4096];
    int n = prefix ? snprintf(line, sizeof line, "msgsock %s: ", prefix) : 0;
    if (n >= 0 && (size_t)n < sizeof line - 1) {
        int m = vsnprintf(line + n, sizeof line - 1 - (size_t)n, fmt, ap);
        n = m < 0 ? n : (size_t)(n + m) >= sizeof line - 1 ? (int)sizeof line - 2 : n + m;
    }
    line[n++] = '\n';
    ms_server_log_write(log_server, fd, line, (size_t)n);
}

void cli_serve_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    line_out(STDERR_FILENO, running ? running->cmd : "server", fmt, ap);
    va_end(ap);
}

void cli_serve_print(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    line_out(STDOUT_FILENO, NULL, fmt, ap);
    va_end(ap);
}

/* An address as Python prints the tuple accept() returns: ('127.0.0.1',
 * 54321), ('::1', 54321, 0, 0) (flowinfo, scope id); a Unix socket's path. */
static void py_addr(const ms_addr *a, char *buf, size_t cap)
{
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
    char ip[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(buf, cap, "('%s', %u)", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(buf, cap, "('%s', %u, %u, %u)", ip, ntohs(in6->sin6_port),
                 (unsigned)ntohl(in6->sin6_flowinfo), (unsigned)in6->sin6_scope_id);
    } else if (sa->sa_family == AF_UNIX &&
               a->len > offsetof(struct sockaddr_un, sun_path) &&
               ((const struct sockaddr_un *)sa)->sun_path[0]) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        snprintf(buf, cap, "%.*s", (int)(a->len - offsetof(struct sockaddr_un, sun_path)),
                 un->sun_path);
    } else {
        buf[0] = '\0';
    }
}

void cli_serve_py_peer(const ms_conn *c, char *buf, size_t cap)
{
    ms_addr a;
    ms_conn_peer(c, &a);
    py_addr(&a, buf, cap);
}

char *cli_serve_py_bytes(const void *data, size_t len)
{
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    if (!f)
        return NULL;
    cli_print_pybytes(f, data, len > 1024 ? 1024 : len);
    if (len > 1024)
        fputs("...", f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* -v in multiconn-server: the original's line for an echo, then the handler. */
static void verbose_message(ms_conn *c, const ms_frame *m, void *user)
{
    char addr[MS_ADDR_STRLEN + 32];
    cli_serve_py_peer(c, addr, sizeof addr);
    char *text = cli_serve_py_bytes(m->data, m->len);
    cli_serve_print("Echoing %s to %s", text ? text : "?", addr);
    free(text);
    if (running->cb.on_message)
        running->cb.on_message(c, m, user);
}

static void verbose_conn(const ms_log_record *r)
{
    char addr[MS_ADDR_STRLEN + 32];
    py_addr(r->peer, addr, sizeof addr);
    if (running->verbose_connected_by) {
        if (r->event == MS_LOG_CONN_OPEN)
            cli_serve_print("Connected by %s", addr);
    } else {
        cli_serve_print(r->event == MS_LOG_CONN_OPEN ? "Accepted connection from %s"
                                                     : "Closing connection to %s", addr);
    }
}

static void on_log(void *user, const ms_log_record *r)
{
    (void)user;
    if ((r->event == MS_LOG_CONN_OPEN || r->event == MS_LOG_CONN_CLOSE) && r->peer) {
        if (verbose)
            verbose_conn(r);
        return;
    }
    if (r->event == MS_LOG_CONN_END && r->peer) {
        char peer[MS_ADDR_STRLEN];
        if (ms_addr_format(r->peer, peer, sizeof peer) < 0)
            snprintf(peer, sizeof peer, "unix:");
        if (running->conn_end)
            running->conn_end(peer, r);
        else if (r->level <= 1 || verbose)
            cli_serve_say("%s: %s", peer, r->msg);
        return;
    }
    if (r->level <= 1 || verbose)
        cli_serve_say("%s", r->msg);
}

/* Connections at once need descriptors: take what the hard limit allows. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void print_help(const cli_serve_spec *sp)
{
    char threads[32];
    if (sp->threads > 0)
        snprintf(threads, sizeof threads, "%d", sp->threads);
    else
        snprintf(threads, sizeof threads, "one per CPU");
    fputs(sp->help, stdout);
    printf(common_help, threads, ms_listen_backlog_default());
}

/* Only loopback and Unix addresses for --stats and --metrics, unless the
 * user says otherwise: the table names every peer, and neither is meant
 * for the world. */
static int stats_addr_private(const char *text)
{
    ms_addr a[MS_ADDR_RESOLVE_MAX];
    int n = ms_addr_resolve(a, MS_ADDR_RESOLVE_MAX, text);
    if (n <= 0)
        return n < 0 ? n : MS_EBADADDR;
    for (int i = 0; i < n; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&a[i].ss;
        if (sa->sa_family == AF_UNIX)
            continue;
        if (sa->sa_family == AF_INET &&
            (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127)
            continue;
        if (sa->sa_family == AF_INET6 &&
            IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr))
            continue;
        return 0;
    }
    return 1;
}

typedef struct serve_opts {
    ms_server_config cfg;
    const char *listen, *stats, *metrics;
    int stats_public, metrics_public;
    size_t max_msg;
    cli_tls_opts tls;
} serve_opts;

static int parse_common(cli_serve_spec *sp, serve_opts *o, int c, const char *arg)
{
    const char *cmd = sp->cmd;
    ms_server_config *cfg = &o->cfg;
    ms_conn_limits *l = &cfg->limits.conn;
    long v;
    size_t sz;
    switch (c) {
    case O_LISTEN: o->listen = arg; return 0;
    case O_MODEL:
        if (ms_server_model_parse(arg, &cfg->model) < 0)
            return cli_usage(cmd, "unknown --model '%s' (event, thread, fork or iterative)", arg);
        return 0;
    case O_THREADS:
        if (cli_parse_long(arg, 1, 256, &v) < 0)
            return cli_usage(cmd, "--threads wants 1..256, got '%s'", arg);
        cfg->threads = (int)v;
        return 0;
    case O_MAX_CONNS:
        if (cli_parse_long(arg, 1, 10000000, &v) < 0)
            return cli_usage(cmd, "--max-conns wants a positive number, got '%s'", arg);
        cfg->limits.max_conns = (int)v;
        return 0;
    case O_MAX_MSG:
        if (cli_parse_size(arg, MS_FRAME_LIMIT_MAX, &sz) < 0 || sz == 0)
            return cli_usage(cmd, "--max-msg wants a size such as 64k or 16M, got '%s'", arg);
        o->max_msg = sz;
        return 0;
    case O_IDLE:
        if (cli_parse_long(arg, 0, 86400000, &v) < 0)
            return cli_usage(cmd, "--idle-timeout wants milliseconds, got '%s'", arg);
        l->idle_timeout_ms = v ? (int)v : -1;
        return 0;
    case O_MSG_TIMEOUT:
        if (cli_parse_long(arg, 1, 86400000, &v) < 0)
            return cli_usage(cmd, "--msg-timeout wants milliseconds, got '%s'", arg);
        l->msg_timeout_ms = (int)v;
        return 0;
    case O_LINGER:
        if (cli_parse_long(arg, 1, 600000, &v) < 0)
            return cli_usage(cmd, "--linger wants milliseconds, got '%s'", arg);
        l->linger_ms = (int)v;
        return 0;
    case O_DRAIN_TIMEOUT:
        if (cli_parse_long(arg, 0, 86400000, &v) < 0)
            return cli_usage(cmd, "--drain-timeout wants milliseconds, got '%s'", arg);
        cfg->drain_timeout_ms = v ? (int)v : -1;
        return 0;
    case O_KEEPALIVE: {
        int idle, intvl = 0, count = 0, used = 0;
        int n = sscanf(arg, "%d%n,%d,%d%n", &idle, &used, &intvl, &count, &used);
        if ((n != 1 && n != 3) || arg[used] || idle < 0 || idle > 86400 ||
            (n == 3 && (intvl < 1 || intvl > 3600 || count < 1 || count > 127)))
            return cli_usage(cmd, "--keepalive wants SECS or IDLE,INTVL,COUNT (0: off), got '%s'",
                             arg);
        l->keepalive = idle ? MS_ON : MS_OFF;
        l->keepalive_idle_s = idle;
        l->keepalive_intvl_s = intvl ? intvl : MS_CONN_DEFAULT_KEEPALIVE_INTVL_S;
        l->keepalive_count = count ? count : MS_CONN_DEFAULT_KEEPALIVE_COUNT;
        return 0;
    }
    case O_OUT_HIGH:
    case O_OUT_LOW:
    case O_OUT_MAX:
        if (cli_parse_size(arg, (size_t)1 << 40, &sz) < 0 || sz == 0)
            return cli_usage(cmd, "bad size '%s'", arg);
        *(c == O_OUT_HIGH ? &l->out_high : c == O_OUT_LOW ? &l->out_low : &l->out_max) = sz;
        return 0;
    case O_NO_NODELAY: l->nodelay = MS_OFF; return 0;
    case O_BACKEND: cfg->backend = arg; return 0;
    case O_BACKLOG:
        if (cli_parse_long(arg, 1, INT_MAX, &v) < 0)
            return cli_usage(cmd, "--backlog wants a positive number, got '%s'", arg);
        if (v > ms_listen_backlog_default())
            cli_serve_say("--backlog %ld: the kernel caps it at net.core.somaxconn, %d", v,
                          ms_listen_backlog_default());
        cfg->backlog = (int)v;
        return 0;
    case O_STATS: o->stats = arg; return 0;
    case O_STATS_PUBLIC: o->stats_public = 1; return 0;
    case O_METRICS: o->metrics = arg; return 0;
    case O_METRICS_PUBLIC: o->metrics_public = 1; return 0;
    case O_PROXY_PROTOCOL: l->proxy_protocol = 1; return 0;
    case CLI_OPT_TLS_CERT:
    case CLI_OPT_TLS_KEY:
    case CLI_OPT_TLS_CA:
    case CLI_OPT_TLS_CIPHERS:
    case CLI_OPT_TLS_CIPHERSUITES: cli_tls_opt(&o->tls, c, arg); return 0;
    case 'v': verbose = 1; return 0;
    default: return cli_usage(cmd, "bad option");
    }
}

/* The command's options and the common ones in one getopt table. */
static struct option *merge_opts(const struct option *own)
{
    size_t n = 0;
    while (own && own[n].name)
        n++;
    struct option *all = calloc(n + NCOMMON + 1, sizeof *all);
    if (!all)
        return NULL;
    if (n)
        memcpy(all, own, n * sizeof *all);
    memcpy(all + n, common_opts, sizeof common_opts);
    return all;
}

/* The listener of --stats or --metrics (opt, without its dashes) on addr,
 * if given, into *fd (else -1). */
static int open_admin(const cli_serve_spec *sp, const char *opt, const char *addr, int public,
                      int backlog, int *fd)
{
    *fd = -1;
    if (!addr)
        return CLI_OK;
    if (cli_check_port(sp->cmd, addr) != CLI_OK)
        return CLI_USAGE;
    int priv = stats_addr_private(addr);
    if (priv < 0)
        return cli_usage(sp->cmd, "bad --%s address '%s': %s", opt, addr, ms_strerror(priv));
    if (!priv && !public)
        return cli_usage(sp->cmd, "--%s %s is not a loopback or unix: address "
                                  "(add --%s-public to mean it)", opt, addr, opt);
    ms_listen_opts lo = {.backlog = backlog, .nonblock = 1};
    int rc = ms_listen_text(addr, &lo);
    if (rc < 0) {
        cli_err(sp->cmd, "--%s %s: %s", opt, addr, ms_strerror(rc));
        return CLI_FAIL;
    }
    *fd = rc;
    ms_addr a;
    char text[MS_ADDR_STRLEN] = "?";
    if (ms_sock_local(rc, &a) == 0)
        ms_addr_format(&a, text, sizeof text);
    cli_serve_say("%s on %s", opt, text);
    return CLI_OK;
}

static void unlink_unix(int fd)
{
    ms_addr a;
    if (fd < 0 || ms_sock_local(fd, &a) < 0 || ms_addr_family(&a) != AF_UNIX)
        return;
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a.ss;
    if (a.len > offsetof(struct sockaddr_un, sun_path) && un->sun_path[0] == '/')
        unlink(un->sun_path);
}

/* Why fd cannot be served on, or NULL. Asked before the server exists so
 * the message names the reason, not only an error code. */
static const char *listener_problem(int fd)
{
    int type = 0, acc = 0;
    socklen_t len = sizeof type;
    if (fcntl(fd, F_GETFD) < 0)
        return "not an open descriptor";
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return "not a socket";
    len = sizeof acc;
    if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc)
        return "not a listening stream socket";
    return NULL;
}

/* The listener to serve on instead of binding: --listen fd:N, else
 * systemd's socket activation (sd_listen_fds: LISTEN_PID is this process,
 * LISTEN_FDS sockets from descriptor 3). The variables are unset either
 * way, so no child takes them for its own. *fd stays 0 for none. */
static int listen_source(const char *cmd, const char *listen, int *fd, char *text, size_t cap)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    long n = 0;
    int ours = pid && fds && cli_parse_long(pid, 1, INT_MAX, &n) == 0 && n == (long)getpid();
    int bad = ours && (cli_parse_long(fds, 0, INT_MAX, &n) < 0 || n > 1);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    *fd = 0;
    if (listen && strncmp(listen, "fd:", 3) == 0) {
        if (cli_parse_long(listen + 3, 0, INT_MAX, &n) < 0)
            return cli_usage(cmd, "--listen fd:N wants a descriptor number, got '%s'", listen);
        *fd = (int)n;
    } else if (bad) {
        cli_err(cmd, "socket activation: LISTEN_FDS=%s: wants 1 (msgsock serves one listener)",
                fds);
        return CLI_FAIL;
    } else if (ours && n == 1) {
        *fd = 3;
    } else {
        return CLI_OK;
    }
    snprintf(text, cap, "fd:%d", *fd);
    const char *why = listener_problem(*fd);
    if (why) {
        cli_err(cmd, "%s: %s", text, why);
        return CLI_FAIL;
    }
    /* The server takes 0 for no descriptor. */
    if (*fd < 3 && (*fd = fcntl(*fd, F_DUPFD_CLOEXEC, 3)) < 0) {
        cli_err(cmd, "%s: %s", text, ms_strerror(ms_err_from_errno(errno)));
        return CLI_FAIL;
    }
    return CLI_OK;
}

static void close_admin(int fd)
{
    if (fd < 0)
        return;
    unlink_unix(fd);
    close(fd);
}

static int serve(cli_serve_spec *sp, serve_opts *o, const char *addr)
{
    ms_server_config *cfg = &o->cfg;
    cfg->listen = addr;
    cfg->handle_signals = 1;
    cfg->cb = sp->cb;
    if (verbose && sp->verbose_echo)
        cfg->cb.on_message = verbose_message;
    cfg->user = sp->user;
    /* The library logs nothing without a sink: every server line the
     * command prints comes through on_log. */
    cfg->log_record = on_log;
    cfg->log_conns = verbose;
    int admin = -1, mfd = -1, status;
    ms_tls_ctx *tls = NULL;
    if ((status = cli_tls_server_ctx(sp->cmd, &o->tls, &tls)) != CLI_OK)
        return status;
    cfg->tls = tls;
    if ((status = open_admin(sp, "stats", o->stats, o->stats_public, 16, &admin)) != CLI_OK ||
        (status = open_admin(sp, "metrics", o->metrics, o->metrics_public, 64, &mfd)) != CLI_OK) {
        close_admin(admin);
        ms_tls_ctx_free(tls);
        return status;
    }
    raise_nofile();
    int rc = cli_monitor_block_signal();
    ms_server *s = NULL;
    if (rc == 0)
        rc = ms_server_create(&s, cfg);
    /* The server holds its own reference. */
    ms_tls_ctx_free(tls);
    if (rc < 0) {
        close_admin(admin);
        close_admin(mfd);
        if (rc == MS_EBADADDR)
            return cli_usage(sp->cmd, "bad address '%s': %s", addr, ms_strerror(rc));
        if (rc == MS_EINVAL && cfg->backend)
            return cli_usage(sp->cmd, "unknown backend '%s'", cfg->backend);
        cli_err(sp->cmd, "listen %s: %s", addr, ms_strerror(rc));
        return CLI_FAIL;
    }
    cli_monitor *mon = NULL;
    cli_metrics *met = NULL;
    int unlink_admin = admin;
    if ((rc = cli_monitor_start(&mon, s, sp->cmd, admin)) < 0 ||
        (mfd >= 0 && (rc = cli_metrics_start(&met, s, sp->cmd, mfd)) < 0)) {
        cli_err(sp->cmd, "--%s: %s", mon ? "metrics" : "stats", ms_strerror(rc));
        if (mon)
            unlink_unix(admin);
        else
            close_admin(admin);
        cli_monitor_stop(mon);
        close_admin(mfd);
        ms_server_free(s);
        return CLI_FAIL;
    }
    log_server = s;
    cli_print_listening(ms_server_listen_fd(s));
    if (verbose && !sp->verbose_connected_by) {
        ms_addr a;
        char text[MS_ADDR_STRLEN + 32];
        if (ms_server_local_addr(s, &a) == 0) {
            py_addr(&a, text, sizeof text);
            cli_serve_print("Listening on %s", text);
        }
    }
    rc = ms_server_run(s);
    unlink_unix(unlink_admin);
    unlink_unix(mfd);
    cli_metrics_stop(met);
    cli_monitor_stop(mon);
    log_server = NULL;
    ms_server_free(s);
    if (rc < 0) {
        cli_err(sp->cmd, "%s", ms_strerror(rc));
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cli_serve_main(cli_serve_spec *sp, int argc, char **argv)
{
    serve_opts o;
    memset(&o, 0, sizeof o);
    o.cfg.threads = sp->threads;
    running = sp;
    verbose = 0;
    struct option *opts = merge_opts(sp->opts);
    if (!opts) {
        cli_err(sp->cmd, "%s", ms_strerror(MS_ENOMEM));
        return CLI_FAIL;
    }
    int c, status = CLI_OK;
    optind = 1;
    while (status == CLI_OK && (c = getopt_long(argc, argv, ":hVv", opts, NULL)) != -1) {
        if (c == 'h') {
            print_help(sp);
            free(opts);
            return CLI_OK;
        }
        if (c == 'V') {
            printf("msgsock %s\n", ms_version());
            free(opts);
            return CLI_OK;
        }
        if (c == '?' || c == ':') {
            status = cli_opt_error(sp->cmd, c, argc, argv);
        } else if (c >= 256 && c < O_LISTEN && sp->opt) {
            status = sp->opt(sp, c, optarg);
        } else {
            status = parse_common(sp, &o, c, optarg);
        }
    }
    free(opts);
    if (status != CLI_OK)
        return status;
    sp->verbose = verbose;
    int npos = argc - optind;
    if (npos > 2 || (o.listen && npos > 0))
        return cli_usage(sp->cmd, "too many arguments");
    char addr[512];
    if ((status = listen_source(sp->cmd, o.listen, &o.cfg.listen_fd, addr, sizeof addr)) !=
        CLI_OK)
        return status;
    if (!o.cfg.listen_fd &&
        cli_addr_text(sp->cmd, addr, sizeof addr, o.listen, npos > 0 ? argv[optind] : NULL,
                      npos > 1 ? argv[optind + 1] : NULL) != CLI_OK)
        return CLI_USAGE;
    if (sp->prepare && (status = sp->prepare(sp)) != CLI_OK)
        return status;
    o.cfg.frame = sp->frame;
    if (o.max_msg)
        o.cfg.frame.max_msg = o.max_msg;
    return serve(sp, &o, addr);
}
