/* conn_int.h: what the conn*.c files share, and what the owners of groups (a higher layer) may use: buffers, groups, the connection. */
#ifndef MSI_CONN_INT_H
#define MSI_CONN_INT_H

#include "msgsock/conn.h"
#include "transport/transport.h"
#include "loop/ring.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>

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
/* The size of a fresh input buffer for a connection whose last read filled
 * its buffer (a bulk sender: a 64 KiB message in one read, not four). */
#define MSI_BUF_BIG (65536 - sizeof(msi_buf) - 16)
/* Free MSI_BUF_BIG buffers a group keeps (one is in use per read turn). */
#define MSI_BIGCACHE_MAX 4

msi_buf *msi_buf_new(size_t cap);
/* Grows b to hold at least cap bytes, moving live bytes to the front.
 * Returns the (possibly moved) buffer or NULL (b is untouched then). */
msi_buf *msi_buf_reserve(msi_buf *b, size_t cap);

/* ---- groups ----
 * What the connections of one loop with one configuration share: the
 * handler, limits, framing, the lists ordered by deadline and the one sweep
 * timer, and caches of buffers and framers so that the echo path does not
 * allocate per message. An accepting owner has one group per loop; each
 * client connection has its own. */
enum { MSI_DL_MSG = 0, MSI_DL_LINGER, MSI_DL_CONNECT, MSI_DL_N };

/* Every group on a loop, so every connection it drives (conn_loop.c). */
typedef struct msi_loop_conns msi_loop_conns;

typedef struct msi_group msi_group;
struct msi_group {
    ms_loop *loop;            /* NULL: driven by blocking I/O (conn_blocking.c) */
    msi_ring *ring;           /* the loop's io_uring; plain connections do their I/O
                               * through it (NULL: readiness I/O) */
    /* The group's owner (the layer above: who accepts) and its hooks, each NULL for
     * none: on_conn_end after c's on_close (c->reason says why),
     * on_conn_proxied once c's PROXY header is in (its peer is the
     * client's). The connection layer knows nothing else of the owner. */
    void *owner;
    void (*on_conn_end)(void *owner, ms_conn *c);
    void (*on_conn_proxied)(void *owner, ms_conn *c);
    int accepting;            /* its connections are accepted ones: TLS server
                               * side, PROXY header, options from the listener */
    msi_loop_conns *lc;       /* the loop's groups (NULL: blocking, or detached) */
    struct msi_group *lprev, *lnext; /* lc's list */
    const msi_transport *tops;
    void *tctx;               /* the transport's context (TLS), NULL for plain */
    ms_framer *enc;           /* encodes sends; never decodes */
    ms_conn_callbacks cb;
    void *user;
    ms_conn_limits lim;       /* defaults resolved */
    ms_frame_config frame;    /* delim points at delim below */
    uint8_t delim[MS_FRAME_MAX_DELIM];
    size_t in_max;            /* largest input buffer a message may need */

    ms_timer *sweep;
    int64_t sweep_due;        /* when sweep fires, INT64_MAX if disarmed */
    /* Every connection, least recently active first. */
    ms_conn *all_head, *all_tail;
    /* Deadline lists, each first-in first-out with one duration. */
    ms_conn *dl_head[MSI_DL_N], *dl_tail[MSI_DL_N];
    int64_t dl_dur[MSI_DL_N];

    msi_buf *bcache;          /* free MSI_BUF_SIZE buffers */
    int nbcache, maxbcache;
    msi_buf *bigcache;        /* free MSI_BUF_BIG buffers, at most
                               * min(maxbcache, MSI_BIGCACHE_MAX) */
    int nbigcache;
    ms_framer **fpool;        /* framers at a message boundary */
    int nfpool, capfpool;

    int nconns;
    int draining;             /* the group drains: each connection is closed
                               * gracefully once idle (msi_conn_drain_idle) */
    int64_t drain_start;      /* when it began (msi_conn_now) */
    const atomic_int *drain_flag; /* blocking driver: the group drains once this
                               * becomes 1 (NULL: never) */
    int owned_by_conn;        /* client group: freed with its connection */
    int sockopts_from_listener; /* accepting: the listener has nodelay and keepalive
                               * set, and Linux copies them to accepted sockets */
    ms_addr *caddrs;          /* client: addresses still to try */
    int ncaddrs, icaddr;
    struct msi_resolve *resolve; /* client: its name lookup while pending */
    ms_timer *defer;          /* client: ends it from the loop (a connect that failed
                               * inside ms_conn_connect) */
};

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
    uint32_t lingered;        /* bytes discarded while lingering (msi_conn_linger_input) */
    uint16_t flags;
    uint8_t state;
    int8_t dl;
    uint8_t depth;
    uint8_t peer_family;
    uint16_t peer_port;       /* network order */
    uint8_t peer_ip[16];
};

/* ms_conn.flags */
enum {
    MSI_F_PAUSED = 1,     /* reading held by backpressure */
    MSI_F_RDEOF = 2,      /* the peer's end of stream was seen */
    MSI_F_DEAD = 4,       /* ends as soon as no callback of it is running */
    MSI_F_ABORTIVE = 8,   /* end with a reset rather than a FIN */
    MSI_F_INALL = 16,     /* linked in g->all */
    MSI_F_STACK = 32,     /* ms_conn_serve_fd's: neither freed nor its fd closed */
    MSI_F_HANDSHAKE = 64, /* connected; the transport's handshake runs (state CONNECTING) */
    MSI_F_RING = 128,     /* reads and writes through the loop's io_uring (ring_h) */
    MSI_F_EOFPEND = 256,  /* the end of stream came while paused: taken once resumed */
    MSI_F_BIGREAD = 512,  /* its last read filled the buffer: the next fresh one is MSI_BUF_BIG */
    MSI_F_PROXYHDR = 1024, /* its PROXY header is still to come: no on_open yet */
};

/* How long an accepted connection has for its PROXY header (lim resolved). */
static inline int msi_conn_proxy_ms(const ms_conn_limits *lim)
{
    return lim->msg_timeout_ms > 0 && lim->msg_timeout_ms < MS_CONN_PROXY_TIMEOUT_MS
               ? lim->msg_timeout_ms
               : MS_CONN_PROXY_TIMEOUT_MS;
}

/* 1 if every ms_toggle of lim is one the enum names. */
static inline int msi_limits_toggles_ok(const ms_conn_limits *lim)
{
    return (unsigned)lim->nodelay <= MS_OFF && (unsigned)lim->keepalive <= MS_OFF;
}

/* conn_group.c, for the group owners and client connects. MS_EINVAL for a bad framing or
 * a toggle of lim outside ms_toggle. */
int msi_group_init(msi_group *g, ms_loop *loop, const ms_frame_config *frame,
                   const ms_conn_limits *lim, const ms_conn_callbacks *cb, void *user);
void msi_group_fini(msi_group *g);
/* A group made without a loop (an accepting one, before it starts) put on loop:
 * its sweep timer made there and the group listed on it (msi_loop_group_add);
 * msi_group_detach undoes both. On loop's thread. */
int msi_group_attach(msi_group *g, ms_loop *loop);
void msi_group_detach(msi_group *g);
/* Every connection of g: graceful close with reason (abortive: a reset). */
void msi_group_close_all(msi_group *g, int reason, int abortive);
/* Makes g's connections TLS with ctx (a reference is taken) through
 * msi_transport_tls. A client checks server_name, else the context's name,
 * else the host part of addr; an accepting group (server_name and addr
 * NULL) bounds its PROXY header and then its handshake by one deadline
 * list. 0, MS_EINVAL (a context of the other side, a name too long) or
 * MS_ENOMEM. */
int msi_group_tls_use(msi_group *g, struct ms_tls_ctx *ctx, const char *addr,
                      const char *server_name);
/* The same for the blocking driver's group (no loop), with either side's
 * context: the handshake bounded by the context's time
 * (dl_dur[MSI_DL_CONNECT]), close_notify by linger_ms (conn.c). */
int msi_group_tls_blocking_use(msi_group *g, struct ms_tls_ctx *ctx);
/* Calls fn for each live connection of g; fn may end any of them.
 * Returns the number of calls. */
int msi_group_foreach(msi_group *g, void (*fn)(ms_conn *c, void *arg), void *arg);

/* conn_loop.c: a loop's groups. Every connection a loop drives is of one
 * of them (an accepting group per loop, a client's own), so listing each
 * group of a loop as it is made (msi_group_init) lists them all, at no cost
 * per connection. The list is hung on the loop at its first group; when
 * the loop is freed every connection still on it is ended (MS_ECLOSED). */
/* Lists g (g->loop set) on its loop. Returns 0, MS_ECLOSED (ms_loop_free
 * is ending the loop's connections: no new group) or MS_ENOMEM. */
int msi_loop_group_add(msi_group *g);
/* Unlists g, if listed (msi_group_fini). */
void msi_loop_group_remove(msi_group *g);

/* A connection of a draining group that has sent nothing yet when the
 * drain begins (or that comes during it) gets this long to start its
 * request before it counts as idle. */
#define MSI_DRAIN_FIRST_MS 1000

/* conn.c, for the owners of groups */
/* While g drains: 1 if c is open with no partial message and has had a
 * message, or MSI_DRAIN_FIRST_MS went by since the drain (or its
 * accept) without one; it is then to be closed gracefully. */
int msi_conn_drain_idle(const ms_conn *c, int64_t now);
/* When a fresh connection of g stops counting as busy (see above). */
int64_t msi_conn_drain_first_due(const ms_conn *c);
/* Wraps a connected or connecting descriptor (taken over, also on failure:
 * then closed). connecting: wait for writability and SO_ERROR first.
 * *out is NULL if the connection already ended inside on_open. */
int msi_conn_start(msi_group *g, int fd, const struct sockaddr *peer, socklen_t plen,
                   int connecting, ms_conn **out);
/* Sets TCP_NODELAY and keepalive on a TCP socket as l says (a listener
 * too: accepted sockets inherit them). 0 or the first error. */
int msi_sock_options(int fd, const ms_conn_limits *l);

/* conn_stack.c, for conn_blocking.c: the steps of a connection the blocking
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
/* Milliseconds left for its PROXY header, or -1 if none is awaited. */
int msi_conn_stack_header_left(const ms_conn *c, int64_t now);
/* 1 after a graceful close shut its write side: input is to be drained. */
int msi_conn_stack_lingering(const ms_conn *c);
/* Ends c: a clean end whose write side is still open shuts it first (TLS:
 * close_notify), then on_close. Returns the reason on_close got. */
int msi_conn_stack_end(ms_conn *c);

/* conn_blocking.c: ms_conn_serve_fd_tls with a drain flag (NULL: none):
 * once it is 1 the connection drains as a draining group's do; checked at
 * least every 100 ms while the driver waits for input. */
int msi_conn_serve_fd_drain(int fd, struct ms_tls_ctx *tls, const ms_frame_config *frame,
                            const ms_conn_limits *lim, const ms_conn_callbacks *cb, void *user,
                            const atomic_int *drain);

/* ---- between the conn*.c files ---- */

/* conn.c: ending and starting. */
/* Ends c with an error: queued output is discarded, the socket reset. */
void msi_conn_fail(ms_conn *c, int reason);
/* Ends c cleanly (its output is out, or it never had any). */
void msi_conn_finish(ms_conn *c);
/* Graceful close: output drains, then the write side is shut and input
 * drained for the linger time. reason is what on_close gets. */
void msi_conn_begin_close(ms_conn *c, int reason);
/* A closing connection's next step once its output may have drained. */
void msi_conn_progress_close(ms_conn *c);
/* The one linger policy every driver feeds; each keeps only its own way
 * to read and to wait, and its deadline (the sweep's MSI_DL_LINGER on a
 * loop, the blocking driver's wait). While c lingers (MS_CONN_LINGER) it
 * read n bytes, now discarded: they count in bytes_in and as activity
 * (the idle list), and past MSI_LINGER_DISCARD in all c ends cleanly, for
 * a peer that keeps sending is not reading the reply either. Returns 1
 * while c lingers on, 0 once it ends. */
int msi_conn_linger_input(ms_conn *c, size_t n);
/* While c lingers the read found the peer's end of stream or an error:
 * c ends cleanly. */
void msi_conn_linger_end(ms_conn *c);
/* Unhooks c, runs on_close and frees c (and a client's group) unless
 * F_STACK. Only with no callback of c running (depth 0). */
void msi_conn_destroy(ms_conn *c);
void msi_conn_set_peer(ms_conn *c, const struct sockaddr *sa, socklen_t len);
/* Before any byte moves (a TLS handshake too), so no flight waits on Nagle. */
void msi_conn_set_options(ms_conn *c);
/* on_open, then the first interest (or flush of what on_open queued). */
void msi_conn_opened(ms_conn *c);

/* What a lingering connection discards at most, whichever driver runs it. */
#define MSI_LINGER_DISCARD (4u << 20)

/* conn_sweep.c: (re)arms g's one timer for the earliest deadline. */
void msi_conn_sweep_arm(msi_group *g);

/* conn_in.c: the input path. */
/* Input fully consumed: give the buffer and the framer back. */
void msi_conn_in_release(ms_conn *c);
/* Room to read into: 0, or the code c is now ending with (MS_ETOOLARGE:
 * a graceful close; MS_ENOMEM: a failure). */
int msi_conn_in_room(ms_conn *c);
/* Cuts and delivers the whole messages in c->in (readiness reads,
 * msi_conn_stack_input, backpressure lifted, ring input kept in c->in). */
void msi_conn_parse(ms_conn *c);
/* The peer's end of stream: the last message (MS_FRAME_CLOSE), then close. */
void msi_conn_eof(ms_conn *c);
/* The drivers of a loop, thin adapters over the one cut (c->in's bytes or
 * a completion's) and the one linger policy above. */
/* Readiness: one budgeted turn of reads. */
void msi_conn_readable(ms_conn *c);
/* Bytes received through the ring (p valid for the call only: whole
 * messages are cut from it, the rest copied into c->in). */
void msi_conn_ring_input(ms_conn *c, const uint8_t *p, size_t n);
/* The ring's receive ended: res 0 (the peer's end of stream) or an error. */
void msi_conn_ring_eof(ms_conn *c, int res);

/* conn_out.c: the output path. */
/* Readiness: one writev of the head of the output queue. */
void msi_conn_flush(ms_conn *c);
/* The kernel took w bytes off the head of the output queue. */
void msi_conn_out_taken(ms_conn *c, size_t w);

/* conn_io.c: interest and the readiness and io_uring callbacks. */
/* Tells the loop (or the ring) what c now waits for. */
void msi_conn_interest(ms_conn *c);
/* Moves c onto the loop's ring if it can; 1 if it did. watched: c's fd is
 * watched by the loop (unwatched then). */
int msi_conn_ring_adopt(ms_conn *c, int watched);
/* The loop's readiness callback of every connection (arg: the ms_conn). */
void msi_conn_io(ms_loop *loop, int fd, int events, void *arg);
/* The socket's pending error: 0 or a negative code. */
int msi_conn_sock_error(int fd);

/* conn_in.c: the PROXY header read raw off c's socket, ahead of a transport
 * that reads the socket itself (TLS, whose ClientHello follows it): the
 * bytes are peeked and only the header's own are taken, so not one byte
 * after it is lost to the transport; c->in holds the part read so far.
 * Returns 1 once it is in (c's peer is its client), 0 while more must
 * come (wait for readable), -1 once c is ending (bad header, error, or an
 * end of stream: clean before the first byte, MS_EPROXYSHORT after). */
int msi_conn_proxy_raw(ms_conn *c);

/* conn_connect.c: a client's connect and either side's handshake. */
/* A step of the transport's handshake; on_open once it is done. */
void msi_conn_handshake(ms_conn *c);
/* A connect finished (events from the loop): handshake, open, or the next address. */
void msi_conn_connected(ms_conn *c, int events);
/* Frees what a client group holds for its connect (msi_group_fini). */
void msi_conn_connect_fini(msi_group *g);

/* Small steps of the per-message path, inline so that no call is added
 * where conn.c once made none. */

static inline int64_t msi_conn_now(const msi_group *g)
{
    return g->loop ? ms_loop_now(g->loop) : ms_now_ms();
}

static inline void msi_conn_all_unlink(ms_conn *c)
{
    msi_group *g = c->g;
    if (!(c->flags & MSI_F_INALL))
        return;
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        g->all_head = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    else
        g->all_tail = c->aprev;
    c->aprev = c->anext = NULL;
    c->flags &= (uint16_t)~MSI_F_INALL;
}

static inline void msi_conn_all_append(ms_conn *c)
{
    msi_group *g = c->g;
    c->anext = NULL;
    c->aprev = g->all_tail;
    if (g->all_tail)
        g->all_tail->anext = c;
    else
        g->all_head = c;
    g->all_tail = c;
    c->flags |= MSI_F_INALL;
}

static inline void msi_conn_dl_unlink(ms_conn *c)
{
    msi_group *g = c->g;
    int w = c->dl;
    if (w < 0)
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        g->dl_head[w] = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        g->dl_tail[w] = c->dprev;
    c->dprev = c->dnext = NULL;
    c->dl = -1;
}

/* Puts c at the end of deadline list w, starting its clock at t. */
static inline void msi_conn_dl_append(ms_conn *c, int w, int64_t t)
{
    msi_group *g = c->g;
    msi_conn_dl_unlink(c);
    if (g->dl_dur[w] <= 0 || !g->loop)
        return;
    c->t2 = t;
    c->dl = (int8_t)w;
    c->dnext = NULL;
    c->dprev = g->dl_tail[w];
    if (g->dl_tail[w])
        g->dl_tail[w]->dnext = c;
    else
        g->dl_head[w] = c;
    g->dl_tail[w] = c;
    if (t + g->dl_dur[w] < g->sweep_due)
        msi_conn_sweep_arm(g);
}

/* Activity: c moves to the end of the idle list. */
static inline void msi_conn_touch(ms_conn *c)
{
    msi_group *g = c->g;
    c->active = msi_conn_now(g);
    if (g->lim.idle_timeout_ms > 0 && (c->flags & MSI_F_INALL) && g->all_tail != c) {
        msi_conn_all_unlink(c);
        msi_conn_all_append(c);
    }
}

/* The group's cache of MSI_BUF_SIZE buffers. */
static inline msi_buf *msi_conn_buf_get(msi_group *g)
{
    msi_buf *b = g->bcache;
    if (b) {
        g->bcache = b->next;
        g->nbcache--;
        b->next = NULL;
        b->start = b->len = 0;
        return b;
    }
    return msi_buf_new(MSI_BUF_SIZE);
}

static inline void msi_conn_buf_put(msi_group *g, msi_buf *b)
{
    if (b->cap == MSI_BUF_SIZE && g->nbcache < g->maxbcache) {
        b->next = g->bcache;
        g->bcache = b;
        g->nbcache++;
    } else if (b->cap == MSI_BUF_BIG && g->nbigcache < g->maxbcache &&
               g->nbigcache < MSI_BIGCACHE_MAX) {
        b->next = g->bigcache;
        g->bigcache = b;
        g->nbigcache++;
    } else {
        free(b);
    }
}

static inline int msi_conn_reading_wanted(const ms_conn *c)
{
    if (c->flags & MSI_F_DEAD)
        return 0;
    if (c->state == MS_CONN_LINGER)
        return 1;
    return c->state == MS_CONN_OPEN && !(c->flags & (MSI_F_PAUSED | MSI_F_RDEOF));
}

#endif
