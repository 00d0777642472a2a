/* .npy version 1.0 writer and reader for little-endian float32 arrays. */
#include "cllm/npy.h"

#include "cllm/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_f32le(uint8_t *p, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    p[0] = (uint8_t)u, p[1] = (uint8_t)(u >> 8), p[2] = (uint8_t)(u >> 16),
    p[3] = (uint8_t)(u >> 24);
}

static float get_f32le(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

cllm_status cllm_npy_write_f32(const char *path, const float *data, int ndim,
                               const int64_t *shape) {
    if (ndim < 0 || ndim > CLLM_NPY_MAX_DIMS)
        return cllm_fail(CLLM_ERR_USAGE, "%s: %d dimensions (at most %d)", path, ndim,
                         CLLM_NPY_MAX_DIMS);
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return cllm_fail(CLLM_ERR_USAGE, "%s: negative dimension", path);
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)shape[i]);
        count *= (size_t)shape[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    /* magic (6) + version (2) + length (2) + dict + spaces + '\n', a multiple of 64 */
    size_t hlen = (size_t)n + 1;
    size_t total = (10 + hlen + 63) / 64 * 64;
    size_t bytes = total + count * 4;
    uint8_t *buf = cllm_malloc(bytes);
    if (!buf) return CLLM_ERR_NOMEM;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    size_t dl = total - 10;
    buf[8] = (uint8_t)(dl & 255);
    buf[9] = (uint8_t)(dl >> 8);
    memset(buf + 10, ' ', dl);
    memcpy(buf + 10, dict, (size_t)n);
    buf[total - 1] = '\n';
    for (size_t i = 0; i < count; i++)
        put_f32le(buf + total + 4 * i, data[i]);
    cllm_status st = cllm_write_file_atomic(path, buf, bytes);
    free(buf);
    return st;
}

cllm_status cllm_npy_read_f32(const char *path, float **data, int *ndim, int64_t *shape) {
    *data = NULL;
    *ndim = 0;
    char *raw;
    size_t len;
    cllm_status st = cllm_read_file(path, &raw, &len);
    if (st != CLLM_OK) return st;
    const uint8_t *u = (const uint8_t *)raw;
    if (len < 10 || memcmp(raw, "\x93NUMPY", 6) || u[6] != 1) {
        free(raw);
        return cllm_fail(CLLM_ERR_FORMAT, "%s: not a version 1 .npy file", path);
    }
    size_t hl = (size_t)u[8] | (size_t)u[9] << 8;
    if (10 + hl > len) {
        free(raw);
        return cllm_fail(CLLM_ERR_FORMAT, "%s: header runs past the end of the file", path);
    }
    char *h = strndup(raw + 10, hl);
    const char *descr = h ? strstr(h, "'descr':") : NULL,
               *fo = h ? strstr(h, "'fortran_order':") : NULL;
    const char *sh = h ? strstr(h, "'shape':") : NULL;
    if (!descr || !fo || !sh) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: header lacks descr, fortran_order or shape", path);
        goto done;
    }
    if (!strstr(descr, "'<f4'") || strncmp(fo + 16, " False", 6)) {
        st = cllm_fail(CLLM_ERR_UNSUPPORTED, "%s: only little-endian float32 in C order is read",
                       path);
        goto done;
    }
    const char *p = strchr(sh, '(');
    size_t count = 1;
    for (p = p ? p + 1 : NULL; p && *p && *p != ')';) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) break;
        if (*ndim == CLLM_NPY_MAX_DIMS || v < 0) {
            st = cllm_fail(CLLM_ERR_FORMAT, "%s: bad shape", path);
            goto done;
        }
        shape[(*ndim)++] = v;
        count *= (size_t)v;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (!p || *p != ')' || len - 10 - hl != count * 4) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: the data (%zu bytes) does not match the shape", path,
                       len - 10 - hl);
        goto done;
    }
    *data = cllm_malloc(count * 4);
    if (!*data) {
        st = CLLM_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < count; i++)
        (*data)[i] = get_f32le(u + 10 + hl + 4 * i);
done:
    if (st != CLLM_OK) *ndim = 0;
    free(h);
    free(raw);
    return st;
}
