/* cli.h: what the msgsock subcommands share: option parsing, logging, addresses. */
#ifndef MSGSOCK_CLI_H
#define MSGSOCK_CLI_H

#include "msgsock.h"

#include <stdio.h>

#define CLI_DEFAULT_HOST "127.0.0.1"
#define CLI_DEFAULT_PORT "65432"

/* Exit statuses every subcommand uses. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef int (*cli_cmd_fn)(int argc, char **argv);

/* The subcommands; each returns the process exit status. */
int cmd_echo_server(int argc, char **argv);
int cmd_echo_client(int argc, char **argv);
int cmd_multiconn_server(int argc, char **argv);
int cmd_multiconn_client(int argc, char **argv);
int cmd_app_server(int argc, char **argv);
int cmd_app_client(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_stats(int argc, char **argv);

/* "msgsock CMD: message" on stderr. */
void cli_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the error and "Try 'msgsock CMD --help'."; returns CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a whole decimal number in [min, max]; 0 or -1. */
int cli_parse_long(const char *s, long min, long max, long *out);
/* Parses a size with an optional k/K, m/M, g/G suffix (powers of 1024). */
int cli_parse_size(const char *s, size_t max, size_t *out);

/* For getopt_long's '?' or ':' (the option string starts with ':', so
 * getopt prints nothing): one line naming the option, "unknown option
 * '--x'" or "option '--x' needs a value"; returns CLI_USAGE. */
int cli_opt_error(const char *cmd, int c, int argc, char **argv);

/* CLI_OK, or CLI_USAGE after "port N is out of range 0-65535" when the port
 * of the address text is a number out of range. */
int cli_check_port(const char *cmd, const char *addr);

/* Address text from an --listen/--connect option, or positional HOST and
 * PORT (either may be NULL: defaults; an empty HOST is every interface). A
 * bare IPv6 host becomes [h]:p and a "unix:" host is taken as is. Writes
 * into buf; returns CLI_OK, or CLI_USAGE after printing why (too long, port
 * out of range). */
int cli_addr_text(const char *cmd, char *buf, size_t cap, const char *opt, const char *host,
                  const char *port);

/* The server contract: one line "listening on ADDR" on stdout, flushed. */
void cli_print_listening(int listen_fd);

/* Python's repr() of a bytes object, b'...', written to f. */
void cli_print_pybytes(FILE *f, const void *data, size_t len);

/* Blocks SIGINT and SIGTERM in the calling thread and returns a signalfd
 * that becomes readable when one arrives, or a negative code. */
int cli_stop_signalfd(void);

#endif
