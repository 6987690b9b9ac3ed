/* client.c: the client commands' shared front end: options, address, TLS context, connecting. */
#include "client.h"

#include <stdlib.h>
#include <string.h>

static const struct option common_opts[] = {
    {"connect", required_argument, 0, 'c'},
    {"timeout", required_argument, 0, 't'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    CLI_TLS_CLIENT_LONGOPTS,
};
#define NCOMMON (sizeof common_opts / sizeof common_opts[0])
/* A command's own long options at most. */
#define NOWN 16

static int common_opt(cli_client *cl, int c, const char *arg)
{
    switch (c) {
    case 'c': cl->connect = arg; return -1;
    case 't':
        if (cli_parse_long(arg, 1, 86400000, &cl->timeout_ms) < 0)
            return cli_usage(cl->cmd, "--timeout wants milliseconds, got '%s'", arg);
        return -1;
    case 'h': fputs(cl->help, stdout); return CLI_OK;
    case 'V': printf("msgsock %s\n", ms_version()); return CLI_OK;
    default:
        if (cli_tls_opt(&cl->tls, c, arg))
            return -1;
        return cli_usage(cl->cmd, "bad option");
    }
}

static int is_own(const cli_client *cl, int c)
{
    for (size_t i = 0; cl->opts && cl->opts[i].name; i++)
        if (cl->opts[i].val == c && !cl->opts[i].flag)
            return 1;
    return 0;
}

int cli_client_parse(cli_client *cl, int argc, char **argv)
{
    struct option all[NOWN + NCOMMON + 1];
    char shortopts[32] = ":hV";
    size_t n = 0;
    while (cl->opts && cl->opts[n].name && n < NOWN) {
        all[n] = cl->opts[n];
        n++;
    }
    memcpy(all + n, common_opts, sizeof common_opts);
    memset(&all[n + NCOMMON], 0, sizeof all[0]);
    if (cl->shortopts)
        strncat(shortopts, cl->shortopts, sizeof shortopts - strlen(shortopts) - 1);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, shortopts, all, NULL)) != -1) {
        int st;
        if (c == '?' || c == ':')
            return cli_opt_error(cl->cmd, c, argc, argv);
        if (cl->opt && is_own(cl, c)) {
            if ((st = cl->opt(cl, c, optarg)) != CLI_OK)
                return st;
        } else if ((st = common_opt(cl, c, optarg)) >= 0) {
            return st;
        }
    }
    return -1;
}

int cli_client_addr(cli_client *cl, const char *host, const char *port)
{
    return cli_addr_text(cl->cmd, cl->addr, sizeof cl->addr, cl->connect, host, port);
}

int cli_client_tls(cli_client *cl)
{
    int st = cli_tls_client_ctx(cl->cmd, &cl->tls, &cl->ctx);
    if (st == CLI_OK)
        cli_tls_host(cl->host, sizeof cl->host, cl->addr);
    return st;
}

int cli_client_connect(const cli_client *cl, int nonblock, cli_io *io)
{
    io->fd = -1;
    io->tls = NULL;
    int fd = ms_connect_text(cl->addr, (int)cl->timeout_ms, nonblock);
    if (fd < 0) {
        if (fd == MS_EBADADDR)
            return cli_usage(cl->cmd, "bad address '%s': %s", cl->addr, ms_strerror(fd));
        cli_err(cl->cmd, "connect %s: %s", cl->addr, ms_strerror(fd));
        return CLI_FAIL;
    }
    if (cli_io_start(cl->cmd, io, fd, cl->ctx, cl->host, cl->addr, (int)cl->timeout_ms) < 0)
        return CLI_FAIL;
    return CLI_OK;
}

int cli_client_conn(const cli_client *cl, ms_loop *loop, const ms_conn_limits *lim,
                    const ms_conn_callbacks *cb, void *user, ms_conn **out)
{
    ms_connect_opts o = {.addr = cl->addr, .cb = *cb, .user = user,
                         .timeout_ms = (int)cl->timeout_ms, .tls = cl->ctx};
    if (lim)
        o.limits = *lim;
    return ms_conn_connect(loop, &o, out);
}

void cli_client_free(cli_client *cl)
{
    ms_tls_ctx_free(cl->ctx);
    cl->ctx = NULL;
}
