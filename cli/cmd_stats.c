/* cmd_stats.c: msgsock stats: asks a server's --stats listener for its table of connections and prints it. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static const char *help =
    "Usage: msgsock stats [OPTIONS] ADDR\n"
    "       msgsock stats [OPTIONS] HOST PORT\n"
    "\n"
    "Connects to the --stats address of a msgsock server and prints what it\n"
    "answers: a table of the server's connections (peer, state, age, bytes and\n"
    "messages in and out, queued output) and its totals (accepted, refused at\n"
    "the connection limit, dropped for bad input, dropped for output, timed out,\n"
    "open). ADDR is HOST:PORT, [IPv6]:PORT, unix:/path or unix:@name.\n"
    "\n"
    "  --json             one line of JSON instead of the table\n"
    "  --timeout MS       limit for connecting and for the answer (default 5000)\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},
        {"timeout", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    long timeout = 5000;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 't':
            if (cli_parse_long(optarg, 1, 86400000, &timeout) < 0)
                return cli_usage("stats", "--timeout wants milliseconds, got '%s'", optarg);
            break;
        case 'h': fputs(help, stdout); return CLI_OK;
        case 'V': printf("msgsock %s\n", ms_version()); return CLI_OK;
        default: return cli_opt_error("stats", c, argc, argv);
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2)
        return cli_usage("stats", npos ? "too many arguments" : "ADDR is missing");
    char addr[512];
    if (cli_addr_text("stats", addr, sizeof addr, npos == 1 ? argv[optind] : NULL, argv[optind],
                      npos == 2 ? argv[optind + 1] : NULL) != CLI_OK)
        return CLI_USAGE;
    int64_t deadline = ms_now_ms() + timeout;
    int fd = ms_connect_text(addr, (int)timeout, 0);
    if (fd < 0) {
        if (fd == MS_EBADADDR)
            return cli_usage("stats", "bad address '%s': %s", addr, ms_strerror(fd));
        cli_err("stats", "connect %s: %s", addr, ms_strerror(fd));
        return CLI_FAIL;
    }
    const char *req = json ? "json\n" : "text\n";
    int rc = ms_send_all(fd, req, strlen(req), (int)timeout, NULL);
    size_t total = 0;
    char buf[65536];
    while (rc == 0) {
        int64_t left = deadline - ms_now_ms();
        ssize_t n = ms_recv_some(fd, buf, sizeof buf, left > 0 ? (int)left : 0);
        if (n == MS_EOF)
            break;
        if (n < 0) {
            rc = (int)n;
            break;
        }
        fwrite(buf, 1, (size_t)n, stdout);
        total += (size_t)n;
    }
    ms_sock_close(fd, 0);
    if (rc == 0 && total == 0)
        rc = MS_EOF;
    if (rc < 0) {
        cli_err("stats", "%s: %s", addr,
                rc == MS_EOF ? "closed without answering (is it a --stats address?)" : ms_strerror(rc));
        return CLI_FAIL;
    }
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}
