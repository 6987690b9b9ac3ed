/* test_byteorder.c: the big-endian put/get helpers at every alignment, against <endian.h>. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <string.h>

#include "msgsock.h"

static uint64_t rng = 0x243F6A8885A308D3ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_known_bytes(void **state)
{
    (void)state;
    static const uint8_t want[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    uint8_t buf[24];
    for (size_t off = 0; off < 8; off++) {
        memset(buf, 0xAA, sizeof buf);
        ms_put_be16(buf + off, 0x0102);
        assert_memory_equal(buf + off, want, 2);
        assert_int_equal(buf[off + 2], 0xAA);
        assert_int_equal(ms_get_be16(buf + off), 0x0102);

        memset(buf, 0xAA, sizeof buf);
        ms_put_be32(buf + off, 0x01020304u);
        assert_memory_equal(buf + off, want, 4);
        assert_int_equal(buf[off + 4], 0xAA);
        assert_int_equal(ms_get_be32(buf + off), 0x01020304u);

        memset(buf, 0xAA, sizeof buf);
        ms_put_be64(buf + off, 0x0102030405060708ULL);
        assert_memory_equal(buf + off, want, 8);
        assert_int_equal(buf[off + 8], 0xAA);
        if (off)
            assert_int_equal(buf[off - 1], 0xAA);
        assert_true(ms_get_be64(buf + off) == 0x0102030405060708ULL);
    }
}

static void test_extremes(void **state)
{
    (void)state;
    uint8_t b[8];
    ms_put_be16(b, 0xFFFF);
    assert_int_equal(ms_get_be16(b), 0xFFFF);
    ms_put_be32(b, 0x80000001u);
    assert_int_equal(b[0], 0x80);
    assert_int_equal(b[3], 0x01);
    assert_int_equal(ms_get_be32(b), 0x80000001u);
    ms_put_be64(b, UINT64_MAX);
    assert_true(ms_get_be64(b) == UINT64_MAX);
    ms_put_be64(b, 0x8000000000000000ULL);
    assert_int_equal(b[0], 0x80);
    assert_true(ms_get_be64(b) == 0x8000000000000000ULL);
}

/* Random values at random offsets, checked against the C library's htobe*. */
static void test_random_against_libc(void **state)
{
    (void)state;
    uint8_t buf[32];
    for (int i = 0; i < 100000; i++) {
        uint64_t v = next_rand();
        size_t off = (size_t)(next_rand() % 17);
        uint16_t v16 = (uint16_t)v, e16 = htobe16(v16);
        uint32_t v32 = (uint32_t)v, e32 = htobe32(v32);
        uint64_t e64 = htobe64(v);
        ms_put_be16(buf + off, v16);
        assert_memory_equal(buf + off, &e16, 2);
        assert_int_equal(ms_get_be16(buf + off), v16);
        ms_put_be32(buf + off, v32);
        assert_memory_equal(buf + off, &e32, 4);
        assert_int_equal(ms_get_be32(buf + off), v32);
        ms_put_be64(buf + off, v);
        assert_memory_equal(buf + off, &e64, 8);
        assert_true(ms_get_be64(buf + off) == v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_bytes),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_random_against_libc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
