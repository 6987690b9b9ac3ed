/* test_addr.c: address parsing, resolving and formatting (no traffic at all). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "msgsock.h"

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)

static const struct sockaddr_in *v4(const ms_addr *a) { return (const struct sockaddr_in *)&a->ss; }
static const struct sockaddr_in6 *v6(const ms_addr *a) { return (const struct sockaddr_in6 *)&a->ss; }
static const struct sockaddr_un *un(const ms_addr *a) { return (const struct sockaddr_un *)&a->ss; }

static void expect_ip(const ms_addr *a, int family, const char *ip, int port)
{
    unsigned char want[16];
    assert_int_equal(ms_addr_family(a), family);
    assert_int_equal(ms_addr_port(a), port);
    assert_int_equal(inet_pton(family, ip, want), 1);
    if (family == AF_INET) {
        assert_int_equal(a->len, sizeof(struct sockaddr_in));
        assert_memory_equal(&v4(a)->sin_addr, want, 4);
    } else {
        assert_int_equal(a->len, sizeof(struct sockaddr_in6));
        assert_memory_equal(&v6(a)->sin6_addr, want, 16);
    }
}

static void test_parse_ipv4(void **state)
{
    (void)state;
    ms_addr a;
    assert_int_equal(ms_addr_parse(&a, "127.0.0.1:8080"), 0);
    expect_ip(&a, AF_INET, "127.0.0.1", 8080);
    assert_int_equal(ms_addr_parse(&a, "0.0.0.0:0"), 0);
    expect_ip(&a, AF_INET, "0.0.0.0", 0);
    assert_int_equal(ms_addr_parse(&a, "255.255.255.255:65535"), 0);
    expect_ip(&a, AF_INET, "255.255.255.255", 65535);
}

static void test_parse_ipv6(void **state)
{
    (void)state;
    ms_addr a;
    assert_int_equal(ms_addr_parse(&a, "[::1]:65432"), 0);
    expect_ip(&a, AF_INET6, "::1", 65432);
    assert_int_equal(v6(&a)->sin6_scope_id, 0);
    assert_int_equal(ms_addr_parse(&a, "[::]:0"), 0);
    expect_ip(&a, AF_INET6, "::", 0);
    assert_int_equal(ms_addr_parse(&a, "[2001:db8::a:b]:443"), 0);
    expect_ip(&a, AF_INET6, "2001:db8::a:b", 443);
    assert_int_equal(ms_addr_parse(&a, "[::ffff:10.1.2.3]:7"), 0);
    expect_ip(&a, AF_INET6, "::ffff:10.1.2.3", 7);
}

static void test_parse_ipv6_scope(void **state)
{
    (void)state;
    ms_addr a;
    unsigned lo = if_nametoindex("lo");
    assert_true(lo > 0);
    assert_int_equal(ms_addr_parse(&a, "[fe80::1%lo]:80"), 0);
    expect_ip(&a, AF_INET6, "fe80::1", 80);
    assert_int_equal(v6(&a)->sin6_scope_id, lo);
    assert_int_equal(ms_addr_parse(&a, "[fe80::1%7]:80"), 0);
    assert_int_equal(v6(&a)->sin6_scope_id, 7);
    assert_int_equal(ms_addr_parse(&a, "[fe80::1%no-such-if0]:80"), MS_EBADADDR);
    assert_int_equal(ms_addr_parse(&a, "[fe80::1%]:80"), MS_EBADADDR);
}

static void test_parse_unix(void **state)
{
    (void)state;
    ms_addr a;
    assert_int_equal(ms_addr_parse(&a, "unix:/tmp/ms.sock"), 0);
    assert_int_equal(ms_addr_family(&a), AF_UNIX);
    assert_int_equal(ms_addr_port(&a), 0);
    assert_string_equal(un(&a)->sun_path, "/tmp/ms.sock");
    assert_int_equal(a.len, SUN_OFF + strlen("/tmp/ms.sock") + 1);

    assert_int_equal(ms_addr_parse(&a, "unix:rel/sock"), 0);
    assert_string_equal(un(&a)->sun_path, "rel/sock");

    assert_int_equal(ms_addr_parse(&a, "unix:@abstract-name"), 0);
    assert_int_equal(ms_addr_family(&a), AF_UNIX);
    assert_int_equal(un(&a)->sun_path[0], '\0');
    assert_memory_equal(un(&a)->sun_path + 1, "abstract-name", 13);
    /* The abstract name is measured by the length: no terminator counted. */
    assert_int_equal(a.len, SUN_OFF + 1 + 13);
}

static void test_parse_unix_limits(void **state)
{
    (void)state;
    char text[16 + MS_ADDR_UNIX_MAX + 2];
    ms_addr a;
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    assert_int_equal(max, MS_ADDR_UNIX_MAX);

    strcpy(text, "unix:/");
    memset(text + 6, 'p', max - 1);
    text[6 + max - 1] = '\0';
    assert_int_equal(ms_addr_parse(&a, text), 0);
    assert_int_equal(strlen(un(&a)->sun_path), max);
    strcat(text, "p");
    assert_int_equal(ms_addr_parse(&a, text), MS_ENAMETOOLONG);

    strcpy(text, "unix:@");
    memset(text + 6, 'n', max);
    text[6 + max] = '\0';
    assert_int_equal(ms_addr_parse(&a, text), 0);
    assert_int_equal(a.len, SUN_OFF + 1 + max);
    strcat(text, "n");
    assert_int_equal(ms_addr_parse(&a, text), MS_ENAMETOOLONG);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:99999",
        "127.0.0.1:123456", "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:8a", "127.0.0.1: 80",
        "127.0.0.1:80 ", "[::1", "[::1:80", "[::1]", "[::1]80", "[::1]:", "[]:80", "::1:80",
        "::1", "[127.0.0.1]:80", "300.1.1.1:80", "1.2.3:80", "localhost:80", "[::1]:8x",
        "[::g]:80", "unix:", "unix:@", "tcp://1.2.3.4:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms_addr a;
        memset(&a, 0xA5, sizeof a);
        ms_addr before = a;
        int rc = ms_addr_parse(&a, bad[i]);
        if (rc != MS_EBADADDR)
            fail_msg("'%s' gave %s, wanted MS_EBADADDR", bad[i], ms_err_name(rc));
        assert_memory_equal(&a, &before, sizeof a); /* untouched on failure */
    }
    ms_addr a;
    assert_int_equal(ms_addr_parse(&a, NULL), MS_EINVAL);
    assert_int_equal(ms_addr_parse(NULL, "1.2.3.4:5"), MS_EINVAL);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    static const char *texts[] = {
        "127.0.0.1:8080", "0.0.0.0:0", "10.20.30.40:65535", "[::1]:65432", "[::]:0",
        "[2001:db8::1]:443", "[fe80::1%lo]:80", "unix:/tmp/x.sock", "unix:rel",
        "unix:@msgsock-abstract",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        ms_addr a, b;
        char buf[MS_ADDR_STRLEN];
        assert_int_equal(ms_addr_parse(&a, texts[i]), 0);
        int n = ms_addr_format(&a, buf, sizeof buf);
        assert_int_equal(n, (int)strlen(texts[i]));
        assert_string_equal(buf, texts[i]);
        assert_int_equal(ms_addr_parse(&b, buf), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(&a.ss, &b.ss, a.len);
    }
}

static void test_format_limits(void **state)
{
    (void)state;
    ms_addr a;
    char buf[MS_ADDR_STRLEN];
    assert_int_equal(ms_addr_parse(&a, "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535"), 0);
    int n = ms_addr_format(&a, buf, sizeof buf);
    assert_true(n > 0);
    char exact[64];
    assert_true((size_t)n < sizeof exact);
    assert_int_equal(ms_addr_format(&a, exact, (size_t)n + 1), n);
    assert_string_equal(exact, buf);
    assert_int_equal(ms_addr_format(&a, exact, (size_t)n), MS_EINVAL);

    /* The longest Unix path still fits MS_ADDR_STRLEN. */
    char text[8 + MS_ADDR_UNIX_MAX];
    strcpy(text, "unix:@");
    memset(text + 6, 'z', MS_ADDR_UNIX_MAX);
    text[6 + MS_ADDR_UNIX_MAX] = '\0';
    assert_int_equal(ms_addr_parse(&a, text), 0);
    assert_int_equal(ms_addr_format(&a, buf, sizeof buf), (int)strlen(text));
    assert_string_equal(buf, text);

    memset(&a, 0, sizeof a);
    assert_int_equal(ms_addr_format(&a, buf, sizeof buf), MS_EINVAL);
}

static void test_format_unix_special(void **state)
{
    (void)state;
    ms_addr a;
    char buf[MS_ADDR_STRLEN];
    struct sockaddr_un *sun = (struct sockaddr_un *)&a.ss;
    memset(&a, 0, sizeof a);
    sun->sun_family = AF_UNIX;
    a.len = sizeof(sa_family_t); /* unnamed, as from socketpair */
    assert_int_equal(ms_addr_format(&a, buf, sizeof buf), 5);
    assert_string_equal(buf, "unix:");
    memcpy(sun->sun_path, "\0a\001b", 4);
    a.len = (socklen_t)(SUN_OFF + 4);
    assert_int_equal(ms_addr_format(&a, buf, sizeof buf), 9);
    assert_string_equal(buf, "unix:@a?b");
}

static void test_resolve_numeric(void **state)
{
    (void)state;
    ms_addr a[4];
    assert_int_equal(ms_addr_resolve(a, 4, "127.0.0.1:9"), 1);
    expect_ip(&a[0], AF_INET, "127.0.0.1", 9);
    assert_int_equal(ms_addr_resolve(a, 4, "[::1]:10"), 1);
    expect_ip(&a[0], AF_INET6, "::1", 10);
    assert_int_equal(ms_addr_resolve(a, 4, "unix:@r"), 1);
    assert_int_equal(ms_addr_family(&a[0]), AF_UNIX);
    assert_int_equal(ms_addr_resolve(a, 4, "[::1"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve(a, 4, "localhost"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve(a, 4, "localhost:70000"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve(a, 4, "[localhost]:80"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve(a, 0, "127.0.0.1:9"), MS_EINVAL);
}

/* An empty host is every interface, as Python's '': [::] then 0.0.0.0. */
static void test_resolve_any(void **state)
{
    (void)state;
    ms_addr a[4];
    assert_int_equal(ms_addr_resolve(a, 4, ":65432"), 2);
    expect_ip(&a[0], AF_INET6, "::", 65432);
    expect_ip(&a[1], AF_INET, "0.0.0.0", 65432);
    assert_int_equal(ms_addr_resolve(a, 1, ":7"), 1);
    expect_ip(&a[0], AF_INET6, "::", 7);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "", "0"), 2);
    expect_ip(&a[0], AF_INET6, "::", 0);
    expect_ip(&a[1], AF_INET, "0.0.0.0", 0);
    assert_int_equal(ms_addr_resolve(a, 4, ":"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve(a, 4, ":99999"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve(a, 4, "[]:80"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "", "65536"), MS_EBADADDR);
}

/* "localhost" comes from /etc/hosts: no query leaves the machine. */
static void test_resolve_name(void **state)
{
    (void)state;
    ms_addr a[MS_ADDR_RESOLVE_MAX];
    int n = ms_addr_resolve(a, MS_ADDR_RESOLVE_MAX, "localhost:4242");
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) {
        char buf[MS_ADDR_STRLEN];
        assert_int_equal(ms_addr_port(&a[i]), 4242);
        assert_true(ms_addr_format(&a[i], buf, sizeof buf) > 0);
        int loop4 = ms_addr_family(&a[i]) == AF_INET && (ntohl(v4(&a[i])->sin_addr.s_addr) >> 24) == 127;
        int loop6 = ms_addr_family(&a[i]) == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&v6(&a[i])->sin6_addr);
        if (!loop4 && !loop6)
            fail_msg("localhost resolved to %s", buf);
    }
    assert_int_equal(ms_addr_resolve(a, 1, "localhost:4242"), 1);
}

static void test_resolve_hp(void **state)
{
    (void)state;
    ms_addr a[4];
    assert_int_equal(ms_addr_resolve_hp(a, 4, "::1", "65432"), 1);
    expect_ip(&a[0], AF_INET6, "::1", 65432);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "[::1]", "80"), 1);
    expect_ip(&a[0], AF_INET6, "::1", 80);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "fe80::2%lo", "81"), 1);
    expect_ip(&a[0], AF_INET6, "fe80::2", 81);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "127.0.0.1", "0"), 1);
    expect_ip(&a[0], AF_INET, "127.0.0.1", 0);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "unix:/tmp/hp.sock", NULL), 1);
    assert_string_equal(un(&a[0])->sun_path, "/tmp/hp.sock");
    assert_true(ms_addr_resolve_hp(a, 4, "localhost", "5") >= 1);
    assert_int_equal(ms_addr_port(&a[0]), 5);

    assert_int_equal(ms_addr_resolve_hp(a, 4, "::1", "65536"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "::1", ""), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "::1", NULL), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "[::1", "80"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "[]", "80"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "::zz", "80"), MS_EBADADDR);
    assert_int_equal(ms_addr_resolve_hp(a, 4, "[127.0.0.1]", "80"), MS_EBADADDR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ipv4),
        cmocka_unit_test(test_parse_ipv6),
        cmocka_unit_test(test_parse_ipv6_scope),
        cmocka_unit_test(test_parse_unix),
        cmocka_unit_test(test_parse_unix_limits),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_format_limits),
        cmocka_unit_test(test_format_unix_special),
        cmocka_unit_test(test_resolve_numeric),
        cmocka_unit_test(test_resolve_name),
        cmocka_unit_test(test_resolve_hp),
        cmocka_unit_test(test_resolve_any),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
