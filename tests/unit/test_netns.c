/* test_netns.c: connect timeouts and unreachable networks inside a private network namespace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "msgsock.h"

#include "helper_skip.h"

/* 10.213.0.0/24 lives on a discard interface: a SYN sent to 10.213.0.2 is
 * dropped and never answered. The kernel may lack the dummy driver; ifb
 * drops what is sent to it just the same. Nothing leaves the namespace. */
#define SETUP_CMD                                                              \
    "ip link set lo up && "                                                    \
    "{ ip link add d0 type dummy 2>/dev/null || ip link add d0 type ifb; } && " \
    "ip addr add 10.213.0.1/24 dev d0 && ip link set d0 up"

/* Why the tests cannot run here: a skip when the feature is truly absent
 * (not root, no ip command), a failure for anything else. */
static char skip_reason[160], fail_reason[512];

/* 1 if an executable ip is on PATH. */
static int have_ip(void)
{
    const char *path = getenv("PATH");
    char dir[4096];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof dir - 4) {
            snprintf(dir, sizeof dir, "%.*s/ip", (int)n, path);
            if (access(dir, X_OK) == 0)
                return 1;
        }
        path += n + (path[n] == ':');
    }
    return 0;
}

static int enter_namespace(void **state)
{
    (void)state;
    if (unshare(CLONE_NEWNET) < 0) {
        int e = errno;
        snprintf(e == EPERM ? skip_reason : fail_reason, sizeof skip_reason,
                 "cannot create a network namespace: %s%s", strerror(e),
                 e == EPERM ? " (not root)" : "");
        return 0;
    }
    if (!have_ip()) {
        snprintf(skip_reason, sizeof skip_reason, "no ip command on PATH (iproute2)");
        return 0;
    }
    /* Children inherit the namespace, so ip configures this one. */
    int rc = system(SETUP_CMD);
    if (rc != 0)
        snprintf(fail_reason, sizeof fail_reason,
                 "configuring the namespace's discard interface with ip failed (%s %d): %s",
                 WIFEXITED(rc) ? "exit status" : "wait status",
                 WIFEXITED(rc) ? WEXITSTATUS(rc) : rc, SETUP_CMD);
    return 0;
}

#define need_namespace() need_namespace_for(__func__)

static void need_namespace_for(const char *test)
{
    if (fail_reason[0])
        fail_msg("%s", fail_reason);
    if (skip_reason[0])
        skip_because(test, "%s", skip_reason);
}

static void test_connect_timeout_silent_host(void **state)
{
    (void)state;
    ms_addr a;
    need_namespace();
    assert_int_equal(ms_addr_parse(&a, "10.213.0.2:9"), 0);
    int64_t t0 = ms_now_ms();
    int rc = ms_connect(&a, 200, 0);
    int64_t took = ms_now_ms() - t0;
    if (rc >= 0)
        ms_sock_close(rc, 0);
    assert_int_equal(rc, MS_ETIMEDOUT);
    assert_in_range(took, 150, 2000);
}

static void test_connect_text_overall_timeout(void **state)
{
    (void)state;
    need_namespace();
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_connect_text("10.213.0.2:9", 150, 1), MS_ETIMEDOUT);
    assert_in_range(ms_now_ms() - t0, 100, 2000);
    t0 = ms_now_ms();
    assert_int_equal(ms_connect_hp("10.213.0.2", "9", 0, 0), MS_ETIMEDOUT);
    assert_in_range(ms_now_ms() - t0, 0, 100);
}

static void test_connect_no_route(void **state)
{
    (void)state;
    need_namespace();
    /* TEST-NET-1 has no route here: the kernel refuses at once. */
    int64_t t0 = ms_now_ms();
    assert_int_equal(ms_connect_text("192.0.2.1:9", 2000, 0), MS_ENETUNREACH);
    assert_in_range(ms_now_ms() - t0, 0, 1000);
}

/* The resolver's server is unreachable from this namespace, so the lookup
 * fails inside it; either "no such name" or "try again" is a right answer,
 * anything else is a wrong mapping of the getaddrinfo error. */
static void test_resolve_without_network(void **state)
{
    (void)state;
    ms_addr a[4];
    need_namespace();
    int rc = ms_addr_resolve(a, 4, "no-such-host.invalid:80");
    if (rc != MS_ENONAME && rc != MS_EAINAGAIN)
        fail_msg("lookup gave %d (%s)", rc, ms_err_name(rc));
    assert_int_equal(ms_connect_text("no-such-host.invalid:80", 500, 0), rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_timeout_silent_host),
        cmocka_unit_test(test_connect_text_overall_timeout),
        cmocka_unit_test(test_connect_no_route),
        cmocka_unit_test(test_resolve_without_network),
    };
    return cmocka_run_group_tests(tests, enter_namespace, NULL);
}
