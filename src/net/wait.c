/* wait.c: monotonic clock, deadlines and the one poll loop of the socket layer. */
#include "msgsock/net.h"
#include "net/wait.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <time.h>

int64_t ms_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t msi_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : ms_now_ms() + timeout_ms;
}

int msi_remaining(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - ms_now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

int msi_wait(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int left = msi_remaining(deadline);
        int r = poll(&p, 1, left);
        if (r > 0)
            return (p.revents & POLLNVAL) ? MS_EBADF : 0;
        if (r < 0 && errno != EINTR)
            return ms_err_from_errno(errno);
        /* poll may wake a little early (ms truncation) or on a signal: only
         * a deadline that has really passed ends the wait. */
        if (r == 0 && left == 0)
            return MS_ETIMEDOUT;
    }
}

int msi_is_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return ms_err_from_errno(errno);
    return (fl & O_NONBLOCK) != 0;
}
