/* poller.h: the internal contract between the loop and its readiness backends. */
#ifndef MSI_POLLER_H
#define MSI_POLLER_H

#include "msgsock/common.h"

/*
 * A backend reports readiness with the public MS_EV_* bits: MS_EV_ERR stands
 * for error, hang-up or an invalid descriptor. The loop only registers an fd
 * while its interest is non-zero, so add and modify never see 0, and it never
 * adds an fd twice or deletes one it did not add. Every function returns 0 or
 * a negative msgsock code (-errno for system errors).
 */
typedef struct msi_poller msi_poller;
typedef struct msi_ring msi_ring;

typedef struct msi_poll_event {
    int fd;
    int events;
} msi_poll_event;

typedef struct msi_poller_ops {
    const char *name;
    /* max_events: the most events one wait may report. */
    int (*create)(msi_poller **out, int max_events);
    int (*add)(msi_poller *p, int fd, int events);
    int (*modify)(msi_poller *p, int fd, int events);
    int (*del)(msi_poller *p, int fd);
    /* Blocks at most timeout_ms (-1: no limit), fills out[0..n) with at most
     * max events and returns n; an interrupted wait returns 0. */
    int (*wait)(msi_poller *p, msi_poll_event *out, int max, int timeout_ms);
    void (*free)(msi_poller *p);
    /* Completion backends only (NULL for readiness backends): the ring of
     * ring.h; running the completions the last wait gathered (returns the
     * callbacks run), after the readiness events are dispatched; and
     * whether a handle or an operation of the ring is still live (which
     * keeps ms_loop_run going like a watch). */
    msi_ring *(*ring)(msi_poller *p);
    int (*dispatch)(msi_poller *p);
    int (*busy)(msi_poller *p);
} msi_poller_ops;

extern const msi_poller_ops msi_poller_epoll;
extern const msi_poller_ops msi_poller_poll;
extern const msi_poller_ops msi_poller_uring;

/* The epoll instance's descriptor, for a backend that waits on it from
 * elsewhere (the io_uring backend polls it through its ring). */
int msi_poller_epoll_fd(msi_poller *p);

#endif
