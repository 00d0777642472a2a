/* The tune table a runtime starts with: the device's tune cache (JSON, written by `cllm tune`),
 * the built-in table for devices measured here, or none (CLBlast as it is). */
#define _POSIX_C_SOURCE 200809L
#include "tune.h"

#include "cl_sources.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TUNE_FORMAT "cllm-tune"
#define TUNE_VERSION 1
#define MAX_ENTRIES 4096

/* ---------------------------------------------------------------- small helpers */

bool cllm_clblast_params_set(cllm_clblast_params *p, const char *name, size_t value) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->name[i], name)) {
            p->value[i] = value;
            return true;
        }
    if (p->n >= CLLM_CLBLAST_MAX_PARAMS || strlen(name) >= sizeof p->name[0]) return false;
    strcpy(p->name[p->n], name);
    p->value[p->n++] = value;
    return true;
}

void cllm_tune_pocl_xgemm(cllm_clblast_params *p) {
    static const char *const names[] = {"GEMMK", "KREG", "KWG", "KWI",   "MDIMA", "MDIMC",
                                        "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                        "STRM",  "STRN", "VWM",   "VWN"};
    static const size_t values[] = {0, 1, 32, 2, 8, 8, 64, 8, 8, 64, 0, 0, 0, 0, 4, 4};
    memset(p, 0, sizeof *p);
    strcpy(p->kernel, "Xgemm");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        cllm_clblast_params_set(p, names[i], values[i]);
}

/* Hash of cl/gemm.cl as embedded: a cache made for other kernels is stale. */
static uint64_t gemm_cl_hash(void) {
    for (int i = 0; i < cllm_cl_source_count; i++)
        if (!strcmp(cllm_cl_sources[i].name, "gemm.cl"))
            return cllm_hash64(cllm_cl_sources[i].text, cllm_cl_sources[i].len, CLLM_FNV_SEED);
    return 0;
}

static const char *const OP_NAMES[4] = {"nn", "nt", "tn", "tt"};

/* ---------------------------------------------------------------- the built-in table */

/* PoCL's CPU device: what `cllm tune --model models/gpt-mini.json --search cllm --metric cpu`
 * chose on this project's machine (2 cores of an Intel Xeon with AVX-512, PoCL 3.1), where
 * cl/gemm.cl runs 10-40x faster than CLBlast as it is (README: "cllm tune"). Other models'
 * products take the nearest entry (within 4x per size) or the fallback. */
typedef struct {
    int ta, tb;
    size_t M, N, K, batch;
    int mr, nv, gm, kc;
} builtin_row;

static const builtin_row POCL_ROWS[] = {
    /* op, M, N, K, batch: gpt-mini's step at batch 8 x 256; mr, nv, gm, kc */
    {0, 1, 2048, 1152, 384, 1, 6, 4, 64, 0},
    {0, 0, 2048, 384, 1152, 1, 6, 4, 1, 512},
    {1, 0, 1152, 384, 2048, 1, 6, 4, 1, 512},
    {0, 1, 2048, 384, 384, 1, 14, 2, 4, 0},
    {0, 0, 2048, 384, 384, 1, 6, 4, 4, 0},
    {1, 0, 384, 384, 2048, 1, 6, 4, 16, 256},
    {0, 1, 2048, 1536, 384, 1, 6, 4, 64, 0},
    {0, 0, 2048, 384, 1536, 1, 6, 4, 16, 256},
    {1, 0, 1536, 384, 2048, 1, 6, 4, 1, 256},
    {0, 1, 2048, 384, 1536, 1, 6, 4, 16, 256},
    {0, 0, 2048, 1536, 384, 1, 14, 2, 64, 0},
    {1, 0, 384, 1536, 2048, 1, 6, 4, 16, 256},
    {0, 1, 2048, 8192, 384, 1, 6, 4, 64, 256},
    {0, 0, 2048, 384, 8192, 1, 6, 4, 4, 512},
    {1, 0, 8192, 384, 2048, 1, 6, 4, 1, 128},
    {0, 1, 256, 256, 64, 48, 14, 2, 1, 0},
    {0, 0, 256, 64, 256, 48, 8, 2, 16, 0},
    {1, 0, 256, 64, 256, 48, 6, 2, 4, 0},
};

static bool has_avx512(const char *name) {
    static const char *const cpus[] = {"avx512",      "znver4",     "znver5",   "icelake",
                                       "sapphirerap", "cascadelake", "cooperlake", "tigerlake",
                                       "rocketlake",  "graniterap", "emeraldrap", "alderlake-avx512"};
    for (size_t i = 0; i < sizeof cpus / sizeof *cpus; i++)
        if (strstr(name, cpus[i])) return true;
    return false;
}

bool cllm_tune_builtin(const cllm_device_info *d, cllm_tune_table *t) {
    memset(t, 0, sizeof *t);
    if (d->type != CLLM_DEVICE_CPU || !strstr(d->platform_name, "Portable Computing Language"))
        return false;
    const size_t n = sizeof POCL_ROWS / sizeof *POCL_ROWS;
    t->entries = calloc(n, sizeof *t->entries);
    if (!t->entries) return false;
    /* PoCL names the device after LLVM's CPU ("pthread-skylake-avx512-..."): with AVX-512, 16
     * floats per vector and the measured tiles; else (AVX2: 16 vector registers) 8 floats and
     * the classic 6 x 16 tile of CPU BLAS kernels for every product. */
    const bool wide = has_avx512(d->name);
    for (size_t i = 0; i < n; i++) {
        const builtin_row *r = &POCL_ROWS[i];
        cllm_tune_entry *e = &t->entries[i];
        e->shape = (cllm_gemm_shape){r->ta, r->tb, r->M, r->N, r->K, r->batch};
        e->choice.path = CLLM_GEMM_CLLM;
        e->choice.k = wide ? (cllm_gemm_kernel){16, r->mr, r->nv, r->gm, r->kc}
                           : (cllm_gemm_kernel){8, 6, 2, r->gm, r->kc};
    }
    t->n_entries = (int)n;
    t->fallback.path = CLLM_GEMM_CLLM;
    t->fallback.k = wide ? (cllm_gemm_kernel){16, 6, 4, 16, 256} : (cllm_gemm_kernel){8, 6, 2, 16, 256};
    cllm_tune_pocl_xgemm(&t->clblast[0]);
    t->n_clblast = 1;
    strcpy(t->origin, "builtin");
    return true;
}

/* ---------------------------------------------------------------- the cache file */

char *cllm_tune_cache_path(const cllm_runtime *rt) {
    char *dir = rt->cache_dir ? strdup(rt->cache_dir) : cllm_rt_default_cache_dir();
    if (!dir) {
        cllm_fail(CLLM_ERR_USAGE, "no cache directory: set XDG_CACHE_HOME or HOME");
        return NULL;
    }
    uint64_t key[2];
    cllm_rt_device_key(rt, key);
    char *path = cllm_strdup_printf("%s/tune-%016llx%016llx.json", dir, (unsigned long long)key[0],
                                    (unsigned long long)key[1]);
    free(dir);
    return path;
}

static cJSON *device_json(const cllm_device_info *d) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", d->name);
    cJSON_AddStringToObject(o, "vendor", d->vendor);
    cJSON_AddStringToObject(o, "device_version", d->device_version);
    cJSON_AddStringToObject(o, "driver_version", d->driver_version);
    cJSON_AddStringToObject(o, "platform", d->platform_name);
    cJSON_AddStringToObject(o, "platform_version", d->platform_version);
    return o;
}

static void add_choice(cJSON *o, const cllm_gemm_choice *c) {
    cJSON_AddStringToObject(o, "path", cllm_gemm_path_name(c->path));
    if (c->path != CLLM_GEMM_CLLM) return;
    cJSON_AddNumberToObject(o, "vw", c->k.vw);
    cJSON_AddNumberToObject(o, "mr", c->k.mr);
    cJSON_AddNumberToObject(o, "nv", c->k.nv);
    cJSON_AddNumberToObject(o, "gm", c->k.gm);
    cJSON_AddNumberToObject(o, "kc", c->k.kc);
}

cllm_status cllm_tune_cache_save(const cllm_runtime *rt, const char *path,
                                 const cllm_tune_table *t) {
    cllm_status st = CLLM_OK;
    char *text = NULL, *dir = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(root, "format", TUNE_FORMAT);
    cJSON_AddNumberToObject(root, "version", TUNE_VERSION);
    cJSON_AddStringToObject(root, "cllm", CLLM_VERSION_STRING);
    char stamp[32], hash[24];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    cJSON_AddStringToObject(root, "created", stamp);
    cJSON_AddItemToObject(root, "device", device_json(&rt->info));
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)gemm_cl_hash());
    cJSON_AddStringToObject(root, "gemm_cl", hash);
    cJSON *cl = cJSON_AddArrayToObject(root, "clblast");
    for (int i = 0; i < t->n_clblast; i++) {
        cJSON *k = cJSON_CreateObject(), *params = cJSON_CreateObject();
        cJSON_AddStringToObject(k, "kernel", t->clblast[i].kernel);
        for (int j = 0; j < t->clblast[i].n; j++)
            cJSON_AddNumberToObject(params, t->clblast[i].name[j], (double)t->clblast[i].value[j]);
        cJSON_AddItemToObject(k, "params", params);
        cJSON_AddItemToArray(cl, k);
    }
    cJSON *fb = cJSON_AddObjectToObject(root, "fallback");
    add_choice(fb, &t->fallback);
    cJSON *arr = cJSON_AddArrayToObject(root, "gemm");
    for (int i = 0; i < t->n_entries; i++) {
        const cllm_tune_entry *e = &t->entries[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "op", OP_NAMES[e->shape.ta * 2 + e->shape.tb]);
        cJSON_AddNumberToObject(o, "m", (double)e->shape.M);
        cJSON_AddNumberToObject(o, "n", (double)e->shape.N);
        cJSON_AddNumberToObject(o, "k", (double)e->shape.K);
        cJSON_AddNumberToObject(o, "batch", (double)e->shape.batch);
        add_choice(o, &e->choice);
        cJSON_AddNumberToObject(o, "gflops", (double)(long long)(e->gflops * 10 + 0.5) / 10);
        cJSON_AddItemToArray(arr, o);
    }
    text = cJSON_Print(root);
    if (!text) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    dir = strdup(path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash) {
        *slash = 0;
        CLLM_TRY(cllm_mkdirs(dir));
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON_Print's buffer has room for the NUL it wrote */
    CLLM_TRY(cllm_write_file_atomic(path, text, len + 1));
fail:
    free(dir);
    free(text);
    cJSON_Delete(root);
    return st;
}

/* ---- reading, every field checked */

typedef struct {
    const char *path;
    char why[256];
} reader;

static bool bad(reader *r, const char *fmt, const char *what) {
    snprintf(r->why, sizeof r->why, fmt, what);
    return false;
}

static bool get_int(reader *r, const cJSON *o, const char *key, double lo, double hi,
                    long long *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble ||
        v->valuedouble < lo || v->valuedouble > hi)
        return bad(r, "'%s' is missing or not an integer in range", key);
    *out = (long long)v->valuedouble;
    return true;
}

static bool get_choice(reader *r, const cJSON *o, cllm_gemm_choice *c) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
    if (!cJSON_IsString(p) || !cllm_gemm_path_parse(p->valuestring, &c->path))
        return bad(r, "%s", "'path' is not one of clblast, clblast-direct, clblast-indirect, cllm");
    memset(&c->k, 0, sizeof c->k);
    if (c->path != CLLM_GEMM_CLLM) return true;
    long long vw, mr, nv, gm, kc;
    if (!get_int(r, o, "vw", 1, 16, &vw) || !get_int(r, o, "mr", 1, 32, &mr) ||
        !get_int(r, o, "nv", 1, 8, &nv) || !get_int(r, o, "gm", 1, 4096, &gm) ||
        !get_int(r, o, "kc", 0, 65536, &kc))
        return false;
    c->k = (cllm_gemm_kernel){(int)vw, (int)mr, (int)nv, (int)gm, (int)kc};
    if (!cllm_gemm_kernel_valid(&c->k)) return bad(r, "%s", "a cl/gemm.cl variant is out of range");
    return true;
}

static bool get_clblast(reader *r, const cJSON *arr, cllm_tune_table *t) {
    if (!cJSON_IsArray(arr)) return bad(r, "%s", "'clblast' is not an array");
    const cJSON *k;
    cJSON_ArrayForEach(k, arr) {
        if (t->n_clblast >= CLLM_TUNE_MAX_CLBLAST)
            return bad(r, "%s", "'clblast' lists too many kernels");
        cllm_clblast_params *p = &t->clblast[t->n_clblast++];
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(k, "kernel");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(k, "params");
        if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof p->kernel ||
            !*name->valuestring || !cJSON_IsObject(params))
            return bad(r, "%s", "a 'clblast' item lacks 'kernel' or 'params'");
        strcpy(p->kernel, name->valuestring);
        const cJSON *v;
        cJSON_ArrayForEach(v, params) {
            bool ok = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= (1 << 24) &&
                      v->valuedouble == (double)(long long)v->valuedouble;
            for (const char *c = v->string; ok && *c; c++)
                ok = isupper((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_';
            if (!ok || !cllm_clblast_params_set(p, v->string, (size_t)v->valuedouble))
                return bad(r, "CLBlast parameters of '%s' are malformed", p->kernel);
        }
    }
    return true;
}

static bool get_entries(reader *r, const cJSON *arr, cllm_tune_table *t) {
    if (!cJSON_IsArray(arr)) return bad(r, "%s", "'gemm' is not an array");
    int n = cJSON_GetArraySize(arr);
    if (n > MAX_ENTRIES) return bad(r, "%s", "'gemm' has too many entries");
    t->entries = calloc(n > 0 ? (size_t)n : 1, sizeof *t->entries);
    if (!t->entries) return bad(r, "%s", "out of memory");
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        cllm_tune_entry *e = &t->entries[t->n_entries];
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
        int code = -1;
        for (int i = 0; i < 4 && cJSON_IsString(op); i++)
            if (!strcmp(op->valuestring, OP_NAMES[i])) code = i;
        if (code < 0) return bad(r, "%s", "a 'gemm' entry's 'op' is not nn, nt, tn or tt");
        long long m, nn, k, b;
        const double big = 2147483647.0;
        if (!get_int(r, o, "m", 1, big, &m) || !get_int(r, o, "n", 1, big, &nn) ||
            !get_int(r, o, "k", 1, big, &k) || !get_int(r, o, "batch", 1, big, &b) ||
            !get_choice(r, o, &e->choice))
            return false;
        e->shape = (cllm_gemm_shape){code / 2, code % 2, (size_t)m, (size_t)nn, (size_t)k,
                                     (size_t)b};
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "gflops");
        e->gflops = cJSON_IsNumber(g) ? g->valuedouble : 0;
        t->n_entries++;
    }
    return true;
}

static bool same_device(reader *r, const cJSON *dev, const cllm_device_info *d) {
    const char *want[][2] = {{"name", d->name},
                             {"vendor", d->vendor},
                             {"device_version", d->device_version},
                             {"driver_version", d->driver_version},
                             {"platform", d->platform_name},
                             {"platform_version", d->platform_version}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(dev, want[i][0]);
        if (!cJSON_IsString(v) || strcmp(v->valuestring, want[i][1]) != 0)
            return bad(r, "it was made for another device or driver (device.%s differs)",
                       want[i][0]);
    }
    return true;
}

static bool parse_table(reader *r, const cJSON *root, const cllm_runtime *rt, cllm_tune_table *t) {
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsObject(root) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, TUNE_FORMAT))
        return bad(r, "%s", "not a cllm tune cache ('format' is not \"" TUNE_FORMAT "\")");
    long long version;
    if (!get_int(r, root, "version", 1, 1e9, &version)) return false;
    if (version != TUNE_VERSION) return bad(r, "%s", "its 'version' is not 1");
    if (!same_device(r, cJSON_GetObjectItemCaseSensitive(root, "device"), &rt->info)) return false;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "gemm_cl");
    char hash[24];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)gemm_cl_hash());
    if (!cJSON_IsString(h) || strcmp(h->valuestring, hash))
        return bad(r, "%s", "it was made for another version of cl/gemm.cl");
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(root, "fallback");
    if (!cJSON_IsObject(fb)) return bad(r, "%s", "'fallback' is missing");
    return get_choice(r, fb, &t->fallback) &&
           get_clblast(r, cJSON_GetObjectItemCaseSensitive(root, "clblast"), t) &&
           get_entries(r, cJSON_GetObjectItemCaseSensitive(root, "gemm"), t);
}

cllm_status cllm_tune_cache_load(const cllm_runtime *rt, const char *path, cllm_tune_table *t) {
    memset(t, 0, sizeof *t);
    if (!cllm_is_file(path)) return cllm_fail(CLLM_ERR_IO, "%s: no such file", path);
    char *text = NULL;
    size_t len = 0;
    cllm_status st = cllm_read_file(path, &text, &len);
    if (st != CLLM_OK) return st;
    reader r = {path, ""};
    cJSON *root = cJSON_ParseWithLength(text, len);
    bool ok = root ? parse_table(&r, root, rt, t) : bad(&r, "%s", "it is not valid JSON");
    cJSON_Delete(root);
    free(text);
    if (!ok) {
        cllm_tune_table_clear(t);
        return cllm_fail(CLLM_ERR_FORMAT, "%s: %s", path, r.why);
    }
    strcpy(t->origin, "cache");
    return CLLM_OK;
}

cllm_status cllm_tune_table_for(const cllm_runtime *rt, cllm_tune_table *t) {
    memset(t, 0, sizeof *t);
    strcpy(t->origin, "none");
    t->fallback.path = CLLM_GEMM_CLBLAST;
    const char *mode = getenv("CLLM_TUNE");
    if (mode && (!strcmp(mode, "0") || !strcasecmp(mode, "off") || !strcasecmp(mode, "no")))
        return CLLM_OK;
    bool builtin_only = mode && !strcasecmp(mode, "builtin");
    if (mode && *mode && !builtin_only && strcmp(mode, "1") && strcasecmp(mode, "on"))
        cllm_log(CLLM_LOG_WARN, "CLLM_TUNE=%s is not 0, 1 or builtin; using 1", mode);
    if (!builtin_only) {
        char *path = cllm_tune_cache_path(rt);
        cllm_status st = path ? cllm_tune_cache_load(rt, path, t) : CLLM_ERR_IO;
        free(path);
        if (st == CLLM_OK) return CLLM_OK;
        if (st == CLLM_ERR_FORMAT)
            cllm_log(CLLM_LOG_WARN, "ignoring the tune cache %s; run 'cllm tune' to rebuild it",
                     cllm_last_error());
        else if (st == CLLM_ERR_NOMEM)
            return st;
    }
    if (!cllm_tune_builtin(&rt->info, t)) {
        memset(t, 0, sizeof *t);
        strcpy(t->origin, "none");
        t->fallback.path = CLLM_GEMM_CLBLAST;
    }
    return CLLM_OK;
}
