/* msgsock/conn.h: buffered connections and servers (layer 4). */
#ifndef MSGSOCK_CONN_H
#define MSGSOCK_CONN_H
#include "common.h"
#include "net.h"
#include "loop.h"
#include "frame.h"
#endif
