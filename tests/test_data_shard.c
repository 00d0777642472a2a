/* Token shards: header and contents round-trip (checked byte by byte against the llm.c
 * layout, not through our own reader), both token widths and the width boundary, llm.c's
 * own files (tests/fixtures/llmc, written by tools/make_llmc_shards.py with numpy), and
 * clear errors for truncated, wrong-magic, wrong-version and over-long files. */
#include "cllm/data.h"
#include "cllm/util.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Write n random tokens below vocab, then check the file's bytes and read them back. */
static void roundtrip(const char *dir, size_t n, uint32_t vocab, int want_version, test_rng *r) {
    uint32_t *t = malloc((n ? n : 1) * sizeof *t);
    for (size_t i = 0; i < n; i++)
        t[i] = (uint32_t)(test_rng_u64(r) % vocab);
    if (n) t[n - 1] = vocab - 1; /* the largest id must survive */
    char *path = cllm_strdup_printf("%s/rt_%zu_%u.bin", dir, n, vocab);
    CHECK_OK(cllm_shard_write(path, t, n, vocab));
    char *raw = NULL;
    size_t len = 0;
    CHECK_OK(cllm_read_file(path, &raw, &len));
    size_t width = want_version == 1 ? 2 : 4;
    CHECK_MSG(len == 1024 + n * width, "%s: %zu bytes", path, len);
    if (raw && len == 1024 + n * width) {
        const unsigned char *u = (const unsigned char *)raw;
        CHECK(le32(u) == 20240520);
        CHECK(le32(u + 4) == (uint32_t)want_version);
        CHECK(le32(u + 8) == n);
        bool zero = true;
        for (int i = 12; i < 1024; i++)
            zero = zero && u[i] == 0;
        CHECK_MSG(zero, "header ints 3..255 are zero");
        bool same = true;
        for (size_t i = 0; i < n; i++) {
            const unsigned char *p = u + 1024 + i * width;
            uint32_t v = width == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : le32(p);
            same = same && v == t[i];
        }
        CHECK_MSG(same, "%s: token bytes differ", path);
    }
    free(raw);
    uint32_t *back = NULL;
    size_t nb = 0;
    CHECK_OK(cllm_shard_read(path, &back, &nb));
    CHECK(nb == n);
    CHECK(back && (n == 0 || memcmp(back, t, n * sizeof *t) == 0));
    cllm_shard_info info;
    CHECK_OK(cllm_shard_info_read(path, &info));
    CHECK(info.version == want_version && info.n_tokens == n && info.token_bytes == width);
    free(back);
    free(t);
    free(path);
}

/* Write `len` bytes of `data` to dir/name and expect reading it to fail with a message that
 * contains the file name and `want`. */
static void expect_bad(const char *dir, const char *name, const void *data, size_t len,
                       const char *want) {
    char *path = cllm_path_join(dir, name);
    CHECK_OK(cllm_write_file_atomic(path, data, len));
    uint32_t *t = NULL;
    size_t n = 0;
    cllm_status st = cllm_shard_read(path, &t, &n);
    CHECK_MSG(st == CLLM_ERR_FORMAT, "%s: status %s", name, cllm_status_name(st));
    CHECK_MSG(strstr(cllm_last_error(), path) && strstr(cllm_last_error(), want),
              "%s: message '%s' lacks '%s'", name, cllm_last_error(), want);
    CHECK(t == NULL && n == 0);
    cllm_shard_info info;
    CHECK(cllm_shard_info_read(path, &info) == CLLM_ERR_FORMAT);
    free(path);
}

static void header(unsigned char *h, uint32_t magic, uint32_t version, uint32_t count) {
    memset(h, 0, 1024);
    uint32_t v[3] = {magic, version, count};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++)
            h[4 * i + b] = (unsigned char)(v[i] >> (8 * b));
}

static void test_errors(const char *dir) {
    unsigned char buf[1024 + 40];
    header(buf, 20240520, 1, 20);
    for (int i = 0; i < 40; i++)
        buf[1024 + i] = (unsigned char)i;
    char *good = cllm_path_join(dir, "good.bin");
    CHECK_OK(cllm_write_file_atomic(good, buf, sizeof buf));
    uint32_t *t = NULL;
    size_t n = 0;
    CHECK_OK(cllm_shard_read(good, &t, &n));
    CHECK(n == 20 && t && t[0] == 0x0100 && t[19] == (39u << 8 | 38u));
    free(t);
    free(good);

    expect_bad(dir, "truncated.bin", buf, sizeof buf - 1, "truncated shard");
    expect_bad(dir, "truncated_header.bin", buf, 500, "shorter than the 1024-byte header");
    expect_bad(dir, "empty.bin", buf, 0, "truncated");
    unsigned char longer[1024 + 42];
    memcpy(longer, buf, sizeof buf);
    longer[sizeof buf] = longer[sizeof buf + 1] = 0;
    expect_bad(dir, "long.bin", longer, sizeof longer, "2 bytes after the last token");
    header(buf, 20240521, 1, 20);
    expect_bad(dir, "magic.bin", buf, sizeof buf, "magic 20240521 at offset 0");
    header(buf, 0x4e4f5048, 1, 20); /* a text file, say */
    expect_bad(dir, "text.bin", buf, sizeof buf, "not a token shard");
    header(buf, 20240520, 3, 20);
    expect_bad(dir, "version.bin", buf, sizeof buf, "version 3 at offset 4");
    header(buf, 20240801, 1, 10);
    expect_bad(dir, "llmc_version.bin", buf, sizeof buf, "version 1 at offset 4");
    header(buf, 20240520, 2, 20); /* uint32 needs 80 bytes, has 40 */
    expect_bad(dir, "width.bin", buf, sizeof buf, "header says 20 tokens");
    header(buf, 20240520, 1, 0x80000000u);
    expect_bad(dir, "negative.bin", buf, sizeof buf, "negative token count");

    char *missing = cllm_path_join(dir, "missing.bin");
    CHECK(cllm_shard_read(missing, &t, &n) == CLLM_ERR_IO);
    CHECK(strstr(cllm_last_error(), missing) != NULL);
    free(missing);
}

static void test_write_refusals(const char *dir) {
    char *path = cllm_path_join(dir, "refuse.bin");
    uint32_t ok[3] = {1, 2, 3}, bad[3] = {1, 50257, 3};
    CHECK_OK(cllm_shard_write(path, ok, 3, 50257));
    CHECK(cllm_shard_write(path, bad, 3, 50257) == CLLM_ERR_USAGE);
    CHECK(strstr(cllm_last_error(), "token 50257 at position 1") != NULL);
    CHECK(cllm_shard_write(path, ok, 3, 0) == CLLM_ERR_USAGE);
    /* The earlier file is untouched. */
    uint32_t *t = NULL;
    size_t n = 0;
    CHECK_OK(cllm_shard_read(path, &t, &n));
    CHECK(n == 3 && t && t[0] == 1 && t[1] == 2 && t[2] == 3);
    free(t);
    free(path);
}

/* llm.c's own files (numpy-written): tokens follow (i * mul + add) mod vocab. */
static void test_llmc_file(const char *name, size_t want_n, uint32_t mul, uint32_t add,
                           uint32_t vocab, int want_version) {
    char *path = test_fixture(name);
    if (!path) {
        CHECK_MSG(0, "CLLM_FIXTURES is not set");
        return;
    }
    uint32_t *t = NULL;
    size_t n = 0;
    CHECK_OK(cllm_shard_read(path, &t, &n));
    CHECK_MSG(n == want_n, "%s: %zu tokens", name, n);
    bool same = t != NULL;
    for (size_t i = 0; same && i < n; i++)
        same = t[i] == (uint32_t)(((uint64_t)i * mul + add) % vocab);
    CHECK_MSG(same, "%s: tokens differ from the formula", name);
    cllm_shard_info info;
    CHECK_OK(cllm_shard_info_read(path, &info));
    CHECK(info.version == want_version);
    free(t);
    free(path);
}

/* The streaming writer gives the same bytes as cllm_shard_write, in any piece sizes. */
static void test_writer(const char *dir, uint32_t vocab, test_rng *r) {
    const size_t n = 100003;
    uint32_t *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++)
        t[i] = (uint32_t)(test_rng_u64(r) % vocab);
    char *a = cllm_strdup_printf("%s/whole_%u.bin", dir, vocab);
    char *b = cllm_strdup_printf("%s/streamed_%u.bin", dir, vocab);
    CHECK_OK(cllm_shard_write(a, t, n, vocab));
    cllm_shard_writer *w = NULL;
    CHECK_OK(cllm_shard_writer_open(&w, b, vocab));
    if (w) {
        size_t i = 0, piece = 1;
        while (i < n) {
            size_t k = piece < n - i ? piece : n - i;
            CHECK_OK(cllm_shard_writer_append(w, t + i, k));
            i += k;
            piece = piece * 3 + 1;
        }
        CHECK(cllm_shard_writer_count(w) == n);
        CHECK(!cllm_is_file(b)); /* nothing at the final path before close */
        CHECK_OK(cllm_shard_writer_close(w));
    }
    char *da, *db;
    size_t la, lb;
    CHECK_OK(cllm_read_file(a, &da, &la));
    CHECK_OK(cllm_read_file(b, &db, &lb));
    CHECK(da && db && la == lb && memcmp(da, db, la) == 0);
    free(da);
    free(db);
    /* abort leaves nothing; a bad token is refused. */
    char *c = cllm_strdup_printf("%s/aborted_%u.bin", dir, vocab);
    CHECK_OK(cllm_shard_writer_open(&w, c, vocab));
    if (w) {
        CHECK(cllm_shard_writer_append(w, &vocab, 1) == CLLM_ERR_USAGE);
        cllm_shard_writer_abort(w);
    }
    CHECK(!cllm_is_file(c));
    cllm_shard_writer_abort(NULL);
    free(a);
    free(b);
    free(c);
    free(t);
}

int main(void) {
    char *dir = test_tmpdir("data_shard");
    test_rng r = {42};
    roundtrip(dir, 10007, 50257, 1, &r);
    roundtrip(dir, 0, 50257, 1, &r);
    roundtrip(dir, 1, 2, 1, &r);
    roundtrip(dir, 999, 65536, 1, &r);   /* the largest vocab that fits uint16 */
    roundtrip(dir, 999, 65537, 2, &r);   /* one more needs uint32 */
    roundtrip(dir, 3001, 200019, 2, &r); /* o200k-sized */
    test_write_refusals(dir);
    test_writer(dir, 50257, &r);
    test_writer(dir, 100277, &r);
    test_errors(dir);
    test_llmc_file("llmc/fixture_train_000000.bin", 1000, 7919, 13, 50257, 1);
    test_llmc_file("llmc/fixture_train_000001.bin", 601, 7919, 17, 50257, 1);
    test_llmc_file("llmc/fixture_val.bin", 777, 104729, 7, 128256, 2);
    free(dir);
    return test_exit();
}
