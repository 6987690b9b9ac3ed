/* cmd_app.c: app-server and app-client, the tutorial's JSON-header application protocol. */
#include "cli.h"
#include "tutorial_app.h"

#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK 65536

/* Called from main.c's command table. */
int cmd_app_server(int argc, char **argv);
int cmd_app_client(int argc, char **argv);

static const char *server_help =
    "Usage: msgsock app-server [OPTIONS] [HOST [PORT]]\n"
    "\n"
    "Answers the tutorial's application protocol (2-byte length, JSON header,\n"
    "content): a text/json request {\"action\": \"search\", \"value\": V} gets the\n"
    "answer for V from the search table, any other content-type gets back its\n"
    "first 10 bytes. Connections stay open for more requests (pipelining is\n"
    "fine); a malformed request closes its connection and is logged on stderr\n"
    "with the peer's address. Prints 'listening on ADDR' on stdout once ready;\n"
    "SIGINT or SIGTERM stops it with exit status 0.\n"
    "\n"
    "  HOST PORT          address to listen on (default 127.0.0.1 65432; 0 = any free port)\n"
    "  --listen ADDR      HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name\n"
    "  --data FILE        search table: a JSON object of string values (default:\n"
    "                     the tutorial's morpheus, ring and dog emoji)\n"
    "  --max-msg SIZE     largest request content accepted (default 16M)\n"
    "  --max-header SIZE  largest JSON header accepted (default 16k, at most 65535)\n"
    "  --idle-timeout MS  close a connection silent for this long (default 300000)\n"
    "  --msg-timeout MS   drop a peer whose started request is not complete this\n"
    "                     long after it began (default 30000; event model)\n"
    "  --max-conns N      open connections at most; more are closed at once\n"
    "                     (default: the descriptor limit minus a reserve of\n"
    "                     32 + 4 per thread; event model)\n"
    "  --out-max SIZE     drop a peer that lets more than this many answer bytes\n"
    "                     queue up unread (default 64M; reading from it pauses at\n"
    "                     1M; event model)\n"
    "  --linger MS        after closing, drain unread input at most this long\n"
    "                     (default 2000; event model)\n"
    "  --keepalive SECS   TCP keepalive's first probe after SECS idle (default 60,\n"
    "                     then 6 probes 10 s apart); 0 turns keepalive off\n"
    "  --model MODEL      'event' (default): the event server, any number of\n"
    "                     connections at once; 'iterative': one connection at a\n"
    "                     time, blocking I/O\n"
    "  --threads N        event loops for the event model (default 1; 0: one per CPU)\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

static const char *client_help =
    "Usage: msgsock app-client [OPTIONS] HOST PORT ACTION VALUE\n"
    "       msgsock app-client [OPTIONS] --connect ADDR ACTION VALUE\n"
    "\n"
    "Sends one request of the tutorial's application protocol and prints the\n"
    "answer: for ACTION 'search' a text/json request whose result is printed as\n"
    "text; for any other ACTION a binary request of ACTION followed by VALUE,\n"
    "whose binary answer is printed as Python's repr of bytes (b'...').\n"
    "Exits 1 if the server closes early, answers malformed, or is silent too long.\n"
    "\n"
    "  --connect ADDR     HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name\n"
    "  --json             print each whole response as one line of JSON:\n"
    "                     {\"header\": {...}, \"content\": {...} or \"text\"}\n"
    "  --timeout MS       limit for connecting and for each wait for the server\n"
    "                     (default 5000)\n"
    "  --count N          send N requests pipelined on one connection, expect N\n"
    "                     answers in order, print each (default 1)\n"
    "  --clients N        run N such clients at once (default 1)\n"
    "  --max-msg SIZE     largest response content accepted (default 16M)\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

/* The first letter of an error sentence in lower case, for "closing: ..." lines. */
static void err_lower(char *buf, size_t cap, const char *s)
{
    snprintf(buf, cap, "%s", s);
    if (buf[0] >= 'A' && buf[0] <= 'Z')
        buf[0] = (char)(buf[0] - 'A' + 'a');
}

/* ==== app-server ========================================================== */

typedef struct app_server {
    const cli_app_table *table;
    ms_frame_config frame;
    int idle_ms;
    int stopfd;
    ms_server_limits limits;   /* event model; idle_timeout_ms is idle_ms */
} app_server;

static void log_closing(const char *peer, int code, const char *why)
{
    char text[256];
    err_lower(text, sizeof text, why ? why : ms_strerror(code));
    cli_err("app-server", "%s: closing: %s", peer, text);
}

/*
 * The per-connection step of the blocking server: cuts every whole request
 * out of in (from *off on), appends each answer to out, and advances *off
 * past what was consumed. Returns 0, or the error that must close the
 * connection (with *why when the request's content was at fault); answers
 * to the requests before the bad one are in out either way.
 */
static int app_feed(const app_server *s, ms_framer *fr, const cli_app_buf *in, size_t *off,
                    cli_app_buf *out, const char **why)
{
    *why = NULL;
    while (*off < in->len) {
        ms_frame msg;
        ssize_t n = ms_framer_decode(fr, in->data + *off, in->len - *off, &msg, NULL);
        if (n == MS_ENEEDMORE)
            return 0;
        if (n < 0)
            return (int)n;
        *off += (size_t)n;
        int rc = cli_app_respond(s->table, &msg, out, why);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Sends buf, watching the stop signal; 1 if a stop signal came, 0 when
 * sent, or a negative code. */
static int send_watching(const app_server *s, int fd, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t sent = 0;
        int rc = ms_send_all(fd, buf + off, len - off, 0, &sent);
        off += sent;
        if (rc == 0)
            break;
        if (rc != MS_ETIMEDOUT && rc != MS_EAGAIN)
            return rc;
        struct pollfd p[2] = {{.fd = fd, .events = POLLOUT}, {.fd = s->stopfd, .events = POLLIN}};
        int r = poll(p, 2, s->idle_ms);
        if (r == 0)
            return MS_EIDLE;
        if (r > 0 && p[1].revents)
            return 1;
    }
    return 0;
}

/* Serves one connection with blocking I/O until the peer closes or errs;
 * returns 1 if a stop signal arrived meanwhile, else 0. */
static int serve_iterative_conn(const app_server *s, int fd, const char *peer)
{
    ms_framer *fr = NULL;
    cli_app_buf in = {0}, out = {0};
    int stop = 0;
    int rc = ms_framer_create(&fr, &s->frame);
    if (rc < 0) {
        cli_err("app-server", "%s: %s", peer, ms_strerror(rc));
        return 0;
    }
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->stopfd, .events = POLLIN}};
        int r = poll(p, 2, s->idle_ms);
        if (r < 0)
            continue;
        if (p[1].revents) {
            stop = 1;
            break;
        }
        if (r == 0) {
            log_closing(peer, MS_EIDLE, NULL);
            break;
        }
        if ((rc = cli_app_buf_reserve(&in, READ_CHUNK)) < 0) {
            log_closing(peer, rc, NULL);
            break;
        }
        ssize_t n = ms_recv_some(fd, in.data + in.len, READ_CHUNK, 0);
        if (n == MS_EAGAIN || n == MS_ETIMEDOUT)
            continue;
        size_t off = 0;
        const char *why = NULL;
        if (n == MS_EOF) {
            /* Whole requests are answered as they arrive, so what is left
             * is empty (a clean end) or the start of a request. */
            ms_frame msg;
            ssize_t e = ms_framer_decode_eof(fr, in.data, in.len, &msg);
            if (e != MS_EOF)
                log_closing(peer, e < 0 ? (int)e : MS_ETRUNCATED, NULL);
            break;
        }
        if (n < 0) {
            log_closing(peer, (int)n, NULL);
            break;
        }
        in.len += (size_t)n;
        rc = app_feed(s, fr, &in, &off, &out, &why);
        cli_app_buf_consume(&in, off);
        int sr = out.len ? send_watching(s, fd, out.data, out.len) : 0;
        out.len = 0;
        if (rc < 0) {
            log_closing(peer, rc, why);
            break;
        }
        if (sr == 1) {
            stop = 1;
            break;
        }
        if (sr < 0) {
            log_closing(peer, sr, NULL);
            break;
        }
    }
    ms_framer_free(fr);
    cli_app_buf_free(&in);
    cli_app_buf_free(&out);
    return stop;
}

static int serve_iterative(const app_server *s, int lfd)
{
    struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = s->stopfd, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents)
            return CLI_OK;
        ms_addr peer;
        char ptext[MS_ADDR_STRLEN] = "?";
        int fd = ms_accept(lfd, &peer, 0, 0);
        if (fd == MS_EAGAIN || fd == MS_ECONNABORTED)
            continue;
        if (fd < 0) {
            cli_err("app-server", "accept: %s", ms_strerror(fd));
            /* EMFILE and friends: back off rather than spin. */
            poll(NULL, 0, 100);
            continue;
        }
        ms_addr_format(&peer, ptext, sizeof ptext);
        const ms_conn_limits *l = &s->limits.conn;
        if (l->keepalive >= 0)
            ms_sock_set_keepalive(fd, 1, l->keepalive_idle_s ? l->keepalive_idle_s
                                                             : MS_CONN_DEFAULT_KEEPALIVE_IDLE_S,
                                  MS_CONN_DEFAULT_KEEPALIVE_INTVL_S, MS_CONN_DEFAULT_KEEPALIVE_COUNT);
        int stop = serve_iterative_conn(s, fd, ptext);
        ms_sock_close(fd, 0);
        if (stop)
            return CLI_OK;
    }
}

/* ---- the event model: the library's event server drives the same logic ---- */

/* Userdata mark on a connection whose closing was already logged. */
static char logged_mark;

static void conn_peer_text(ms_conn *c, char *buf, size_t cap)
{
    ms_addr a;
    ms_conn_peer(c, &a);
    if (ms_addr_format(&a, buf, cap) < 0)
        snprintf(buf, cap, "?");
}

static void ev_on_message(ms_conn *c, const ms_frame *msg, void *user)
{
    const app_server *s = user;
    cli_app_buf out = {0};
    const char *why = NULL;
    int rc = cli_app_respond(s->table, msg, &out, &why);
    if (rc == 0) {
        /* A failed send drops the connection; on_close reports why. */
        ms_conn_send_raw(c, out.data, out.len);
    } else {
        char peer[MS_ADDR_STRLEN];
        conn_peer_text(c, peer, sizeof peer);
        log_closing(peer, rc, why);
        ms_conn_set_userdata(c, &logged_mark);
        /* Graceful: answers to the requests before this one still go out. */
        ms_conn_close(c);
    }
    cli_app_buf_free(&out);
}

static void ev_on_close(ms_conn *c, int reason, void *user)
{
    (void)user;
    if (reason == 0 || reason == MS_ECLOSED || ms_conn_userdata(c) == &logged_mark)
        return;
    char peer[MS_ADDR_STRLEN];
    conn_peer_text(c, peer, sizeof peer);
    log_closing(peer, reason, NULL);
}

/* The server's own log lines, in the command's voice. Its per-connection
 * "connection dropped" lines are left out: ev_on_close reports those. */
static void ev_log(void *user, int level, const char *msg)
{
    (void)user;
    if (level <= 1 && !strstr(msg, ": connection dropped: "))
        cli_err("app-server", "%s", msg);
}

static int serve_event(app_server *s, const char *addr, int threads)
{
    ms_server_config cfg = {
        .listen = addr,
        .frame = s->frame,
        .limits = s->limits,
        .threads = threads,
        .handle_signals = 1,
        .cb = {.on_message = ev_on_message, .on_close = ev_on_close},
        .user = s,
        .log = ev_log,
    };
    ms_server *srv = NULL;
    int rc = ms_server_create(&srv, &cfg);
    if (rc < 0) {
        if (rc == MS_EBADADDR)
            return cli_usage("app-server", "bad address '%s': %s", addr, ms_strerror(rc));
        cli_err("app-server", "listen %s: %s", addr, ms_strerror(rc));
        return CLI_FAIL;
    }
    cli_print_listening(ms_server_listen_fd(srv));
    rc = ms_server_run(srv);
    ms_server_free(srv);
    if (rc < 0) {
        cli_err("app-server", "%s", ms_strerror(rc));
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cmd_app_server(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"data", required_argument, 0, 'd'},
        {"max-msg", required_argument, 0, 'm'},
        {"idle-timeout", required_argument, 0, 'i'},
        {"model", required_argument, 0, 'M'},
        {"max-header", required_argument, 0, 'X'},
        {"msg-timeout", required_argument, 0, 'w'},
        {"max-conns", required_argument, 0, 'C'},
        {"out-max", required_argument, 0, 'o'},
        {"linger", required_argument, 0, 'g'},
        {"keepalive", required_argument, 0, 'k'},
        {"threads", required_argument, 0, 'T'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    const char *listen_opt = NULL, *data = NULL;
    size_t max_msg = MS_FRAME_DEFAULT_MAX_MSG, max_header = MS_FRAME_DEFAULT_MAX_HEADER;
    long idle = MS_CONN_DEFAULT_IDLE_MS, threads = 1, v;
    ms_server_limits limits = {0};
    int c, iterative = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen_opt = optarg; break;
        case 'd': data = optarg; break;
        case 'm':
            if (cli_parse_size(optarg, MS_FRAME_LIMIT_MAX, &max_msg) < 0 || max_msg == 0)
                return cli_usage("app-server", "--max-msg wants a size such as 64k or 16M, got '%s'", optarg);
            break;
        case 'i':
            if (cli_parse_long(optarg, 1, 86400000, &idle) < 0)
                return cli_usage("app-server", "--idle-timeout wants milliseconds, got '%s'", optarg);
            break;
        case 'X':
            if (cli_parse_size(optarg, 65535, &max_header) < 0 || max_header == 0)
                return cli_usage("app-server", "--max-header wants a size from 1 to 65535, got '%s'", optarg);
            break;
        case 'w':
            if (cli_parse_long(optarg, 1, 86400000, &v) < 0)
                return cli_usage("app-server", "--msg-timeout wants milliseconds, got '%s'", optarg);
            limits.conn.msg_timeout_ms = (int)v;
            break;
        case 'C':
            if (cli_parse_long(optarg, 1, 10000000, &v) < 0)
                return cli_usage("app-server", "--max-conns wants a positive number, got '%s'", optarg);
            limits.max_conns = (int)v;
            break;
        case 'o':
            if (cli_parse_size(optarg, MS_FRAME_LIMIT_MAX, &limits.conn.out_max) < 0 ||
                limits.conn.out_max == 0)
                return cli_usage("app-server", "--out-max wants a size such as 64M, got '%s'", optarg);
            break;
        case 'g':
            if (cli_parse_long(optarg, 1, 600000, &v) < 0)
                return cli_usage("app-server", "--linger wants milliseconds, got '%s'", optarg);
            limits.conn.linger_ms = (int)v;
            break;
        case 'k':
            if (cli_parse_long(optarg, 0, 86400, &v) < 0)
                return cli_usage("app-server", "--keepalive wants seconds (0: off), got '%s'", optarg);
            limits.conn.keepalive = v ? 1 : -1;
            limits.conn.keepalive_idle_s = (int)v;
            break;
        case 'M':
            if (strcmp(optarg, "iterative") == 0)
                iterative = 1;
            else if (strcmp(optarg, "event") == 0)
                iterative = 0;
            else
                return cli_usage("app-server", "unknown --model '%s' (event or iterative)", optarg);
            break;
        case 'T':
            if (cli_parse_long(optarg, 0, 1024, &threads) < 0)
                return cli_usage("app-server", "--threads wants a number from 0 to 1024, got '%s'", optarg);
            break;
        case 'h': fputs(server_help, stdout); return CLI_OK;
        case 'V': printf("msgsock %s\n", ms_version()); return CLI_OK;
        default: return cli_usage("app-server", "bad option");
        }
    }
    int npos = argc - optind;
    if (npos > 2 || (listen_opt && npos > 0))
        return cli_usage("app-server", "too many arguments");
    char addr[512];
    if (cli_addr_text(addr, sizeof addr, listen_opt, npos > 0 ? argv[optind] : NULL,
                      npos > 1 ? argv[optind + 1] : NULL) < 0)
        return cli_usage("app-server", "address too long");

    cli_app_table *table = NULL;
    int rc;
    if (data) {
        char err[512];
        if ((rc = cli_app_table_load(&table, data, err, sizeof err)) < 0) {
            cli_err("app-server", "--data %s", err);
            return CLI_FAIL;
        }
    } else if ((rc = cli_app_table_default(&table)) < 0) {
        cli_err("app-server", "%s", ms_strerror(rc));
        return CLI_FAIL;
    }
    app_server s = {.table = table, .idle_ms = (int)idle, .limits = limits};
    s.limits.conn.idle_timeout_ms = (int)idle;
    cli_app_frame_config(&s.frame, max_msg);
    s.frame.max_header = max_header;

    int status = CLI_FAIL;
    int lfd = -1;
    s.stopfd = -1;
    if (!iterative) {
        status = serve_event(&s, addr, (int)threads);
        goto out;
    }
    s.stopfd = cli_stop_signalfd();
    if (s.stopfd < 0) {
        cli_err("app-server", "signalfd: %s", ms_strerror(s.stopfd));
        goto out;
    }
    lfd = ms_listen_text(addr, NULL);
    if (lfd < 0) {
        if (lfd == MS_EBADADDR)
            status = cli_usage("app-server", "bad address '%s': %s", addr, ms_strerror(lfd));
        else
            cli_err("app-server", "listen %s: %s", addr, ms_strerror(lfd));
        goto out;
    }
    cli_print_listening(lfd);
    status = serve_iterative(&s, lfd);
out:
    if (lfd >= 0)
        ms_sock_close(lfd, 0);
    if (s.stopfd >= 0)
        close(s.stopfd);
    cli_app_table_free(table);
    return status;
}

/* ==== app-client ========================================================== */

typedef struct client_opts {
    const char *addr;
    const char *action, *value;
    int timeout_ms;
    long count;
    int json;
    ms_frame_config frame;
} client_opts;

/* One client's run: its printed lines are gathered in out and written by
 * the main thread, so concurrent clients never interleave within a line. */
typedef struct client_job {
    const client_opts *o;
    pthread_t thread;
    cli_app_buf out;
    int status;
} client_job;

/* Length of the valid UTF-8 sequence at p[0..n), or 0 if there is none. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Binary content as a JSON string: UTF-8 kept, each invalid byte turned
 * into U+FFFD (as Python's errors="replace" does). */
static json_t *binary_as_text(const uint8_t *p, size_t n)
{
    cli_app_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t k = utf8_seq(p + i, n - i);
        rc = k ? cli_app_buf_put(&b, p + i, k) : cli_app_buf_put(&b, "\xEF\xBF\xBD", 3);
        i += k ? k : 1;
    }
    json_t *s = rc == 0 ? json_stringn(b.data ? (const char *)b.data : "", b.len) : NULL;
    cli_app_buf_free(&b);
    return s;
}

static int put_line(cli_app_buf *out, const char *s, size_t n)
{
    int rc = cli_app_buf_put(out, s, n);
    return rc ? rc : cli_app_buf_put(out, "\n", 1);
}

/* Checks one response and appends what to print. 0, or a negative code with
 * *why saying what is wrong with the response. */
static int client_take(const client_opts *o, const ms_frame *msg, cli_app_buf *out, const char **why)
{
    const ms_app_header *h = msg->app;
    int is_json = strcmp(h->content_type, "text/json") == 0;
    json_t *content = NULL, *result = NULL;
    int rc = 0;
    *why = NULL;
    if (is_json) {
        json_error_t e;
        content = json_loadb((const char *)msg->data, msg->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (!content || !json_is_object(content)) {
            *why = content ? "response content is not a JSON object"
                           : "response content is not valid UTF-8 JSON";
            json_decref(content);
            return MS_EBADCONTENT;
        }
        result = json_object_get(content, "result");
        if (!o->json && !result) {
            *why = "response has no \"result\"";
            json_decref(content);
            return MS_EBADCONTENT;
        }
    }
    if (o->json) {
        json_error_t e;
        json_t *hdr = json_loadb(h->json, h->json_len, 0, &e);
        json_t *body = is_json ? json_incref(content) : binary_as_text(msg->data, msg->len);
        json_t *line = json_object();
        char *text = NULL;
        if (hdr && body && line && json_object_set(line, "header", hdr) == 0 &&
            json_object_set(line, "content", body) == 0)
            text = json_dumps(line, JSON_PRESERVE_ORDER);
        rc = text ? put_line(out, text, strlen(text)) : MS_ENOMEM;
        free(text);
        json_decref(line);
        json_decref(body);
        json_decref(hdr);
    } else if (is_json) {
        if (json_is_string(result)) {
            rc = put_line(out, json_string_value(result), json_string_length(result));
        } else {
            char *text = json_dumps(result, JSON_ENCODE_ANY);
            rc = text ? put_line(out, text, strlen(text)) : MS_ENOMEM;
            free(text);
        }
    } else {
        /* Python's repr of bytes, written through a memory stream. */
        char *text = NULL;
        size_t tlen = 0;
        FILE *f = open_memstream(&text, &tlen);
        if (!f)
            return MS_ENOMEM;
        cli_print_pybytes(f, msg->data, msg->len);
        rc = fclose(f) == 0 ? put_line(out, text, tlen) : MS_ENOMEM;
        free(text);
    }
    json_decref(content);
    return rc;
}

static void client_fail_conn(const client_opts *o, long got, const char *what, const char *detail)
{
    if (o->count > 1)
        cli_err("app-client", "%s: %s%s%s (after %ld of %ld responses)", o->addr, what,
                detail ? ": " : "", detail ? detail : "", got, o->count);
    else
        cli_err("app-client", "%s: %s%s%s", o->addr, what, detail ? ": " : "", detail ? detail : "");
}

/* Runs one client; returns its exit status. */
static int client_run(const client_opts *o, cli_app_buf *out)
{
    cli_app_buf req = {0}, in = {0};
    ms_framer *fr = NULL;
    int status = CLI_FAIL;
    int rc = cli_app_request(&req, o->action, o->value);
    if (rc < 0) {
        cli_err("app-client", "cannot build the request: %s", ms_strerror(rc));
        return CLI_FAIL;
    }
    if ((rc = ms_framer_create(&fr, &o->frame)) < 0) {
        cli_err("app-client", "%s", ms_strerror(rc));
        cli_app_buf_free(&req);
        return CLI_FAIL;
    }
    int fd = ms_connect_text(o->addr, o->timeout_ms, 1);
    if (fd < 0) {
        cli_err("app-client", "connect %s: %s", o->addr, ms_strerror(fd));
        goto done;
    }
    long sent_msgs = 0, got = 0;
    size_t req_off = 0, in_off = 0;
    int64_t deadline = ms_now_ms() + o->timeout_ms;
    while (got < o->count) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent_msgs < o->count ? POLLOUT : 0)};
        int64_t left = deadline - ms_now_ms();
        int r = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (r < 0)
            continue;
        if (r == 0) {
            char t[64];
            snprintf(t, sizeof t, "no response within %d ms", o->timeout_ms);
            client_fail_conn(o, got, t, NULL);
            goto done;
        }
        if ((p.revents & POLLOUT) && sent_msgs < o->count) {
            size_t sent = 0;
            rc = ms_send_all(fd, req.data + req_off, req.len - req_off, 0, &sent);
            req_off += sent;
            if (rc == 0) {
                req_off = 0;
                sent_msgs++;
            } else if (rc != MS_ETIMEDOUT && rc != MS_EAGAIN) {
                client_fail_conn(o, got, "send", ms_strerror(rc));
                goto done;
            }
        }
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if ((rc = cli_app_buf_reserve(&in, READ_CHUNK)) < 0) {
            client_fail_conn(o, got, "receive", ms_strerror(rc));
            goto done;
        }
        ssize_t n = ms_recv_some(fd, in.data + in.len, READ_CHUNK, 0);
        if (n == MS_EAGAIN || n == MS_ETIMEDOUT)
            continue;
        if (n == MS_EOF) {
            ms_frame msg;
            ssize_t e = ms_framer_decode_eof(fr, in.data + in_off, in.len - in_off, &msg);
            if (e == MS_EOF)
                client_fail_conn(o, got, "the server closed the connection before answering", NULL);
            else if (e == MS_ETRUNCATED)
                client_fail_conn(o, got, "the server closed the connection in the middle of a response", NULL);
            else
                client_fail_conn(o, got, "malformed response", e < 0 ? ms_strerror((int)e) : "?");
            goto done;
        }
        if (n < 0) {
            client_fail_conn(o, got, "receive", ms_strerror((int)n));
            goto done;
        }
        in.len += (size_t)n;
        deadline = ms_now_ms() + o->timeout_ms;
        while (got < o->count && in_off < in.len) {
            ms_frame msg;
            ssize_t m = ms_framer_decode(fr, in.data + in_off, in.len - in_off, &msg, NULL);
            if (m == MS_ENEEDMORE)
                break;
            if (m < 0) {
                char text[256];
                err_lower(text, sizeof text, ms_strerror((int)m));
                client_fail_conn(o, got, "malformed response", text);
                goto done;
            }
            in_off += (size_t)m;
            const char *why = NULL;
            if ((rc = client_take(o, &msg, out, &why)) < 0) {
                client_fail_conn(o, got, "malformed response", why ? why : ms_strerror(rc));
                goto done;
            }
            got++;
        }
        cli_app_buf_consume(&in, in_off);
        in_off = 0;
    }
    status = CLI_OK;
done:
    if (fd >= 0)
        ms_sock_close(fd, 0);
    ms_framer_free(fr);
    cli_app_buf_free(&req);
    cli_app_buf_free(&in);
    return status;
}

static void *client_thread(void *arg)
{
    client_job *j = arg;
    j->status = client_run(j->o, &j->out);
    return NULL;
}

int cmd_app_client(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},
        {"count", required_argument, 0, 'n'},
        {"clients", required_argument, 0, 'C'},
        {"max-msg", required_argument, 0, 'm'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    const char *connect_opt = NULL;
    long timeout = 5000, clients = 1;
    size_t max_msg = MS_FRAME_DEFAULT_MAX_MSG;
    client_opts o = {.count = 1};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': connect_opt = optarg; break;
        case 't':
            if (cli_parse_long(optarg, 1, 86400000, &timeout) < 0)
                return cli_usage("app-client", "--timeout wants milliseconds, got '%s'", optarg);
            break;
        case 'j': o.json = 1; break;
        case 'n':
            if (cli_parse_long(optarg, 1, 100000000, &o.count) < 0)
                return cli_usage("app-client", "--count wants a number from 1, got '%s'", optarg);
            break;
        case 'C':
            if (cli_parse_long(optarg, 1, 10000, &clients) < 0)
                return cli_usage("app-client", "--clients wants a number from 1 to 10000, got '%s'", optarg);
            break;
        case 'm':
            if (cli_parse_size(optarg, MS_FRAME_LIMIT_MAX, &max_msg) < 0 || max_msg == 0)
                return cli_usage("app-client", "--max-msg wants a size such as 64k or 16M, got '%s'", optarg);
            break;
        case 'h': fputs(client_help, stdout); return CLI_OK;
        case 'V': printf("msgsock %s\n", ms_version()); return CLI_OK;
        default: return cli_usage("app-client", "bad option");
        }
    }
    int npos = argc - optind, want = connect_opt ? 2 : 4;
    if (npos != want)
        return cli_usage("app-client", "%s", npos < want ? "missing arguments: want HOST PORT ACTION VALUE"
                                                         : "too many arguments");
    char **pos = argv + optind;
    char addr[512];
    if (cli_addr_text(addr, sizeof addr, connect_opt, connect_opt ? NULL : pos[0],
                      connect_opt ? NULL : pos[1]) < 0)
        return cli_usage("app-client", "address too long");
    o.addr = addr;
    o.action = pos[want - 2];
    o.value = pos[want - 1];
    o.timeout_ms = (int)timeout;
    cli_app_frame_config(&o.frame, max_msg);
    {
        json_t *check = strcmp(o.action, "search") == 0 ? json_string(o.value) : json_true();
        if (!check)
            return cli_usage("app-client", "a search VALUE must be UTF-8 text");
        json_decref(check);
    }
    ms_addr probe;
    int prc = ms_addr_resolve(&probe, 1, addr);
    if (prc == MS_EBADADDR)
        return cli_usage("app-client", "bad address '%s': %s", addr, ms_strerror(prc));

    client_job *jobs = calloc((size_t)clients, sizeof *jobs);
    if (!jobs) {
        cli_err("app-client", "%s", ms_strerror(MS_ENOMEM));
        return CLI_FAIL;
    }
    long started = 0;
    for (long i = 0; i < clients; i++) {
        jobs[i].o = &o;
        jobs[i].status = CLI_FAIL;
    }
    if (clients == 1) {
        jobs[0].status = client_run(&o, &jobs[0].out);
    } else {
        for (; started < clients; started++) {
            int e = pthread_create(&jobs[started].thread, NULL, client_thread, &jobs[started]);
            if (e) {
                cli_err("app-client", "thread: %s", ms_strerror(-e));
                break;
            }
        }
        for (long i = 0; i < started; i++)
            pthread_join(jobs[i].thread, NULL);
    }
    int status = CLI_OK;
    for (long i = 0; i < clients; i++) {
        if (jobs[i].out.len)
            fwrite(jobs[i].out.data, 1, jobs[i].out.len, stdout);
        if (jobs[i].status != CLI_OK)
            status = CLI_FAIL;
        cli_app_buf_free(&jobs[i].out);
    }
    free(jobs);
    if (fflush(stdout) != 0)
        status = CLI_FAIL;
    return status;
}
