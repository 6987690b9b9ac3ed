/* poller_poll.c: the poll(2) readiness backend; a dense pollfd array plus an
 * fd-to-index map, so add, modify and delete are O(1). */
#include "loop/poller.h"
#include "msgsock/loop.h"

#include <poll.h>
#include <stdlib.h>

struct msi_poller {
    struct pollfd *pfds;
    int n, cap;
    int *index; /* index[fd]: position in pfds, or -1 */
    int index_cap;
    int start; /* where the next scan begins when a wait had more than max */
};

static short to_poll(int events)
{
    return (short)((events & MS_EV_READ ? POLLIN : 0) | (events & MS_EV_WRITE ? POLLOUT : 0));
}

static int poll_create(msi_poller **out, int max_events)
{
    (void)max_events;
    msi_poller *p = calloc(1, sizeof *p);
    if (!p)
        return MS_ENOMEM;
    *out = p;
    return 0;
}

static int reserve(msi_poller *p, int fd)
{
    if (fd >= p->index_cap) {
        size_t cap = p->index_cap ? (size_t)p->index_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        int *ix = realloc(p->index, cap * sizeof *ix);
        if (!ix)
            return MS_ENOMEM;
        for (size_t i = (size_t)p->index_cap; i < cap; i++)
            ix[i] = -1;
        p->index = ix;
        p->index_cap = (int)cap;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? (size_t)p->cap * 2 : 64;
        struct pollfd *pf = realloc(p->pfds, cap * sizeof *pf);
        if (!pf)
            return MS_ENOMEM;
        p->pfds = pf;
        p->cap = (int)cap;
    }
    return 0;
}

static int poll_add(msi_poller *p, int fd, int events)
{
    int rc = reserve(p, fd);
    if (rc)
        return rc;
    if (p->index[fd] >= 0)
        return MS_EEXIST;
    p->pfds[p->n] = (struct pollfd){.fd = fd, .events = to_poll(events)};
    p->index[fd] = p->n++;
    return 0;
}

static int poll_modify(msi_poller *p, int fd, int events)
{
    if (fd >= p->index_cap || p->index[fd] < 0)
        return MS_ENOENT;
    p->pfds[p->index[fd]].events = to_poll(events);
    return 0;
}

static int poll_del(msi_poller *p, int fd)
{
    if (fd >= p->index_cap || p->index[fd] < 0)
        return MS_ENOENT;
    int i = p->index[fd];
    p->index[fd] = -1;
    p->n--;
    if (i != p->n) {
        p->pfds[i] = p->pfds[p->n];
        p->index[p->pfds[i].fd] = i;
    }
    return 0;
}

static int poll_wait(msi_poller *p, msi_poll_event *out, int max, int timeout_ms)
{
    int r = poll(p->pfds, (nfds_t)p->n, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : ms_err_from_errno(errno);
    if (r == 0)
        return 0;
    int m = 0, n = p->n;
    if (p->start >= n)
        p->start = 0;
    /* Scan from a rotating start, so a wait with more than max ready fds
     * does not always starve the ones at the end of the array. */
    for (int k = 0; k < n && m < r; k++) {
        int i = (p->start + k) % n;
        short re = p->pfds[i].revents;
        if (!re)
            continue;
        out[m].fd = p->pfds[i].fd;
        out[m].events = (re & POLLIN ? MS_EV_READ : 0) | (re & POLLOUT ? MS_EV_WRITE : 0) |
                        (re & (POLLERR | POLLHUP | POLLNVAL) ? MS_EV_ERR : 0);
        if (++m == max) {
            p->start = (i + 1) % n;
            break;
        }
    }
    return m;
}

static void poll_free(msi_poller *p)
{
    if (!p)
        return;
    free(p->pfds);
    free(p->index);
    free(p);
}

const msi_poller_ops msi_poller_poll = {
    .name = "poll",
    .create = poll_create,
    .add = poll_add,
    .modify = poll_modify,
    .del = poll_del,
    .wait = poll_wait,
    .free = poll_free,
};
