/* conn_int.h: what conn.c, client.c and server.c share: buffers, groups, the connection. */
#ifndef MSI_CONN_INT_H
#define MSI_CONN_INT_H

#include "msgsock/conn.h"
#include "conn/transport.h"
#include "loop/ring.h"

#include <netinet/in.h>
#include <stdatomic.h>

/* ---- byte buffers (buf.c) ----
 * One allocation: header and bytes. Used as a connection's input buffer and
 * as a link of its output queue. data[start..len) holds the live bytes. */
typedef struct msi_buf {
    struct msi_buf *next;
    size_t start, len, cap;
    uint8_t data[];
} msi_buf;

/* The size buffers are made with and cached at. */
#define MSI_BUF_SIZE (16384 - sizeof(msi_buf) - 16)

msi_buf *msi_buf_new(size_t cap);
/* Grows b to hold at least cap bytes, moving live bytes to the front.
 * Returns the (possibly moved) buffer or NULL (b is untouched then). */
msi_buf *msi_buf_reserve(msi_buf *b, size_t cap);

/* ---- groups ----
 * What the connections of one loop with one configuration share: the
 * handler, limits, framing, the lists ordered by deadline and the one sweep
 * timer, and caches of buffers and framers so that the echo path does not
 * allocate per message. A server has one group per loop; each client
 * connection has its own. */
enum { MSI_DL_MSG = 0, MSI_DL_LINGER, MSI_DL_CONNECT, MSI_DL_N };

typedef struct msi_group {
    ms_loop *loop;            /* NULL: driven by blocking I/O (conn_blocking.c) */
    msi_ring *ring;           /* the loop's io_uring; plain connections do their I/O
                               * through it (NULL: readiness I/O) */
    ms_server *srv;           /* NULL for a client */
    const msi_transport *tops;
    void *tctx;               /* the transport's context (TLS), NULL for plain */
    ms_framer *enc;           /* encodes sends; never decodes */
    ms_conn_callbacks cb;
    void *user;
    ms_conn_limits lim;       /* defaults resolved */
    ms_frame_config frame;    /* delim points at delim below */
    uint8_t delim[MS_FRAME_MAX_DELIM];
    size_t in_max;            /* largest input buffer a message may need */
    ms_log_fn log;
    void *log_user;

    ms_timer *sweep;
    int64_t sweep_due;        /* when sweep fires, INT64_MAX if disarmed */
    /* Every connection, least recently active first. */
    ms_conn *all_head, *all_tail;
    /* Deadline lists, each first-in first-out with one duration. */
    ms_conn *dl_head[MSI_DL_N], *dl_tail[MSI_DL_N];
    int64_t dl_dur[MSI_DL_N];

    msi_buf *bcache;          /* free MSI_BUF_SIZE buffers */
    int nbcache, maxbcache;
    ms_framer **fpool;        /* framers at a message boundary */
    int nfpool, capfpool;

    int nconns;
    int stopping;             /* server shutting down: no accepts */
    int owned_by_conn;        /* client group: freed with its connection */
    int sockopts_inherited;   /* server: accepted sockets get nodelay and keepalive
                               * from the listener (Linux copies them at accept) */
    ms_addr *caddrs;          /* client: addresses still to try */
    int ncaddrs, icaddr;
} msi_group;

struct ms_conn {
    msi_group *g;
    void *udata;
    void *tp;
    ms_conn *aprev, *anext;   /* g->all list */
    ms_conn *dprev, *dnext;   /* one deadline list, named by dl */
    msi_buf *in;
    ms_framer *fr;            /* borrowed while a message is partial */
    msi_buf *oh, *ot;         /* output queue */
    size_t olen;
    uint64_t bytes_in, bytes_out, msgs_in, msgs_out;
    int64_t created, active, t2;
    int fd;
    int reason;
    int ring_h;               /* its ring handle while flags has F_RING */
    uint16_t flags;
    uint8_t state;
    int8_t dl;
    uint8_t depth;
    uint8_t peer_family;
    uint16_t peer_port;       /* network order */
    uint8_t peer_ip[16];
};

/* conn.c, for server.c and client.c */
int msi_group_init(msi_group *g, ms_loop *loop, const ms_frame_config *frame,
                   const ms_conn_limits *lim, const ms_conn_callbacks *cb, void *user);
void msi_group_fini(msi_group *g);
/* Wraps a connected or connecting descriptor (taken over, also on failure:
 * then closed). connecting: wait for writability and SO_ERROR first.
 * *out is NULL if the connection already ended inside on_open. */
int msi_conn_start(msi_group *g, int fd, const struct sockaddr *peer, socklen_t plen,
                   int connecting, ms_conn **out);
/* Every connection of g: graceful close with reason (server stop). */
void msi_group_close_all(msi_group *g, int reason, int abortive);
/* Calls fn for each live connection of g; fn may end any of them. */
void msi_group_foreach(msi_group *g, void (*fn)(ms_conn *c, void *arg), void *arg);
/* Sets TCP_NODELAY and keepalive on a TCP socket as l says (a listener
 * too: accepted sockets inherit them). 0 or the first error. */
int msi_sock_options(int fd, const ms_conn_limits *l);
void msi_log(msi_group *g, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* conn.c, for conn_blocking.c: the steps of a connection the blocking
 * driver keeps on its stack (never freed, its fd never closed; held from
 * init to end, so nothing ends it underneath the driver). */
void msi_conn_stack_init(ms_conn *c, msi_group *g, int fd);
/* on_open. */
void msi_conn_stack_open(ms_conn *c);
/* 1 while it is open for input. */
int msi_conn_stack_reading(const ms_conn *c);
/* Room in c->in for more input: 0, or the code c is now ending with. */
int msi_conn_stack_room(ms_conn *c);
/* n bytes were read into c->in: delivers the whole messages. */
void msi_conn_stack_input(ms_conn *c, size_t n);
/* The peer's end of stream. */
void msi_conn_stack_eof(ms_conn *c);
void msi_conn_stack_fail(ms_conn *c, int reason);
/* 1 after a graceful close shut its write side: input is to be drained. */
int msi_conn_stack_lingering(const ms_conn *c);
/* Ends c: a clean end whose write side is still open shuts it first (TLS:
 * close_notify), then on_close. Returns the reason on_close got. */
int msi_conn_stack_end(ms_conn *c);

/* server.c, for conn.c: a connection of srv ended (c->reason says why). */
void msi_server_conn_closed(ms_server *srv, ms_conn *c);

#endif
