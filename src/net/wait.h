/* wait.h: monotonic deadlines and waiting on one descriptor, shared by src/net. */
#ifndef MSI_NET_WAIT_H
#define MSI_NET_WAIT_H

#include <stdint.h>

/* The deadline timeout_ms from now, or -1 (none) if timeout_ms < 0. */
int64_t msi_deadline(int timeout_ms);
/* Milliseconds left until deadline (0 once passed), or -1 if it is none;
 * clamped to INT_MAX so it fits poll(). */
int msi_remaining(int64_t deadline);
/* Waits until fd reports one of events (POLLIN/POLLOUT; errors and hangups
 * count as ready so the next call reports them) or the deadline passes.
 * Retries EINTR. Returns 0, MS_ETIMEDOUT, MS_EBADF or -errno. */
int msi_wait(int fd, short events, int64_t deadline);
/* 1 if fd has O_NONBLOCK, 0 if not, -errno on failure. */
int msi_is_nonblock(int fd);

#endif
