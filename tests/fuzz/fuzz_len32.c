/* fuzz_len32.c: fuzz target for MS_FRAME_LEN32: d[0] picks the feeding, d[1] the payload limit (0: default), the rest is the stream. */
#include "driver.h"

#include <stdlib.h>

int msf_check_len32(const uint8_t *d, size_t n)
{
    if (n < 2)
        return 0;
    ms_frame_config cfg = {.kind = MS_FRAME_LEN32};
    cfg.max_msg = d[1];
    return msf_check(&cfg, d[0], d + 2, n - 2);
}

#ifdef MSF_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (msf_check_len32(d, n) < 0)
        abort();
    return 0;
}
#endif
