/* tutorial_app.h: the tutorial's app-server logic without I/O: search table, request -> response bytes. */
#ifndef MSGSOCK_CLI_TUTORIAL_APP_H
#define MSGSOCK_CLI_TUTORIAL_APP_H

#include "msgsock.h"

#include <jansson.h>

/* A growable byte buffer. Zero-initialise; cli_app_buf_free() releases it. */
typedef struct cli_app_buf {
    uint8_t *data;
    size_t len, cap;
} cli_app_buf;

/* Appends n bytes; 0 or MS_ENOMEM (the buffer is unchanged then). */
int cli_app_buf_put(cli_app_buf *b, const void *p, size_t n);
/* Makes room for n more bytes past len; 0 or MS_ENOMEM. */
int cli_app_buf_reserve(cli_app_buf *b, size_t n);
/* Drops the first n bytes (n <= len), keeping the rest. */
void cli_app_buf_consume(cli_app_buf *b, size_t n);
void cli_app_buf_free(cli_app_buf *b);

/* The search table: value -> answer, both UTF-8 strings. */
typedef struct cli_app_table cli_app_table;

/* The tutorial's table (morpheus, ring, and the dog emoji). The caller owns
 * *out until cli_app_table_free(). 0 or MS_ENOMEM. */
int cli_app_table_default(cli_app_table **out);
/* Loads a table from a file holding one JSON object whose values are all
 * strings. On failure returns a negative code and writes a sentence naming
 * the problem (and line/column for bad JSON) into err. */
int cli_app_table_load(cli_app_table **out, const char *path, char *err, size_t errcap);
void cli_app_table_free(cli_app_table *t);
/* The answer for value[0..len), or NULL. Valid while t lives. */
const char *cli_app_table_lookup(const cli_app_table *t, const char *value, size_t len);

/*
 * Answers one decoded APP request (req->app must be set) as the tutorial's
 * app-server does, appending the whole response message (2-byte length,
 * JSON header, content) to out. The request stays the caller's; nothing of
 * it is kept. A text/json request (content-type exactly "text/json") is
 * read with cli_app_load_json and its "action"
 * and "value" read as Python's dict.get() reads them, the answer formatting
 * the value with Python's str(). Returns 0; MS_ENOMEM (out unchanged); or
 * MS_EBADCONTENT when cli_app_load_json refuses a text/json request: the
 * connection should then be closed. On MS_EBADCONTENT, *why (if why is not NULL) is a static phrase
 * saying which.
 *
 * This is the whole per-message logic: a blocking loop and an event
 * server's on_message callback both call it and send out's new bytes.
 */
int cli_app_respond(const cli_app_table *t, const ms_frame *req, cli_app_buf *out,
                    const char **why);

/*
 * Appends the request the tutorial's app-client sends for action and value
 * (NUL-terminated) to out: action "search" gives a text/json message with
 * content {"action": "search", "value": VALUE}; any other action a
 * binary/custom-client-binary-type message whose content is action's bytes
 * followed by value's. Returns 0, MS_EINVAL (a search value that is not
 * UTF-8) or MS_ENOMEM; out is unchanged on failure.
 */
int cli_app_request(cli_app_buf *out, const char *action, const char *value);

/* Whether a message's content-type is exactly "text/json" (all its bytes). */
int cli_app_is_json(const ms_app_header *h);

/*
 * The JSON object in a text/json message, as the tutorial's _json_decode
 * reads it: the content decoded with the codec Python would use for its
 * content-encoding (Python's name rules: case, '-', '_' and spaces alike,
 * its aliases such as latin1, l1, utf8, u16). Known: utf-8, utf-8-sig,
 * latin-1, ascii, cp1252, utf-16 and utf-32 (which must start with a BOM,
 * as io.TextIOWrapper wants), utf-16/32-le/-be. On success *out is the
 * caller's (json_decref). Returns 0, MS_ENOMEM, or MS_EBADCONTENT with *why
 * a static phrase naming the request's (response 0) or the response's
 * content: unknown encoding, bytes invalid in it, not JSON, a number past
 * 64-bit integers or doubles, not an object. Uses at most 3 * msg->len
 * bytes besides jansson's parse.
 */
int cli_app_load_json(const ms_frame *msg, int response, json_t **out, const char **why);

/* Appends Python's str() of v (NULL: None) to b: strings as they are,
 * True/False/None, floats in repr's shortest form, lists and dicts with
 * repr() of their items. 0 or MS_ENOMEM (b unchanged). */
int cli_app_pystr(cli_app_buf *b, const json_t *v);

/* The framing every app-server and app-client uses: MS_FRAME_APP with the
 * given content limit (0: the codec's default). */
void cli_app_frame_config(ms_frame_config *cfg, size_t max_msg);

#endif
