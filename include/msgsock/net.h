/* msgsock/net.h: addresses and blocking-or-timed socket primitives (layer 2). */
#ifndef MSGSOCK_NET_H
#define MSGSOCK_NET_H

#include "common.h"
#include "frame.h"

#include <sys/socket.h>
#include <sys/uio.h>

/*
 * Timeouts everywhere in this section are milliseconds: -1 (any negative
 * value) waits without limit, 0 does not wait, and a positive value bounds
 * the whole call on a monotonic clock (not each system call inside it).
 * Descriptors returned here belong to the caller, who closes them.
 */

/* ---- addresses ---------------------------------------------------------- */

/* An address: IPv4, IPv6 or Unix-domain (path or Linux abstract name).
 * Plain data, copied by value; no resources to free. */
typedef struct ms_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} ms_addr;

/* Longest text ms_addr_format() writes, NUL included. */
#define MS_ADDR_STRLEN 128
/* Longest Unix socket path or abstract name accepted, in bytes. */
#define MS_ADDR_UNIX_MAX 107
/* A convenient capacity for ms_addr_resolve() result arrays. */
#define MS_ADDR_RESOLVE_MAX 16

/* Parses a numeric address without any lookup: "1.2.3.4:80", "[::1]:80",
 * "[fe80::1%eth0]:80", "unix:/path" (or a relative "unix:path") and the
 * Linux abstract "unix:@name". The port is decimal, 0..65535; a bare IPv6
 * literal must be bracketed. Returns 0; MS_EBADADDR for a malformed text
 * (empty, no port, port out of range, unterminated bracket, a name that is
 * not numeric); MS_ENAMETOOLONG for a Unix path or name longer than
 * MS_ADDR_UNIX_MAX bytes. *out is written only on success. */
MS_EXPORT int ms_addr_parse(ms_addr *out, const char *text);

/* Resolves text to addresses: any form ms_addr_parse() takes, or
 * "name:port" through getaddrinfo (IPv4 and IPv6, stream sockets, in the
 * resolver's order). An empty host, ":port", means every interface, as
 * Python's '': "[::]:port" (dual-stack, see ms_listen) then "0.0.0.0:port",
 * so that a host without IPv6 listens on the second; connecting to it
 * reaches this host. Fills at most cap (>= 1) entries of out and returns
 * how many (>= 1); or MS_EBADADDR, MS_ENAMETOOLONG, MS_ENONAME (no such
 * host), MS_EAINAGAIN (resolver temporarily failed), MS_ENOMEM or another
 * -errno. May block for the duration of a DNS lookup. */
MS_EXPORT int ms_addr_resolve(ms_addr *out, int cap, const char *text);

/* Same, with host and port given apart, as commands take them: host may be
 * an IPv4 literal, a bare or bracketed IPv6 literal ("::1", "[::1]"), a
 * name, "" (every interface, as above), or "unix:..." (then port is
 * ignored and may be NULL). */
MS_EXPORT int ms_addr_resolve_hp(ms_addr *out, int cap, const char *host,
                                 const char *port);

/* Writes "1.2.3.4:80", "[::1]:80", "[fe80::1%eth0]:80", "unix:/path" or
 * "unix:@name" into buf, NUL-terminated; ms_addr_parse() reads it back to
 * the same address, except that bytes of an abstract name outside printable
 * ASCII are written as '?', and an unnamed Unix socket (a socketpair end,
 * an accepted client) is written as "unix:" which does not parse.
 * MS_ADDR_STRLEN is always enough. Returns the length written (without the
 * NUL), or MS_EINVAL if cap is too small or the family is unknown. */
MS_EXPORT int ms_addr_format(const ms_addr *a, char *buf, size_t cap);
/* AF_INET, AF_INET6 or AF_UNIX (AF_UNSPEC for a zeroed address). */
MS_EXPORT int ms_addr_family(const ms_addr *a);
/* The port (0..65535), or 0 for Unix-domain. */
MS_EXPORT int ms_addr_port(const ms_addr *a);

/* ---- sockets -------------------------------------------------------------- */

/* Listen options. Zero-initialised (or a NULL pointer) means: backlog
 * ms_listen_backlog_default(), SO_REUSEADDR on (TCP), SO_REUSEPORT off,
 * blocking listening socket. */
typedef struct ms_listen_opts {
    int backlog;    /* <= 0: ms_listen_backlog_default(); the kernel caps it at somaxconn */
    int reuseport;  /* 1: set SO_REUSEPORT */
    int nonblock;   /* 1: listening socket is O_NONBLOCK */
} ms_listen_opts;

/* The listen backlog used when none is given: net.core.somaxconn, the
 * most the kernel accepts (read from /proc once; 4096 if unreadable), so
 * that a burst of connects is not dropped from a short accept queue. */
MS_EXPORT int ms_listen_backlog_default(void);

/* Creates a stream socket (CLOEXEC) bound to addr and listening; opts may
 * be NULL. On the IPv6 wildcard [::] the socket takes IPv4 connections too
 * (IPV6_V6ONLY off, whatever net.ipv6.bindv6only says). Port 0 picks a free port: read it back with ms_sock_local().
 * For a Unix path, an existing file there is removed first only if it is a
 * socket nobody accepts on (a stale one); a live socket gives
 * MS_EADDRINUSE and any other file is left alone (MS_EADDRINUSE too).
 * Returns the descriptor, or a negative code (-errno of socket, bind,
 * listen). */
MS_EXPORT int ms_listen(const ms_addr *addr, const ms_listen_opts *opts);
/* Resolves text (ms_addr_resolve) and listens on the first result that
 * binds; returns the descriptor, or the last result's error. */
MS_EXPORT int ms_listen_text(const char *text, const ms_listen_opts *opts);

/* Accepts one connection with accept4(CLOEXEC, plus NONBLOCK if nonblock),
 * on a blocking or non-blocking listening socket. Waits at most timeout_ms:
 * MS_ETIMEDOUT when it passes (MS_EAGAIN if timeout_ms is 0 and nobody is
 * waiting). A connection that died in the queue (ECONNABORTED, EPROTO) is
 * skipped and waiting goes on. peer may be NULL. Returns the new
 * descriptor, or a negative code (MS_EMFILE/MS_ENFILE: out of descriptors;
 * the pending connection stays queued). */
MS_EXPORT int ms_accept(int lfd, ms_addr *peer, int nonblock, int timeout_ms);

/* Connects a new stream socket to addr (IPv4, IPv6 or Unix), waiting at
 * most timeout_ms through a non-blocking connect, poll and SO_ERROR (for a
 * Unix socket whose accept queue is full, by retrying until the deadline).
 * The returned descriptor is CLOEXEC and blocking unless nonblock is 1.
 * Returns it, or MS_ETIMEDOUT, MS_ECONNREFUSED, MS_ENOENT (no Unix socket
 * at that path), MS_ENETUNREACH, MS_EHOSTUNREACH or another -errno; on
 * failure no descriptor is left open. */
MS_EXPORT int ms_connect(const ms_addr *addr, int timeout_ms, int nonblock);
/* Resolves text (ms_addr_resolve) and tries every result in order, all
 * within one overall timeout; returns the first descriptor that connects,
 * or the last result's error (MS_ETIMEDOUT once the time is used up), or
 * the resolver's error. */
MS_EXPORT int ms_connect_text(const char *text, int timeout_ms, int nonblock);
/* The same with host and port given apart (ms_addr_resolve_hp). */
MS_EXPORT int ms_connect_hp(const char *host, const char *port, int timeout_ms,
                            int nonblock);

/* The locally bound / peer address of a socket. Return 0 or -errno. */
MS_EXPORT int ms_sock_local(int fd, ms_addr *out);
MS_EXPORT int ms_sock_peer(int fd, ms_addr *out);

/* The option setters return 0 or -errno (MS_EINVAL for a negative value). */
MS_EXPORT int ms_sock_set_nonblock(int fd, int on);
/* TCP_NODELAY. On a Unix-domain socket: does nothing and returns 0. */
MS_EXPORT int ms_sock_set_nodelay(int fd, int on);
/* TCP keepalive (SO_KEEPALIVE): seconds idle before the first probe
 * (TCP_KEEPIDLE), seconds between probes (TCP_KEEPINTVL), unanswered probes
 * before the connection is dropped with MS_ETIMEDOUT (TCP_KEEPCNT). 0 leaves
 * a value at the system default; the others are ignored when on is 0. On a
 * Unix-domain socket: does nothing and returns 0. */
MS_EXPORT int ms_sock_set_keepalive(int fd, int on, int idle_s, int intvl_s,
                                    int count);
/* SO_SNDTIMEO / SO_RCVTIMEO in milliseconds (0: none). They bound single
 * blocking system calls; ms_recv_exact and friends report their expiry as
 * MS_ETIMEDOUT. */
MS_EXPORT int ms_sock_set_timeouts(int fd, int send_ms, int recv_ms);
/* SO_SNDBUF / SO_RCVBUF in bytes (0 leaves one unchanged). Linux doubles
 * the value for its bookkeeping and enforces a minimum. */
MS_EXPORT int ms_sock_set_bufsizes(int fd, int sndbuf, int rcvbuf);

/* Half-close: no more sends (shutdown SHUT_WR); the peer reads EOF, and
 * this side can still receive. */
MS_EXPORT int ms_sock_shutdown_write(int fd);
/* Closes fd; it is closed even when an error is returned. abortive=1 sends
 * a reset (SO_LINGER 0) instead of a FIN, discarding unsent data; the peer
 * sees MS_ECONNRESET. Returns 0 or -errno (MS_EBADF). */
MS_EXPORT int ms_sock_close(int fd, int abortive);

/* ---- whole transfers with a deadline ------------------------------------------ */

/* Monotonic milliseconds (CLOCK_MONOTONIC), for deadlines. */
MS_EXPORT int64_t ms_now_ms(void);

/* Sends all len bytes of buf on the socket fd, finishing partial sends and
 * retrying EINTR, with MSG_NOSIGNAL (a dead peer is MS_EPIPE or
 * MS_ECONNRESET, never SIGPIPE). Works on blocking and non-blocking
 * descriptors (waits in poll on EAGAIN). timeout_ms bounds the whole call:
 * MS_ETIMEDOUT when it passes with bytes still unsent (0: send what fits
 * now). Returns 0, or a negative code; *sent (may be NULL) tells how many
 * bytes went out either way. buf stays the caller's. */
MS_EXPORT int ms_send_all(int fd, const void *buf, size_t len, int timeout_ms,
                          size_t *sent);
/* The same for a vector of at most IOV_MAX entries (MS_EINVAL otherwise, or
 * if the lengths overflow size_t); the iov array is not modified. */
MS_EXPORT int ms_sendv_all(int fd, const struct iovec *iov, int iovcnt,
                           int timeout_ms, size_t *sent);

/* Receives exactly len bytes into buf. Returns 0; MS_EOF if the stream
 * ended before the first byte (a clean end at a message boundary);
 * MS_ETRUNCATED if it ended after some bytes but before len; MS_ETIMEDOUT
 * when the deadline passes; or another negative code (MS_ECONNRESET, ...).
 * *got (may be NULL) tells how much arrived either way. */
MS_EXPORT int ms_recv_exact(int fd, void *buf, size_t len, int timeout_ms,
                            size_t *got);

/* One receive of at most len bytes, waiting at most timeout_ms for data.
 * Returns the count (> 0; 0 only if len is 0), MS_EOF, MS_ETIMEDOUT or
 * another negative code. */
MS_EXPORT ssize_t ms_recv_some(int fd, void *buf, size_t len, int timeout_ms);


/* ---- whole messages with a deadline ------------------------------------------- */

/*
 * A reader of framed messages for blocking programs (a descriptor, no
 * loop): it keeps what arrives past one message for the next call
 * (pipelined messages cost no extra system call) and cuts messages with a
 * framer of its own (ms_framer_decode), so it gives the same ms_frame the
 * loop delivers, APP header fields included. Its buffer grows only as bytes
 * arrive, at most to one message with its framing (max_msg plus the
 * framing header, for APP plus 2 + max_header), never to a length the peer
 * announces before sending it. One reader serves one stream, on one thread
 * at a time.
 */
typedef struct ms_msg_reader ms_msg_reader;

/* Creates a reader for cfg's framing (any kind; cfg and its delimiter are
 * copied). On success *out is the caller's until ms_msg_reader_free().
 * Returns 0, MS_EINVAL for a bad config (as ms_framer_create) or
 * MS_ENOMEM. Nothing is received or allocated for data until the first
 * ms_recv_msg(). */
MS_EXPORT int ms_msg_reader_create(ms_msg_reader **out, const ms_frame_config *cfg);
/* Frees r and the bytes it holds (NULL is fine); does not close any
 * descriptor. */
MS_EXPORT void ms_msg_reader_free(ms_msg_reader *r);

/*
 * Receives one whole message from fd (blocking or not) within timeout_ms
 * (-1: no limit; 0: only what has arrived; the deadline covers the whole
 * message, not each receive). Returns 0 and *msg, whose data (and, for
 * APP, msg->app and its strings) stays valid until the next call on r or
 * its free; the bytes belong to r. Otherwise:
 *   MS_EOF          the peer closed at a message boundary (for CLOSE framing,
 *                   the call after the one that returned the message);
 *   MS_ETRUNCATED   the peer closed inside a message;
 *   MS_ETIMEDOUT    the deadline passed first; what arrived is kept, and
 *                   the next call goes on with the same message;
 *   a framing error (MS_ETOOLARGE, MS_EMALFORMED, MS_EHDR*, MS_EBADLEN, ...)
 *                   as ms_framer_decode gives it, as soon as the bytes
 *                   that show it arrive; the stream is then unusable and
 *                   every later call returns the same code;
 *   a system code (MS_ECONNRESET, MS_EBADF, ...), MS_ENOMEM or MS_EINVAL.
 */
MS_EXPORT int ms_recv_msg(int fd, ms_msg_reader *r, ms_frame *msg, int timeout_ms);

/*
 * Frames the concatenation of iov[0..iovcnt) (at most IOV_MAX pieces) as
 * ONE message of cfg's framing (ms_framer_encodev) and sends it all, with
 * ms_sendv_all's guarantees, within timeout_ms: the framing header, the
 * pieces and the delimiter with one writev where possible (up to 62
 * pieces), never copying the payload. RAW sends the bytes as they are;
 * CLOSE sends them and then shuts the write side (ms_sock_shutdown_write),
 * since its message ends with the stream. APP is not allowed here
 * (MS_EINVAL): use ms_app_encode_header + ms_sendv_all. Returns 0;
 * MS_EINVAL (bad config or vector), MS_ETOOLARGE or MS_EDELIM from the
 * framer, before anything is sent; MS_ETIMEDOUT or a system code (MS_EPIPE,
 * MS_ECONNRESET, ...) from sending, after which an unknown part of the
 * message went out and the stream is no longer framed. The pieces stay the
 * caller's. Allocates a small framer for the call.
 */
MS_EXPORT int ms_send_msgv(int fd, const ms_frame_config *cfg, const struct iovec *iov,
                           int iovcnt, int timeout_ms);
/* The same for one contiguous payload of len bytes. */
MS_EXPORT int ms_send_msg(int fd, const ms_frame_config *cfg, const void *payload,
                          size_t len, int timeout_ms);

#endif
