/* msgsock/conn.h: buffered connections, TLS connections and clients (layer 5). */
#ifndef MSGSOCK_CONN_H
#define MSGSOCK_CONN_H

#include "common.h"
#include "net.h"
#include "loop.h"
#include "frame.h"
#include "tls.h"

/*
 * A connection (ms_conn) is a socket driven by a loop: bytes read go into a
 * buffer that exists only while it holds data, the connection's framing cuts
 * whole messages out of it and on_message gets each one; sends are framed,
 * tried at once, and whatever the kernel does not take is queued (copied)
 * and sent with writev when the socket is writable.
 *
 * Ownership: connections belong to the library. The user's pointer to one
 * is valid from on_open (or ms_conn_connect's return) until on_close
 * returns; after that the memory is gone. Every function below must be
 * called on the thread of the connection's loop. A connection lives as long
 * as its loop at most: ms_loop_free ends every connection still on the loop
 * (clients, connected or still connecting) before anything else: each
 * on_close runs once with MS_ECLOSED (one still connecting never gets
 * on_open), queued output is dropped, the socket closed (reset) and the
 * memory freed. A server's connections are ended by ms_server_free, which
 * frees the server's loops.
 *
 * Callbacks may call anything here, including ms_conn_close/abort on their
 * own connection (the library re-checks before touching it again). When a
 * function below closes a connection outside any callback of that
 * connection, its on_close runs before the function returns.
 */
typedef struct ms_conn ms_conn;

typedef enum ms_conn_state {
    MS_CONN_CONNECTING = 0, /* client: connect in progress */
    MS_CONN_OPEN,           /* reading and writing */
    MS_CONN_CLOSING,        /* close requested: flushing queued output */
    MS_CONN_LINGER,         /* output flushed and write side shut: draining input */
    MS_CONN_CLOSED          /* inside on_close */
} ms_conn_state;

/*
 * Limits and timeouts of a connection. Zero-initialised means the defaults
 * below; a timeout of -1 means none. A toggle outside ms_toggle makes
 * ms_server_create, ms_conn_connect and ms_conn_serve_fd fail with MS_EINVAL.
 *
 * Backpressure: once out_high bytes are queued, reading pauses. Input
 * already received by then (on io_uring, also what the ring took in before
 * the pause reached it) is held and delivered once the queue drains to
 * out_low, one message at a time, the check repeated after each: the queue
 * passes out_high by at most the replies to one message.
 */
typedef struct ms_conn_limits {
    size_t out_high;      /* queued output at which reading pauses (default 1 MiB) */
    size_t out_low;       /* queued output at which it resumes (default out_high / 4) */
    size_t out_max;       /* a send that would queue more drops the connection with
                           * MS_EOUTPUTLIMIT (default 64 MiB; at least out_high) */
    int idle_timeout_ms;  /* nothing moved either way for this long: MS_EIDLE (default 300000) */
    int msg_timeout_ms;   /* a started message not complete after this long: MS_ESLOW
                           * (default 30000) */
    int linger_ms;        /* after a graceful close, unread input is drained this long
                           * (and at most 4 MiB of it) so the last reply is not
                           * destroyed by a reset (default 2000) */
    ms_toggle keepalive;  /* TCP keepalive. MS_DEFAULT: on for connections a server
                           * accepts (knobs left 0 become the
                           * MS_CONN_DEFAULT_KEEPALIVE_* below), off for clients
                           * and ms_conn_serve_fd */
    int keepalive_idle_s; /* keepalive knobs, 0: system default */
    int keepalive_intvl_s;
    int keepalive_count;
    ms_toggle nodelay;    /* TCP_NODELAY. MS_DEFAULT: on, as MS_ON (accepted and
                           * connected TCP sockets alike). MS_OFF leaves Nagle's
                           * algorithm on: it holds a small write while an earlier
                           * one is unacknowledged; with the peer's delayed ACK a
                           * request/reply exchange can then stall about 40 ms per
                           * message */
    int proxy_protocol;   /* 1: an accepted connection starts with a PROXY protocol
                           * header, v1 or v2 (HAProxy's send-proxy, send-proxy-v2),
                           * consumed before any message; its source address becomes
                           * the peer (ms_conn_peer, logs, snapshots) and on_open runs
                           * once it is in, so it sees that peer (a v2 LOCAL or v1
                           * UNKNOWN header keeps the socket's). A missing, invalid
                           * (an MS_EPROXY* code), cut short (MS_EPROXYSHORT) or late
                           * (MS_EPROXYTIMEOUT: MS_CONN_PROXY_TIMEOUT_MS, or
                           * msg_timeout_ms if shorter) header ends the connection
                           * with nothing sent and on_close without on_open (a
                           * connection closed before any byte: reason 0). Servers
                           * and ms_conn_serve_fd; ignored by clients. With TLS the
                           * header comes raw before the ClientHello (HAProxy
                           * passing TLS through in mode tcp) and not one byte
                           * after it is read; an event-model server then bounds
                           * the handshake by the shorter of its timeout and the
                           * header's. 0: off */
} ms_conn_limits;

#define MS_CONN_DEFAULT_OUT_HIGH (1u << 20)
#define MS_CONN_DEFAULT_OUT_MAX (64u << 20)
#define MS_CONN_DEFAULT_IDLE_MS 300000
#define MS_CONN_DEFAULT_MSG_MS 30000
#define MS_CONN_DEFAULT_LINGER_MS 2000
/* How long an accepted connection has to send its whole PROXY header. */
#define MS_CONN_PROXY_TIMEOUT_MS 5000
/* A server's keepalive: a peer that vanished without a FIN or reset (cable
 * cut, host down) is found after about idle + intvl * count seconds (2 min). */
#define MS_CONN_DEFAULT_KEEPALIVE_IDLE_S 60
#define MS_CONN_DEFAULT_KEEPALIVE_INTVL_S 10
#define MS_CONN_DEFAULT_KEEPALIVE_COUNT 6

/*
 * The handler. It sees only the connection and the message, never the loop,
 * so the same handler can be driven by the event loop (ms_server, ms_conn_connect)
 * or by blocking I/O (ms_conn_serve_fd).
 *
 * on_open:    the connection is up (accepted, or connected for a client).
 * on_message: one whole message; msg->data is valid only during the call
 *             (copy what you keep). Reply with ms_conn_send().
 * on_close:   the connection is over; reason is 0 after a clean end (the
 *             peer closed at a message boundary, or ms_conn_close() finished),
 *             MS_ECLOSED after ms_conn_abort() or server stop, or the
 *             error: MS_EIDLE, MS_ESLOW, MS_EOUTPUTLIMIT, MS_ETRUNCATED, a
 *             framing error, a connect error, a system code. Called exactly
 *             once, also for a client whose connect failed (without on_open).
 * Any callback may be NULL.
 */
typedef struct ms_conn_callbacks {
    void (*on_open)(ms_conn *c, void *user);
    void (*on_message)(ms_conn *c, const ms_frame *msg, void *user);
    void (*on_close)(ms_conn *c, int reason, void *user);
} ms_conn_callbacks;

typedef struct ms_conn_info {
    ms_conn_state state;
    int fd;                  /* -1 once closed */
    uint64_t bytes_in, bytes_out;
    uint64_t msgs_in, msgs_out;
    size_t out_queued;       /* bytes queued, not yet taken by the kernel */
    size_t in_buffered;      /* bytes received, not yet a whole message */
    int64_t age_ms;          /* since accept / connect start */
    int64_t idle_ms;         /* since bytes last moved */
    int reading_paused;      /* 1: backpressure holds reading */
    ms_addr peer;
} ms_conn_info;

/*
 * Frames payload with the connection's framing and queues it. The payload
 * stays the caller's: it is sent or copied before this returns. Returns 0;
 * MS_ECLOSED if the connection is closing; a framing error (MS_ETOOLARGE,
 * MS_EDELIM, MS_EINVAL); MS_EOUTPUTLIMIT if the queue would pass out_max
 * (the connection is then dropped with that reason); or a system code (the
 * connection is then dropped). APP framing: use ms_conn_send_raw with a
 * header from ms_app_encode_header.
 */
MS_EXPORT int ms_conn_send(ms_conn *c, const void *payload, size_t len);
/* Queues bytes that are already framed; same contract as ms_conn_send. */
MS_EXPORT int ms_conn_send_raw(ms_conn *c, const void *data, size_t len);
/* The same for a vector of already-framed pieces, sent in order. */
MS_EXPORT int ms_conn_sendv_raw(ms_conn *c, const struct iovec *iov, int iovcnt);

/* Graceful close: no more messages are delivered; queued output is flushed,
 * then the write side is shut and unread input is drained for at most
 * linger_ms and 4 MiB, then on_close(0). Idempotent. */
MS_EXPORT void ms_conn_close(ms_conn *c);
/* Closes now, discarding queued output (on_close(MS_ECLOSED)). Idempotent. */
MS_EXPORT void ms_conn_abort(ms_conn *c);

MS_EXPORT void ms_conn_info_get(const ms_conn *c, ms_conn_info *out);
MS_EXPORT void ms_conn_set_userdata(ms_conn *c, void *p);
MS_EXPORT void *ms_conn_userdata(const ms_conn *c);
/* The peer's address as seen at accept/connect time; with proxy_protocol,
 * the client's address from the PROXY header once it is in. */
MS_EXPORT void ms_conn_peer(const ms_conn *c, ms_addr *out);
/* The loop driving c, or NULL for a connection served by ms_conn_serve_fd. */
MS_EXPORT ms_loop *ms_conn_loop(const ms_conn *c);
/* Bytes queued for sending. */
MS_EXPORT size_t ms_conn_out_queued(const ms_conn *c);
/* The state's name ("open", ...), static storage. */
MS_EXPORT const char *ms_conn_state_name(ms_conn_state s);

/*
 * A client connection's settings; zero-initialised means the defaults.
 */
typedef struct ms_connect_opts {
    const char *addr;            /* ms_addr_resolve forms: "host:port", "[v6]:port",
                                  * "unix:/path" ...; each address a name resolves to is
                                  * tried in turn. Read during the call only. */
    ms_frame_config frame;       /* zero: RAW */
    ms_conn_limits limits;       /* zero: defaults */
    ms_conn_callbacks cb;
    void *user;                  /* passed to the callbacks */
    int timeout_ms;              /* the whole connect: name lookup, TCP connect and TLS
                                  * handshake (MS_ETIMEDOUT, or MS_ETLSTIMEDOUT once the
                                  * handshake has begun); 0: MS_CONN_DEFAULT_CONNECT_MS,
                                  * -1: none */
    struct ms_tls_ctx *tls;      /* NULL: plain; else a client context (msgsock/tls.h): a
                                  * TLS handshake before on_open. The connection keeps
                                  * its own reference. */
    const char *server_name;     /* TLS: the name sent (SNI) and that the server's
                                  * certificate must match; NULL: the context's
                                  * server_name, else the host of addr. Read during the
                                  * call only. */
} ms_connect_opts;

#define MS_CONN_DEFAULT_CONNECT_MS 30000

/*
 * Client: starts a non-blocking connect on loop, as opts says (opts and
 * its strings are the caller's and may go once this returns).
 *
 * Fails without any callback only for bad arguments (MS_EINVAL: loop,
 * opts or opts->addr NULL, timeout_ms below -1, a server TLS context or a
 * server_name longer than 255 bytes; MS_EBADADDR or MS_ENAMETOOLONG: an
 * address that does not parse; a bad frame config), MS_ENOMEM, or
 * MS_ECLOSED when called from an on_close that ms_loop_free of this loop
 * runs.
 *
 * Once it returns 0, *out (if out is not NULL) is the connection, which
 * belongs to the library as above, and the callbacks say the rest:
 * on_open when connected (after the TLS handshake), or on_close exactly
 * once, without on_open, with why connecting failed: MS_ENONAME or
 * MS_EAINAGAIN (name lookup), MS_ECONNREFUSED, MS_ENOENT (no Unix socket
 * there), MS_ETIMEDOUT, a TLS code, or a system code. Neither runs inside
 * this call: a failure found at once comes from the loop like any other.
 * ms_conn_close or ms_conn_abort before on_open ends it with
 * on_close(MS_ECLOSED). Sends before on_open are queued.
 *
 * A name is looked up (getaddrinfo) on a worker thread, never on the
 * loop's: the loop keeps running meanwhile, and the lookup keeps
 * ms_loop_run from returning. A numeric address or a Unix path needs no
 * lookup and no thread.
 */
MS_EXPORT int ms_conn_connect(ms_loop *loop, const ms_connect_opts *opts, ms_conn **out);

/*
 * Calls fn(c, arg) for every connection loop drives, in the order they were
 * made: its clients (ms_conn_connect) and, on a
 * server's loop, the server's connections on that loop. On the loop's
 * thread (from its callbacks too). fn may close or abort the connection it
 * is given (its on_close runs once fn has returned) or any other (on_close
 * at once, or once fn has returned if the walk holds it; either way it is
 * not visited then). One that has ended and waits for a callback of its own
 * to return is skipped; one made during the walk may or may not be visited.
 * Returns the number of connections visited (fn calls), or MS_EINVAL (loop
 * or fn NULL).
 */
MS_EXPORT int ms_loop_foreach_conn(ms_loop *loop, void (*fn)(ms_conn *c, void *arg), void *arg);

/*
 * Drives the same handler over an already-connected descriptor with
 * blocking I/O on the calling thread, for thread-per-connection, fork or
 * iterative servers: reads (msg_timeout_ms and idle_timeout_ms bound each
 * wait), delivers messages, sends replies at once (a send blocks at most
 * idle_timeout_ms), until the peer closes, an error, or the handler calls
 * ms_conn_close/abort. fd stays the caller's (not closed). Returns the
 * reason on_close got (0 for a clean end), or, with no callback run,
 * MS_EINVAL (a bad frame config or limits) or MS_ENOMEM.
 */
MS_EXPORT int ms_conn_serve_fd(int fd, const ms_frame_config *frame, const ms_conn_limits *lim,
                               const ms_conn_callbacks *cb, void *user);

/* ---- TLS connections (contexts: msgsock/tls.h) ------------------------- */

/*
 * Servers: set ms_server_config.tls to a server context; every accepted
 * connection then does its handshake on the loop before on_open (state
 * MS_CONN_CONNECTING meanwhile). A handshake that fails or times out ends
 * the connection with on_close(code) and no on_open, and the server logs it
 * with the peer's address; the server goes on serving.
 *
 * Clients: set ms_connect_opts.tls to a client context; ms_conn_connect
 * then runs the handshake after the TCP connect, within the same
 * timeout_ms; on_open comes when it is done, and sends made before are
 * queued until then. The host name checked (and sent as SNI) is
 * ms_connect_opts.server_name, else the context's server_name, else the
 * host part of the address.
 */
/*
 * Blocking servers: ms_conn_serve_fd (same arguments, same contract) over
 * TLS with a server context: the handshake runs first, bounded by the
 * context's handshake timeout; if it fails or times out, on_close(code)
 * runs without on_open and the code is returned. A clean end sends
 * close_notify (waiting at most linger_ms). ms_conn_tls_error and
 * ms_conn_tls_version work on the connection as on any other. The
 * blocking server models (ms_server_config.model) use it for
 * ms_server_config.tls.
 */
MS_EXPORT int ms_conn_serve_fd_tls(int fd, ms_tls_ctx *tls, const ms_frame_config *frame,
                                   const ms_conn_limits *lim, const ms_conn_callbacks *cb,
                                   void *user);
/* The last TLS error of c in words ("certificate has expired"), or NULL if
 * it had none or is not a TLS connection. Valid until on_close returns. */
MS_EXPORT const char *ms_conn_tls_error(const ms_conn *c);
/* The negotiated protocol ("TLSv1.3"), or NULL before the handshake or
 * for a plain connection. Static storage. */
MS_EXPORT const char *ms_conn_tls_version(const ms_conn *c);

#endif
