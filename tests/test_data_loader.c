/* The batch loader: sequential batches equal a direct slicing of the shards; targets are the
 * inputs shifted by one; a shuffled epoch visits distinct windows, is the same for the same
 * seed and differs across seeds and epochs; ranks see disjoint shares that together cover
 * what one rank with B*world would see; a saved cursor resumes exactly (across epoch
 * boundaries); reset; clear errors (no shards, wrong magic, too few tokens); llm.c's files. */
#include "cllm/data.h"
#include "cllm/util.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

/* Shard s holds tokens s*1000000 + i (uint32 shards), so a token names its place. Shard 2 is
 * shorter than one window and contributes none; shard 3 is uint16 (tokens 30000 + i). */
static const size_t SHARD_N[] = {1000, 733, 5, 512};
#define N_SHARDS 4

static uint32_t tok_of(int s, size_t i) {
    return s == 3 ? 30000u + (uint32_t)i : (uint32_t)s * 1000000u + (uint32_t)i;
}

static void make_shards(const char *dir) {
    for (int s = 0; s < N_SHARDS; s++) {
        uint32_t *t = malloc(SHARD_N[s] * sizeof *t);
        for (size_t i = 0; i < SHARD_N[s]; i++)
            t[i] = tok_of(s, i);
        char *p = cllm_strdup_printf("%s/train_%03d.bin", dir, s);
        CHECK_OK(cllm_shard_write(p, t, SHARD_N[s], s == 3 ? 50257 : 4000000));
        free(p);
        free(t);
    }
    /* Files that are not train shards must be ignored. */
    uint32_t v[100];
    for (int i = 0; i < 100; i++)
        v[i] = (uint32_t)i;
    char *p = cllm_path_join(dir, "val_000.bin");
    CHECK_OK(cllm_shard_write(p, v, 100, 50257));
    free(p);
    p = cllm_path_join(dir, "notes.txt");
    CHECK_OK(cllm_write_file_atomic(p, "hello", 5));
    free(p);
}

/* The windows of the shards above, in order: (shard, start), computed directly. */
typedef struct {
    int s;
    size_t start;
} win;

static int list_windows(int T, win *w) {
    int n = 0;
    for (int s = 0; s < N_SHARDS; s++)
        for (size_t st = 0; st + (size_t)T + 1 <= SHARD_N[s]; st += (size_t)T)
            w[n++] = (win){s, st};
    return n;
}

/* Which window a batch row came from (-1 if the row is not a window of the shards). */
static int window_id(const uint32_t *x, const uint32_t *y, int T, const win *w, int nw) {
    for (int k = 0; k < nw; k++) {
        if (x[0] != tok_of(w[k].s, w[k].start)) continue;
        for (int t = 0; t < T; t++)
            if (x[t] != tok_of(w[k].s, w[k].start + (size_t)t) ||
                y[t] != tok_of(w[k].s, w[k].start + (size_t)t + 1))
                return -1;
        return k;
    }
    return -1;
}

static cllm_loader *open_loader(const char *dir, int B, int T, bool shuffle, uint64_t seed,
                                int rank, int world) {
    cllm_loader_opts o = {.dir = dir,
                          .split = "train",
                          .B = B,
                          .T = T,
                          .shuffle = shuffle,
                          .seed = seed,
                          .rank = rank,
                          .world = world};
    cllm_loader *l = NULL;
    CHECK_OK(cllm_loader_init(&l, &o));
    return l;
}

/* Run `n` batches, returning the window ids row by row in ids[n*B]. */
static void run(cllm_loader *l, int n, int B, int T, const win *w, int nw, int *ids) {
    uint32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    for (int i = 0; i < n; i++) {
        CHECK_OK(cllm_loader_next(l, x, y));
        for (int b = 0; b < B; b++)
            ids[i * B + b] = window_id(x + b * T, y + b * T, T, w, nw);
    }
    free(x);
    free(y);
}

static void test_sequential(const char *dir) {
    const int B = 3, T = 64;
    win w[64];
    int nw = list_windows(T, w); /* 15 + 11 + 0 + 7 = 33 */
    CHECK(nw == 33);
    cllm_loader *l = open_loader(dir, B, T, false, 0, 0, 1);
    if (!l) return;
    CHECK(cllm_loader_num_shards(l) == 4);
    CHECK(cllm_loader_num_windows(l) == (uint64_t)nw);
    CHECK(cllm_loader_batches_per_epoch(l) == 11);
    CHECK(cllm_loader_num_tokens(l) == 1000 + 733 + 5 + 512);
    CHECK(cllm_loader_max_token(l) == 2000000u + 4u); /* shard 2, though it has no window */
    int ids[2 * 33];
    run(l, 22, B, T, w, nw, ids);
    bool ok = true;
    for (int i = 0; i < 22 * B; i++)
        ok = ok && ids[i] == i % 33;
    CHECK_MSG(ok, "sequential batches follow shard and position order, twice");
    cllm_loader_cursor c;
    cllm_loader_get_cursor(l, &c);
    CHECK(c.epoch == 2 && c.batch == 0);
    cllm_loader_free(l);

    /* B*T not dividing the windows: the last partial batch is left out. */
    l = open_loader(dir, 5, T, false, 0, 0, 1);
    if (!l) return;
    CHECK(cllm_loader_batches_per_epoch(l) == 6);
    run(l, 7, 5, T, w, nw, ids);
    ok = true;
    for (int i = 0; i < 30; i++)
        ok = ok && ids[i] == i;
    for (int i = 30; i < 35; i++)
        ok = ok && ids[i] == i - 30;
    CHECK_MSG(ok, "epoch 1 starts again at window 0");
    cllm_loader_free(l);
}

static bool same_ids(const int *a, const int *b, int n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

static void test_shuffle(const char *dir) {
    const int B = 4, T = 32, E = 3;
    win w[128];
    int nw = list_windows(T, w); /* 31 + 22 + 0 + 15 = 68 */
    CHECK(nw == 68);
    cllm_loader *a = open_loader(dir, B, T, true, 1234, 0, 1);
    cllm_loader *b = open_loader(dir, B, T, true, 1234, 0, 1);
    cllm_loader *c = open_loader(dir, B, T, true, 999, 0, 1);
    if (!a || !b || !c) return;
    const int bpe = (int)cllm_loader_batches_per_epoch(a);
    CHECK(bpe == 17);
    int ia[3 * 68], ib[3 * 68], ic[3 * 68];
    run(a, E * bpe, B, T, w, nw, ia);
    run(b, E * bpe, B, T, w, nw, ib);
    run(c, E * bpe, B, T, w, nw, ic);
    CHECK_MSG(same_ids(ia, ib, E * bpe * B), "same seed, same batches");
    CHECK_MSG(!same_ids(ia, ic, bpe * B), "another seed, another order");
    for (int e = 0; e < E; e++) {
        int seen[68] = {0};
        bool valid = true;
        for (int i = 0; i < bpe * B; i++) {
            int id = ia[e * bpe * B + i];
            valid = valid && id >= 0;
            if (id >= 0) seen[id]++;
        }
        CHECK_MSG(valid, "every row is a window of the shards");
        int distinct = 0;
        for (int k = 0; k < nw; k++)
            distinct += seen[k] == 1;
        CHECK_MSG(distinct == bpe * B, "epoch %d visits %d distinct windows", e, distinct);
    }
    CHECK_MSG(!same_ids(ia, ia + bpe * B, bpe * B), "epoch 1 is reshuffled");
    /* Not the sequential order. */
    int seq[68];
    for (int i = 0; i < 68; i++)
        seq[i] = i;
    CHECK(!same_ids(ia, seq, bpe * B));
    cllm_loader_free(a);
    cllm_loader_free(b);
    cllm_loader_free(c);
}

static void test_ranks(const char *dir) {
    const int B = 2, T = 32, W = 3;
    win w[128];
    int nw = list_windows(T, w);
    cllm_loader *one = open_loader(dir, B * W, T, true, 7, 0, 1);
    cllm_loader *r[W];
    for (int k = 0; k < W; k++)
        r[k] = open_loader(dir, B, T, true, 7, k, W);
    if (!one || !r[0] || !r[1] || !r[2]) return;
    const int bpe = (int)cllm_loader_batches_per_epoch(one);
    CHECK(bpe == 68 / 6);
    for (int k = 0; k < W; k++)
        CHECK(cllm_loader_batches_per_epoch(r[k]) == (uint64_t)bpe);
    /* Two epochs: batch i of the single loader (B*W rows) is rank 0's rows, then rank 1's,
     * then rank 2's: the ranks split exactly what one device would have seen. */
    int ione[2 * 11 * 6], ir[3][2 * 11 * 2];
    run(one, 2 * bpe, B * W, T, w, nw, ione);
    for (int k = 0; k < W; k++)
        run(r[k], 2 * bpe, B, T, w, nw, ir[k]);
    bool ok = true;
    for (int i = 0; i < 2 * bpe; i++)
        for (int k = 0; k < W; k++)
            ok = ok && same_ids(ione + i * B * W + k * B, ir[k] + i * B, B);
    CHECK_MSG(ok, "ranks split a global batch");
    int seen[128] = {0};
    for (int k = 0; k < W; k++)
        for (int i = 0; i < bpe * B; i++)
            seen[ir[k][i]]++;
    int dup = 0;
    for (int k = 0; k < nw; k++)
        dup += seen[k] > 1;
    CHECK_MSG(dup == 0, "no window is seen by two ranks in an epoch");
    for (int k = 0; k < W; k++)
        cllm_loader_free(r[k]);
    cllm_loader_free(one);
}

static void test_cursor(const char *dir) {
    const int B = 4, T = 32;
    win w[128];
    int nw = list_windows(T, w);
    cllm_loader *a = open_loader(dir, B, T, true, 55, 0, 1);
    if (!a) return;
    int bpe = (int)cllm_loader_batches_per_epoch(a);
    int head[64 * 4], tail_a[40 * 4], tail_b[40 * 4];
    /* Stop in the middle of epoch 1, save, continue into epoch 3. */
    run(a, bpe + 5, B, T, w, nw, head);
    cllm_loader_cursor c;
    cllm_loader_get_cursor(a, &c);
    CHECK(c.epoch == 1 && c.batch == 5);
    run(a, 40, B, T, w, nw, tail_a);
    /* A new loader (a resumed run) that restores the cursor sees the same batches. */
    cllm_loader *b = open_loader(dir, B, T, true, 55, 0, 1);
    if (!b) return;
    cllm_loader_cursor saved = {c.epoch, c.batch};
    CHECK_OK(cllm_loader_set_cursor(b, &saved));
    run(b, 40, B, T, w, nw, tail_b);
    CHECK_MSG(same_ids(tail_a, tail_b, 40 * B), "resumed run sees the same batches");
    /* Restoring into a loader that already ran ahead works too. */
    CHECK_OK(cllm_loader_set_cursor(a, &saved));
    run(a, 40, B, T, w, nw, tail_b);
    CHECK(same_ids(tail_a, tail_b, 40 * B));
    /* reset: the same batches as a fresh loader. */
    cllm_loader_reset(b);
    run(b, bpe + 5, B, T, w, nw, tail_b);
    CHECK(same_ids(head, tail_b, (bpe + 5) * B));
    cllm_loader_cursor bad = {0, (uint64_t)bpe};
    CHECK(cllm_loader_set_cursor(b, &bad) == CLLM_ERR_USAGE);
    CHECK(strstr(cllm_last_error(), "batches per epoch") != NULL);
    cllm_loader_free(a);
    cllm_loader_free(b);
}

static void expect_init_error(const char *dir, const char *split, int B, int T, int world,
                              cllm_status want, const char *text) {
    cllm_loader_opts o = {.dir = dir, .split = split, .B = B, .T = T, .world = world};
    cllm_loader *l = NULL;
    cllm_status st = cllm_loader_init(&l, &o);
    CHECK_MSG(st == want, "status %s, expected %s (%s)", cllm_status_name(st),
              cllm_status_name(want), cllm_last_error());
    CHECK_MSG(strstr(cllm_last_error(), text) != NULL, "message '%s' lacks '%s'", cllm_last_error(),
              text);
    CHECK(l == NULL);
    cllm_loader_free(l);
}

static void test_errors(const char *dir) {
    expect_init_error(dir, "test", 1, 8, 1, CLLM_ERR_IO, "no test shards");
    /* 100 val tokens: 3 windows of T+1 = 33, not 4. */
    expect_init_error(dir, "val", 4, 32, 1, CLLM_ERR_USAGE, "one batch needs B*world = 4 windows");
    expect_init_error(dir, "val", 2, 32, 2, CLLM_ERR_USAGE, "one batch needs B*world = 4 windows");
    expect_init_error(dir, "train", 0, 8, 1, CLLM_ERR_USAGE, "B=0");
    cllm_loader_opts o = {.dir = dir, .split = "train", .B = 1, .T = 8, .rank = 2, .world = 2};
    cllm_loader *l = NULL;
    CHECK(cllm_loader_init(&l, &o) == CLLM_ERR_USAGE);
    char *missing = cllm_path_join(dir, "nope");
    expect_init_error(missing, "train", 1, 8, 1, CLLM_ERR_IO, "cannot open data directory");
    free(missing);

    char *bad = cllm_path_join(dir, "bad");
    cllm_mkdirs(bad);
    char *p = cllm_path_join(bad, "train_000.bin");
    uint32_t t[50] = {0};
    CHECK_OK(cllm_shard_write(p, t, 50, 100));
    free(p);
    p = cllm_path_join(bad, "train_001.bin");
    char junk[2000] = "this is not a shard";
    CHECK_OK(cllm_write_file_atomic(p, junk, sizeof junk));
    expect_init_error(bad, "train", 1, 8, 1, CLLM_ERR_FORMAT, "train_001.bin: not a token shard");
    free(p);
    free(bad);
}

static void test_llmc_dir(void) {
    char *dir = test_fixture("llmc");
    if (!dir) return;
    cllm_loader *l = open_loader(dir, 2, 100, false, 0, 0, 1);
    if (l) {
        CHECK(cllm_loader_num_shards(l) == 2);
        CHECK(cllm_loader_num_tokens(l) == 1601);
        CHECK(cllm_loader_num_windows(l) == 9 + 6);
        uint32_t x[200], y[200];
        CHECK_OK(cllm_loader_next(l, x, y));
        CHECK(x[0] == 13 && y[0] == 7919 + 13 && x[100] == (100u * 7919 + 13) % 50257);
        cllm_loader_free(l);
    }
    cllm_loader_opts o = {.dir = dir, .split = "val", .B = 1, .T = 64, .world = 1};
    CHECK_OK(cllm_loader_init(&l, &o));
    if (l) {
        CHECK(cllm_loader_num_tokens(l) == 777);
        uint32_t m = 0;
        for (uint32_t i = 0; i < 777; i++) {
            uint32_t v = (uint32_t)(((uint64_t)i * 104729 + 7) % 128256);
            if (v > m) m = v;
        }
        CHECK(cllm_loader_max_token(l) == m);
        cllm_loader_free(l);
    }
    free(dir);
}

int main(void) {
    char *dir = test_tmpdir("data_loader");
    make_shards(dir);
    test_sequential(dir);
    test_shuffle(dir);
    test_ranks(dir);
    test_cursor(dir);
    test_errors(dir);
    test_llmc_dir();
    cllm_loader_free(NULL);
    free(dir);
    return test_exit();
}
