/*
 * tests/unit/samples.h: reading files and the spec's sample messages in
 * unit tests. Static functions (for test binaries only); include after
 * <cmocka.h>.
 *
 * Samples are looked up in $SAMPLES_DIR, then tests/fixtures/samples (the
 * committed copy), then ../shared/spec/samples.
 */
#ifndef FERRY_TESTS_SAMPLES_H
#define FERRY_TESTS_SAMPLES_H

#include <stdio.h>
#include <stdlib.h>

/* The whole file, NUL-terminated (malloc'd), its length in *len (may be
 * NULL); NULL when it cannot be opened. */
static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    if (len)
        *len = (size_t)n;
    return buf;
}

/* A sample file by name; fails the test when it is nowhere. */
static char *load_sample(const char *name, size_t *len)
{
    const char *dirs[3] = {getenv("SAMPLES_DIR"), "tests/fixtures/samples",
                           "../shared/spec/samples"};
    char path[512];

    for (int i = 0; i < 3; i++) {
        if (!dirs[i])
            continue;
        snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
        char *buf = read_file(path, len);
        if (buf)
            return buf;
    }
    fail_msg("sample %s not found (set SAMPLES_DIR)", name);
    return NULL;
}

#endif
