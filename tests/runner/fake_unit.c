/* fake_unit.c: a cmocka binary that behaves as FAKE_MODE says, for tests/runner/test_run.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void test_ok(void **state)
{
    (void)state;
    /* Passes only when no stray variable narrows the suite. */
    assert_null(getenv("MSGSOCK_TEST"));
}

static void test_skips(void **state)
{
    (void)state;
    printf("SKIP-REASON test_skips: no frobnicator here\n");
    skip();
}

static void test_fails(void **state)
{
    (void)state;
    assert_int_equal(1, 2);
}

static void test_dies(void **state)
{
    (void)state;
    fflush(stdout);
    raise(SIGKILL);
}

static void test_hangs(void **state)
{
    (void)state;
    fflush(stdout);
    for (;;)
        pause();
}

static int setup_fails(void **state)
{
    (void)state;
    return -1;
}

int main(void)
{
#if FAKE_MODE == 1 /* passes and skips */
    const struct CMUnitTest t[] = {cmocka_unit_test(test_ok), cmocka_unit_test(test_skips)};
    return cmocka_run_group_tests(t, NULL, NULL);
#elif FAKE_MODE == 2 /* runs no test */
    const struct CMUnitTest t[] = {cmocka_unit_test(test_ok)};
    cmocka_set_test_filter("nothing_has_this_name");
    return cmocka_run_group_tests(t, NULL, NULL);
#elif FAKE_MODE == 3 /* one failure, then killed mid-test */
    const struct CMUnitTest t[] = {cmocka_unit_test(test_ok), cmocka_unit_test(test_fails),
                                   cmocka_unit_test(test_dies), cmocka_unit_test(test_ok)};
    return cmocka_run_group_tests(t, NULL, NULL);
#elif FAKE_MODE == 4 /* hangs */
    const struct CMUnitTest t[] = {cmocka_unit_test(test_ok), cmocka_unit_test(test_hangs)};
    return cmocka_run_group_tests(t, NULL, NULL);
#elif FAKE_MODE == 5 /* every case passes, the exit status does not */
    const struct CMUnitTest t[] = {cmocka_unit_test(test_ok)};
    return cmocka_run_group_tests(t, NULL, NULL) + 3;
#elif FAKE_MODE == 6 /* a group whose setup fails, then a group that passes */
    const struct CMUnitTest t[] = {cmocka_unit_test(test_ok), cmocka_unit_test(test_ok)};
    int failed = cmocka_run_group_tests_name("a", t, setup_fails, NULL);
    return failed + cmocka_run_group_tests_name("b", t, NULL, NULL);
#else
#error FAKE_MODE
#endif
}
