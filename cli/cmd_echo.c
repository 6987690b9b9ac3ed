/* cmd_echo.c: echo-server and echo-client, the tutorial's first two programs. */
#include "cli.h"
#include "cli_tls.h"
#include "serve.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *server_help =
    "Usage: msgsock echo-server [OPTIONS] [HOST [PORT]]\n"
    "\n"
    "Accepts connections and sends back every byte each client sends, until the\n"
    "client closes; keeps serving until SIGINT or SIGTERM, then exits 0. The\n"
    "tutorial's echo server serves one client after another: that is\n"
    "'--model iterative'; the default serves any number at once.\n";

static const char *client_help =
    "Usage: msgsock echo-client [OPTIONS] [HOST [PORT [MESSAGE]]]\n"
    "\n"
    "Connects, sends MESSAGE (default 'Hello, world'), reads until the whole\n"
    "echo is back and prints it as Python would: Received b'Hello, world'.\n"
    "\n"
    "  HOST PORT          server address (default 127.0.0.1 65432)\n"
    "  --connect ADDR     HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name\n"
    "  --timeout MS       limit for connecting and for the reply (default 5000)\n"
    CLI_TLS_CLIENT_HELP
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

static void echo_message(ms_conn *c, const ms_frame *m, void *user)
{
    (void)user;
    ms_conn_send_raw(c, m->data, m->len);
}

int cmd_echo_server(int argc, char **argv)
{
    cli_serve_spec sp = {
        .cmd = "echo-server",
        .help = server_help,
        .cb = {.on_message = echo_message},
        .threads = 1,
    };
    return cli_serve_main(&sp, argc, argv);
}

int cmd_echo_client(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        CLI_TLS_CLIENT_LONGOPTS,
        {0, 0, 0, 0},
    };
    const char *connect_opt = NULL;
    cli_tls_opts tlso = {0};
    long timeout = 5000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': connect_opt = optarg; break;
        case 't':
            if (cli_parse_long(optarg, 1, 86400000, &timeout) < 0)
                return cli_usage("echo-client", "--timeout wants milliseconds, got '%s'", optarg);
            break;
        case 'h': fputs(client_help, stdout); return CLI_OK;
        case 'V': printf("msgsock %s\n", ms_version()); return CLI_OK;
        default:
            if (cli_tls_opt(&tlso, c, optarg))
                break;
            return cli_usage("echo-client", "bad option");
        }
    }
    int npos = argc - optind;
    const char *host = NULL, *port = NULL, *msg = "Hello, world";
    if (connect_opt) {
        if (npos > 1)
            return cli_usage("echo-client", "too many arguments");
        if (npos == 1)
            msg = argv[optind];
    } else {
        if (npos > 3)
            return cli_usage("echo-client", "too many arguments");
        host = npos > 0 ? argv[optind] : NULL;
        port = npos > 1 ? argv[optind + 1] : NULL;
        msg = npos > 2 ? argv[optind + 2] : msg;
    }
    char addr[512];
    if (cli_addr_text(addr, sizeof addr, connect_opt, host, port) < 0)
        return cli_usage("echo-client", "address too long");

    ms_tls_ctx *tls = NULL;
    int st = cli_tls_client_ctx("echo-client", &tlso, &tls);
    if (st != CLI_OK)
        return st;
    char tls_host[256];
    cli_tls_host(tls_host, sizeof tls_host, addr);
    int64_t deadline = ms_now_ms() + timeout;
    int fd = ms_connect_text(addr, (int)timeout, 0);
    if (fd < 0) {
        ms_tls_ctx_free(tls);
        if (fd == MS_EBADADDR)
            return cli_usage("echo-client", "bad address '%s': %s", addr, ms_strerror(fd));
        cli_err("echo-client", "connect %s: %s", addr, ms_strerror(fd));
        return CLI_FAIL;
    }
    cli_io io;
    int rc = cli_io_start("echo-client", &io, fd, tls, tls_host, addr, (int)timeout);
    ms_tls_ctx_free(tls);
    if (rc < 0)
        return CLI_FAIL;
    size_t len = strlen(msg);
    rc = cli_io_send_all(&io, msg, len, (int)timeout, NULL);
    if (rc < 0) {
        cli_err("echo-client", "send to %s: %s", addr, cli_io_strerror(&io, rc));
        cli_io_close(&io);
        return CLI_FAIL;
    }
    char *reply = malloc(len ? len : 1);
    size_t got = 0;
    rc = reply ? 0 : MS_ENOMEM;
    while (rc == 0 && got < len) {
        int left = (int)(deadline - ms_now_ms());
        ssize_t n = cli_io_recv(&io, reply + got, len - got, left > 0 ? left : 1);
        if (n > 0)
            got += (size_t)n;
        else
            rc = (int)n;
    }
    const char *why = rc < 0 ? cli_io_strerror(&io, rc) : NULL;
    char whybuf[256];
    snprintf(whybuf, sizeof whybuf, "%s", why ? why : "");
    cli_io_close(&io);
    if (rc < 0) {
        if (rc == MS_EOF || rc == MS_ETRUNCATED)
            cli_err("echo-client", "%s closed the connection after echoing %zu of %zu bytes",
                    addr, got, len);
        else
            cli_err("echo-client", "receive from %s: %s (%zu of %zu bytes echoed)", addr,
                    whybuf, got, len);
        free(reply);
        return CLI_FAIL;
    }
    fputs("Received ", stdout);
    cli_print_pybytes(stdout, reply, len);
    fputc('\n', stdout);
    free(reply);
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}
