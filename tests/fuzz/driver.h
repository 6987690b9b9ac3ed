/* driver.h: feeds a framer a stream in chosen pieces against a guard page; shared by the fuzz targets and the unit tests. */
#ifndef MSF_DRIVER_H
#define MSF_DRIVER_H

#include "msgsock.h"

/* How the stream arrives. */
enum msf_mode {
    MSF_WHOLE,   /* all at once */
    MSF_BYTES,   /* one byte at a time */
    MSF_RANDOM,  /* pieces of 1..max_chunk bytes from a PRNG seeded with seed */
    MSF_SPLITS   /* cut at the offsets in cuts[0..ncuts), ascending */
};

typedef struct msf_feed {
    enum msf_mode mode;
    uint64_t seed;
    size_t max_chunk;
    const size_t *cuts;
    size_t ncuts;
} msf_feed;

/*
 * What a run produced, as bytes that compare with memcmp: one record per
 * message (payload; for APP also the three strings, content-length and
 * the raw JSON unless no_json), then one record with the final status
 * (the error, or decode_eof's answer). For RAW only the concatenated
 * payload is kept, because RAW's message boundaries are the arrival
 * boundaries. msgs_len is where the final status record starts.
 */
typedef struct msf_log {
    uint8_t *buf;
    size_t len, cap;
    size_t msgs_len;
    size_t count;      /* messages */
    long long status;  /* the final status */
    int no_json;
} msf_log;

void msf_log_free(msf_log *log);

/* Decodes s[0..n) with a fresh framer for cfg, fed as feed says, each
 * decode's input ending at a guard page. Checks the decoder's contract on
 * every call (consumed within the input, message inside what was consumed,
 * *need beyond what it was given). Returns 0, or -1 after printing what
 * broke to stderr. */
int msf_run(const ms_frame_config *cfg, const uint8_t *s, size_t n, const msf_feed *feed,
            msf_log *log);

/* Copies s[0..n) so its last byte is the last one before a PROT_NONE page;
 * the copy is valid until the next call. */
const uint8_t *msf_guard(const uint8_t *s, size_t n);

/* The fuzz check: decodes s whole and in the pieces sel picks, requires the
 * same messages and final status, then re-encodes the messages and requires
 * them to decode back unchanged. Returns 0 or -1 (printed). */
int msf_check(const ms_frame_config *cfg, uint8_t sel, const uint8_t *s, size_t n);

/* The per-target entry points: the first bytes pick the configuration and
 * the feeding, the rest is the stream. Return 0 or -1. */
int msf_check_raw(const uint8_t *d, size_t n);
int msf_check_fixed(const uint8_t *d, size_t n);
int msf_check_delim(const uint8_t *d, size_t n);
int msf_check_len16(const uint8_t *d, size_t n);
int msf_check_len32(const uint8_t *d, size_t n);
int msf_check_len64(const uint8_t *d, size_t n);
int msf_check_decimal(const uint8_t *d, size_t n);
int msf_check_close(const uint8_t *d, size_t n);
int msf_check_app(const uint8_t *d, size_t n);

#endif
