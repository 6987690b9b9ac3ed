/* msgsock/server.h: servers (layer 6): the event and blocking models, limits, logs, stats, snapshots. */
#ifndef MSGSOCK_SERVER_H
#define MSGSOCK_SERVER_H

#include "common.h"
#include "net.h"
#include "loop.h"
#include "frame.h"
#include "tls.h"
#include "conn.h"

typedef struct ms_server ms_server;

typedef struct ms_server_limits {
    int max_conns;           /* open connections at most; more are accepted and closed
                              * at once and counted as refused (0: RLIMIT_NOFILE's soft
                              * limit at create minus MS_SERVER_FD_RESERVE and 4 per
                              * loop, at least 1; -1: none) */
    ms_conn_limits conn;     /* per connection */
} ms_server_limits;

/* Descriptors the default max_conns leaves for everything but connections:
 * stdio, logs, files the handler opens. */
#define MS_SERVER_FD_RESERVE 32

/* A log line: level 0 error, 1 warning, 2 info. msg has no newline. */
typedef void (*ms_log_fn)(void *user, int level, const char *msg);

/* What a server's log line is about. */
typedef enum ms_log_event {
    MS_LOG_SERVER = 0,   /* the server as a whole: accept errors, running out of descriptors */
    MS_LOG_CONN_END,     /* a connection ended with an error: code says which, peer whose */
    MS_LOG_LIMIT,        /* connections refused at max_conns (one line per second at most) */
    MS_LOG_CONN_OPEN,    /* with log_conns: a connection accepted (level 2, peer set) */
    MS_LOG_CONN_CLOSE    /* with log_conns: a connection over, code its on_close reason
                          * (level 2, peer set; also after MS_LOG_CONN_END) */
} ms_log_event;

/* A log line with its facts apart, so the caller decides what to print. */
typedef struct ms_log_record {
    int level;              /* 0 error, 1 warning, 2 info */
    ms_log_event event;
    int code;               /* the MS_E* code the line is about, 0 if none */
    const ms_addr *peer;    /* the connection's peer, NULL for the server as a whole */
    const char *msg;        /* the line in words, without the peer; no newline */
} ms_log_record;
/* rec and everything it points to are valid during the call only. */
typedef void (*ms_log_record_fn)(void *user, const ms_log_record *rec);

/*
 * How a server serves its connections.
 *
 * In the blocking models the thread calling ms_server_run keeps the
 * listener, the signals and ms_server_stop; each connection is driven by
 * ms_conn_serve_fd (blocking I/O) on a thread of its own (THREAD; ITERATIVE
 * runs one such thread at a time) or in a child process (FORK). What
 * applies there: the framing and its max_msg, idle_timeout_ms,
 * msg_timeout_ms, linger_ms, keepalive, nodelay, and max_conns (THREAD:
 * threads at most; FORK: live children at most; ITERATIVE: ignored, the
 * clients waiting stay in the listen backlog). ITERATIVE bounds
 * idle_timeout_ms to MS_SERVER_ITERATIVE_IDLE_MS: a client that has had its
 * answers and sends nothing more (or stalls) is closed with MS_EIDLE after
 * about a second, so it cannot hold up the clients waiting behind it. What does not: out_high,
 * out_low and out_max (a reply is sent before the next message is read, so
 * nothing queues; a peer that does not read stalls that one connection, for
 * at most idle_timeout_ms) and threads. With tls each connection's
 * handshake runs on its own thread or child (ms_conn_serve_fd_tls),
 * bounded by the context's handshake timeout. In a handler
 * ms_conn_loop() and ms_conn_server() are NULL. With FORK the callbacks run
 * in the child: what they change in memory is gone when it exits; the child
 * closes every descriptor marked close-on-exec but its connection's (as an
 * exec would: the listener, the loop's, sockets held for other peers) and
 * keeps the others. Stop drains as in the
 * event model (ms_server_drain): a worker checks for it at least every
 * 100 ms while it waits for input; FORK sends each child
 * SIGTERM, which starts its drain (SIGKILL at the drain deadline), and
 * reaps every child, as it does whenever one exits: no zombies. At the
 * deadline THREAD and ITERATIVE shut what is left down (the handler sees
 * the end) and join the threads.
 */
#define MS_SERVER_ITERATIVE_IDLE_MS 1000

typedef enum ms_server_model {
    MS_MODEL_EVENT = 0,  /* threads event loops, non-blocking I/O (the default) */
    MS_MODEL_THREAD,     /* a thread per connection */
    MS_MODEL_FORK,       /* a process per connection */
    MS_MODEL_ITERATIVE   /* one connection at a time, in accept order */
} ms_server_model;

/* "event", "thread", "fork" or "iterative"; static storage. */
MS_EXPORT const char *ms_server_model_name(ms_server_model m);
/* The model named name; 0 or MS_EINVAL. */
MS_EXPORT int ms_server_model_parse(const char *name, ms_server_model *out);

typedef struct ms_server_config {
    const char *listen;           /* address text (ms_addr_resolve forms), required
                                   * unless listen_fd is set */
    ms_frame_config frame;        /* zero: RAW */
    ms_server_limits limits;
    int threads;                  /* event loops; 0: one per online CPU */
    int backlog;                  /* 0: ms_listen_backlog_default() */
    int handle_signals;           /* 1: SIGINT and SIGTERM stop the server (a second one:
                                   * ms_server_drain(s, 0)), watched on loop 0 with
                                   * ms_loop_signal (replacing a watch of the caller's
                                   * for them; removed at free) */
    const char *backend;          /* loop backend (ms_loop_opts); NULL: $MSGSOCK_BACKEND
                                   * if set, else "auto" (io_uring where the kernel
                                   * allows it, epoll otherwise) */
    ms_conn_callbacks cb;
    void *user;                   /* passed to callbacks and log */
    ms_log_fn log;                /* NULL (and log_record NULL): the server logs nothing;
                                   * ms_log_stderr: warnings and errors on stderr */
    ms_log_record_fn log_record;  /* if set, called instead of log, with the facts apart;
                                   * from any of the server's threads (and fork children) */
    struct ms_tls_ctx *tls;       /* NULL: plain; else a server context (msgsock/tls.h):
                                   * every connection does a TLS handshake before on_open.
                                   * The server keeps its own reference. */
    ms_server_model model;        /* zero: MS_MODEL_EVENT */
    int log_conns;                /* 1: a log line for each connection accepted and each
                                   * one over (MS_LOG_CONN_OPEN, MS_LOG_CONN_CLOSE), in
                                   * that order, from any model */
    int listen_fd;                /* > 0: serve on this inherited listening stream socket
                                   * (socket activation, a parent's) instead of binding
                                   * listen (then ignored, may be NULL). Create checks it
                                   * (MS_EBADF not open, MS_ENOTSOCK, MS_EINVAL not a
                                   * listening stream socket) and sets O_NONBLOCK (on the
                                   * file description: other holders see it) and
                                   * FD_CLOEXEC. It stays the caller's: the server never
                                   * closes it, shuts it down or unlinks its path, so
                                   * another process holding it serves on. Every event
                                   * loop watches it (no SO_REUSEPORT siblings). 0: none
                                   * (dup a descriptor 0 first) */
    int drain_timeout_ms;         /* how long a stop (ms_server_stop, SIGTERM) lets the
                                   * connections finish before what is left is closed,
                                   * each logged "drain timeout" (0: the default
                                   * MS_SERVER_DEFAULT_DRAIN_MS; -1: no limit) */
    ms_loop **loops;              /* event model: serve on these loops the caller created
                                   * and runs (see ms_server_start); the server creates no
                                   * loop and no thread (threads, backend ignored). The
                                   * array is read at create only; the loops must outlive
                                   * the server. NULL: the server makes its own */
    int nloops;                   /* entries in loops */
    /* Called once, on loop 0's thread, when a stop (ms_server_stop or drain,
     * or a signal) is over: every connection has ended and nothing of the
     * server's is left watched or armed on any loop. s may be freed inside.
     * With the server's own loops (and in the thread, fork and iterative
     * models) ms_server_run calls it on its own thread just before it
     * returns 0. NULL: none. */
    void (*on_stopped)(ms_server *s, void *user);
} ms_server_config;

#define MS_SERVER_DEFAULT_DRAIN_MS 10000
/* A connection accepted that has sent nothing yet when a drain begins (or
 * that is accepted during it) gets this long to start its request before
 * it counts as idle. */
#define MS_SERVER_DRAIN_FIRST_MS 1000

typedef struct ms_server_stats {
    uint64_t accepted;            /* connections accepted and served */
    uint64_t refused;             /* accepted and closed at once: max_conns */
    uint64_t dropped_bad_input;   /* framing errors, over-size messages */
    uint64_t dropped_output;      /* MS_EOUTPUTLIMIT */
    uint64_t timed_out;           /* MS_EIDLE and MS_ESLOW */
    uint64_t open;                /* open now */
    uint64_t log_dropped;         /* log lines ms_server_log_write could not write at once,
                                   * fork children's included (not ms_log_stderr's: it
                                   * has no server to count in) */
    /* Traffic, framing included, as the connections counted it:
     * ms_server_stats_get gives the connections that have ended (each
     * added once the server has cleaned it up: in the blocking models a
     * moment after open dropped); a snapshot adds the open ones' as it
     * lists them, read together, so none is counted twice or missed. */
    uint64_t bytes_in, bytes_out;
    uint64_t msgs_in, msgs_out;
} ms_server_stats;

/* Creates the server and binds its listener(s) (so ms_server_local_addr
 * works at once); no thread starts yet, and nothing is put on any loop.
 * Event model without cfg->loops: the server's loops are created here
 * (ms_server_loop). cfg is copied (strings too). On success *out is the
 * caller's until ms_server_free(). MS_EINVAL also for cfg->loops with
 * nloops < 1, a NULL entry or a model other than MS_MODEL_EVENT. */
MS_EXPORT int ms_server_create(ms_server **out, const ms_server_config *cfg);
/* Event model: its loops (cfg->nloops, or the ones it created: threads);
 * 0 in the blocking models. */
MS_EXPORT int ms_server_loop_count(const ms_server *s);
/* Loop i, or NULL if i is out of range. With the server's own loops it is
 * the server's (never free or stop it; ms_server_stop ends it), valid from
 * create until ms_server_free: a program may put its own timers, signal
 * and descriptor watches on it (before ms_server_run, or from a callback
 * on that loop's thread, or through ms_loop_wake); they run on the loop's
 * thread (loop 0: the one calling ms_server_run) beside the connections,
 * and the loop ends when the server's drain is over, whatever is still
 * armed on it. */
MS_EXPORT ms_loop *ms_server_loop(ms_server *s, int i);
/*
 * Caller's loops (cfg->loops): registers the listeners and starts
 * accepting; returns at once. The connections are then served while the
 * caller runs its loops (each on its own thread if several): listeners,
 * connections and the server's eventfd are watches on them, its timers are
 * timers on them, handle_signals watches SIGINT and SIGTERM on loops[0]
 * (ms_loop_signal blocks them in the thread that runs loops[0], or in the
 * calling thread if none does yet: block them in every thread). Call it
 * from a thread that runs none of the loops or from loops[0]'s thread (a
 * running loop registers on its own thread and is waited for). Stats,
 * snapshots, drain, max_conns and logs work as with ms_server_run. After
 * a stop, once on_stopped has run, nothing of the server's is left on the
 * loops, so an ms_loop_run whose only work was the server returns. Returns
 * 0, MS_EINVAL (not the caller's loops, started already or a failed start)
 * or a system code (then nothing is left on the loops; only free the server).
 */
MS_EXPORT int ms_server_start(ms_server *s);
/* The bound address (port 0 resolved). */
MS_EXPORT int ms_server_local_addr(const ms_server *s, ms_addr *out);
/* The listening descriptor (loop 0's; still the server's). */
MS_EXPORT int ms_server_listen_fd(const ms_server *s);
/* Serves on threads loops (the calling thread runs loop 0), or in the
 * configured blocking model, until ms_server_stop() or, with
 * handle_signals, SIGINT/SIGTERM (a second one: ms_server_drain(s, 0));
 * then drains (ms_server_drain) and returns 0 once every connection is
 * over, or a negative code if it could not start. Once only. MS_EINVAL
 * with the caller's loops (cfg->loops: use ms_server_start). */
MS_EXPORT int ms_server_run(ms_server *s);
/*
 * Drains and stops: the server stops accepting. A listener it bound itself
 * (no other process holds it) first has every connection already queued on
 * it accepted and served, then it is shut so new connects are refused; an
 * inherited listener (listen_fd) is left to its other holders, queue and
 * all. Each connection finishes what it has begun: a partly received
 * message is read to its end (msg_timeout_ms still applies) and answered,
 * queued output is sent; then it is closed gracefully, as is every idle
 * connection (nothing partial, nothing queued, and a message received
 * already or MS_SERVER_DRAIN_FIRST_MS gone by). ms_server_run returns (and
 * on_stopped runs) once none is left, or after timeout_ms (-1: no limit),
 * when what is left is closed at once, each with a log line "drain timeout" (reason
 * MS_ECLOSED). A later call can only shorten the deadline (0: close what
 * is left now). Safe from any thread and from callbacks.
 */
MS_EXPORT void ms_server_drain(ms_server *s, int timeout_ms);
/* ms_server_drain(s, drain_timeout_ms of the configuration). */
MS_EXPORT void ms_server_stop(ms_server *s);
/*
 * Frees the server and closes its listeners; its own loops too. With the
 * server's own loops: once ms_server_run has returned (or if it never
 * ran). With the caller's loops: after on_stopped (from on_stopped itself,
 * or from any thread), or before ms_server_start; and always before the
 * caller frees its loops. A started server not stopped yet is stopped at
 * once (each connection's on_close gets MS_ECLOSED) when it has one loop
 * and this is called on that loop's thread (or no thread runs it); with
 * several loops, stop it first and wait for on_stopped. Never from the
 * server's connection or log callbacks.
 */
MS_EXPORT void ms_server_free(ms_server *s);
/* Totals so far; safe from any thread. A connection's end is counted once
 * its on_close has returned. */
MS_EXPORT void ms_server_stats_get(const ms_server *s, ms_server_stats *out);
/*
 * Output that never blocks a server: writes text (len bytes of whole lines,
 * each ending in '\n') to fd 1 or 2 as far as the descriptor takes it at
 * once, through a non-blocking file description of the process's own (for
 * a pipe or terminal; a socket is sent to with MSG_DONTWAIT; a regular file
 * is written as usual). A line that a full pipe (nobody reading) or a
 * stopped terminal cannot take is dropped and counted in s's log_dropped
 * (s may be NULL: not counted). A line of up to PIPE_BUF (4096) bytes is
 * written whole or not at all. Safe from any thread and from fork
 * children. Returns 0, MS_EAGAIN (something was dropped) or MS_EINVAL (fd
 * is not 1 or 2).
 */
MS_EXPORT int ms_server_log_write(ms_server *s, int fd, const char *text, size_t len);
/* An ms_log_fn for a program that wants the log on stderr: each warning and
 * error (level <= 1) as "msgsock: <msg>\n" through ms_server_log_write (never
 * blocking; a line dropped is not counted). user is ignored. */
MS_EXPORT void ms_log_stderr(void *user, int level, const char *msg);
/*
 * Calls fn for each open connection, on the thread of the loop serving it:
 * each running loop walks its own connections when asked (ms_loop_wake)
 * while the caller waits; a loop no thread runs is walked on the calling
 * thread. fn may close the connection it is given (not others on other
 * loops). From any thread that runs none of the server's loops, and from
 * a loop's thread (its callbacks) while that loop is the only one of the
 * server's running: with more than one running, a loop's thread gets
 * MS_EBUSY, because two loops waiting for each other's answer would never
 * answer. Event model only (MS_ENOTSUP; see ms_server_snapshot_get for any
 * model). Returns the number of connections visited, MS_EINVAL, MS_EBUSY
 * or MS_ENOTSUP (then fn never runs).
 */
MS_EXPORT int ms_server_foreach_conn(ms_server *s, void (*fn)(ms_conn *c, void *arg), void *arg);
/* The server a connection was accepted by, or NULL for a client (and in
 * the blocking models). */
MS_EXPORT ms_server *ms_conn_server(const ms_conn *c);

/* ---- seeing the connections -------------------------------------------- */

/* One connection of a snapshot. */
typedef struct ms_server_conn {
    ms_addr peer;
    ms_conn_state state;
    int64_t age_ms;               /* since accept */
    uint64_t bytes_in, bytes_out;
    uint64_t msgs_in, msgs_out;
    size_t out_queued;            /* bytes queued unsent (always 0 in the blocking models) */
    int loop;                     /* event model: the loop serving it; else -1 */
    int pid;                      /* fork model: the child serving it; else 0 */
} ms_server_conn;

typedef struct ms_server_snapshot {
    ms_server_model model;
    int threads;                  /* event loops (0 in the blocking models) */
    ms_addr local;                /* the listening address */
    ms_server_stats stats;        /* the totals, read after the connections; traffic
                                   * includes the connections listed */
    size_t nconns;
    ms_server_conn *conns;        /* nconns entries, owned by the snapshot */
} ms_server_snapshot;

/*
 * The server's connections and totals now. Event model: each running loop
 * lists its own connections on its own thread (asked with ms_loop_wake),
 * and the caller waits for every answer (a loop no thread runs is read on
 * the calling thread), with the server's loops and the caller's alike; blocking models: a registry kept
 * under a mutex, with each connection's counters as of its last message.
 * Safe from any thread that runs none of s's loops, and from callbacks on
 * the thread of loop 0 (never from another loop's callbacks: two loops
 * waiting for each other would never answer). On success (0) out->conns
 * is the caller's until ms_server_snapshot_free(out); on MS_ENOMEM out
 * holds the totals and no connections.
 */
MS_EXPORT int ms_server_snapshot_get(ms_server *s, ms_server_snapshot *out);
/* Frees snap's connections (not snap itself); NULL is fine. */
MS_EXPORT void ms_server_snapshot_free(ms_server_snapshot *snap);

#endif
