/* resolve.h: name lookups off the caller's thread, for clients on an event loop (layer 2). */
#ifndef MSI_NET_RESOLVE_H
#define MSI_NET_RESOLVE_H

#include "msgsock/net.h"

/* Addresses a lookup keeps at most. */
#define MSI_RESOLVE_MAX 8

/* ms_addr_resolve without the resolver: fills out as it would and returns
 * the count (>= 1) for a numeric host, an empty host or a unix: address;
 * 0 for a well-formed "name:port" that needs a lookup; or its syntax error
 * (MS_EBADADDR, MS_ENAMETOOLONG, MS_EINVAL). (addr.c) */
int msi_addr_resolve_local(ms_addr *out, int cap, const char *text);

/*
 * One lookup of text (an ms_addr_resolve form) on a worker thread: a few
 * workers at most, shared by the process, each gone once the queue is
 * empty. The request has two references, the caller's and the worker's;
 * the last one dropped frees it, so a caller may give up on a pending
 * lookup at any time (its result is then thrown away). The caller waits
 * for msi_resolve_fd to become readable, e.g. watched by a loop.
 */
typedef struct msi_resolve msi_resolve;

/* Queues the lookup. 0 with *out the caller's until msi_resolve_free, or
 * MS_ENOMEM, a system code (no eventfd, no worker thread). */
int msi_resolve_start(msi_resolve **out, const char *text);
/* An eventfd that becomes readable once the result is in (never read it). */
int msi_resolve_fd(const msi_resolve *r);
/* The result once in: fills at most cap of out and returns how many
 * (>= 1) or ms_addr_resolve's error; MS_EAGAIN while still pending. */
int msi_resolve_result(msi_resolve *r, ms_addr *out, int cap);
/* Drops the caller's reference; a pending lookup's result is dropped. */
void msi_resolve_free(msi_resolve *r);

/* For tests: called on the worker before each lookup (may block to make
 * a lookup slow); set before any lookup starts. */
extern void (*msi_resolve_hook)(const char *text);
/* For tests: lookups queued or running plus live workers (0: idle). */
int msi_resolve_busy(void);

#endif
