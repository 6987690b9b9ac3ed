/* app_client.c: asks an app-server to search for a value and prints the
 * answer, as the tutorial's app-client does: one request, one response.
 *
 *     app_client HOST:PORT VALUE      e.g. app_client 127.0.0.1:65432 morpheus
 *
 * Blocking calls only, each bounded by TIMEOUT_MS, so a dead server ends the
 * program with "Operation timed out" instead of hanging it. */
#include <msgsock.h>

#include <stdio.h>
#include <string.h>

#define TIMEOUT_MS 10000

/* Appends s to out as the body of a JSON string; returns the length used. */
static size_t json_escape(char *out, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            n += (size_t)sprintf(out + n, "\\%c", ch);
        else if (ch < 0x20)
            n += (size_t)sprintf(out + n, "\\u%04x", ch);
        else
            out[n++] = (char)ch;
    }
    return n;
}

/* Prints the string after "result": in the server's JSON answer, undoing its
 * escapes (it escapes only '"', '\\' and control characters). */
static int print_result(const char *json, size_t len)
{
    const char *key = "{\"result\": \"";
    size_t i = strlen(key);
    if (len < i || memcmp(json, key, i) != 0)
        return -1;
    fputs("Got result: ", stdout);
    for (; i < len && json[i] != '"'; i++) {
        char ch = json[i];
        if (ch == '\\' && i + 1 < len) {
            unsigned u;
            switch (ch = json[++i]) {
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'u': /* only control characters come as \u00XX */
                if (i + 4 >= len || sscanf(json + i + 1, "%4x", &u) != 1 || u >= 0x80)
                    return -1;
                ch = (char)u;
                i += 4;
                break;
            default: break; /* '"', '\\', '/' stand for themselves */
            }
        }
        putchar(ch);
    }
    putchar('\n');
    return 0;
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "app_client: %s: %s\n", what, ms_strerror(err));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strlen(argv[2]) > 1000) {
        fprintf(stderr, "usage: app_client HOST:PORT VALUE (at most 1000 bytes)\n");
        return 2;
    }

    /* The request: 2-byte length, JSON header, JSON content. */
    char content[6100];
    size_t clen = (size_t)sprintf(content, "{\"action\": \"search\", \"value\": \"");
    clen += json_escape(content + clen, argv[2]);
    clen += (size_t)sprintf(content + clen, "\"}");
    uint8_t header[256];
    ssize_t hlen = ms_app_encode_header(header, sizeof header, "text/json", "utf-8", NULL, clen);
    if (hlen < 0)
        return fail("header", (int)hlen);

    int fd = ms_connect_text(argv[1], TIMEOUT_MS, 0);
    if (fd < 0)
        return fail(argv[1], fd);
    /* One writev for both parts; ms_sendv_all finishes a partial send. */
    struct iovec iov[2] = {{header, (size_t)hlen}, {content, clen}};
    int rc = ms_sendv_all(fd, iov, 2, TIMEOUT_MS, NULL);
    if (rc < 0)
        return fail("send", rc);

    /* The answer may come in any number of pieces: the reader keeps what
     * arrived and returns once a whole message is there. */
    ms_frame_config fc = {.kind = MS_FRAME_APP, .max_msg = 1 << 20};
    ms_msg_reader *reader;
    if ((rc = ms_msg_reader_create(&reader, &fc)) < 0)
        return fail("reader", rc);
    ms_frame msg;
    rc = ms_recv_msg(fd, reader, &msg, TIMEOUT_MS);
    ms_sock_close(fd, 0);
    int printed = rc == 0 ? print_result((const char *)msg.data, msg.len) : 0;
    ms_msg_reader_free(reader); /* msg pointed into it: used up by now */
    if (rc < 0)
        return fail("response", rc);
    if (printed < 0)
        return fail("response is not a search result", MS_EMALFORMED);
    return 0;
}
