/* ring.h: completion I/O on a loop's io_uring (poller_uring.c), for the connection layer. */
#ifndef MSI_RING_H
#define MSI_RING_H

#include "msgsock/loop.h"

#include <sys/uio.h>

/*
 * A loop created with the "io_uring" backend waits on a ring. Besides the
 * readiness watches of loop.h (served by an epoll instance polled through
 * the ring) it offers handles: a socket whose reads arrive as completions
 * of one multishot receive into buffers the ring provides (a connection
 * holds no buffer while nothing arrives), and whose writes are staged and
 * submitted together, just before the loop waits, in the same system call
 * as the wait.
 *
 * Nothing is submitted when these functions are called: they record what
 * the handle wants, and the loop issues it before its next wait. So a
 * handle closed in a callback never has an operation started on its fd
 * afterwards, even if the fd number is reused at once. A handle's fd stays
 * the caller's; close it after msi_ring_close (the ring's operations hold
 * their own reference to the socket until their cancellation completes,
 * within the loop's next wait).
 */
typedef struct msi_ring msi_ring;

enum { MSI_RING_RECV = 1, MSI_RING_SEND = 2 };

/* The sends a handle stages take at most this many pieces. */
#define MSI_RING_IOV 64

/*
 * A completion for the handle's owner, on the loop's thread.
 * MSI_RING_RECV: res > 0 bytes at data (the ring's buffer, valid during
 * the call only; the receive stays on), 0 for the peer's end of stream or
 * a negative code (the receive is then off until turned on again).
 * MSI_RING_SEND: res bytes the kernel took from the staged send (maybe
 * fewer: stage the rest again) or a negative code. A send that would block
 * is not reported: the ring waits for writability and retries it.
 * Never called after msi_ring_close; fn may call any function here.
 */
typedef void (*msi_ring_fn)(void *arg, int op, int res, const void *data);

/* The loop's ring, or NULL unless its backend is "io_uring". */
msi_ring *msi_loop_ring(ms_loop *loop);
/* 0, or why a loop asked for "io_uring" runs on epoll instead (the code
 * the ring's setup or its feature probe failed with). */
int msi_loop_ring_fallback(const ms_loop *loop);

/* A handle for fd; fn gets its completions with arg. Returns the handle
 * (>= 0) or MS_ENOMEM. Nothing is armed yet. */
int msi_ring_open(msi_ring *r, int fd, msi_ring_fn fn, void *arg);
/* Whether the handle wants to receive; a no-op when unchanged. Turning it
 * off cancels the receive, but bytes already received may still be
 * reported until the cancellation lands (the next wait). */
void msi_ring_recv(msi_ring *r, int h, int on);
/* Stages a send of iov[0..n) (the array is copied; the bytes stay the
 * caller's and must stay put until the MSI_RING_SEND completion, or until
 * the drop of msi_ring_close). A send staged and not yet submitted is
 * replaced. notify 0: a send that takes every byte is reported when
 * something else next wakes the loop (it costs no wakeup of its own);
 * notify 1: its completion wakes the loop (for a caller that waits on it).
 * Returns 0, MS_EBUSY (a send is in the kernel or waiting for writability:
 * stage again after its completion) or MS_EINVAL (n out of 1..MSI_RING_IOV). */
int msi_ring_send(msi_ring *r, int h, const struct iovec *iov, int n, int notify);
/* Ends the handle: no completion is reported after this, the staged send
 * is dropped and armed operations are cancelled. Returns 0: nothing the
 * kernel reads refers to the caller's bytes any more; or 1: a send is in
 * the kernel, and the ring calls drop(p) once it completes (the caller
 * must then leave the bytes to p). */
int msi_ring_close(msi_ring *r, int h, void (*drop)(void *), void *p);

#endif
