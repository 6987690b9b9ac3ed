/* bench_proto.h: request building and reply checking for the framed protocols of `msgsock bench`. */
#ifndef MSGSOCK_BENCH_PROTO_H
#define MSGSOCK_BENCH_PROTO_H

#include "bench.h"

enum { BENCH_BAD_DATA = 1, BENCH_BAD_PROTO = 2 };

/* The payload of request seq on connection id: o->size bytes of the
 * shared pattern, so the reply can be checked without keeping a copy. */
const uint8_t *bench_payload(const bench_shared *sh, int id, uint64_t seq);
/* A buffer of this many bytes holds any one request. */
size_t bench_proto_request_max(const bench_opts *o);
/* Writes request seq of connection id, framed, into out. Returns its
 * length or a negative MS_E* code. f is the connection's framer. */
ssize_t bench_proto_request(const bench_shared *sh, const ms_framer *f, int id, uint64_t seq,
                            uint8_t *out, size_t cap);
/* Checks one decoded reply to request seq: 0, BENCH_BAD_DATA (wrong
 * content) or BENCH_BAD_PROTO (wrong type, undecodable content). */
int bench_proto_check(const bench_shared *sh, int id, uint64_t seq, const ms_frame *fr);
/* A framer for the protocol (NULL in *out for echo). 0 or MS_E*. */
int bench_proto_framer(const bench_opts *o, ms_framer **out);

#endif
