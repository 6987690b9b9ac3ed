/* app.h: the JSON-header application protocol, shared by frame.c and app.c. */
#ifndef MSI_CODEC_APP_H
#define MSI_CODEC_APP_H

#include "msgsock/frame.h"

#include <jansson.h>

/* The three string values of a header, in the order of ms_app_header. */
enum { MSI_APP_BYTEORDER, MSI_APP_TYPE, MSI_APP_ENCODING, MSI_APP_NSTR };

/* What an APP decoder remembers between calls: once the JSON header of the
 * current message is parsed, it is not parsed again while content arrives.
 * Of jansson's parse only the three header strings are kept (at most the
 * header's length in bytes), until the next header, reset or free. */
typedef struct msi_app_state {
    int have_hdr;
    size_t hdr_len;
    uint64_t content_length;
    json_t *str[MSI_APP_NSTR];
    ms_app_header pub;
} msi_app_state;

/* Drops the kept header strings; the state is then as at create. */
void msi_app_release(msi_app_state *st);

/* One step of ms_framer_decode() for MS_FRAME_APP; *need is never NULL. */
ssize_t msi_app_decode(msi_app_state *st, size_t max_header, size_t max_msg,
                       const uint8_t *buf, size_t len, ms_frame *out, size_t *need);

/* Checks one header's JSON text and keeps its three strings and its
 * content-length in st. Returns 0 or the MS_E* of the decoder. */
int msi_app_parse_header(msi_app_state *st, const uint8_t *json, size_t len,
                         size_t max_msg);

#endif
