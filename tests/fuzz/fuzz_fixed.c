/* fuzz_fixed.c: fuzz target for MS_FRAME_FIXED: d[0] picks the feeding, d[1] the length, the rest is the stream. */
#include "driver.h"

#include <stdlib.h>

int msf_check_fixed(const uint8_t *d, size_t n)
{
    if (n < 2)
        return 0;
    ms_frame_config cfg = {.kind = MS_FRAME_FIXED};
    cfg.fixed_len = 1 + d[1] % 64u;
    return msf_check(&cfg, d[0], d + 2, n - 2);
}

#ifdef MSF_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (msf_check_fixed(d, n) < 0)
        abort();
    return 0;
}
#endif
