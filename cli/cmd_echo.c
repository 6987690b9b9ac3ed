/* cmd_echo.c: echo-server and echo-client, the tutorial's first two programs. */
#include "cli.h"
#include "client.h"
#include "serve.h"

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
        .verbose_connected_by = 1,
    };
    return cli_serve_main(&sp, argc, argv);
}

int cmd_echo_client(int argc, char **argv)
{
    cli_client cl = {.cmd = "echo-client", .help = client_help, .timeout_ms = 5000};
    int st = cli_client_parse(&cl, argc, argv);
    if (st >= 0)
        return st;
    int npos = argc - optind;
    const char *host = NULL, *port = NULL, *msg = "Hello, world";
    if (cl.connect) {
        if (npos > 1)
            return cli_usage(cl.cmd, "too many arguments");
        if (npos == 1)
            msg = argv[optind];
    } else {
        if (npos > 3)
            return cli_usage(cl.cmd, "too many arguments");
        host = npos > 0 ? argv[optind] : NULL;
        port = npos > 1 ? argv[optind + 1] : NULL;
        msg = npos > 2 ? argv[optind + 2] : msg;
    }
    if ((st = cli_client_addr(&cl, host, port)) != CLI_OK ||
        (st = cli_client_tls(&cl)) != CLI_OK)
        return st;
    const char *addr = cl.addr;
    int64_t deadline = ms_now_ms() + cl.timeout_ms;
    cli_io io;
    st = cli_client_connect(&cl, 0, &io);
    cli_client_free(&cl);
    if (st != CLI_OK)
        return st;
    size_t len = strlen(msg);
    int rc = cli_io_send_all(&io, msg, len, (int)cl.timeout_ms, NULL);
    if (rc < 0) {
        cli_err(cl.cmd, "send to %s: %s", addr, cli_io_strerror(&io, rc));
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
            cli_err(cl.cmd, "%s closed the connection after echoing %zu of %zu bytes",
                    addr, got, len);
        else
            cli_err(cl.cmd, "receive from %s: %s (%zu of %zu bytes echoed)", addr,
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
