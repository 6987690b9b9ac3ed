/* msg_io.h: what tests may ask a message reader (src/net). */
#ifndef MSI_NET_MSG_IO_H
#define MSI_NET_MSG_IO_H

#include "msgsock/net.h"

/* Bytes r has allocated for received data (0 before its first receive). */
size_t msi_msg_reader_capacity(const ms_msg_reader *r);

#endif
