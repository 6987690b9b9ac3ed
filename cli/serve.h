/* serve.h: the front end every server command shares: options, help, the server's configuration, running until a stop signal. */
#ifndef MSGSOCK_CLI_SERVE_H
#define MSGSOCK_CLI_SERVE_H

#include "cli.h"

#include <getopt.h>
#include <pthread.h>

/* What a server command supplies; cli_serve_main does the rest. */
typedef struct cli_serve_spec {
    const char *cmd;              /* "app-server" */
    /* The command's own help: usage line, what it does, its own options.
     * The common server options follow it in --help. */
    const char *help;
    ms_frame_config frame;        /* its framing; --max-msg sets frame.max_msg */
    ms_conn_callbacks cb;         /* called with user */
    void *user;
    int threads;                  /* event loops without --threads (0: one per CPU) */
    /* Its own long options (val from 256 on; ends with a zero entry) and
     * their handler: 0, or an exit status (after printing why). */
    const struct option *opts;
    int (*opt)(struct cli_serve_spec *sp, int val, const char *arg);
    /* After the options, before listening: 0 or an exit status. */
    int (*prepare)(struct cli_serve_spec *sp);
    /* Prints the line for a connection that ended with an error (peer is
     * its address as text); NULL: "PEER: connection dropped: WHY", shown
     * for resets only with --verbose. */
    void (*conn_end)(const char *peer, const ms_log_record *rec);
    /* -v prints the tutorial original's lines on stdout: "Accepted connection
     * from ADDR" and "Closing connection to ADDR" per connection; a
     * command prints its per-message lines itself (see verbose below). */
    int verbose_connected_by;     /* echo-server: "Connected by ADDR" instead */
    int verbose_echo;             /* multiconn-server: "Echoing b'...' to ADDR" too */
    /* Set by cli_serve_main before prepare: 1 with -v, for a command that
     * prints its own per-message lines (app-server's requests and replies). */
    int verbose;
} cli_serve_spec;

/* A connection's peer as Python prints the address tuple accept() returns:
 * ('127.0.0.1', 54321), ('::1', 54321, 0, 0); a Unix socket's path. */
void cli_serve_py_peer(const ms_conn *c, char *buf, size_t cap);
/* data as Python's repr of bytes, the first 1 KiB of a longer payload then
 * "..."; a malloc'd string, or NULL. */
char *cli_serve_py_bytes(const void *data, size_t len);

/* Parses argv (argv[0] is the command's name), then listens, prints
 * "listening on ADDR", serves until SIGINT or SIGTERM and returns the exit
 * status: 0, 1 (could not listen or serve) or 2 (usage). */
int cli_serve_main(cli_serve_spec *sp, int argc, char **argv);

/* One whole line "msgsock CMD: TEXT" on stderr in one write, so lines from
 * connections served at once (threads, children) never mix. */
void cli_serve_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same on stdout without the prefix: the -v lines. Neither ever blocks
 * (ms_server_log_write): a line the descriptor cannot take at once is
 * dropped and counted in the server's log_dropped. */
void cli_serve_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- serve_stats.c: --stats and SIGUSR1 ---- */

typedef struct cli_monitor cli_monitor;

/* Blocks SIGUSR1, SIGINT and SIGTERM in the calling thread; call before any
 * thread starts, so that every thread inherits the block: the monitor alone
 * takes SIGUSR1, the server's signalfd the stop signals. */
int cli_monitor_block_signal(void);
/* Starts the thread that answers connections to admin_fd (a listening
 * socket, or -1 for none) and SIGUSR1 with s's table. *out is the caller's
 * until cli_monitor_stop. */
int cli_monitor_start(cli_monitor **out, ms_server *s, const char *cmd, int admin_fd);
/* Stops and joins the thread; closes admin_fd. NULL is fine. */
void cli_monitor_stop(cli_monitor *m);
/* Starts a thread running fn(arg) with every signal blocked (above all
 * SIGCHLD, which the fork model's loop waits for); 0 or a negative code. */
int cli_thread_start(pthread_t *th, void *(*fn)(void *), void *arg);

/* The admin threads (stats, metrics) do their work between these two calls,
 * and fork(2) waits until none is inside: a fork model child must not
 * inherit a lock such a thread held at that moment (an allocator's, the
 * snapshot's), which it would wait on forever. Waiting for input is done
 * outside. */
void cli_admin_enter(void);
void cli_admin_leave(void);

/* ---- serve_metrics.c: --metrics, Prometheus over HTTP/1.1 ---- */

typedef struct cli_metrics cli_metrics;

/* Starts the thread that answers HTTP requests on lfd (a listening
 * socket, non-blocking; on success the metrics' until cli_metrics_stop
 * closes it) with s's totals. */
int cli_metrics_start(cli_metrics **out, ms_server *s, const char *cmd, int lfd);
/* Stops and joins the thread, closes every connection and lfd. NULL is fine. */
void cli_metrics_stop(cli_metrics *m);

/* ---- stats_format.c: a snapshot as text ---- */

/* The table (or JSON, one line) of snap for the command cmd, NUL-terminated
 * and malloc'd (the caller frees it), or NULL without memory. */
char *cli_stats_table(const ms_server_snapshot *snap, const char *cmd);
char *cli_stats_json(const ms_server_snapshot *snap, const char *cmd);
/* The totals (and per-loop gauges in the event model) in the Prometheus
 * text exposition format 0.0.4, with HELP and TYPE lines; the same contract. */
char *cli_stats_prometheus(const ms_server_snapshot *snap, const char *cmd);
/* A snapshot of s taken now and formatted by fmt (one of the three above);
 * malloc'd, or NULL. Not from s's loops' threads. */
typedef char *(*cli_stats_fmt)(const ms_server_snapshot *snap, const char *cmd);
char *cli_stats_render(ms_server *s, const char *cmd, cli_stats_fmt fmt);

#endif
