/* app.h: the JSON-header application protocol, shared by frame.c and app.c. */
#ifndef MSI_CODEC_APP_H
#define MSI_CODEC_APP_H

#include "msgsock.h"

/* What an APP decoder remembers between calls: once the JSON header of the
 * current message is parsed, it is not parsed again while content arrives. */
typedef struct msi_app_state {
    int have_hdr;
    size_t hdr_len;
    uint64_t content_length;
    char byteorder[MS_APP_MAX_STRLEN + 1];
    char content_type[MS_APP_MAX_STRLEN + 1];
    char content_encoding[MS_APP_MAX_STRLEN + 1];
    ms_app_header pub;
} msi_app_state;

/* One step of ms_framer_decode() for MS_FRAME_APP; *need is never NULL. */
ssize_t msi_app_decode(msi_app_state *st, size_t max_header, size_t max_msg,
                       const uint8_t *buf, size_t len, ms_frame *out, size_t *need);

/* Checks one header's JSON text (no allocation beyond jansson's parse) and
 * copies its four values into st. Returns 0 or the MS_E* of the decoder. */
int msi_app_parse_header(msi_app_state *st, const uint8_t *json, size_t len,
                         size_t max_msg);

#endif
