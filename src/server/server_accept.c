/* server_accept.c: the accept policy of every server model: errors, the reserve descriptor, refusals, their rate-limited lines. */
#include "server/server_int.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

/* At most one log line per kind per this many milliseconds. */
#define LOG_EVERY_MS 1000

void msi_accept_init(msi_accept *a, ms_server *s, ms_loop *loop, int lfd)
{
    a->s = s;
    a->loop = loop;
    a->lfd = lfd;
    a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    a->last_log_emfile = a->last_log_refused = INT64_MIN / 2;
    a->emfile_count = a->refused_since_log = 0;
}

void msi_accept_fini(msi_accept *a)
{
    if (a->reserve_fd >= 0)
        close(a->reserve_fd);
    a->reserve_fd = -1;
}

/* Out of descriptors. The pending connection would make the listener
 * readable forever (a busy loop), so spend the reserve descriptor to accept
 * and close it; if there is none, the listener is to rest for a while. */
static int on_emfile(msi_accept *a, int err)
{
    ms_server *s = a->s;
    int64_t now = ms_loop_now(a->loop);
    int closed = 0;
    if (a->reserve_fd >= 0) {
        close(a->reserve_fd);
        a->reserve_fd = -1;
        for (int i = 0; i < MSI_ACCEPT_BATCH; i++) {
            int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                break;
            ms_sock_close(fd, 1);
            closed++;
        }
        a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        atomic_fetch_add(&s->refused, (uint64_t)closed);
    }
    a->emfile_count += (uint64_t)closed;
    if (now - a->last_log_emfile >= LOG_EVERY_MS) {
        msi_server_log(s, 1, MS_LOG_SERVER, err, NULL,
                       "accept: %s: %llu connection(s) closed at once since the last report",
                       ms_strerror(err), (unsigned long long)a->emfile_count);
        a->last_log_emfile = now;
        a->emfile_count = 0;
    }
    return closed == 0 || a->reserve_fd < 0 ? MSI_ACCEPT_REST : MSI_ACCEPT_EMPTY;
}

int msi_accept_next(msi_accept *a, struct sockaddr_storage *ss, socklen_t *len, int draining)
{
    for (;;) {
        *len = sizeof *ss;
        int fd = accept4(a->lfd, (struct sockaddr *)ss, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        int e = errno;
        if (e == EINTR || e == ECONNABORTED)
            continue;
        if (e == EAGAIN)
            return MSI_ACCEPT_EMPTY;
        if (!draining && (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM))
            return on_emfile(a, -e);
        msi_server_log(a->s, 0, MS_LOG_SERVER, -e, NULL, "accept: %s", ms_strerror(-e));
        return MSI_ACCEPT_FAILED;
    }
}

void msi_accept_refuse(msi_accept *a, int fd, int max)
{
    ms_sock_close(fd, 0);
    msi_server_note_refused(a->s);
    a->refused_since_log++;
    int64_t now = ms_loop_now(a->loop);
    if (now - a->last_log_refused >= LOG_EVERY_MS) {
        msi_server_log(a->s, 1, MS_LOG_LIMIT, MS_ELIMIT, NULL,
                       "connection limit %d reached: %llu connection(s) refused", max,
                       (unsigned long long)a->refused_since_log);
        a->last_log_refused = now;
        a->refused_since_log = 0;
    }
}
