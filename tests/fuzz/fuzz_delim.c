/* fuzz_delim.c: fuzz target for MS_FRAME_DELIM: d[0] picks the feeding, d[1] the delimiter, d[2] the longest line (0: default), the rest is the stream. */
#include "driver.h"

#include <stdlib.h>
#include <string.h>

int msf_check_delim(const uint8_t *d, size_t n)
{
    if (n < 3)
        return 0;
    ms_frame_config cfg = {.kind = MS_FRAME_DELIM};
    static const char *const delims[8] = {"\n", "\r\n", "aa", "aab", "abab", "", "\r\n\r\n", "abcabd"};
    const char *dl = delims[d[1] % 8];
    cfg.delim = dl;
    cfg.delim_len = *dl ? strlen(dl) : 1; /* "" is the NUL byte */
    cfg.max_line = d[2];
    return msf_check(&cfg, d[0], d + 3, n - 3);
}

#ifdef MSF_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (msf_check_delim(d, n) < 0)
        abort();
    return 0;
}
#endif
