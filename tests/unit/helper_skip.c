/* helper_skip.c: skipping a test visibly, with the reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helper_skip.h"

#include <stdio.h>
#include <stdlib.h>

void skip_because(const char *test, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("SKIP-REASON %s: ", test);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    skip();
    abort(); /* skip() jumps out of the test; this is never reached */
}
