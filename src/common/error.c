/* error.c: the error table's text and names. */
#include "msgsock/common.h"

#include <stdio.h>
#include <string.h>

const char *ms_strerror(int err)
{
    static _Thread_local char buf[96];
    switch (err) {
    case MS_OK: return "Success";
#define MS_ERR_STR(name, value, msg) case MS_##name: return msg;
        MS_ERRNO_MAP(MS_ERR_STR)
#undef MS_ERR_STR
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        /* strerror_r's GNU form may return a static string instead of buf. */
        char tmp[80];
        const char *s = strerror_r(-err, tmp, sizeof tmp);
        snprintf(buf, sizeof buf, "%s", s);
    } else {
        snprintf(buf, sizeof buf, "unknown error %d", err);
    }
    return buf;
}

const char *ms_err_name(int err)
{
    switch (err) {
    case MS_OK: return "MS_OK";
#define MS_ERR_NAME(name, value, msg) case MS_##name: return "MS_" #name;
        MS_ERRNO_MAP(MS_ERR_NAME)
#undef MS_ERR_NAME
    default:
        return "MS_UNKNOWN";
    }
}

const char *ms_version(void) { return MS_VERSION_STRING; }
