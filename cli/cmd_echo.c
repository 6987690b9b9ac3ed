/* cmd_echo.c: echo-server and echo-client, the tutorial's first two programs. */
#include "cli.h"

#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Called from main.c's command table. */
int cmd_echo_server(int argc, char **argv);
int cmd_echo_client(int argc, char **argv);

static const char *server_help =
    "Usage: msgsock echo-server [OPTIONS] [HOST [PORT]]\n"
    "\n"
    "Accepts connections and sends back every byte each client sends, until the\n"
    "client closes; keeps serving until SIGINT or SIGTERM, then exits 0.\n"
    "Prints 'listening on ADDR' on stdout once ready.\n"
    "\n"
    "  HOST PORT          address to listen on (default 127.0.0.1 65432; 0 = any free port)\n"
    "  --listen ADDR      HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

static const char *client_help =
    "Usage: msgsock echo-client [OPTIONS] [HOST [PORT [MESSAGE]]]\n"
    "\n"
    "Connects, sends MESSAGE (default 'Hello, world'), reads until the whole\n"
    "echo is back and prints it as Python would: Received b'Hello, world'.\n"
    "\n"
    "  HOST PORT          server address (default 127.0.0.1 65432)\n"
    "  --connect ADDR     HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name\n"
    "  --timeout MS       limit for connecting and for the reply (default 5000)\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

/* Serves one client until it closes, or until a stop signal arrives (then
 * returns 1). */
static int echo_one(int fd, int stopfd, const char *peer)
{
    char buf[65536];
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = stopfd, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents)
            return 1;
        ssize_t n = ms_recv_some(fd, buf, sizeof buf, 0);
        if (n == MS_ETIMEDOUT || n == MS_EAGAIN)
            continue;
        if (n == MS_EOF)
            return 0;
        if (n < 0) {
            cli_err("echo-server", "recv from %s: %s", peer, ms_strerror((int)n));
            return 0;
        }
        int rc = ms_send_all(fd, buf, (size_t)n, 30000, NULL);
        if (rc < 0) {
            cli_err("echo-server", "send to %s: %s", peer, ms_strerror(rc));
            return 0;
        }
    }
}

int cmd_echo_server(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    const char *listen_opt = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen_opt = optarg; break;
        case 'h': fputs(server_help, stdout); return CLI_OK;
        case 'V': printf("msgsock %s\n", ms_version()); return CLI_OK;
        default: return cli_usage("echo-server", "bad option");
        }
    }
    int npos = argc - optind;
    if (npos > 2 || (listen_opt && npos > 0))
        return cli_usage("echo-server", "too many arguments");
    char addr[512];
    if (cli_addr_text(addr, sizeof addr, listen_opt, npos > 0 ? argv[optind] : NULL,
                      npos > 1 ? argv[optind + 1] : NULL) < 0)
        return cli_usage("echo-server", "address too long");

    int stopfd = cli_stop_signalfd();
    if (stopfd < 0) {
        cli_err("echo-server", "signalfd: %s", ms_strerror(stopfd));
        return CLI_FAIL;
    }
    int lfd = ms_listen_text(addr, NULL);
    if (lfd < 0) {
        if (lfd == MS_EBADADDR)
            return cli_usage("echo-server", "bad address '%s': %s", addr, ms_strerror(lfd));
        cli_err("echo-server", "listen %s: %s", addr, ms_strerror(lfd));
        return CLI_FAIL;
    }
    cli_print_listening(lfd);

    struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = stopfd, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents)
            break;
        ms_addr peer;
        char ptext[MS_ADDR_STRLEN] = "?";
        int fd = ms_accept(lfd, &peer, 0, 0);
        if (fd == MS_EAGAIN || fd == MS_ECONNABORTED)
            continue;
        if (fd < 0) {
            cli_err("echo-server", "accept: %s", ms_strerror(fd));
            /* EMFILE and friends: back off rather than spin. */
            poll(NULL, 0, 100);
            continue;
        }
        ms_addr_format(&peer, ptext, sizeof ptext);
        int stop = echo_one(fd, stopfd, ptext);
        ms_sock_close(fd, 0);
        if (stop)
            break;
    }
    ms_sock_close(lfd, 0);
    close(stopfd);
    return CLI_OK;
}

int cmd_echo_client(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    const char *connect_opt = NULL;
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
        default: return cli_usage("echo-client", "bad option");
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

    int64_t deadline = ms_now_ms() + timeout;
    int fd = ms_connect_text(addr, (int)timeout, 0);
    if (fd < 0) {
        if (fd == MS_EBADADDR)
            return cli_usage("echo-client", "bad address '%s': %s", addr, ms_strerror(fd));
        cli_err("echo-client", "connect %s: %s", addr, ms_strerror(fd));
        return CLI_FAIL;
    }
    size_t len = strlen(msg);
    int rc = ms_send_all(fd, msg, len, (int)timeout, NULL);
    if (rc < 0) {
        cli_err("echo-client", "send to %s: %s", addr, ms_strerror(rc));
        ms_sock_close(fd, 0);
        return CLI_FAIL;
    }
    char *reply = malloc(len ? len : 1);
    size_t got = 0;
    int left = (int)(deadline - ms_now_ms());
    rc = reply ? ms_recv_exact(fd, reply, len, left > 0 ? left : 1, &got) : MS_ENOMEM;
    ms_sock_close(fd, 0);
    if (rc < 0) {
        if (rc == MS_EOF || rc == MS_ETRUNCATED)
            cli_err("echo-client", "%s closed the connection after echoing %zu of %zu bytes",
                    addr, got, len);
        else
            cli_err("echo-client", "receive from %s: %s (%zu of %zu bytes echoed)", addr,
                    ms_strerror(rc), got, len);
        free(reply);
        return CLI_FAIL;
    }
    fputs("Received ", stdout);
    cli_print_pybytes(stdout, reply, len);
    fputc('\n', stdout);
    free(reply);
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}
