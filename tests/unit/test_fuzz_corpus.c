/* test_fuzz_corpus.c: replays the committed fuzz corpora through the fuzz targets' checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

/* The targets and their driver, compiled in (tests run from the repo root). */
#include "../fuzz/driver.c"
#include "../fuzz/fuzz_app.c"
#include "../fuzz/fuzz_close.c"
#include "../fuzz/fuzz_decimal.c"
#include "../fuzz/fuzz_delim.c"
#include "../fuzz/fuzz_fixed.c"
#include "../fuzz/fuzz_len16.c"
#include "../fuzz/fuzz_len32.c"
#include "../fuzz/fuzz_len64.c"
#include "../fuzz/fuzz_raw.c"

typedef struct target {
    const char *name;
    int (*check)(const uint8_t *, size_t);
} target;

static void replay(const target *t)
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", t->name);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0, failed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        uint8_t *buf = malloc(1 << 20);
        assert_non_null(buf);
        size_t n = fread(buf, 1, 1 << 20, f);
        fclose(f);
        /* An exactly sized copy, so ASan sees a read past the input. */
        uint8_t *exact = malloc(n ? n : 1);
        assert_non_null(exact);
        memcpy(exact, buf, n);
        free(buf);
        if (t->check(exact, n) != 0) {
            fprintf(stderr, "corpus file %s fails\n", path);
            failed++;
        }
        free(exact);
        files++;
    }
    closedir(d);
    assert_true(files > 0);
    assert_int_equal(failed, 0);
}

#define TARGET(name)                                                                           \
    static void test_corpus_##name(void **state)                                               \
    {                                                                                          \
        (void)state;                                                                           \
        static const target t = {#name, msf_check_##name};                                     \
        replay(&t);                                                                            \
    }
TARGET(raw)
TARGET(fixed)
TARGET(delim)
TARGET(len16)
TARGET(len32)
TARGET(len64)
TARGET(decimal)
TARGET(close)
TARGET(app)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_raw),   cmocka_unit_test(test_corpus_fixed),
        cmocka_unit_test(test_corpus_delim), cmocka_unit_test(test_corpus_len16),
        cmocka_unit_test(test_corpus_len32), cmocka_unit_test(test_corpus_len64),
        cmocka_unit_test(test_corpus_decimal), cmocka_unit_test(test_corpus_close),
        cmocka_unit_test(test_corpus_app),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
