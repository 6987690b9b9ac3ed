/* client.h: what every client command shares: the address, --timeout, the --tls-* options, connecting plain or TLS. */
#ifndef MSGSOCK_CLI_CLIENT_H
#define MSGSOCK_CLI_CLIENT_H

#include "cli_tls.h"

#include <getopt.h>

/* A client command's options and connection; the client-side mirror of
 * cli_serve_spec. */
typedef struct cli_client {
    /* Set by the command before cli_client_parse. */
    const char *cmd;              /* "echo-client" */
    const char *help;             /* the whole --help text */
    long timeout_ms;              /* --timeout's default */
    /* Its own options: short ones beyond -h and -V (NULL: none), long ones
     * (ending with a zero entry; values other than c, t, h, V), and their
     * handler: 0, or an exit status (after printing why). */
    const char *shortopts;
    const struct option *opts;
    int (*opt)(struct cli_client *cl, int val, const char *arg);
    void *user;

    /* Filled in. */
    const char *connect;          /* --connect ADDR, or NULL */
    cli_tls_opts tls;
    char addr[512];               /* cli_client_addr */
    char host[256];               /* the name the server's certificate must match */
    ms_tls_ctx *ctx;              /* cli_client_tls; NULL: plain */
} cli_client;

/* Parses the options of argv (argv[0] is the command's name): -1 when the
 * positional arguments follow at argv[optind], else an exit status to
 * return at once (--help, --version, or a usage error, printed). */
int cli_client_parse(cli_client *cl, int argc, char **argv);
/* The address from --connect, or from HOST and PORT (either may be NULL:
 * the defaults): CLI_OK, or CLI_USAGE after printing why. */
int cli_client_addr(cli_client *cl, const char *host, const char *port);
/* The TLS context the options ask for (cl->ctx, NULL when off) and the
 * host it checks: CLI_OK, or an exit status after printing why. */
int cli_client_tls(cli_client *cl);
/* Connects to cl->addr within the timeout (nonblock: the descriptor is
 * left non-blocking) and, with TLS, runs the handshake. CLI_OK with *io
 * the caller's until cli_io_close; else prints "connect ADDR: WHY" or
 * "TLS handshake with ADDR: WHY" and returns CLI_FAIL, or CLI_USAGE for an
 * address that cannot be parsed. */
int cli_client_connect(const cli_client *cl, int nonblock, cli_io *io);
/* ms_conn_connect to cl->addr with the timeout, TLS if cl->ctx, and RAW
 * framing: the same contract. */
int cli_client_conn(const cli_client *cl, ms_loop *loop, const ms_conn_limits *lim,
                    const ms_conn_callbacks *cb, void *user, ms_conn **out);
/* Drops the TLS context (connections hold their own). */
void cli_client_free(cli_client *cl);

#endif
