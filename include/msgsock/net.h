/* msgsock/net.h: addresses and blocking-or-timed socket primitives (layer 2). */
#ifndef MSGSOCK_NET_H
#define MSGSOCK_NET_H

#include "common.h"

#include <sys/socket.h>
#include <sys/uio.h>

/* ---- addresses ---------------------------------------------------------- */

/* An address: IPv4, IPv6 or Unix-domain (path or Linux abstract name).
 * Plain data, copied by value; no resources to free. */
typedef struct ms_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} ms_addr;

/* Longest text ms_addr_format() writes, NUL included. */
#define MS_ADDR_STRLEN 128

/* Parses a numeric address without any lookup: "1.2.3.4:80", "[::1]:80",
 * "unix:/path", "unix:@abstract". Returns 0, or MS_EBADADDR. */
MS_EXPORT int ms_addr_parse(ms_addr *out, const char *text);

/* Resolves text to addresses: the numeric forms above, or "name:port"
 * through getaddrinfo (all families). Fills at most cap entries of out and
 * returns how many (>= 1), or MS_EBADADDR, MS_ENONAME, MS_EAINAGAIN. */
MS_EXPORT int ms_addr_resolve(ms_addr *out, int cap, const char *text);

/* Same, with host and port given apart (host may be a bare IPv6 literal,
 * "localhost", a name, or "unix:..." with port ignored). */
MS_EXPORT int ms_addr_resolve_hp(ms_addr *out, int cap, const char *host,
                                 const char *port);

/* Writes "1.2.3.4:80", "[::1]:80", "unix:/path" or "unix:@name" into buf
 * (MS_ADDR_STRLEN is always enough). Returns the length written, or
 * MS_EINVAL if the buffer is too small or the family is unknown. */
MS_EXPORT int ms_addr_format(const ms_addr *a, char *buf, size_t cap);
/* AF_INET, AF_INET6 or AF_UNIX. */
MS_EXPORT int ms_addr_family(const ms_addr *a);
/* The port, or 0 for Unix-domain. */
MS_EXPORT int ms_addr_port(const ms_addr *a);

/* ---- sockets -------------------------------------------------------------- */

/* Listen options. Zero-initialised means: backlog 511, SO_REUSEADDR on,
 * SO_REUSEPORT off, Unix socket path unlinked first if it is a stale socket. */
typedef struct ms_listen_opts {
    int backlog;
    int reuseport;  /* 1: set SO_REUSEPORT */
    int nonblock;   /* 1: listening socket is O_NONBLOCK */
} ms_listen_opts;

/* Creates a listening socket (CLOEXEC) bound to addr; opts may be NULL.
 * Returns the descriptor (the caller owns it) or a negative code. */
MS_EXPORT int ms_listen(const ms_addr *addr, const ms_listen_opts *opts);
/* Resolves text and listens on the first result that binds; returns fd. */
MS_EXPORT int ms_listen_text(const char *text, const ms_listen_opts *opts);

/* Accepts one connection with accept4(CLOEXEC, plus NONBLOCK if nonblock).
 * Waits at most timeout_ms (-1 forever, 0 don't wait: MS_EAGAIN). peer may be
 * NULL. Returns the new descriptor (the caller owns it). */
MS_EXPORT int ms_accept(int lfd, ms_addr *peer, int nonblock, int timeout_ms);

/* Connects to addr, waiting at most timeout_ms (-1: no limit) through a
 * non-blocking connect, poll and SO_ERROR. The returned descriptor is
 * blocking unless nonblock is 1, CLOEXEC, and owned by the caller. */
MS_EXPORT int ms_connect(const ms_addr *addr, int timeout_ms, int nonblock);
/* Resolves text and tries every result in order within one overall
 * timeout; on failure returns the last result's error. */
MS_EXPORT int ms_connect_text(const char *text, int timeout_ms, int nonblock);

/* The locally bound / peer address of a socket. */
MS_EXPORT int ms_sock_local(int fd, ms_addr *out);
MS_EXPORT int ms_sock_peer(int fd, ms_addr *out);

MS_EXPORT int ms_sock_set_nonblock(int fd, int on);
MS_EXPORT int ms_sock_set_nodelay(int fd, int on);
/* TCP keepalive: idle seconds before probes, interval between probes, probe
 * count before the connection is dropped. 0 leaves a value at the system
 * default. */
MS_EXPORT int ms_sock_set_keepalive(int fd, int on, int idle_s, int intvl_s,
                                    int count);
/* SO_SNDTIMEO / SO_RCVTIMEO in milliseconds (0: none). */
MS_EXPORT int ms_sock_set_timeouts(int fd, int send_ms, int recv_ms);
MS_EXPORT int ms_sock_set_bufsizes(int fd, int sndbuf, int rcvbuf);

/* Half-close: no more sends (shutdown SHUT_WR); the peer reads EOF. */
MS_EXPORT int ms_sock_shutdown_write(int fd);
/* Closes fd. abortive=1 sends a reset (SO_LINGER 0) instead of a FIN. */
MS_EXPORT int ms_sock_close(int fd, int abortive);

/* ---- whole transfers with a deadline ------------------------------------------ */

/* Monotonic milliseconds, for deadlines. */
MS_EXPORT int64_t ms_now_ms(void);

/* Sends all len bytes, finishing partial sends and retrying EINTR, with
 * MSG_NOSIGNAL (a dead peer is MS_EPIPE/MS_ECONNRESET, never SIGPIPE).
 * timeout_ms bounds the whole call (-1: none). Works on blocking and
 * non-blocking descriptors. Returns 0, or a negative code; *sent (may be
 * NULL) tells how much went out either way. */
MS_EXPORT int ms_send_all(int fd, const void *buf, size_t len, int timeout_ms,
                          size_t *sent);
/* The same for a vector (the iov array is not modified). */
MS_EXPORT int ms_sendv_all(int fd, const struct iovec *iov, int iovcnt,
                           int timeout_ms, size_t *sent);

/* Receives exactly len bytes. Returns 0; MS_EOF if the stream ended before
 * the first byte (a clean end at a message boundary); MS_ETRUNCATED if it
 * ended after some bytes but before len; MS_ETIMEDOUT when the deadline
 * passes; or another negative code. *got (may be NULL) tells how much
 * arrived either way. */
MS_EXPORT int ms_recv_exact(int fd, void *buf, size_t len, int timeout_ms,
                            size_t *got);

/* One receive of at most len bytes, waiting at most timeout_ms. Returns the
 * count (>0), MS_EOF, MS_ETIMEDOUT or another negative code. */
MS_EXPORT ssize_t ms_recv_some(int fd, void *buf, size_t len, int timeout_ms);

#endif
