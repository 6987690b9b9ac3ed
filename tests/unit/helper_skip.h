/* helper_skip.h: skipping a test visibly, with the reason. */
#ifndef MS_TEST_HELPER_SKIP_H
#define MS_TEST_HELPER_SKIP_H

/* Prints "SKIP-REASON <test>: <reason>" on stdout (flushed; the runner
 * reports it) and skips the current test: cmocka's skip() does not
 * return. Only for a feature that is truly absent here, named in reason. */
void skip_because(const char *test, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#endif
