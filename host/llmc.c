/* llm.c model files: read (versions 1, 3, 5) and write (3, 5) in cllm's parameter layout. */
#include "cllm/llmc.h"
#include "cllm/safetensors.h"
#include "cllm/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HEADER_INTS 256
#define CHUNK 65536

static uint32_t le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Read `n` values of `es` bytes (4: float32, 2: bfloat16) from f into dst as floats. */
static cllm_status read_floats(FILE *f, const char *path, float *dst, size_t n, size_t es,
                               unsigned char *buf) {
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        if (fread(buf, es, k, f) != k)
            return cllm_fail(CLLM_ERR_FORMAT, "%s: unexpected end of file (truncated?)", path);
        for (size_t j = 0; j < k; j++) {
            float v;
            if (es == 4) {
                uint32_t u = le32(buf + 4 * j);
                memcpy(&v, &u, 4);
            } else {
                v = cllm_bf16_to_f32((uint16_t)(buf[2 * j] | buf[2 * j + 1] << 8));
            }
            if (!isfinite(v))
                return cllm_fail(CLLM_ERR_NUMERIC, "%s: non-finite parameter value (NaN or Inf)",
                                 path);
            dst[i + j] = v;
        }
    }
    return CLLM_OK;
}

cllm_status cllm_llmc_load(const char *path, cllm_gpt_config *cfg, float **params) {
    *params = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cllm_fail(CLLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char hb[HEADER_INTS * 4], *buf = NULL;
    float *p = NULL;
    cllm_status st = CLLM_OK;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = cllm_fail(CLLM_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    memset(hb, 0, sizeof hb);
    size_t got = fread(hb, 1, sizeof hb, f);
    int32_t h[8];
    for (int i = 0; i < 8; i++) h[i] = (int32_t)le32(hb + 4 * i);
    if (got < sizeof hb && (got < 4 || h[0] == CLLM_LLMC_MAGIC)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: shorter than llm.c's 1024-byte header", path);
        goto fail;
    }
    if (h[0] != CLLM_LLMC_MAGIC) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: bad magic %d (an llm.c model file starts with %d; a PyTorch "
                       "pytorch_model.bin is not one)",
                       path, h[0], CLLM_LLMC_MAGIC);
        goto fail;
    }
    if (h[1] != 1 && h[1] != 3 && h[1] != 5) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: llm.c model version %d is not supported (accepted: 3 = float32, 5 = "
                       "bfloat16, 1 = float32 unpadded)",
                       path, h[1]);
        goto fail;
    }
    cllm_gpt_config c = {.n_positions = h[2], .vocab_size = h[3], .n_layer = h[4],
                         .n_head = h[5], .n_embd = h[6], .layer_norm_epsilon = 1e-5f,
                         .initializer_range = 0.02f};
    CLLM_TRY(cllm_gpt_config_validate(&c, path));
    long long Vp = h[1] == 1 ? h[3] : h[7];
    if (Vp < c.vocab_size || Vp > c.vocab_size + (1 << 20)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: padded vocab %lld is not >= vocab size %d", path, Vp,
                       c.vocab_size);
        goto fail;
    }
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&c, &lay);
    size_t C = (size_t)c.n_embd, V = (size_t)c.vocab_size, es = h[1] == 5 ? 2 : 4;
    /* The file holds Vp rows of wte; everything after wte is laid out as in cllm. */
    size_t rest = lay.total - lay.numel[CLLM_P_WTE];
    unsigned long long want = sizeof hb + ((unsigned long long)Vp * C + rest) * es;
    if ((unsigned long long)sb.st_size != want) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: %llu bytes, but its header (maxT %d, V %d, Vp %lld, L %d, NH %d, C "
                       "%d, %s) needs %llu%s",
                       path, (unsigned long long)sb.st_size, c.n_positions, c.vocab_size, Vp,
                       c.n_layer, c.n_head, c.n_embd, es == 2 ? "bfloat16" : "float32", want,
                       (unsigned long long)sb.st_size < want ? " (truncated?)" : "");
        goto fail;
    }
    p = calloc(lay.total, sizeof *p);
    buf = malloc(CHUNK * 4);
    if (!p || !buf) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory for %zu parameters", lay.total);
        goto fail;
    }
    CLLM_TRY(read_floats(f, path, p, V * C, es, buf));
    if (fseeko(f, (off_t)(((size_t)Vp - V) * C * es), SEEK_CUR) != 0) {
        st = cllm_fail(CLLM_ERR_IO, "%s: seek failed", path);
        goto fail;
    }
    CLLM_TRY(read_floats(f, path, p + lay.offset[CLLM_P_WPE], rest, es, buf));
    *cfg = c;
    *params = p;
    p = NULL;
fail:
    free(p);
    free(buf);
    fclose(f);
    return st;
}

cllm_status cllm_llmc_save(const char *path, const cllm_gpt_config *cfg, const float *params,
                           bool bf16) {
    cllm_status st = cllm_gpt_config_validate(cfg, "model config");
    if (st != CLLM_OK) return st;
    if (fabsf(cfg->layer_norm_epsilon - 1e-5f) > 1e-12f)
        return cllm_fail(CLLM_ERR_UNSUPPORTED,
                         "llm.c's format has no layer_norm_epsilon (llm.c uses 1e-5); this model "
                         "uses %g",
                         (double)cfg->layer_norm_epsilon);
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(cfg, &lay);
    int32_t h[HEADER_INTS] = {CLLM_LLMC_MAGIC, bf16 ? 5 : 3, cfg->n_positions, cfg->vocab_size,
                              cfg->n_layer, cfg->n_head, cfg->n_embd, cllm_gpt_padded_vocab(cfg)};
    unsigned char hb[HEADER_INTS * 4];
    for (int i = 0; i < HEADER_INTS; i++)
        for (int b = 0; b < 4; b++) hb[4 * i + b] = (unsigned char)((uint32_t)h[i] >> (8 * b));
    unsigned char *buf = malloc(CHUNK * 4);
    if (!buf) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    cllm_atomic_file f = {0};
    CLLM_TRY(cllm_atomic_begin(&f, path));
    CLLM_TRY(cllm_atomic_write(&f, hb, sizeof hb));
    size_t es = bf16 ? 2 : 4;
    for (size_t i = 0; i < lay.total; i += CHUNK) {
        size_t k = lay.total - i < CHUNK ? lay.total - i : CHUNK;
        for (size_t j = 0; j < k; j++) {
            uint32_t u;
            if (bf16) {
                u = cllm_f32_to_bf16(params[i + j]);
            } else {
                memcpy(&u, &params[i + j], 4);
            }
            for (size_t b = 0; b < es; b++) buf[es * j + b] = (unsigned char)(u >> (8 * b));
        }
        CLLM_TRY(cllm_atomic_write(&f, buf, k * es));
    }
    st = cllm_atomic_commit(&f);
fail:
    cllm_atomic_abort(&f);
    free(buf);
    return st;
}
