/* helper_thread.h: checks made on threads other than the test's own. */
#ifndef MS_TEST_HELPER_THREAD_H
#define MS_TEST_HELPER_THREAD_H

/* Checks made on a thread other than the test's own (server loops,
 * handlers, helper threads), where a cmocka assertion would jump across
 * threads: a failed check is recorded (the first one's text kept) and the
 * test's thread fails on it in offthread_verify(), after joining or
 * stopping that thread. Evaluates to cond. */
#define offthread_check(cond, ...) \
    ((cond) ? 1 : (offthread_fail(__FILE__, __LINE__, __VA_ARGS__), 0))
void offthread_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* On the test's thread: fails the test with the first failed check
 * recorded since the last call (or offthread_reset), if any. */
void offthread_verify(void);
/* Forgets what was recorded (a test's start: a failed test may have left some). */
void offthread_reset(void);

#endif
