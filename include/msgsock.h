/*
 * msgsock.h: the one header of libmsgsock, a C toolkit for exchanging
 * messages over sockets. Include this and nothing else; the files under
 * msgsock/ are its sections, in layer order.
 *
 * Conventions, everywhere: names are ms_<object>_<verb>; a function returns
 * 0 or a non-negative count on success and a negative MS_E* code on failure
 * (ms_strerror() explains it); handles are opaque, made by _create and
 * released by _free; if a function that takes a callback fails, the
 * callback is never called.
 */
#ifndef MSGSOCK_H
#define MSGSOCK_H

#ifdef __cplusplus
extern "C" {
#endif

#include "msgsock/common.h"
#include "msgsock/net.h"
#include "msgsock/frame.h"
#include "msgsock/proxy.h"
#include "msgsock/loop.h"
#include "msgsock/tls.h"
#include "msgsock/conn.h"
#include "msgsock/server.h"

#ifdef __cplusplus
}
#endif

#endif
