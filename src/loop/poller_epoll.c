/* poller_epoll.c: the epoll(7) readiness backend (level-triggered). */
#include "loop/poller.h"
#include "msgsock/loop.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

struct msi_poller {
    int epfd;
    int max;
    struct epoll_event *evs;
};

static uint32_t to_epoll(int events)
{
    return (events & MS_EV_READ ? EPOLLIN : 0u) | (events & MS_EV_WRITE ? EPOLLOUT : 0u);
}

static int epoll_create_(msi_poller **out, int max_events)
{
    msi_poller *p = calloc(1, sizeof *p);
    if (!p)
        return MS_ENOMEM;
    p->max = max_events;
    p->evs = calloc((size_t)max_events, sizeof *p->evs);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!p->evs || p->epfd < 0) {
        int rc = p->evs ? ms_err_from_errno(errno) : MS_ENOMEM;
        if (p->epfd >= 0)
            close(p->epfd);
        free(p->evs);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int ctl(msi_poller *p, int op, int fd, int events)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
    if (epoll_ctl(p->epfd, op, fd, &ev) == 0)
        return 0;
    return ms_err_from_errno(errno);
}

static int epoll_add(msi_poller *p, int fd, int events)
{
    int rc = ctl(p, EPOLL_CTL_ADD, fd, events);
    /* A registration left behind by a failed delete: take it over. */
    if (rc == -EEXIST)
        rc = ctl(p, EPOLL_CTL_MOD, fd, events);
    return rc;
}

static int epoll_modify(msi_poller *p, int fd, int events)
{
    return ctl(p, EPOLL_CTL_MOD, fd, events);
}

static int epoll_del(msi_poller *p, int fd)
{
    return ctl(p, EPOLL_CTL_DEL, fd, 0);
}

static int epoll_wait_(msi_poller *p, msi_poll_event *out, int max, int timeout_ms)
{
    if (max > p->max)
        max = p->max;
    int n = epoll_wait(p->epfd, p->evs, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : ms_err_from_errno(errno);
    for (int i = 0; i < n; i++) {
        uint32_t e = p->evs[i].events;
        out[i].fd = p->evs[i].data.fd;
        out[i].events = (e & EPOLLIN ? MS_EV_READ : 0) | (e & EPOLLOUT ? MS_EV_WRITE : 0) |
                        (e & (EPOLLERR | EPOLLHUP) ? MS_EV_ERR : 0);
    }
    return n;
}

int msi_poller_epoll_fd(msi_poller *p)
{
    return p->epfd;
}

static void epoll_free(msi_poller *p)
{
    if (!p)
        return;
    close(p->epfd);
    free(p->evs);
    free(p);
}

const msi_poller_ops msi_poller_epoll = {
    .name = "epoll",
    .create = epoll_create_,
    .add = epoll_add,
    .modify = epoll_modify,
    .del = epoll_del,
    .wait = epoll_wait_,
    .free = epoll_free,
};
