/* cmd_app.c: app-server and app-client, the tutorial's JSON-header application protocol. */
#include "cli.h"
#include "client.h"
#include "serve.h"
#include "tutorial_app.h"

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
    "first 10 bytes. As the guide's app-server: the content is decoded with its\n"
    "content-encoding (utf-8, latin-1, utf-16, ascii, cp1252... as Python names\n"
    "them) and the answer shows a value that is not a string as Python's str().\n"
    "Connections stay open for more requests (pipelining is fine); a malformed\n"
    "request closes its connection and is logged once on stderr with the\n"
    "peer's address: 'PEER: closing: WHY'.\n"
    "\n"
    "  --data FILE          search table: a JSON object of string values (default:\n"
    "                       the tutorial's morpheus, ring and dog emoji)\n"
    "  --max-header SIZE    largest JSON header accepted (default and most: 65535,\n"
    "                       all the 2-byte length can say)\n"
    "  (--max-msg is the largest request content accepted)\n";

static const char *client_help =
    "Usage: msgsock app-client [OPTIONS] HOST PORT ACTION VALUE\n"
    "       msgsock app-client [OPTIONS] --connect ADDR ACTION VALUE\n"
    "\n"
    "Sends one request of the tutorial's application protocol and prints the\n"
    "answer: for ACTION 'search' a text/json request whose result is printed as\n"
    "Python's print() shows it (True, None, 0.1, ['a', 1]); for any other ACTION\n"
    "a binary request of ACTION followed by VALUE, whose binary answer is printed\n"
    "as Python's repr of bytes (b'...').\n"
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
    CLI_TLS_CLIENT_HELP
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

/* The first letter of an error sentence in lower case, for "closing: ..." lines. */
static void err_lower(char *buf, size_t cap, const char *s)
{
    snprintf(buf, cap, "%s", s);
    /* Not an acronym such as "TLS". */
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');
}

/* ==== app-server ========================================================== */

typedef struct app_server {
    const char *data;           /* --data, or NULL */
    size_t max_header;
    cli_app_table *table;
    int verbose;                /* -v: the original's Received/Sending lines */
} app_server;

/* -v: what the original prints for a request it has read: "Received request
 * {'action': ...} from ADDR" (the content decoded as it decodes it) or
 * "Received CONTENT-TYPE request from ADDR". Nothing for content it refuses. */
static void app_print_request(const ms_frame *msg, const char *addr)
{
    if (!cli_app_is_json(msg->app)) {
        cli_serve_print("Received %.*s request from %s", (int)msg->app->content_type_len,
                        msg->app->content_type, addr);
        return;
    }
    json_t *req = NULL;
    cli_app_buf text = {0};
    const char *why;
    if (cli_app_load_json(msg, 0, &req, &why) == 0 && cli_app_pystr(&text, req) == 0)
        cli_serve_print("Received request %.*s from %s", (int)text.len, (const char *)text.data,
                        addr);
    json_decref(req);
    cli_app_buf_free(&text);
}

/* A request's content at fault: logged here, with the words the codec
 * cannot know, and the connection closed gracefully (reason 0), so the
 * library logs nothing more. */
static void app_on_message(ms_conn *c, const ms_frame *msg, void *user)
{
    const app_server *s = user;
    cli_app_buf out = {0};
    const char *why = NULL;
    char addr[MS_ADDR_STRLEN + 32] = "";
    if (s->verbose) {
        cli_serve_py_peer(c, addr, sizeof addr);
        app_print_request(msg, addr);
    }
    int rc = cli_app_respond(s->table, msg, &out, &why);
    if (rc == 0 && s->verbose) {
        char *bytes = cli_serve_py_bytes(out.data, out.len);
        cli_serve_print("Sending %s to %s", bytes ? bytes : "?", addr);
        free(bytes);
    }
    if (rc == 0) {
        /* A failed send drops the connection; the log says why. */
        ms_conn_send_raw(c, out.data, out.len);
    } else {
        ms_addr a;
        char peer[MS_ADDR_STRLEN], text[256];
        ms_conn_peer(c, &a);
        if (ms_addr_format(&a, peer, sizeof peer) < 0)
            snprintf(peer, sizeof peer, "?");
        err_lower(text, sizeof text, why ? why : ms_strerror(rc));
        cli_serve_say("%s: closing: %s", peer, text);
        /* Graceful: answers to the requests before this one still go out. */
        ms_conn_close(c);
    }
    cli_app_buf_free(&out);
}

/* Every connection the library ends with an error, resets included. */
static void app_conn_end(const char *peer, const ms_log_record *rec)
{
    char text[256];
    err_lower(text, sizeof text, ms_strerror(rec->code));
    /* A TLS failure: the library's line ends with OpenSSL's words. */
    const char *tls = rec->code <= MS_ETLS && rec->code >= MS_ETLSTIMEDOUT && rec->msg
                          ? strstr(rec->msg, "): ") : NULL;
    cli_serve_say("%s: closing: %s%s", peer, text, tls ? tls + 1 : "");
}

enum { O_DATA = 256, O_MAX_HEADER };

static int app_opt(cli_serve_spec *sp, int val, const char *arg)
{
    app_server *s = sp->user;
    if (val == O_DATA) {
        s->data = arg;
        return CLI_OK;
    }
    if (cli_parse_size(arg, 65535, &s->max_header) < 0 || s->max_header == 0)
        return cli_usage(sp->cmd, "--max-header wants a size from 1 to 65535, got '%s'", arg);
    return CLI_OK;
}

static int app_prepare(cli_serve_spec *sp)
{
    app_server *s = sp->user;
    int rc;
    if (s->data) {
        char err[512];
        if ((rc = cli_app_table_load(&s->table, s->data, err, sizeof err)) < 0) {
            cli_err(sp->cmd, "--data %s", err);
            return CLI_FAIL;
        }
    } else if ((rc = cli_app_table_default(&s->table)) < 0) {
        cli_err(sp->cmd, "%s", ms_strerror(rc));
        return CLI_FAIL;
    }
    sp->frame.max_header = s->max_header;
    s->verbose = sp->verbose;
    return CLI_OK;
}

int cmd_app_server(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, O_DATA},
        {"max-header", required_argument, 0, O_MAX_HEADER},
        {0, 0, 0, 0},
    };
    app_server s = {.max_header = MS_FRAME_DEFAULT_MAX_HEADER};
    cli_serve_spec sp = {
        .cmd = "app-server",
        .help = server_help,
        .cb = {.on_message = app_on_message},
        .user = &s,
        .threads = 1,
        .opts = opts,
        .opt = app_opt,
        .prepare = app_prepare,
        .conn_end = app_conn_end,
    };
    cli_app_frame_config(&sp.frame, 0);
    int status = cli_serve_main(&sp, argc, argv);
    cli_app_table_free(s.table);
    return status;
}

/* ==== app-client ========================================================== */

typedef struct client_opts {
    const cli_client *cl;     /* the address, the timeout and TLS */
    const char *addr;         /* cl->addr */
    const char *action, *value;
    int timeout_ms;
    long count, clients;
    size_t max_msg;
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
    int is_json = cli_app_is_json(h);
    json_t *content = NULL, *result = NULL;
    int rc = 0;
    *why = NULL;
    if (is_json) {
        /* As the tutorial's app-client: decoded with its content-encoding. */
        if ((rc = cli_app_load_json(msg, 1, &content, why)) < 0)
            return rc;
        result = json_object_get(content, "result");
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
        /* Python's print(): str() of the result, None when there is none. */
        rc = cli_app_pystr(out, result);
        if (rc == 0)
            rc = cli_app_buf_put(out, "\n", 1);
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
    cli_io io = {.fd = -1};
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
    if (cli_client_connect(o->cl, 1, &io) != CLI_OK)
        goto done;
    long sent_msgs = 0, got = 0;
    size_t req_off = 0, in_off = 0;
    int64_t deadline = ms_now_ms() + o->timeout_ms;
    while (got < o->count) {
        struct pollfd p = {.fd = io.fd, .events = POLLIN | (sent_msgs < o->count ? POLLOUT : 0)};
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
            rc = cli_io_send_all(&io, req.data + req_off, req.len - req_off, 0, &sent);
            req_off += sent;
            if (rc == 0) {
                req_off = 0;
                sent_msgs++;
            } else if (rc != MS_ETIMEDOUT && rc != MS_EAGAIN) {
                client_fail_conn(o, got, "send", cli_io_strerror(&io, rc));
                goto done;
            }
        }
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if ((rc = cli_app_buf_reserve(&in, READ_CHUNK)) < 0) {
            client_fail_conn(o, got, "receive", ms_strerror(rc));
            goto done;
        }
        ssize_t n = cli_io_recv(&io, in.data + in.len, READ_CHUNK, 0);
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
            client_fail_conn(o, got, "receive", cli_io_strerror(&io, (int)n));
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
    cli_io_close(&io);
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

static int app_client_opt(cli_client *cl, int val, const char *arg)
{
    client_opts *o = cl->user;
    switch (val) {
    case 'j': o->json = 1; return CLI_OK;
    case 'n':
        if (cli_parse_long(arg, 1, 100000000, &o->count) < 0)
            return cli_usage(cl->cmd, "--count wants a number from 1, got '%s'", arg);
        return CLI_OK;
    case 'C':
        if (cli_parse_long(arg, 1, 10000, &o->clients) < 0)
            return cli_usage(cl->cmd, "--clients wants a number from 1 to 10000, got '%s'", arg);
        return CLI_OK;
    default:
        if (cli_parse_size(arg, MS_FRAME_LIMIT_MAX, &o->max_msg) < 0 || o->max_msg == 0)
            return cli_usage(cl->cmd, "--max-msg wants a size such as 64k or 16M, got '%s'", arg);
        return CLI_OK;
    }
}

int cmd_app_client(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},
        {"count", required_argument, 0, 'n'},
        {"clients", required_argument, 0, 'C'},
        {"max-msg", required_argument, 0, 'm'},
        {0, 0, 0, 0},
    };
    client_opts o = {.count = 1, .clients = 1, .max_msg = MS_FRAME_DEFAULT_MAX_MSG};
    cli_client cl = {.cmd = "app-client", .help = client_help, .timeout_ms = 5000,
                     .opts = opts, .opt = app_client_opt, .user = &o};
    int st = cli_client_parse(&cl, argc, argv);
    if (st >= 0)
        return st;
    int npos = argc - optind, want = cl.connect ? 2 : 4;
    if (npos != want)
        return cli_usage("app-client", "%s", npos < want ? "missing arguments: want HOST PORT ACTION VALUE"
                                                         : "too many arguments");
    char **pos = argv + optind;
    if ((st = cli_client_addr(&cl, cl.connect ? NULL : pos[0], cl.connect ? NULL : pos[1])) != CLI_OK)
        return st;
    const char *addr = cl.addr;
    long clients = o.clients;
    o.cl = &cl;
    o.addr = addr;
    o.action = pos[want - 2];
    o.value = pos[want - 1];
    o.timeout_ms = (int)cl.timeout_ms;
    cli_app_frame_config(&o.frame, o.max_msg);
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

    if ((st = cli_client_tls(&cl)) != CLI_OK)
        return st;
    client_job *jobs = calloc((size_t)clients, sizeof *jobs);
    if (!jobs) {
        cli_err("app-client", "%s", ms_strerror(MS_ENOMEM));
        cli_client_free(&cl);
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
    cli_client_free(&cl);
    if (fflush(stdout) != 0)
        status = CLI_FAIL;
    return status;
}
