/* Token shards in llm.c's .bin format: 256 little-endian int32 (magic, version, count, 0...),
 * then uint16 (version 1) or uint32 (version 2) tokens, little-endian. llm.c's own uint32
 * shards (magic 20240801, version 7, written for Llama 3) are read as well. */
#include "cllm/util.h"
#include "data_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

cllm_status cllm_shard_write(const char *path, const uint32_t *tokens, size_t n,
                             uint32_t vocab_size) {
    if (vocab_size == 0)
        return cllm_fail(CLLM_ERR_USAGE, "%s: vocab_size 0 (expected the tokenizer's size)", path);
    if ((uint64_t)n > CLLM_SHARD_MAX_TOKENS)
        return cllm_fail(CLLM_ERR_TOO_LARGE,
                         "%s: %zu tokens do not fit one shard (the header's count is an int32, "
                         "at most %llu)",
                         path, n, CLLM_SHARD_MAX_TOKENS);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] >= vocab_size)
            return cllm_fail(CLLM_ERR_USAGE,
                             "%s: token %u at position %zu is outside the vocab (%u)", path,
                             tokens[i], i, vocab_size);
    int version = vocab_size <= 65536 ? 1 : 2;
    size_t width = version == 1 ? 2 : 4;
    size_t bytes = CLLM_SHARD_HEADER_BYTES + n * width;
    unsigned char *buf = cllm_calloc(1, bytes);
    if (!buf) return CLLM_ERR_NOMEM;
    put_le32(buf, CLLM_SHARD_MAGIC);
    put_le32(buf + 4, (uint32_t)version);
    put_le32(buf + 8, (uint32_t)n);
    unsigned char *p = buf + CLLM_SHARD_HEADER_BYTES;
    if (version == 1) {
        for (size_t i = 0; i < n; i++) {
            p[2 * i] = (unsigned char)tokens[i];
            p[2 * i + 1] = (unsigned char)(tokens[i] >> 8);
        }
    } else {
        for (size_t i = 0; i < n; i++)
            put_le32(p + 4 * i, tokens[i]);
    }
    cllm_status st = cllm_write_file_atomic(path, buf, bytes);
    free(buf);
    return st;
}

cllm_status cllm_shard_check_header(const char *path, const unsigned char *hdr, size_t hdr_len,
                                    uint64_t file_size, cllm_shard_info *info) {
    if (hdr_len < 12 || file_size < CLLM_SHARD_HEADER_BYTES)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: truncated shard: %llu bytes, shorter than the %d-byte header", path,
                         (unsigned long long)file_size, CLLM_SHARD_HEADER_BYTES);
    uint32_t magic = get_le32(hdr), version = get_le32(hdr + 4), count = get_le32(hdr + 8);
    size_t width;
    if (magic == CLLM_SHARD_MAGIC) {
        if (version != 1 && version != 2)
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: unsupported shard version %u at offset 4 (expected 1 = uint16 "
                             "or 2 = uint32 tokens)",
                             path, version);
        width = version == 1 ? 2 : 4;
    } else if (magic == CLLM_SHARD_MAGIC_LLMC32) {
        if (version != 7)
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: unsupported llm.c uint32 shard version %u at offset 4 "
                             "(expected 7)",
                             path, version);
        width = 4;
    } else {
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: not a token shard: magic %u at offset 0 (expected %d, or llm.c's "
                         "%d for uint32 tokens)",
                         path, magic, CLLM_SHARD_MAGIC, CLLM_SHARD_MAGIC_LLMC32);
    }
    if (count > CLLM_SHARD_MAX_TOKENS)
        return cllm_fail(CLLM_ERR_FORMAT, "%s: negative token count %d at offset 8", path,
                         (int32_t)count);
    uint64_t want = CLLM_SHARD_HEADER_BYTES + (uint64_t)count * width;
    if (file_size < want)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: truncated shard: header says %u tokens (%llu bytes) but the file "
                         "has %llu bytes; data ends at offset %llu",
                         path, count, (unsigned long long)want, (unsigned long long)file_size,
                         (unsigned long long)file_size);
    if (file_size > want)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: %llu bytes after the last token at offset %llu (header says %u "
                         "tokens of %zu bytes)",
                         path, (unsigned long long)(file_size - want), (unsigned long long)want,
                         count, width);
    info->version = width == 2 ? 1 : 2;
    info->n_tokens = count;
    info->token_bytes = width;
    return CLLM_OK;
}

cllm_status cllm_shard_info_read(const char *path, cllm_shard_info *info) {
    FILE *f = fopen(path, "rb");
    if (!f) return cllm_fail(CLLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        int e = errno;
        fclose(f);
        return cllm_fail(CLLM_ERR_IO, "%s: stat: %s", path, strerror(e));
    }
    unsigned char hdr[12];
    size_t got = fread(hdr, 1, sizeof hdr, f);
    fclose(f);
    return cllm_shard_check_header(path, hdr, got, (uint64_t)sb.st_size, info);
}

cllm_status cllm_shard_read(const char *path, uint32_t **tokens, size_t *n) {
    *tokens = NULL;
    *n = 0;
    char *data = NULL;
    size_t len = 0;
    cllm_status st = cllm_read_file(path, &data, &len);
    if (st != CLLM_OK) return st;
    cllm_shard_info info;
    st = cllm_shard_check_header(path, (const unsigned char *)data, len, len, &info);
    if (st != CLLM_OK) {
        free(data);
        return st;
    }
    uint32_t *t = cllm_malloc(info.n_tokens * sizeof *t);
    if (!t) {
        free(data);
        return CLLM_ERR_NOMEM;
    }
    const unsigned char *p = (const unsigned char *)data + CLLM_SHARD_HEADER_BYTES;
    if (info.version == 1)
        for (uint64_t i = 0; i < info.n_tokens; i++)
            t[i] = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
    else
        for (uint64_t i = 0; i < info.n_tokens; i++)
            t[i] = get_le32(p + 4 * i);
    free(data);
    *tokens = t;
    *n = (size_t)info.n_tokens;
    return CLLM_OK;
}

/* ---- streaming writer ---- */

struct cllm_shard_writer {
    char *path, *tmp;
    FILE *f;
    uint32_t vocab;
    int width;
    uint64_t n;
    unsigned char buf[1 << 16];
    size_t used;
};

cllm_status cllm_shard_writer_open(cllm_shard_writer **out, const char *path, uint32_t vocab_size) {
    *out = NULL;
    if (vocab_size == 0)
        return cllm_fail(CLLM_ERR_USAGE, "%s: vocab_size 0 (expected the tokenizer's size)", path);
    cllm_shard_writer *w = cllm_calloc(1, sizeof *w);
    if (!w) return CLLM_ERR_NOMEM;
    w->vocab = vocab_size;
    w->width = vocab_size <= 65536 ? 2 : 4;
    w->path = strdup(path);
    w->tmp = cllm_strdup_printf("%s.tmp.%ld", path, (long)getpid());
    if (!w->path || !w->tmp) {
        cllm_shard_writer_abort(w);
        return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    }
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        cllm_status st = cllm_fail(CLLM_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        cllm_shard_writer_abort(w);
        return st;
    }
    unsigned char hdr[CLLM_SHARD_HEADER_BYTES] = {0}; /* the count is filled in by close */
    if (fwrite(hdr, 1, sizeof hdr, w->f) != sizeof hdr) {
        cllm_status st = cllm_fail(CLLM_ERR_IO, "%s: write: %s", w->tmp, strerror(errno));
        cllm_shard_writer_abort(w);
        return st;
    }
    *out = w;
    return CLLM_OK;
}

static cllm_status writer_flush(cllm_shard_writer *w) {
    if (w->used && fwrite(w->buf, 1, w->used, w->f) != w->used)
        return cllm_fail(CLLM_ERR_IO, "%s: write: %s", w->tmp, strerror(errno));
    w->used = 0;
    return CLLM_OK;
}

cllm_status cllm_shard_writer_append(cllm_shard_writer *w, const uint32_t *tokens, size_t n) {
    if (w->n + n > CLLM_SHARD_MAX_TOKENS)
        return cllm_fail(CLLM_ERR_TOO_LARGE, "%s: more than %llu tokens in one shard", w->path,
                         CLLM_SHARD_MAX_TOKENS);
    for (size_t i = 0; i < n; i++) {
        uint32_t t = tokens[i];
        if (t >= w->vocab)
            return cllm_fail(CLLM_ERR_USAGE,
                             "%s: token %u at position %llu is outside the vocab (%u)", w->path, t,
                             (unsigned long long)(w->n + i), w->vocab);
        if (w->used + 4 > sizeof w->buf) {
            cllm_status st = writer_flush(w);
            if (st != CLLM_OK) return st;
        }
        unsigned char *p = w->buf + w->used;
        p[0] = (unsigned char)t;
        p[1] = (unsigned char)(t >> 8);
        if (w->width == 4) {
            p[2] = (unsigned char)(t >> 16);
            p[3] = (unsigned char)(t >> 24);
        }
        w->used += (size_t)w->width;
    }
    w->n += n;
    return CLLM_OK;
}

uint64_t cllm_shard_writer_count(const cllm_shard_writer *w) {
    return w->n;
}

cllm_status cllm_shard_writer_close(cllm_shard_writer *w) {
    cllm_status st = writer_flush(w);
    unsigned char hdr[12];
    put_le32(hdr, CLLM_SHARD_MAGIC);
    put_le32(hdr + 4, w->width == 2 ? 1u : 2u);
    put_le32(hdr + 8, (uint32_t)w->n);
    if (st == CLLM_OK &&
        (fseek(w->f, 0, SEEK_SET) != 0 || fwrite(hdr, 1, sizeof hdr, w->f) != sizeof hdr))
        st = cllm_fail(CLLM_ERR_IO, "%s: write: %s", w->tmp, strerror(errno));
    if (st == CLLM_OK && (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0))
        st = cllm_fail(CLLM_ERR_IO, "%s: fsync: %s", w->tmp, strerror(errno));
    if (fclose(w->f) != 0 && st == CLLM_OK)
        st = cllm_fail(CLLM_ERR_IO, "%s: close: %s", w->tmp, strerror(errno));
    w->f = NULL;
    if (st == CLLM_OK && rename(w->tmp, w->path) != 0)
        st = cllm_fail(CLLM_ERR_IO, "%s: rename to %s: %s", w->tmp, w->path, strerror(errno));
    if (st == CLLM_OK) {
        char *slash = strrchr(w->path, '/');
        if (slash) {
            *slash = 0;
            st = cllm_fsync_dir(*w->path ? w->path : "/");
            *slash = '/';
        } else {
            st = cllm_fsync_dir(".");
        }
    }
    if (st != CLLM_OK) unlink(w->tmp);
    free(w->path);
    free(w->tmp);
    free(w);
    return st;
}

void cllm_shard_writer_abort(cllm_shard_writer *w) {
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        unlink(w->tmp);
    }
    free(w->path);
    free(w->tmp);
    free(w);
}
