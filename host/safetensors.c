/* safetensors: a validating reader (pread on demand, or memory), conversions to float32, and an
 * atomic streaming writer. No OpenCL here. */
#include "cllm/safetensors.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB. */
#define MAX_HEADER ((uint64_t)100000000)
/* JSON numbers are doubles: integers beyond 2^53 are not exact, and no file is that large. */
#define MAX_JSON_INT 9007199254740992.0
/* Elements converted per chunk when a tensor is read with a conversion. */
#define CHUNK 65536

struct cllm_safetensors {
    char *path;
    int fd;                   /* -1 when reading from memory */
    const unsigned char *mem; /* the whole file when reading from memory */
    uint64_t data_start;      /* 8 + header length */
    uint64_t data_len;
    cllm_st_tensor *t;
    int n;
    char **meta_key, **meta_val;
    int n_meta;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[CLLM_ST_DTYPE_COUNT] = {
    [CLLM_ST_BOOL] = {"BOOL", 1},   [CLLM_ST_U8] = {"U8", 1},
    [CLLM_ST_I8] = {"I8", 1},       [CLLM_ST_F8_E4M3] = {"F8_E4M3", 1},
    [CLLM_ST_F8_E5M2] = {"F8_E5M2", 1}, [CLLM_ST_U16] = {"U16", 2},
    [CLLM_ST_I16] = {"I16", 2},     [CLLM_ST_F16] = {"F16", 2},
    [CLLM_ST_BF16] = {"BF16", 2},   [CLLM_ST_U32] = {"U32", 4},
    [CLLM_ST_I32] = {"I32", 4},     [CLLM_ST_F32] = {"F32", 4},
    [CLLM_ST_U64] = {"U64", 8},     [CLLM_ST_I64] = {"I64", 8},
    [CLLM_ST_F64] = {"F64", 8},
};

const char *cllm_st_dtype_name(cllm_st_dtype dt) {
    return (unsigned)dt < CLLM_ST_DTYPE_COUNT ? dtypes[dt].name : "?";
}

size_t cllm_st_dtype_size(cllm_st_dtype dt) {
    return (unsigned)dt < CLLM_ST_DTYPE_COUNT ? dtypes[dt].size : 0;
}

bool cllm_st_dtype_parse(const char *name, cllm_st_dtype *dt) {
    for (int i = 0; i < CLLM_ST_DTYPE_COUNT; i++)
        if (!strcmp(name, dtypes[i].name)) {
            *dt = (cllm_st_dtype)i;
            return true;
        }
    return false;
}

/* ---------------------------------------------------------------- half precision */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float cllm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        if (m == 0) return bits_f32(sign);
        /* subnormal: normalise the mantissa into an f32 exponent */
        int ex = 1;
        while (!(m & 0x400)) {
            m <<= 1;
            ex--;
        }
        return bits_f32(sign | ((uint32_t)(ex + 112) << 23) | ((m & 0x3ff) << 13));
    }
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

float cllm_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t cllm_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) /* inf, or NaN (kept quiet, payload's top bits kept) */
        return (uint16_t)(sign | 0x7c00 | (x > 0x7f800000u ? 0x200 | ((x >> 13) & 0x3ff) : 0));
    if (x >= 0x477ff000u) return sign | 0x7c00; /* >= 65520 rounds to infinity */
    if (x < 0x38800000u) {                      /* below 2^-14: a subnormal half, or zero */
        if (x <= 0x33000000u) return sign;     /* <= 2^-25 rounds (ties to even) to zero */
        uint32_t e = x >> 23, mant = (x & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e, r = mant >> shift, rem = mant & ((1u << shift) - 1),
                 half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = (x >> 13) - (112u << 10), rem = x & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

uint16_t cllm_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* ---------------------------------------------------------------- reading */

static bool host_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_bytes(void *data, size_t n, size_t size) {
    unsigned char *p = data;
    for (size_t i = 0; i < n; i++, p += size)
        for (size_t a = 0, z = size - 1; a < z; a++, z--) {
            unsigned char t = p[a];
            p[a] = p[z];
            p[z] = t;
        }
}

static uint64_t le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* Read `len` bytes at absolute file offset `off`. */
static cllm_status read_at(const cllm_safetensors *st, uint64_t off, void *dst, size_t len) {
    if (!st->mem) {
        unsigned char *p = dst;
        while (len > 0) {
            ssize_t r = pread(st->fd, p, len, (off_t)off);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0)
                return cllm_fail(CLLM_ERR_IO, "%s: read at byte %llu: %s", st->path,
                                 (unsigned long long)off,
                                 r < 0 ? strerror(errno) : "unexpected end of file (truncated?)");
            p += r;
            len -= (size_t)r;
            off += (uint64_t)r;
        }
        return CLLM_OK;
    }
    memcpy(dst, st->mem + off, len);
    return CLLM_OK;
}

/* Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF), as the reference requires. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return i;
        }
        if (i + k >= n) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80) return i;
        i += k + 1;
    }
    return (size_t)-1;
}

/* A JSON number that is a non-negative integer no larger than 2^53. */
static bool json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= MAX_JSON_INT) || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

/* "[2, 3]" for messages. */
static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t used = 0;
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

static cllm_status parse_tensor(cllm_safetensors *st, const cJSON *item, cllm_st_tensor *t) {
    const char *P = st->path, *name = item->string;
    if (!cJSON_IsObject(item))
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: tensor \"%s\": not an object with dtype, shape and data_offsets", P,
                         name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt))
        return cllm_fail(CLLM_ERR_FORMAT, "%s: tensor \"%s\": missing or non-string \"dtype\"", P,
                         name);
    if (!cllm_st_dtype_parse(dt->valuestring, &t->dtype))
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: tensor \"%s\": unknown dtype \"%s\" (accepted: BOOL, U8, I8, "
                         "F8_E4M3, F8_E5M2, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64)",
                         P, name, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return cllm_fail(CLLM_ERR_FORMAT, "%s: tensor \"%s\": missing or non-array \"shape\"", P,
                         name);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > CLLM_ST_MAX_DIMS)
        return cllm_fail(CLLM_ERR_FORMAT, "%s: tensor \"%s\": %d dimensions (cllm reads at most %d)",
                         P, name, ndim, CLLM_ST_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    bool overflow = false;
    for (int i = 0; i < ndim; i++) {
        uint64_t d;
        if (!json_uint(cJSON_GetArrayItem(sh, i), &d))
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: tensor \"%s\": shape entry %d is not a non-negative integer", P,
                             name, i);
        t->shape[i] = (int64_t)d;
        if (d != 0 && numel > UINT64_MAX / d) overflow = true;
        numel *= d;
    }
    size_t esize = cllm_st_dtype_size(t->dtype);
    if (overflow || numel > (uint64_t)SIZE_MAX / esize || numel > UINT64_MAX / 8 / esize)
        return cllm_fail(CLLM_ERR_FORMAT, "%s: tensor \"%s\": shape too large", P, name);
    t->numel = (size_t)numel;
    uint64_t b, e;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_uint(cJSON_GetArrayItem(off, 0), &b) || !json_uint(cJSON_GetArrayItem(off, 1), &e))
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: tensor \"%s\": \"data_offsets\" must be [begin, end] with "
                         "non-negative integers",
                         P, name);
    if (e < b)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: tensor \"%s\": data_offsets [%llu, %llu] end before they begin", P,
                         name, (unsigned long long)b, (unsigned long long)e);
    char shp[160];
    shape_str(shp, sizeof shp, t->shape, ndim);
    if (e - b != numel * esize)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: tensor \"%s\": data_offsets [%llu, %llu] span %llu bytes but %s "
                         "with shape %s needs %llu",
                         P, name, (unsigned long long)b, (unsigned long long)e,
                         (unsigned long long)(e - b), dtypes[t->dtype].name, shp,
                         (unsigned long long)(numel * esize));
    if (e > st->data_len)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: tensor \"%s\": data_offsets [%llu, %llu] run past the end of the "
                         "data (%llu bytes; file truncated?)",
                         P, name, (unsigned long long)b, (unsigned long long)e,
                         (unsigned long long)st->data_len);
    t->begin = b;
    t->end = e;
    t->name = strdup(name);
    if (!t->name) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    return CLLM_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuse a name that appears twice among `n` (`what` names the kind in the message). */
static cllm_status check_unique(const char *path, const char *const *names, int n,
                                const char *what) {
    const char **v = malloc(((size_t)n + 1) * sizeof *v);
    if (!v) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    memcpy(v, names, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    cllm_status s = CLLM_OK;
    for (int i = 1; i < n && s == CLLM_OK; i++)
        if (!strcmp(v[i], v[i - 1]))
            s = cllm_fail(CLLM_ERR_FORMAT, "%s: %s \"%s\" appears twice", path, what, v[i]);
    free(v);
    return s;
}

static cllm_status parse_metadata(cllm_safetensors *st, const cJSON *m) {
    if (cJSON_IsNull(m)) return CLLM_OK;
    if (!cJSON_IsObject(m))
        return cllm_fail(CLLM_ERR_FORMAT, "%s: \"__metadata__\" must be an object of strings",
                         st->path);
    int n = cJSON_GetArraySize(m);
    st->meta_key = calloc((size_t)n + 1, sizeof(char *));
    st->meta_val = calloc((size_t)n + 1, sizeof(char *));
    if (!st->meta_key || !st->meta_val) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    for (const cJSON *v = m->child; v; v = v->next) {
        if (!cJSON_IsString(v))
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: \"__metadata__\" key \"%s\": value must be a string", st->path,
                             v->string);
        st->meta_key[st->n_meta] = strdup(v->string);
        st->meta_val[st->n_meta] = strdup(v->valuestring);
        if (!st->meta_key[st->n_meta] || !st->meta_val[st->n_meta])
            return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        st->n_meta++;
    }
    return check_unique(st->path, (const char *const *)st->meta_key, st->n_meta,
                        "\"__metadata__\" key");
}

static int by_offset(const void *a, const void *b) {
    const cllm_st_tensor *x = *(const cllm_st_tensor *const *)a,
                         *y = *(const cllm_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Names unique; sorted by offset the tensors tile [0, data_len) exactly. */
static cllm_status check_layout(cllm_safetensors *st) {
    if (st->n == 0) {
        if (st->data_len != 0)
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: no tensors, but %llu bytes of data follow the header", st->path,
                             (unsigned long long)st->data_len);
        return CLLM_OK;
    }
    const cllm_st_tensor **v = malloc((size_t)st->n * sizeof *v);
    if (!v) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    const char **names = malloc((size_t)st->n * sizeof *names);
    cllm_status st_ = CLLM_OK;
    if (!names) {
        free(v);
        return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < st->n; i++) {
        v[i] = &st->t[i];
        names[i] = st->t[i].name;
    }
    st_ = check_unique(st->path, names, st->n, "tensor");
    free(names);
    if (st_ != CLLM_OK) goto done;
    qsort(v, (size_t)st->n, sizeof *v, by_offset);
    uint64_t pos = 0;
    const char *prev = NULL;
    for (int i = 0; i < st->n; i++) {
        if (v[i]->begin != pos) {
            if (prev)
                st_ = cllm_fail(CLLM_ERR_FORMAT,
                                "%s: tensor \"%s\" starts at byte %llu but \"%s\" ends at %llu "
                                "(tensors must tile the data without gaps or overlaps)",
                                st->path, v[i]->name, (unsigned long long)v[i]->begin, prev,
                                (unsigned long long)pos);
            else
                st_ = cllm_fail(CLLM_ERR_FORMAT,
                                "%s: tensor \"%s\" starts at byte %llu but the data must start "
                                "at 0 (no gaps allowed)",
                                st->path, v[i]->name, (unsigned long long)v[i]->begin);
            goto done;
        }
        pos = v[i]->end;
        prev = v[i]->name;
    }
    if (pos != st->data_len)
        st_ = cllm_fail(CLLM_ERR_FORMAT,
                        "%s: the tensors end at byte %llu of the data but %llu bytes follow the "
                        "header (trailing bytes)",
                        st->path, (unsigned long long)pos, (unsigned long long)st->data_len);
done:
    free(v);
    return st_;
}

/* Validate and index the header `h` (`n` bytes) of a file of `size` bytes. */
static cllm_status parse_header(cllm_safetensors *st, const char *h, uint64_t n) {
    const char *P = st->path;
    if (n == 0 || h[0] != '{')
        return cllm_fail(CLLM_ERR_FORMAT, "%s: the JSON header does not start with '{' (not a "
                                          "safetensors file?)",
                         P);
    size_t bad = utf8_invalid_at((const unsigned char *)h, (size_t)n);
    if (bad != (size_t)-1)
        return cllm_fail(CLLM_ERR_FORMAT, "%s: the JSON header is not valid UTF-8 (byte %zu)", P,
                         bad + 8);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)n, &end, false);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long pos = at && at >= h && at <= h + n ? (long)(at - h) + 8 : -1;
        return cllm_fail(CLLM_ERR_FORMAT, "%s: the header is not valid JSON (near byte %ld)", P,
                         pos);
    }
    cllm_status s = CLLM_OK;
    for (const char *q = end; q && q < h + n; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != 0) {
            s = cllm_fail(CLLM_ERR_FORMAT, "%s: junk after the JSON header (byte %ld)", P,
                          (long)(q - h) + 8);
            goto fail;
        }
    if (!cJSON_IsObject(root)) {
        s = cllm_fail(CLLM_ERR_FORMAT, "%s: the header is not a JSON object", P);
        goto fail;
    }
    int count = 0, nmeta = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__"))
            nmeta++;
        else
            count++;
    }
    if (nmeta > 1) {
        s = cllm_fail(CLLM_ERR_FORMAT, "%s: \"__metadata__\" appears twice", P);
        goto fail;
    }
    st->t = calloc((size_t)count + 1, sizeof *st->t);
    if (!st->t) {
        s = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) {
            s = parse_metadata(st, c);
        } else {
            s = parse_tensor(st, c, &st->t[st->n]);
            if (s == CLLM_OK) st->n++;
        }
        if (s != CLLM_OK) goto fail;
    }
    s = check_layout(st);
fail:
    cJSON_Delete(root);
    return s;
}

static cllm_safetensors *new_handle(const char *path) {
    cllm_safetensors *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->fd = -1;
    st->path = strdup(path ? path : "(memory)");
    if (!st->path) {
        free(st);
        return NULL;
    }
    return st;
}

/* Length prefix and header checks shared by files and memory; `size` is the file's size and
 * `head8` its first 8 bytes. Leaves the header length in *n. */
static cllm_status check_length(cllm_safetensors *st, uint64_t size, const unsigned char *head8,
                                uint64_t *n) {
    if (size < 8)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: %llu bytes is too short for a safetensors file (an 8-byte header "
                         "length comes first)",
                         st->path, (unsigned long long)size);
    *n = le64(head8);
    if (*n > MAX_HEADER)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: header length %llu is larger than safetensors allows (100 MB; not "
                         "a safetensors file?)",
                         st->path, (unsigned long long)*n);
    if (*n > size - 8)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: header length %llu runs past the end of the file (%llu bytes; "
                         "truncated?)",
                         st->path, (unsigned long long)*n, (unsigned long long)size);
    if (*n < 2)
        return cllm_fail(CLLM_ERR_FORMAT, "%s: header length %llu is too short for a JSON object",
                         st->path, (unsigned long long)*n);
    st->data_start = 8 + *n;
    st->data_len = size - st->data_start;
    return CLLM_OK;
}

cllm_status cllm_safetensors_open(cllm_safetensors **out, const char *path) {
    *out = NULL;
    cllm_safetensors *sf = new_handle(path);
    if (!sf) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    cllm_status st = CLLM_OK;
    char *hdr = NULL;
    sf->fd = open(path, O_RDONLY);
    if (sf->fd < 0) {
        st = cllm_fail(CLLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(sf->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = cllm_fail(CLLM_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    unsigned char head8[8] = {0};
    uint64_t size = (uint64_t)sb.st_size, n = 0;
    if (size >= 8) CLLM_TRY(read_at(sf, 0, head8, 8));
    CLLM_TRY(check_length(sf, size, head8, &n));
    hdr = malloc((size_t)n);
    if (!hdr) {
        st = cllm_fail(CLLM_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path,
                      (unsigned long long)n);
        goto fail;
    }
    CLLM_TRY(read_at(sf, 8, hdr, (size_t)n));
    CLLM_TRY(parse_header(sf, hdr, n));
    free(hdr);
    *out = sf;
    return CLLM_OK;
fail:
    free(hdr);
    cllm_safetensors_free(sf);
    return st;
}

cllm_status cllm_safetensors_open_memory(cllm_safetensors **out, const void *data, size_t len,
                                         const char *name) {
    *out = NULL;
    cllm_safetensors *st = new_handle(name);
    if (!st) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    st->mem = data;
    uint64_t n = 0;
    cllm_status s = check_length(st, len, data, &n);
    if (s == CLLM_OK) s = parse_header(st, (const char *)data + 8, n);
    if (s != CLLM_OK) {
        cllm_safetensors_free(st);
        return s;
    }
    *out = st;
    return CLLM_OK;
}

void cllm_safetensors_free(cllm_safetensors *st) {
    if (!st) return;
    if (st->fd >= 0) close(st->fd);
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_key[i]);
        free(st->meta_val[i]);
    }
    free(st->meta_key);
    free(st->meta_val);
    free(st->path);
    free(st);
}

const char *cllm_safetensors_path(const cllm_safetensors *st) { return st->path; }
int cllm_safetensors_count(const cllm_safetensors *st) { return st->n; }

const cllm_st_tensor *cllm_safetensors_tensor(const cllm_safetensors *st, int i) {
    return i >= 0 && i < st->n ? &st->t[i] : NULL;
}

const cllm_st_tensor *cllm_safetensors_find(const cllm_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const char *cllm_safetensors_metadata(const cllm_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_key[i], key)) return st->meta_val[i];
    return NULL;
}

int cllm_safetensors_metadata_count(const cllm_safetensors *st) { return st->n_meta; }

void cllm_safetensors_metadata_at(const cllm_safetensors *st, int i, const char **key,
                                  const char **value) {
    bool ok = i >= 0 && i < st->n_meta;
    *key = ok ? st->meta_key[i] : NULL;
    *value = ok ? st->meta_val[i] : NULL;
}

cllm_status cllm_safetensors_read_raw(const cllm_safetensors *st, const cllm_st_tensor *t,
                                      void *dst) {
    return read_at(st, st->data_start + t->begin, dst, (size_t)(t->end - t->begin));
}

/* Read a tensor in chunks of CHUNK elements and hand each to `conv` with its first index. */
typedef void (*convert_fn)(const unsigned char *src, size_t n, void *dst, size_t first,
                           bool *range_error);

static cllm_status read_converted(const cllm_safetensors *st, const cllm_st_tensor *t, void *dst,
                                  convert_fn conv, const char *what) {
    size_t es = cllm_st_dtype_size(t->dtype);
    unsigned char *buf = malloc(CHUNK * es);
    if (!buf) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    cllm_status s = CLLM_OK;
    bool range_error = false;
    for (size_t i = 0; i < t->numel && s == CLLM_OK; i += CHUNK) {
        size_t n = t->numel - i < CHUNK ? t->numel - i : CHUNK;
        s = read_at(st, st->data_start + t->begin + i * es, buf, n * es);
        if (s == CLLM_OK) conv(buf, n, dst, i, &range_error);
    }
    free(buf);
    if (s == CLLM_OK && range_error)
        s = cllm_fail(CLLM_ERR_FORMAT, "%s: tensor \"%s\": %s value out of range for %s",
                      st->path, t->name, cllm_st_dtype_name(t->dtype), what);
    return s;
}

static uint64_t load_le(const unsigned char *p, size_t size) {
    uint64_t v = 0;
    for (size_t k = size; k-- > 0;) v = v << 8 | p[k];
    return v;
}

static void conv_f16(const unsigned char *s, size_t n, void *dst, size_t first, bool *re) {
    (void)re;
    float *d = (float *)dst + first;
    for (size_t i = 0; i < n; i++) d[i] = cllm_f16_to_f32((uint16_t)load_le(s + 2 * i, 2));
}

static void conv_bf16(const unsigned char *s, size_t n, void *dst, size_t first, bool *re) {
    (void)re;
    float *d = (float *)dst + first;
    for (size_t i = 0; i < n; i++) d[i] = cllm_bf16_to_f32((uint16_t)load_le(s + 2 * i, 2));
}

static void conv_f64(const unsigned char *s, size_t n, void *dst, size_t first, bool *re) {
    (void)re;
    float *d = (float *)dst + first;
    for (size_t i = 0; i < n; i++) {
        uint64_t u = load_le(s + 8 * i, 8);
        double x;
        memcpy(&x, &u, 8);
        d[i] = (float)x;
    }
}

/* Little-endian integers of `size` bytes to int32, flagging values out of int32's range. */
static void conv_int(const unsigned char *s, size_t n, int32_t *d, unsigned size, bool sgn,
                     bool *re) {
    for (size_t i = 0; i < n; i++) {
        uint64_t u = load_le(s + (size_t)size * i, size);
        int64_t v;
        if (sgn && (u >> (size * 8 - 1)) & 1) {
            if (size == 8)
                memcpy(&v, &u, 8);
            else
                v = (int64_t)u - ((int64_t)1 << (size * 8));
        } else {
            v = u > INT32_MAX ? INT64_MAX : (int64_t)u;
        }
        if (v < INT32_MIN || v > INT32_MAX) {
            *re = true;
            v = 0;
        }
        d[i] = (int32_t)v;
    }
}

#define CONV_INT(fname, size, sgn)                                                             \
    static void fname(const unsigned char *s, size_t n, void *dst, size_t first, bool *re) {   \
        conv_int(s, n, (int32_t *)dst + first, size, sgn, re);                                 \
    }
CONV_INT(conv_u8, 1, false)
CONV_INT(conv_i8, 1, true)
CONV_INT(conv_u16, 2, false)
CONV_INT(conv_i16, 2, true)
CONV_INT(conv_u32, 4, false)
CONV_INT(conv_i32, 4, true)
CONV_INT(conv_u64, 8, false)
CONV_INT(conv_i64, 8, true)

cllm_status cllm_safetensors_read_f32(const cllm_safetensors *st, const cllm_st_tensor *t,
                                      float *dst) {
    switch (t->dtype) {
    case CLLM_ST_F32: {
        cllm_status s = cllm_safetensors_read_raw(st, t, dst);
        if (s == CLLM_OK && !host_little_endian()) swap_bytes(dst, t->numel, 4);
        return s;
    }
    case CLLM_ST_F16:
        return read_converted(st, t, dst, conv_f16, "float");
    case CLLM_ST_BF16:
        return read_converted(st, t, dst, conv_bf16, "float");
    case CLLM_ST_F64:
        return read_converted(st, t, dst, conv_f64, "float");
    default:
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: tensor \"%s\" has dtype %s; a floating-point tensor (F32, F16, "
                         "BF16 or F64) is needed",
                         st->path, t->name, cllm_st_dtype_name(t->dtype));
    }
}

cllm_status cllm_safetensors_read_i32(const cllm_safetensors *st, const cllm_st_tensor *t,
                                      int32_t *dst) {
    convert_fn f;
    switch (t->dtype) {
    case CLLM_ST_BOOL: /* stored as one byte, 0 or 1 */
    case CLLM_ST_U8: f = conv_u8; break;
    case CLLM_ST_I8: f = conv_i8; break;
    case CLLM_ST_U16: f = conv_u16; break;
    case CLLM_ST_I16: f = conv_i16; break;
    case CLLM_ST_U32: f = conv_u32; break;
    case CLLM_ST_I32: f = conv_i32; break;
    case CLLM_ST_U64: f = conv_u64; break;
    case CLLM_ST_I64: f = conv_i64; break;
    default:
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: tensor \"%s\" has dtype %s; an integer tensor (I8..I64, U8..U64, "
                         "BOOL) is needed",
                         st->path, t->name, cllm_st_dtype_name(t->dtype));
    }
    return read_converted(st, t, dst, f, "int32");
}

/* ---------------------------------------------------------------- writing */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[96];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal. */
static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20)
                sb_printf(b, "\\u%04x", *p);
            else
                sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* Check the entries and compute each one's size in bytes. */
static cllm_status check_entries(const char *path, const cllm_st_entry *e, int n, uint64_t *bytes,
                                 cllm_st_fill_fn fill) {
    const char **names = malloc(((size_t)n + 1) * sizeof *names);
    if (!names) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    cllm_status s = CLLM_OK;
    for (int i = 0; i < n && s == CLLM_OK; i++) {
        const char *nm = e[i].name;
        if (!nm || !*nm || !strcmp(nm, "__metadata__"))
            s = cllm_fail(CLLM_ERR_USAGE, "%s: tensor %d: empty or reserved name", path, i);
        else if ((unsigned)e[i].dtype >= CLLM_ST_DTYPE_COUNT || e[i].ndim < 0 ||
                 e[i].ndim > CLLM_ST_MAX_DIMS)
            s = cllm_fail(CLLM_ERR_USAGE, "%s: tensor \"%s\": bad dtype or rank", path, nm);
        else if (!e[i].data && !fill)
            s = cllm_fail(CLLM_ERR_USAGE, "%s: tensor \"%s\": no data and no fill function", path,
                          nm);
        uint64_t numel = 1;
        for (int d = 0; d < e[i].ndim && s == CLLM_OK; d++) {
            if (e[i].shape[d] < 0 ||
                (e[i].shape[d] > 0 && numel > (1ull << 50) / (uint64_t)e[i].shape[d]))
                s = cllm_fail(CLLM_ERR_USAGE, "%s: tensor \"%s\": bad shape", path, nm);
            else
                numel *= (uint64_t)e[i].shape[d];
        }
        bytes[i] = numel * cllm_st_dtype_size(e[i].dtype);
        names[i] = nm;
    }
    if (s == CLLM_OK && check_unique(path, names, n, "tensor") != CLLM_OK) s = CLLM_ERR_USAGE;
    free(names);
    return s;
}

cllm_status cllm_safetensors_save(const char *path, const cllm_st_entry *e, int n,
                                  const cllm_st_meta *meta, int n_meta, cllm_st_fill_fn fill,
                                  void *user) {
    uint64_t *bytes = calloc((size_t)n + 1, sizeof *bytes);
    if (!bytes) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    sbuf h = {0};
    cllm_atomic_file f = {0};
    void *tmp = NULL;
    cllm_status st = CLLM_OK;
    CLLM_TRY(check_entries(path, e, n, bytes, fill));
    sb_put(&h, "{", 1);
    if (n_meta > 0) {
        sb_put(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_put(&h, ",", 1);
            sb_json_string(&h, meta[i].key);
            sb_put(&h, ":", 1);
            sb_json_string(&h, meta[i].value);
        }
        sb_put(&h, "}", 1);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (i || n_meta > 0) sb_put(&h, ",", 1);
        sb_json_string(&h, e[i].name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", cllm_st_dtype_name(e[i].dtype));
        for (int d = 0; d < e[i].ndim; d++)
            sb_printf(&h, "%s%lld", d ? "," : "", (long long)e[i].shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + bytes[i]));
        off += bytes[i];
    }
    sb_put(&h, "}", 1);
    while (!h.oom && h.len % 8) sb_put(&h, " ", 1);
    if (h.oom) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    CLLM_TRY(cllm_atomic_begin(&f, path));
    CLLM_TRY(cllm_atomic_write(&f, len8, 8));
    CLLM_TRY(cllm_atomic_write(&f, h.s, h.len));
    for (int i = 0; i < n; i++) {
        const void *data = e[i].data;
        if (!data) {
            free(tmp);
            tmp = malloc(bytes[i] ? (size_t)bytes[i] : 1);
            if (!tmp) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of memory for tensor \"%s\"", e[i].name);
                goto fail;
            }
            CLLM_TRY(fill(user, i, tmp, (size_t)bytes[i]));
            data = tmp;
        }
        CLLM_TRY(cllm_atomic_write(&f, data, (size_t)bytes[i]));
    }
    free(tmp);
    tmp = NULL;
    st = cllm_atomic_commit(&f);
fail:
    cllm_atomic_abort(&f);
    free(tmp);
    free(h.s);
    free(bytes);
    return st;
}
