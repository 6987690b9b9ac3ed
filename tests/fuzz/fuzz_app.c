/* fuzz_app.c: fuzz target for MS_FRAME_APP: d[0] picks the feeding, d[1] the JSON header limit (0xff: 65535, the largest), d[2] the content limit (0: defaults), the rest is the stream. */
#include "driver.h"

#include <stdlib.h>

int msf_check_app(const uint8_t *d, size_t n)
{
    if (n < 3)
        return 0;
    ms_frame_config cfg = {.kind = MS_FRAME_APP};
    cfg.max_header = d[1] == 0xff ? 65535 : d[1];
    cfg.max_msg = d[2];
    return msf_check(&cfg, d[0], d + 3, n - 3);
}

#ifdef MSF_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (msf_check_app(d, n) < 0)
        abort();
    return 0;
}
#endif
