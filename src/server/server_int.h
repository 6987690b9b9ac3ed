/* server_int.h: what the server files share: struct ms_server, the model interface, the acceptor, the log path and totals. */
#ifndef MSI_SERVER_INT_H
#define MSI_SERVER_INT_H

#include "msgsock/server.h"
#include "conn/conn_int.h"

/* Traffic totals of connections that have ended. */
typedef struct msi_traffic {
    atomic_uint_fast64_t bytes_in, bytes_out, msgs_in, msgs_out;
} msi_traffic;
/* Adds a connection's final counters to t. */
void msi_traffic_add(msi_traffic *t, uint64_t bytes_in, uint64_t bytes_out, uint64_t msgs_in,
                     uint64_t msgs_out);
/* Copies t's counters into st's traffic fields (the rest stays). */
void msi_traffic_read(msi_traffic *t, ms_server_stats *st);

typedef struct msi_model_ops msi_model_ops;

/* The server: its configuration, totals and drain (server_core.c) and
 * its model with the model's state (server_event.c, server_blocking.c). */
struct ms_server {
    ms_server_config cfg;
    char *listen_text;
    ms_addr local;
    atomic_int stopping;
    _Atomic int64_t drain_due;  /* the drain's deadline (ms_now_ms), INT64_MAX: none */
    atomic_int open;
    atomic_uint_fast64_t accepted, refused, bad, output, timed_out;
    const msi_model_ops *model;
    void *m;            /* its state */
    atomic_uint_fast64_t *log_dropped;  /* in a page shared with fork children */
};

/* ---- server_core.c: every model's ---- */

/* How a connection ended, as the totals count it. */
enum { MSI_END_OK = 0, MSI_END_BAD, MSI_END_OUTPUT, MSI_END_TIMEOUT, MSI_END_OTHER };
int msi_server_reason_kind(int reason);

/* The server's copy of its configuration, defaults resolved. */
const ms_server_config *msi_server_cfg(const ms_server *s);
/* Totals: a connection accepted (and now open), one refused at max_conns,
 * one ended with reason (open again one less; reason picks the total). */
void msi_server_note_accept(ms_server *s);
void msi_server_note_refused(ms_server *s);
void msi_server_note_end(ms_server *s, int reason);
/* A line through the server's log_record or log (nothing without either);
 * peer may be NULL. */
void msi_server_log(ms_server *s, int level, int event, int code, const ms_addr *peer,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The line for a connection that ended with an error (nothing for 0 and
 * MS_ECLOSED), the same in every model. detail may be NULL. */
void msi_server_log_end(ms_server *s, const ms_addr *peer, int reason, const char *detail);
/* With log_conns: the line for a connection accepted (open 1) or over
 * (open 0, reason its on_close reason). */
void msi_server_log_conn(ms_server *s, int open, const ms_addr *peer, int reason);
/* Opens the descriptors the log writes fd 1 and 2 through (once per
 * process; ms_server_create, so they stay the same while a server runs). */
void msi_server_log_open(void);
/* 1 if fd is the non-blocking description the log writes fd 1 or 2
 * through (a fork child keeps it). */
int msi_server_log_fd_kept(int fd);
/* Arms t for the drain's deadline, or calls cb at once if it has passed;
 * nothing while the drain has none. */
void msi_server_drain_arm(ms_server *s, ms_loop *loop, ms_timer *t, ms_timer_cb cb, void *arg);
/* The line for a connection closed at the drain deadline; why in words. */
void msi_server_log_drain_timeout(ms_server *s, const ms_addr *peer, const char *why);
/* Begins the drain (ms_server_drain): the deadline only ever moves closer
 * (timeout_ms -1: none), then the model is told. Any thread. */
void msi_server_drain(ms_server *s, int timeout_ms);
/* msi_server_drain with the configured drain_timeout_ms (ms_server_stop). */
void msi_server_stop(ms_server *s);
/* A stop signal: drains, or a second one closes what is left at once. */
void msi_server_on_signal(ms_server *s);

/* ---- server_accept.c: the accept policy of every model ---- */

/* Accepts taken per readiness event, so a flood of connects cannot starve
 * the connections already being served. */
#define MSI_ACCEPT_BATCH 64
/* How long a listener rests when accepting cannot go on. */
#define MSI_ACCEPT_REST_MS 100

/* One listener's acceptor, on the loop that watches it (owned by the model). */
typedef struct msi_accept {
    ms_server *s;
    ms_loop *loop;            /* its clock rate-limits the lines */
    int lfd;
    int reserve_fd;           /* spent to accept-and-close when out of descriptors */
    int64_t last_log_emfile, last_log_refused;
    uint64_t emfile_count, refused_since_log;
} msi_accept;

/* What msi_accept_next returns when it has no descriptor. */
enum {
    MSI_ACCEPT_EMPTY = -1,    /* nothing more to take now */
    MSI_ACCEPT_REST = -2,     /* out of descriptors: the listener is to rest
                               * MSI_ACCEPT_REST_MS, unwatched */
    MSI_ACCEPT_FAILED = -3,   /* another error, logged: stop this turn */
};

/* Opens the reserve descriptor (none if that fails). */
void msi_accept_init(msi_accept *a, ms_server *s, ms_loop *loop, int lfd);
void msi_accept_fini(msi_accept *a);
/* One connection off the listener: its descriptor (non-blocking,
 * close-on-exec; the peer in *ss, *len), or an MSI_ACCEPT_* code. Out of
 * descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM), unless draining: the
 * reserve is spent to accept and close a batch, counted as refused, with
 * one line a second. */
int msi_accept_next(msi_accept *a, struct sockaddr_storage *ss, socklen_t *len, int draining);
/* Closes fd, refused at the connection limit max: counted, one line a second. */
void msi_accept_refuse(msi_accept *a, int fd, int max);

/* ---- the models behind one interface ----
 * server.c dispatches every public call through it to the model's state
 * m. What a model cannot do it answers with the documented error. */
struct msi_model_ops {
    /* Binds the listener(s) (the address into *local), or takes
     * cfg.listen_fd (checked by ms_server_create, *local already its
     * address), and makes the model's loop(s). s->cfg is resolved but for
     * max_conns (set from nloops afterwards); cfg.loops is still the
     * caller's array. s must outlive *m. On failure *m is NULL and
     * nothing is left open. */
    int (*create)(void **m, ms_server *s, ms_addr *local);
    /* Accepts and serves until stop (or a stop signal); returns when every
     * connection has ended and every worker is joined or reaped.
     * MS_EINVAL where the caller runs the loops. */
    int (*run)(void *m);
    /* Starts on the caller's loops and returns at once; MS_EINVAL for a
     * model that has none, or started already. */
    int (*start)(void *m);
    /* Begins the drain (s->drain_due is set). Safe from any thread and
     * from the callbacks (also in a fork child, where it ends that
     * child's connection). */
    void (*stop)(void *m);
    /* m may be NULL. */
    void (*free)(void *m);
    int (*listen_fd)(const void *m);
    /* Its event loops (0: none) and loop i, 0 <= i < nloops. */
    int (*nloops)(const void *m);
    ms_loop *(*loop)(void *m, int i);
    /* The ended connections' traffic into st. */
    void (*traffic)(void *m, ms_server_stats *st);
    /* The live connections, as of each one's last message, and the ended
     * ones' traffic (into st, zeroed by the caller) read at the same time.
     * *out is malloc'd (the caller frees it); 0 or MS_ENOMEM. */
    int (*conns)(void *m, ms_server_conn **out, size_t *n, ms_server_stats *st);
    /* ms_server_foreach_conn (fn not NULL); MS_ENOTSUP where the
     * connections are on other threads or processes without a loop. */
    int (*foreach_conn)(void *m, void (*fn)(ms_conn *c, void *arg), void *arg);
};

/* The event model (server_event.c). */
extern const msi_model_ops msi_model_event;
/* The thread, fork and iterative models (server_blocking.c). */
extern const msi_model_ops msi_model_blocking;

#endif
