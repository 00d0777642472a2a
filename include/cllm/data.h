/* cllm/data.h — token shards in llm.c's .bin format and the (B, T+1) batch loader.
 *
 * Tutorial.
 *   A shard is a file of tokens: a header of 256 little-endian int32 (magic 20240520,
 *   version 1 = uint16 tokens or 2 = uint32 tokens, token count), then the tokens. cllm data
 *   prepare writes `train_000.bin`, `train_001.bin`, ... and `val_000.bin`, ... into one
 *   directory; shards written by llm.c's own data scripts (dev/data/ in llm.c) load as they are,
 *   including its uint32 variant (magic 20240801, version 7).
 *
 *       cllm_shard_write("out/train_000.bin", toks, n, 50257);   // version 1: ids < 65536
 *       uint32_t *t; size_t n;
 *       cllm_shard_read("out/train_000.bin", &t, &n);             // caller frees t
 *
 *   The loader cuts every shard into windows of T+1 tokens that start T tokens apart (a window
 *   never crosses a shard's end), and hands out batches of B windows: inputs are a window's
 *   first T tokens, targets its last T. An epoch visits every window at most once: in name
 *   and position order, or (shuffle) in a permutation drawn from (seed, epoch). With `world`
 *   data-parallel ranks, batch b of rank r is windows [(b*world + r)*B, +B) of that order, so
 *   ranks see disjoint shares; the windows left over after the last full batch of all ranks
 *   are not used in that epoch (a different set each shuffled epoch).
 *
 *       cllm_loader_opts o = {.dir = "out", .split = "train", .B = 8, .T = 256,
 *                             .shuffle = true, .seed = 1337, .rank = 0, .world = 1};
 *       cllm_loader *l;  cllm_loader_init(&l, &o);
 *       uint32_t x[8 * 256], y[8 * 256];
 *       cllm_loader_next(l, x, y);                                 // (B, T) each
 *       cllm_loader_cursor c; cllm_loader_get_cursor(l, &c);      // save in state.json ...
 *       cllm_loader_set_cursor(l, &c);                             // ... and resume exactly
 *
 *   Shards are memory-mapped: a batch costs B copies of T+1 tokens, whatever the data size.
 *   The shuffled order of an epoch is one array of 8 bytes per window, drawn when the epoch
 *   starts.
 *
 * Sources: host/data_shard.c (shards), host/data_loader.c (loader).
 */
#ifndef CLLM_DATA_H
#define CLLM_DATA_H

#include "cllm/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- token shards (llm.c format) ---- */

#define CLLM_SHARD_MAGIC 20240520
/* llm.c writes uint32 tokens (Llama 3) with this magic and version 7; cllm reads them. */
#define CLLM_SHARD_MAGIC_LLMC32 20240801
#define CLLM_SHARD_HEADER_INTS 256
#define CLLM_SHARD_HEADER_BYTES (CLLM_SHARD_HEADER_INTS * 4)
/* The header's token count is an int32. */
#define CLLM_SHARD_MAX_TOKENS 2147483647ull

/* Write `n` tokens to `path`: version 1 (uint16) when vocab_size <= 65536, else version 2
 * (uint32). Every token must be < vocab_size. Atomic (tmp + fsync + rename): an existing
 * file is replaced only by a complete one. */
cllm_status cllm_shard_write(const char *path, const uint32_t *tokens, size_t n,
                             uint32_t vocab_size);
/* Read a whole shard. Validates magic, version and the token count against the file size.
 * *tokens (n) is malloc'd; the caller frees it. */
cllm_status cllm_shard_read(const char *path, uint32_t **tokens, size_t *n);

typedef struct {
    int version;        /* 1 (uint16 tokens) or 2 (uint32 tokens, either header) */
    uint64_t n_tokens;  /* from the header */
    size_t token_bytes; /* 2 or 4 */
} cllm_shard_info;
/* Read and validate only the header (and the file size against it). */
cllm_status cllm_shard_info_read(const char *path, cllm_shard_info *info);

/* ---- batch loader ---- */

typedef struct {
    const char *dir;   /* directory holding <split>_*.bin (name order) */
    const char *split; /* "train" | "val" */
    int B, T;
    bool shuffle;
    uint64_t seed;
    int rank, world; /* data parallel: rank r of world w sees a disjoint share (0, 1 for one
                        device) */
} cllm_loader_opts;

typedef struct cllm_loader cllm_loader;

/* Clear errors: no shards, wrong magic, truncated shard, too few tokens for one batch. */
cllm_status cllm_loader_init(cllm_loader **l, const cllm_loader_opts *o);
void cllm_loader_free(cllm_loader *l);
/* The next batch: inputs (B, T), targets (B, T) = inputs shifted by one within each T+1
 * window. After the last batch of an epoch it wraps to the next epoch (reshuffled by
 * seed+epoch). */
cllm_status cllm_loader_next(cllm_loader *l, uint32_t *inputs, uint32_t *targets);

/* Position of the next batch: plain integers, saved in state.json by the trainer. */
typedef struct {
    uint64_t epoch, batch;
} cllm_loader_cursor;
void cllm_loader_get_cursor(const cllm_loader *l, cllm_loader_cursor *c);
/* Resume at a saved position (batch must be < batches_per_epoch). */
cllm_status cllm_loader_set_cursor(cllm_loader *l, const cllm_loader_cursor *c);
/* Back to epoch 0, batch 0 (validation passes). */
void cllm_loader_reset(cllm_loader *l);
/* Batches of this rank per epoch (the same for every rank). */
uint64_t cllm_loader_batches_per_epoch(const cllm_loader *l);
/* Tokens in all shards of the split. */
uint64_t cllm_loader_num_tokens(const cllm_loader *l);
/* Largest token id in the split, so the trainer can check it against the model's vocab. */
uint32_t cllm_loader_max_token(const cllm_loader *l);
/* Number of shards and windows (T+1 tokens, T apart) in the split. */
int cllm_loader_num_shards(const cllm_loader *l);
uint64_t cllm_loader_num_windows(const cllm_loader *l);

#ifdef __cplusplus
}
#endif
#endif
