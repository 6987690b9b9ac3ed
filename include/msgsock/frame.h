/* msgsock/frame.h: message framing codecs (layer 1). */
#ifndef MSGSOCK_FRAME_H
#define MSGSOCK_FRAME_H
#include "common.h"
#endif
