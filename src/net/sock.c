/* sock.c: listen, accept and connect with timeouts, and socket options. */
#include "msgsock/net.h"
#include "net/wait.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Linux's somaxconn default since 5.4, for when /proc cannot tell. */
#define FALLBACK_BACKLOG 4096

static int addr_ok(const ms_addr *a)
{
    if (!a)
        return MS_EINVAL;
    switch (a->ss.ss_family) {
    case AF_INET:
    case AF_INET6:
    case AF_UNIX:
        return a->len > 0 && a->len <= sizeof a->ss ? 0 : MS_EINVAL;
    default:
        return MS_EAFNOSUPPORT;
    }
}

static int set_int(int fd, int level, int name, int v)
{
    return setsockopt(fd, level, name, &v, sizeof v) < 0 ? ms_err_from_errno(errno) : 0;
}

/* The socket's family, so TCP-only options can be skipped on AF_UNIX. */
static int sock_family(int fd)
{
    int fam = 0;
    socklen_t len = sizeof fam;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &fam, &len) < 0)
        return ms_err_from_errno(errno);
    return fam;
}

static int is_unix_path(const ms_addr *a)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
    return a->ss.ss_family == AF_UNIX &&
           a->len > offsetof(struct sockaddr_un, sun_path) && sun->sun_path[0] != '\0';
}

/* A socket file nobody accepts on is stale: refusing a connection proves
 * it. A live socket, or a file of another kind, is never removed. */
static int unlink_if_stale(const ms_addr *a)
{
    const char *path = ((const struct sockaddr_un *)&a->ss)->sun_path;
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 1 : 0;
    if (!S_ISSOCK(st.st_mode))
        return 0;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return 0;
    int rc = connect(probe, (const struct sockaddr *)&a->ss, a->len);
    int stale = rc < 0 && errno == ECONNREFUSED;
    close(probe);
    if (stale && unlink(path) < 0 && errno != ENOENT)
        return 0;
    return stale;
}

static int read_somaxconn(void)
{
    char buf[32];
    int fd = open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FALLBACK_BACKLOG;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return FALLBACK_BACKLOG;
    buf[n] = '\0';
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || end == buf || (*end && *end != '\n') || v < 1 || v > INT32_MAX)
        return FALLBACK_BACKLOG;
    return (int)v;
}

int ms_listen_backlog_default(void)
{
    /* Threads racing here each read the same file; the value is stable. */
    static atomic_int cached;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v == 0) {
        v = read_somaxconn();
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}

static int is_v6_any(const ms_addr *a)
{
    return a->ss.ss_family == AF_INET6 &&
           IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

int ms_listen(const ms_addr *addr, const ms_listen_opts *opts)
{
    ms_listen_opts o = {0};
    int rc = addr_ok(addr);
    if (rc < 0)
        return rc;
    if (opts)
        o = *opts;
    int fam = addr->ss.ss_family;
    int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | (o.nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return ms_err_from_errno(errno);
    if (fam != AF_UNIX)
        rc = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    /* [::] takes IPv4 too whatever net.ipv6.bindv6only says, as in Go. */
    if (rc == 0 && is_v6_any(addr))
        rc = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    if (rc == 0 && o.reuseport)
        rc = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (rc == 0 && bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0) {
        rc = ms_err_from_errno(errno);
        if (rc == MS_EADDRINUSE && is_unix_path(addr) && unlink_if_stale(addr))
            rc = bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0
                     ? ms_err_from_errno(errno) : 0;
    }
    if (rc == 0 && listen(fd, o.backlog > 0 ? o.backlog : ms_listen_backlog_default()) < 0)
        rc = ms_err_from_errno(errno);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int ms_listen_text(const char *text, const ms_listen_opts *opts)
{
    ms_addr a[MS_ADDR_RESOLVE_MAX];
    int n = ms_addr_resolve(a, MS_ADDR_RESOLVE_MAX, text);
    int rc = n;
    for (int i = 0; i < n; i++) {
        rc = ms_listen(&a[i], opts);
        if (rc >= 0)
            return rc;
    }
    return rc;
}

int ms_accept(int lfd, ms_addr *peer, int nonblock, int timeout_ms)
{
    int64_t deadline = msi_deadline(timeout_ms);
    int flags = SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
    if (lfd < 0)
        return MS_EBADF; /* poll would ignore it and just time out */
    for (;;) {
        /* With a limit, wait first: accept4 on a blocking listener would
         * otherwise ignore it. */
        if (timeout_ms >= 0) {
            int rc = msi_wait(lfd, POLLIN, deadline);
            if (rc == MS_ETIMEDOUT && timeout_ms == 0)
                return MS_EAGAIN;
            if (rc < 0)
                return rc;
        }
        ms_addr tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.len = sizeof tmp.ss;
        int fd = accept4(lfd, (struct sockaddr *)&tmp.ss, &tmp.len, flags);
        if (fd >= 0) {
            if (peer)
                *peer = tmp;
            return fd;
        }
        /* Linux reports a queued connection's death through accept: it is
         * that peer's problem, not the listener's, so keep waiting. */
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (timeout_ms < 0) {
                int rc = msi_wait(lfd, POLLIN, -1);
                if (rc < 0)
                    return rc;
            }
            continue;
        }
        return ms_err_from_errno(errno);
    }
}

/* A non-blocking Unix connect fails with EAGAIN, not EINPROGRESS, when the
 * listener's queue is full, and nothing is in progress: wait and retry. */
static int unix_backoff(int64_t deadline, int *step)
{
    int left = msi_remaining(deadline);
    if (left == 0)
        return MS_ETIMEDOUT;
    poll(NULL, 0, left < 0 || left > *step ? *step : left);
    if (*step < 64)
        *step *= 2;
    return 0;
}

static int connect_fd(int fd, const ms_addr *a, int64_t deadline)
{
    int step = 1;
    for (;;) {
        if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
            return 0;
        if (errno == EINPROGRESS || errno == EINTR)
            break;
        if (errno == EAGAIN && a->ss.ss_family == AF_UNIX) {
            int rc = unix_backoff(deadline, &step);
            if (rc < 0)
                return rc;
            continue;
        }
        return ms_err_from_errno(errno);
    }
    int rc = msi_wait(fd, POLLOUT, deadline);
    if (rc < 0)
        return rc;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return ms_err_from_errno(errno);
    return err ? ms_err_from_errno(err) : 0;
}

static int connect_until(const ms_addr *addr, int64_t deadline, int nonblock)
{
    int rc = addr_ok(addr);
    if (rc < 0)
        return rc;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ms_err_from_errno(errno);
    rc = connect_fd(fd, addr, deadline);
    if (rc == 0 && !nonblock)
        rc = ms_sock_set_nonblock(fd, 0);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int ms_connect(const ms_addr *addr, int timeout_ms, int nonblock)
{
    return connect_until(addr, msi_deadline(timeout_ms), nonblock);
}

static int connect_list(const ms_addr *a, int n, int timeout_ms, int nonblock)
{
    int64_t deadline = msi_deadline(timeout_ms);
    int rc = n;
    for (int i = 0; i < n; i++) {
        if (i > 0 && msi_remaining(deadline) == 0)
            return MS_ETIMEDOUT;
        rc = connect_until(&a[i], deadline, nonblock);
        if (rc >= 0)
            return rc;
    }
    return rc;
}

int ms_connect_text(const char *text, int timeout_ms, int nonblock)
{
    ms_addr a[MS_ADDR_RESOLVE_MAX];
    int n = ms_addr_resolve(a, MS_ADDR_RESOLVE_MAX, text);
    return connect_list(a, n, timeout_ms, nonblock);
}

int ms_connect_hp(const char *host, const char *port, int timeout_ms, int nonblock)
{
    ms_addr a[MS_ADDR_RESOLVE_MAX];
    int n = ms_addr_resolve_hp(a, MS_ADDR_RESOLVE_MAX, host, port);
    return connect_list(a, n, timeout_ms, nonblock);
}

int ms_sock_local(int fd, ms_addr *out)
{
    memset(out, 0, sizeof *out);
    out->len = sizeof out->ss;
    return getsockname(fd, (struct sockaddr *)&out->ss, &out->len) < 0
               ? ms_err_from_errno(errno) : 0;
}

int ms_sock_peer(int fd, ms_addr *out)
{
    memset(out, 0, sizeof *out);
    out->len = sizeof out->ss;
    return getpeername(fd, (struct sockaddr *)&out->ss, &out->len) < 0
               ? ms_err_from_errno(errno) : 0;
}

int ms_sock_set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return ms_err_from_errno(errno);
    int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    if (want != fl && fcntl(fd, F_SETFL, want) < 0)
        return ms_err_from_errno(errno);
    return 0;
}

int ms_sock_set_nodelay(int fd, int on)
{
    int fam = sock_family(fd);
    if (fam < 0 || fam == AF_UNIX)
        return fam < 0 ? fam : 0;
    return set_int(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

int ms_sock_set_keepalive(int fd, int on, int idle_s, int intvl_s, int count)
{
    if (idle_s < 0 || intvl_s < 0 || count < 0)
        return MS_EINVAL;
    int fam = sock_family(fd);
    if (fam < 0 || fam == AF_UNIX)
        return fam < 0 ? fam : 0;
    int rc = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
    if (rc == 0 && on && idle_s > 0)
        rc = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
    if (rc == 0 && on && intvl_s > 0)
        rc = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl_s);
    if (rc == 0 && on && count > 0)
        rc = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, count);
    return rc;
}

static int set_timeo(int fd, int name, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return setsockopt(fd, SOL_SOCKET, name, &tv, sizeof tv) < 0 ? ms_err_from_errno(errno) : 0;
}

int ms_sock_set_timeouts(int fd, int send_ms, int recv_ms)
{
    if (send_ms < 0 || recv_ms < 0)
        return MS_EINVAL;
    int rc = set_timeo(fd, SO_SNDTIMEO, send_ms);
    return rc < 0 ? rc : set_timeo(fd, SO_RCVTIMEO, recv_ms);
}

int ms_sock_set_bufsizes(int fd, int sndbuf, int rcvbuf)
{
    if (sndbuf < 0 || rcvbuf < 0)
        return MS_EINVAL;
    int rc = sndbuf ? set_int(fd, SOL_SOCKET, SO_SNDBUF, sndbuf) : 0;
    return rc < 0 || !rcvbuf ? rc : set_int(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf);
}

int ms_sock_shutdown_write(int fd)
{
    return shutdown(fd, SHUT_WR) < 0 ? ms_err_from_errno(errno) : 0;
}

int ms_sock_close(int fd, int abortive)
{
    int rc = 0;
    if (abortive) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0)
            rc = ms_err_from_errno(errno);
    }
    /* On Linux the descriptor is gone even when close reports EINTR, so
     * retrying could close a descriptor another thread just opened. */
    if (close(fd) < 0 && errno != EINTR)
        rc = ms_err_from_errno(errno);
    return rc;
}
