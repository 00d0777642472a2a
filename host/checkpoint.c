/* Checkpoints: step directories written crash-safely (temporary directory, fsync, rename,
 * then `latest`), pruning, and loading of cllm checkpoints and Hugging Face GPT-2 directories
 * into cllm's parameter layout. No OpenCL here. */
#include "cllm/checkpoint.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_PREFIX "transformer."
#define M_PREFIX "exp_avg."
#define V_PREFIX "exp_avg_sq."
#define NAME_CAP 96

/* ---------------------------------------------------------------- small helpers */

static char *parent_of(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; /* "a/b/" -> "a/b" */
    const char *slash = NULL;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/') slash = path + i;
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* "step_<digits>" -> the number, or -1. */
static long long step_of(const char *name) {
    if (strncmp(name, "step_", 5) || !name[5]) return -1;
    long long v = 0;
    for (const char *p = name + 5; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > (LLONG_MAX - 9) / 10) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static bool has_file(const char *dir, const char *name) {
    char *p = cllm_path_join(dir, name);
    bool ok = p && cllm_is_file(p);
    free(p);
    return ok;
}

/* A step directory that a save completed (a rename makes it appear whole). */
static bool is_complete(const char *dir) {
    return cllm_is_dir(dir) && has_file(dir, "config.json") && has_file(dir, "model.safetensors");
}

/* Parse a JSON object (for state.json and config.json checks). */
static bool is_json_object(const char *text) {
    cJSON *j = cJSON_Parse(text);
    bool ok = j && cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}

static cllm_status config_agrees(const cllm_gpt_config *a, const char *json) {
    cllm_gpt_config b;
    cllm_status st = cllm_gpt_config_parse(json, "config_json", &b);
    if (st != CLLM_OK) return CLLM_ERR_USAGE;
    static const struct {
        const char *key;
        size_t off;
    } k[] = {{"vocab_size", offsetof(cllm_gpt_config, vocab_size)},
             {"n_positions", offsetof(cllm_gpt_config, n_positions)},
             {"n_embd", offsetof(cllm_gpt_config, n_embd)},
             {"n_layer", offsetof(cllm_gpt_config, n_layer)},
             {"n_head", offsetof(cllm_gpt_config, n_head)}};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        int va = *(const int *)((const char *)a + k[i].off),
            vb = *(const int *)((const char *)&b + k[i].off);
        if (va != vb)
            return cllm_fail(CLLM_ERR_USAGE, "config_json has \"%s\": %d but the model has %d",
                             k[i].key, vb, va);
    }
    if (a->layer_norm_epsilon != b.layer_norm_epsilon)
        return cllm_fail(CLLM_ERR_USAGE,
                         "config_json has \"layer_norm_epsilon\": %g but the model has %g",
                         (double)b.layer_norm_epsilon, (double)a->layer_norm_epsilon);
    return CLLM_OK;
}

/* ---------------------------------------------------------------- writing tensors */

typedef struct {
    const cllm_gpt_config *cfg;
    const float *src[2]; /* entries [0, n) come from src[0], [n, 2n) from src[1] */
    int n;
    cllm_st_dtype dtype;
} fill_ctx;

static bool little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* dst (C, R) = src (R, C) transposed, in cache-sized tiles. */
static void transpose(float *dst, const float *src, size_t R, size_t C) {
    enum { TILE = 32 };
    for (size_t r0 = 0; r0 < R; r0 += TILE)
        for (size_t c0 = 0; c0 < C; c0 += TILE) {
            size_t r1 = r0 + TILE < R ? r0 + TILE : R, c1 = c0 + TILE < C ? c0 + TILE : C;
            for (size_t c = c0; c < c1; c++) /* contiguous stores, strided loads */
                for (size_t r = r0; r < r1; r++) dst[c * R + r] = src[r * C + c];
        }
}

static bool all_finite(const float *x, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return !bad;
}

/* Produce HF tensor (index mod n) from cllm's layout: transpose Conv1D weights (cllm (rows,
 * cols) -> HF (cols, rows)), convert to the dtype, little-endian. */
static cllm_status fill_hf(void *user, int index, void *dst, size_t bytes) {
    const fill_ctx *c = user;
    cllm_gpt_hf_tensor_info t;
    cllm_gpt_hf_tensor(c->cfg, index % c->n, &t);
    const float *src = c->src[index / c->n] + t.offset;
    size_t rows = (size_t)t.rows, cols = (size_t)t.cols, n = rows * cols;
    size_t es = cllm_st_dtype_size(c->dtype);
    if (bytes != n * es) return cllm_fail(CLLM_ERR_STATE, "tensor %s: size mismatch", t.name);
    bool direct = c->dtype == CLLM_ST_F32 && little_endian();
    float *f = direct ? dst : malloc(n * sizeof *f + 1);
    if (!f) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    if (t.transposed)
        transpose(f, src, rows, cols);
    else
        memcpy(f, src, n * sizeof *f);
    cllm_status st = CLLM_OK;
    if (!all_finite(f, n)) {
        st = cllm_fail(CLLM_ERR_NUMERIC,
                       "tensor \"%s\" holds non-finite values (NaN or Inf): refusing to save a "
                       "diverged model",
                       t.name);
    } else if (!direct) {
        unsigned char *d = dst;
        for (size_t k = 0; k < n; k++) {
            uint32_t u;
            if (c->dtype == CLLM_ST_F32)
                memcpy(&u, &f[k], 4);
            else
                u = c->dtype == CLLM_ST_F16 ? cllm_f32_to_f16(f[k]) : cllm_f32_to_bf16(f[k]);
            for (size_t b = 0; b < es; b++) d[k * es + b] = (unsigned char)(u >> (8 * b));
        }
    }
    if (!direct) free(f);
    return st;
}

/* Write a safetensors file of the parameters in `src0` (and `src1`), named prefix0 + hf name
 * (and prefix1 + hf name). */
static cllm_status write_tensors(const char *path, const cllm_gpt_config *cfg, const float *src0,
                                 const char *prefix0, const float *src1, const char *prefix1,
                                 cllm_st_dtype dtype, const cllm_st_meta *meta, int n_meta) {
    int n = cllm_gpt_hf_tensor_count(cfg), total = src1 ? 2 * n : n;
    cllm_st_entry *e = calloc((size_t)total, sizeof *e);
    char(*names)[NAME_CAP] = calloc((size_t)total, NAME_CAP);
    cllm_status st = CLLM_OK;
    if (!e || !names) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < total; i++) {
        cllm_gpt_hf_tensor_info t;
        cllm_gpt_hf_tensor(cfg, i % n, &t);
        snprintf(names[i], NAME_CAP, "%s%s", i < n ? prefix0 : prefix1, t.name);
        e[i].name = names[i];
        e[i].dtype = dtype;
        e[i].ndim = t.ndim;
        e[i].shape[0] = t.shape[0];
        e[i].shape[1] = t.shape[1];
    }
    fill_ctx fc = {cfg, {src0, src1}, n, dtype};
    st = cllm_safetensors_save(path, e, total, meta, n_meta, fill_hf, &fc);
fail:
    free(names);
    free(e);
    return st;
}

static cllm_status write_text(const char *dir, const char *name, const char *text) {
    char *p = cllm_path_join(dir, name);
    if (!p) return CLLM_ERR_NOMEM;
    cllm_status st = cllm_write_file_atomic(p, text, strlen(text));
    free(p);
    return st;
}

/* The files of a checkpoint into `dir` (which exists): model, config, tokenizer, and with
 * `training` the LoRA adapters (whose base is `final_dir`, where `dir` will be), the optimizer
 * moments and state. */
static cllm_status write_files(const char *dir, const cllm_checkpoint *ck, const char *config,
                               cllm_st_dtype dtype, bool training, const char *final_dir) {
    static const cllm_st_meta model_meta[] = {{"format", "pt"}, {"producer", "cllm"}};
    static const cllm_st_meta opt_meta[] = {
        {"format", "cllm-adamw"},
        {"contents", "AdamW first moments m as exp_avg.<name>, second moments v as "
                     "exp_avg_sq.<name>; Hugging Face GPT-2 names and shapes"}};
    char *p = cllm_path_join(dir, "model.safetensors");
    cllm_status st = p ? CLLM_OK : CLLM_ERR_NOMEM;
    if (st == CLLM_OK)
        st = write_tensors(p, &ck->cfg, ck->params, HF_PREFIX, NULL, NULL, dtype, model_meta, 2);
    free(p);
    if (st == CLLM_OK) st = write_text(dir, "config.json", config);
    if (st == CLLM_OK && ck->tokenizer_json) st = write_text(dir, "tokenizer.json", ck->tokenizer_json);
    if (st == CLLM_OK && training && ck->adam_m) {
        p = cllm_path_join(dir, "optimizer.safetensors");
        st = p ? write_tensors(p, &ck->cfg, ck->adam_m, M_PREFIX, ck->adam_v, V_PREFIX,
                               CLLM_ST_F32, opt_meta, 2)
               : CLLM_ERR_NOMEM;
        free(p);
    }
    if (st == CLLM_OK && training && ck->lora.rank > 0) {
        st = cllm_lora_save(dir, &ck->cfg, &ck->lora, ck->lora_params, final_dir);
        if (st == CLLM_OK && ck->lora_m)
            st = cllm_lora_save_optimizer(dir, &ck->cfg, &ck->lora, ck->lora_m, ck->lora_v);
    }
    if (st == CLLM_OK && training && ck->state_json) st = write_text(dir, "state.json", ck->state_json);
    if (st == CLLM_OK) st = cllm_fsync_dir(dir);
    return st;
}

/* Put the complete directory `tmp` at `final` (replacing what is there), then fsync `parent`.
 * A replaced directory is renamed to `old` first and removed only after the new one is in
 * place. */
static cllm_status install_dir(const char *tmp, const char *final, const char *old,
                               const char *parent) {
    bool replaced = false;
    if (cllm_is_dir(final) || cllm_is_file(final)) {
        cllm_remove_tree(old);
        if (rename(final, old) != 0)
            return cllm_fail(CLLM_ERR_IO, "%s: cannot move aside to replace it: %s", final,
                             strerror(errno));
        replaced = true;
    }
    if (rename(tmp, final) != 0) {
        cllm_status st =
            cllm_fail(CLLM_ERR_IO, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        if (replaced) rename(old, final);
        return st;
    }
    cllm_status st = cllm_fsync_dir(parent);
    if (st == CLLM_OK && replaced) st = cllm_remove_tree(old);
    return st;
}

/* Check `ck` before writing anything; *config receives the config.json text (malloc'd). */
static cllm_status check_for_save(const cllm_checkpoint *ck, char **config) {
    *config = NULL;
    if (!ck || !ck->params) return cllm_fail(CLLM_ERR_USAGE, "checkpoint has no parameters");
    if ((ck->adam_m == NULL) != (ck->adam_v == NULL))
        return cllm_fail(CLLM_ERR_USAGE, "checkpoint has only one of the AdamW moments m, v");
    cllm_status st = cllm_gpt_config_validate(&ck->cfg, "checkpoint config");
    if (st != CLLM_OK) return st;
    if (ck->lora.rank != 0) {
        st = cllm_lora_config_check(&ck->cfg, &ck->lora);
        if (st != CLLM_OK) return st;
        if (!ck->lora_params || (ck->lora_m == NULL) != (ck->lora_v == NULL))
            return cllm_fail(CLLM_ERR_USAGE, "checkpoint has LoRA rank %d but %s", ck->lora.rank,
                             !ck->lora_params ? "no adapters" : "only one of their moments m, v");
    }
    if (ck->state_json && !is_json_object(ck->state_json))
        return cllm_fail(CLLM_ERR_USAGE, "state_json is not a JSON object");
    if (ck->config_json) {
        st = config_agrees(&ck->cfg, ck->config_json);
        if (st != CLLM_OK) return st;
        *config = strdup(ck->config_json);
    } else {
        char *j = cllm_gpt_config_to_json(&ck->cfg);
        *config = j ? cllm_strdup_printf("%s\n", j) : NULL;
        free(j);
    }
    return *config ? CLLM_OK : cllm_fail(CLLM_ERR_NOMEM, "out of memory");
}

/* ---------------------------------------------------------------- run directories */

/* Remove RUN/.tmp.step_*, RUN/.old.step_* and RUN/latest.tmp.* left by writers that are gone
 * (or by us); each name ends in the writer's pid. */
static void clean_stale(const char *run) {
    DIR *d = opendir(run);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ".tmp.step_", 10) && strncmp(e->d_name, ".old.step_", 10) &&
            strncmp(e->d_name, "latest.tmp.", 11))
            continue;
        const char *dot = strrchr(e->d_name, '.');
        char *end = NULL;
        long pid = dot ? strtol(dot + 1, &end, 10) : 0;
        bool dead = !end || *end || pid <= 0 || pid == (long)getpid() ||
                    (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
        if (!dead) continue;
        char *p = cllm_path_join(run, e->d_name);
        if (p && cllm_remove_tree(p) != CLLM_OK)
            cllm_log(CLLM_LOG_WARN, "cannot remove stale %s: %s", p, cllm_last_error());
        free(p);
    }
    closedir(d);
}

typedef struct {
    long long step;
    char *name;
} step_entry;

static int by_step_desc(const void *a, const void *b) {
    long long x = ((const step_entry *)a)->step, y = ((const step_entry *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The complete step directories of `run`, newest (highest step) first. */
static cllm_status list_steps(const char *run, step_entry **out, int *count) {
    *out = NULL;
    *count = 0;
    DIR *d = opendir(run);
    if (!d) return cllm_fail(CLLM_ERR_IO, "%s: cannot open directory: %s", run, strerror(errno));
    step_entry *v = NULL;
    int n = 0, cap = 0;
    cllm_status st = CLLM_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long s = step_of(e->d_name);
        if (s < 0) continue;
        char *p = cllm_path_join(run, e->d_name);
        bool ok = p && is_complete(p);
        free(p);
        if (!ok) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            step_entry *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        v[n].step = s;
        v[n].name = strdup(e->d_name);
        if (!v[n].name) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (st != CLLM_OK) {
        for (int i = 0; i < n; i++) free(v[i].name);
        free(v);
        return st;
    }
    if (n > 1) qsort(v, (size_t)n, sizeof *v, by_step_desc);
    *out = v;
    *count = n;
    return CLLM_OK;
}

static void free_steps(step_entry *v, int n) {
    for (int i = 0; i < n; i++) free(v[i].name);
    free(v);
}

/* Keep the just-saved step and the newest keep-1 below it; move the rest aside and delete. */
static cllm_status prune(const char *run, long long saved, int keep) {
    step_entry *v;
    int n;
    cllm_status st = list_steps(run, &v, &n);
    if (st != CLLM_OK) return st;
    int kept = 1;
    for (int i = 0; i < n && st == CLLM_OK; i++) {
        if (v[i].step >= saved) continue;
        if (kept < keep) {
            kept++;
            continue;
        }
        char *p = cllm_path_join(run, v[i].name);
        char *old = cllm_strdup_printf("%s/.old.%s.%ld", run, v[i].name, (long)getpid());
        if (!p || !old)
            st = CLLM_ERR_NOMEM;
        else if (rename(p, old) != 0)
            st = cllm_fail(CLLM_ERR_IO, "%s: cannot remove old checkpoint: %s", p, strerror(errno));
        else
            st = cllm_remove_tree(old);
        free(p);
        free(old);
    }
    free_steps(v, n);
    if (st == CLLM_OK) st = cllm_fsync_dir(run);
    return st;
}

char *cllm_checkpoint_latest(const char *run) {
    char *lp = cllm_path_join(run, "latest"), *text = NULL;
    if (lp && cllm_is_file(lp) && cllm_read_file(lp, &text, NULL) == CLLM_OK) {
        size_t n = strlen(text);
        while (n > 0 && isspace((unsigned char)text[n - 1])) text[--n] = 0;
        if (step_of(text) >= 0) {
            char *dir = cllm_path_join(run, text);
            if (dir && is_complete(dir)) {
                free(text);
                free(lp);
                return dir;
            }
            free(dir);
        }
        cllm_log(CLLM_LOG_WARN,
                 "%s names \"%.40s\", which is not a complete checkpoint; using the newest "
                 "complete step directory instead",
                 lp, text);
    }
    free(text);
    free(lp);
    step_entry *v;
    int n;
    if (list_steps(run, &v, &n) != CLLM_OK) return NULL;
    char *dir = n > 0 ? cllm_path_join(run, v[0].name) : NULL;
    if (n == 0)
        cllm_fail(CLLM_ERR_IO,
                  "%s: no checkpoint (no step_* directory holding model.safetensors and "
                  "config.json)",
                  run);
    free_steps(v, n);
    return dir;
}

cllm_status cllm_checkpoint_save(const char *run, int64_t step, const cllm_checkpoint *ck,
                                 int keep, char **step_dir) {
    if (step_dir) *step_dir = NULL;
    if (step < 0) return cllm_fail(CLLM_ERR_USAGE, "checkpoint step must be >= 0, got %lld",
                                   (long long)step);
    char *config = NULL, *tmp = NULL, *final = NULL, *old = NULL, *latest = NULL, *abs = NULL;
    cllm_status st = check_for_save(ck, &config);
    if (st != CLLM_OK) return st;
    CLLM_TRY(cllm_mkdirs(run));
    clean_stale(run);
    char *real = realpath(run, NULL); /* the adapters' base_model_name_or_path */
    abs = real ? cllm_strdup_printf("%s/step_%08lld", real, (long long)step) : NULL;
    free(real);
    long pid = (long)getpid();
    tmp = cllm_strdup_printf("%s/.tmp.step_%08lld.%ld", run, (long long)step, pid);
    old = cllm_strdup_printf("%s/.old.step_%08lld.%ld", run, (long long)step, pid);
    final = cllm_strdup_printf("%s/step_%08lld", run, (long long)step);
    latest = cllm_strdup_printf("step_%08lld\n", (long long)step);
    if (!tmp || !old || !final || !latest) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    cllm_remove_tree(tmp);
    if (mkdir(tmp, 0755) != 0) {
        st = cllm_fail(CLLM_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
        goto fail;
    }
    st = write_files(tmp, ck, config, CLLM_ST_F32, true, abs);
    if (st == CLLM_OK) st = install_dir(tmp, final, old, run);
    if (st != CLLM_OK) {
        cllm_remove_tree(tmp);
        goto fail;
    }
    char *lp = cllm_path_join(run, "latest");
    st = lp ? cllm_write_file_atomic(lp, latest, strlen(latest)) : CLLM_ERR_NOMEM;
    free(lp);
    if (st != CLLM_OK) goto fail;
    if (keep > 0) CLLM_TRY(prune(run, step, keep));
    if (step_dir) {
        *step_dir = final;
        final = NULL;
    }
fail:
    free(config);
    free(tmp);
    free(old);
    free(final);
    free(latest);
    free(abs);
    return st;
}

cllm_status cllm_checkpoint_write_hf(const char *dir, const cllm_checkpoint *ck,
                                     cllm_st_dtype dtype, bool overwrite) {
    if (dtype != CLLM_ST_F32 && dtype != CLLM_ST_F16 && dtype != CLLM_ST_BF16)
        return cllm_fail(CLLM_ERR_USAGE, "export dtype must be F32, F16 or BF16");
    if (!overwrite && (cllm_is_dir(dir) || cllm_is_file(dir)))
        return cllm_fail(CLLM_ERR_USAGE, "%s: already exists (refusing to overwrite it)", dir);
    char *config = NULL, *tmp = NULL, *old = NULL, *parent = NULL;
    cJSON *cj = NULL;
    cllm_status st = check_for_save(ck, &config);
    if (st != CLLM_OK) return st;
    /* Say which dtype the weights are stored in, as transformers does. */
    cj = cJSON_Parse(config);
    if (cj) {
        const char *tn = dtype == CLLM_ST_F32 ? "float32" : dtype == CLLM_ST_F16 ? "float16"
                                                                                  : "bfloat16";
        cJSON_DeleteItemFromObjectCaseSensitive(cj, "torch_dtype");
        cJSON_AddStringToObject(cj, "torch_dtype", tn);
        char *s = cJSON_Print(cj), *s2 = s ? cllm_strdup_printf("%s\n", s) : NULL;
        if (s2) {
            free(config);
            config = s2;
        }
        free(s);
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    long pid = (long)getpid();
    tmp = cllm_strdup_printf("%.*s.tmp.%ld", (int)n, dir, pid);
    old = cllm_strdup_printf("%.*s.old.%ld", (int)n, dir, pid);
    parent = parent_of(dir);
    if (!tmp || !old || !parent) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    CLLM_TRY(cllm_mkdirs(parent));
    cllm_remove_tree(tmp);
    if (mkdir(tmp, 0755) != 0) {
        st = cllm_fail(CLLM_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
        goto fail;
    }
    st = write_files(tmp, ck, config, dtype, false, NULL);
    if (st == CLLM_OK) st = install_dir(tmp, dir, old, parent);
    if (st != CLLM_OK) cllm_remove_tree(tmp);
fail:
    cJSON_Delete(cj);
    free(config);
    free(tmp);
    free(old);
    free(parent);
    return st;
}

/* ---------------------------------------------------------------- loading */

/* The safetensors files a model is spread over (one, or the shards of an index). */
typedef struct {
    cllm_safetensors **f;
    int n;
} sources;

static void sources_free(sources *s) {
    for (int i = 0; i < s->n; i++) cllm_safetensors_free(s->f[i]);
    free(s->f);
    s->f = NULL;
    s->n = 0;
}

static cllm_status sources_add(sources *s, const char *path) {
    cllm_safetensors **nf = realloc(s->f, ((size_t)s->n + 1) * sizeof *nf);
    if (!nf) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    s->f = nf;
    cllm_status st = cllm_safetensors_open(&s->f[s->n], path);
    if (st == CLLM_OK) s->n++;
    return st;
}

static const cllm_st_tensor *sources_find(const sources *s, const char *name,
                                          const cllm_safetensors **file) {
    for (int i = 0; i < s->n; i++) {
        const cllm_st_tensor *t = cllm_safetensors_find(s->f[i], name);
        if (t) {
            *file = s->f[i];
            return t;
        }
    }
    return NULL;
}

/* Open model.safetensors, or the shards a model.safetensors.index.json names. */
static cllm_status open_model(const char *dir, const char *file, sources *s) {
    if (file) return sources_add(s, file);
    char *p = cllm_path_join(dir, "model.safetensors");
    cllm_status st = CLLM_OK;
    if (p && cllm_is_file(p)) {
        st = sources_add(s, p);
        free(p);
        return st;
    }
    free(p);
    char *ip = cllm_path_join(dir, "model.safetensors.index.json"), *text = NULL;
    cJSON *j = NULL;
    CLLM_TRY(cllm_read_file(ip, &text, NULL));
    j = cJSON_Parse(text);
    const cJSON *map = j ? cJSON_GetObjectItemCaseSensitive(j, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: no \"weight_map\" object", ip);
        goto fail;
    }
    for (const cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !*e->valuestring) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: \"weight_map\" entry \"%s\" must name a file in the directory", ip,
                           e->string);
            goto fail;
        }
        bool seen = false;
        for (const cJSON *q = map->child; q != e; q = q->next)
            if (!strcmp(q->valuestring, e->valuestring)) seen = true;
        if (seen) continue;
        char *sp = cllm_path_join(dir, e->valuestring);
        st = sp ? sources_add(s, sp) : CLLM_ERR_NOMEM;
        free(sp);
        if (st != CLLM_OK) goto fail;
    }
fail:
    cJSON_Delete(j);
    free(text);
    free(ip);
    return st;
}

static void shape_text(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t u = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && u < cap; i++)
        u += (size_t)snprintf(buf + u, cap - u, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (u < cap) snprintf(buf + u, cap - u, "]");
}

/* Read every HF tensor (found as one of `prefixes` + name) into `dst` in cllm's layout. `what`
 * names the files in messages. */
static cllm_status read_layout(const sources *s, const cllm_gpt_config *cfg,
                               const char *const *prefixes, int np, float *dst, const char *what) {
    int n = cllm_gpt_hf_tensor_count(cfg);
    size_t maxel = 0;
    for (int i = 0; i < n; i++) {
        cllm_gpt_hf_tensor_info t;
        cllm_gpt_hf_tensor(cfg, i, &t);
        if ((size_t)t.rows * t.cols > maxel) maxel = (size_t)t.rows * t.cols;
    }
    float *tmp = malloc(maxel * sizeof *tmp);
    if (!tmp) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (%zu floats)", maxel);
    cllm_status st = CLLM_OK;
    for (int i = 0; i < n && st == CLLM_OK; i++) {
        cllm_gpt_hf_tensor_info t;
        cllm_gpt_hf_tensor(cfg, i, &t);
        const cllm_st_tensor *found = NULL;
        const cllm_safetensors *file = NULL;
        char name[NAME_CAP] = "";
        for (int p = 0; p < np; p++) {
            char cand[NAME_CAP];
            snprintf(cand, sizeof cand, "%s%s", prefixes[p], t.name);
            const cllm_safetensors *f;
            const cllm_st_tensor *x = sources_find(s, cand, &f);
            if (x && found) {
                st = cllm_fail(CLLM_ERR_FORMAT, "%s: both \"%s\" and \"%s\" are present", what,
                               name, cand);
                break;
            }
            if (x) {
                found = x;
                file = f;
                snprintf(name, sizeof name, "%s", cand);
            }
        }
        if (st != CLLM_OK) break;
        if (!found) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: tensor \"%s%s\" is missing (config.json: n_layer %d, n_embd %d)",
                           what, prefixes[0], t.name, cfg->n_layer, cfg->n_embd);
            break;
        }
        bool shape_ok = found->ndim == t.ndim && found->shape[0] == t.shape[0] &&
                        (t.ndim == 1 || found->shape[1] == t.shape[1]);
        if (!shape_ok) {
            char got[128], want[64];
            shape_text(got, sizeof got, found->shape, found->ndim);
            shape_text(want, sizeof want, t.shape, t.ndim);
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: tensor \"%s\" has shape %s but config.json (vocab_size %d, "
                           "n_positions %d, n_embd %d) needs %s",
                           cllm_safetensors_path(file), name, got, cfg->vocab_size,
                           cfg->n_positions, cfg->n_embd, want);
            break;
        }
        st = cllm_safetensors_read_f32(file, found, tmp);
        if (st != CLLM_OK) break;
        size_t rows = (size_t)t.rows, cols = (size_t)t.cols;
        if (!all_finite(tmp, rows * cols)) {
            st = cllm_fail(CLLM_ERR_NUMERIC, "%s: tensor \"%s\" holds non-finite values (NaN or Inf)",
                           cllm_safetensors_path(file), name);
            break;
        }
        if (t.transposed) /* HF (cols, rows) -> cllm (rows, cols) */
            transpose(dst + t.offset, tmp, cols, rows);
        else
            memcpy(dst + t.offset, tmp, rows * cols * sizeof *tmp);
    }
    free(tmp);
    return st;
}

/* "h.<digits>.attn.bias" / ".attn.masked_bias": HF's causal-mask buffers, not parameters. */
static bool is_mask_buffer(const char *name) {
    if (strncmp(name, "h.", 2)) return false;
    const char *p = name + 2;
    if (!isdigit((unsigned char)*p)) return false;
    while (isdigit((unsigned char)*p)) p++;
    return !strcmp(p, ".attn.bias") || !strcmp(p, ".attn.masked_bias");
}

static bool is_param_name(const cllm_gpt_config *cfg, const char *name) {
    int n = cllm_gpt_hf_tensor_count(cfg);
    for (int i = 0; i < n; i++) {
        cllm_gpt_hf_tensor_info t;
        cllm_gpt_hf_tensor(cfg, i, &t);
        if (!strcmp(t.name, name)) return true;
    }
    return false;
}

/* lm_head.weight, when present, must be the tied embedding. */
static cllm_status check_lm_head(const cllm_safetensors *f, const cllm_st_tensor *t,
                                 const cllm_gpt_config *cfg, const float *params, const char *name) {
    if (t->ndim != 2 || t->shape[0] != cfg->vocab_size || t->shape[1] != cfg->n_embd)
        return cllm_fail(CLLM_ERR_FORMAT, "%s: tensor \"%s\" has the wrong shape for a tied LM head",
                         cllm_safetensors_path(f), name);
    float *h = malloc(t->numel * sizeof *h + 1);
    if (!h) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    cllm_status st = cllm_safetensors_read_f32(f, t, h);
    if (st == CLLM_OK && memcmp(h, params, t->numel * sizeof *h) != 0)
        st = cllm_fail(CLLM_ERR_UNSUPPORTED,
                       "%s: \"%s\" differs from wte.weight: an untied LM head is not supported "
                       "(cllm ties the LM head to the token embedding)",
                       cllm_safetensors_path(f), name);
    free(h);
    return st;
}

/* Every tensor of the model files must be a parameter, a mask buffer, or a tied lm_head. */
static cllm_status check_model_extras(const sources *s, const cllm_gpt_config *cfg,
                                      const float *params) {
    for (int k = 0; k < s->n; k++)
        for (int i = 0; i < cllm_safetensors_count(s->f[k]); i++) {
            const cllm_st_tensor *t = cllm_safetensors_tensor(s->f[k], i);
            const char *nm = t->name;
            if (!strncmp(nm, HF_PREFIX, strlen(HF_PREFIX))) nm += strlen(HF_PREFIX);
            if (is_param_name(cfg, nm) || is_mask_buffer(nm)) continue;
            if (!strcmp(nm, "lm_head.weight")) {
                cllm_status st = check_lm_head(s->f[k], t, cfg, params, t->name);
                if (st != CLLM_OK) return st;
                continue;
            }
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: unexpected tensor \"%s\" (not part of a GPT-2 with n_layer %d; "
                             "is config.json the model's own?)",
                             cllm_safetensors_path(s->f[k]), t->name, cfg->n_layer);
        }
    return CLLM_OK;
}

static cllm_status load_optimizer(const char *path, cllm_checkpoint *ck, size_t total) {
    sources s = {0};
    cllm_status st = sources_add(&s, path);
    if (st != CLLM_OK) return st;
    ck->adam_m = calloc(total, sizeof(float));
    ck->adam_v = calloc(total, sizeof(float));
    if (!ck->adam_m || !ck->adam_v) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory for the AdamW moments");
        goto fail;
    }
    const char *pm[] = {M_PREFIX}, *pv[] = {V_PREFIX};
    CLLM_TRY(read_layout(&s, &ck->cfg, pm, 1, ck->adam_m, path));
    CLLM_TRY(read_layout(&s, &ck->cfg, pv, 1, ck->adam_v, path));
    int want = 2 * cllm_gpt_hf_tensor_count(&ck->cfg);
    if (cllm_safetensors_count(s.f[0]) != want)
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: %d tensors, expected %d (exp_avg.* and exp_avg_sq.*)",
                       path, cllm_safetensors_count(s.f[0]), want);
fail:
    sources_free(&s);
    return st;
}

/* Load a model directory (`file`: a specific .safetensors in it, or NULL). */
static cllm_status load_dir(const char *dir, const char *file, bool want_opt, cllm_checkpoint *ck) {
    sources s = {0};
    char *cp = cllm_path_join(dir, "config.json"), *op = NULL, *tp = NULL, *sp = NULL;
    cllm_status st = CLLM_OK;
    if (!cp) return CLLM_ERR_NOMEM;
    if (!cllm_is_file(cp)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: no config.json beside the weights", dir);
        goto fail;
    }
    CLLM_TRY(cllm_read_file(cp, &ck->config_json, NULL));
    CLLM_TRY(cllm_gpt_config_parse(ck->config_json, cp, &ck->cfg));
    CLLM_TRY(open_model(dir, file, &s));
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&ck->cfg, &lay);
    ck->params = calloc(lay.total, sizeof(float));
    if (!ck->params) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory for %zu parameters", lay.total);
        goto fail;
    }
    const char *prefixes[] = {"", HF_PREFIX};
    CLLM_TRY(read_layout(&s, &ck->cfg, prefixes, 2, ck->params, file ? file : dir));
    CLLM_TRY(check_model_extras(&s, &ck->cfg, ck->params));
    tp = cllm_path_join(dir, "tokenizer.json");
    if (tp && cllm_is_file(tp)) CLLM_TRY(cllm_read_file(tp, &ck->tokenizer_json, NULL));
    sp = cllm_path_join(dir, "state.json");
    if (sp && cllm_is_file(sp)) {
        CLLM_TRY(cllm_read_file(sp, &ck->state_json, NULL));
        if (!is_json_object(ck->state_json)) {
            st = cllm_fail(CLLM_ERR_FORMAT, "%s: not a JSON object", sp);
            goto fail;
        }
    }
    op = cllm_path_join(dir, "optimizer.safetensors");
    if (want_opt && op && cllm_is_file(op)) CLLM_TRY(load_optimizer(op, ck, lay.total));
    if (cllm_lora_present(dir)) {
        CLLM_TRY(cllm_lora_load(dir, &ck->cfg, &ck->lora, &ck->lora_params, NULL));
        free(op);
        op = cllm_path_join(dir, CLLM_LORA_OPTIMIZER_FILE);
        if (want_opt && op && cllm_is_file(op))
            CLLM_TRY(cllm_lora_load_optimizer(dir, &ck->cfg, &ck->lora, &ck->lora_m, &ck->lora_v));
    }
fail:
    sources_free(&s);
    free(cp);
    free(op);
    free(tp);
    free(sp);
    return st;
}

cllm_status cllm_checkpoint_load(const char *path, bool want_optimizer, cllm_checkpoint *ck) {
    memset(ck, 0, sizeof *ck);
    cllm_status st = CLLM_OK;
    char *dir = NULL;
    if (cllm_is_file(path)) {
        size_t n = strlen(path);
        if (n < 12 || strcmp(path + n - 12, ".safetensors"))
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: not a checkpoint (expected a step, run or Hugging Face GPT-2 "
                             "directory, or a .safetensors file with config.json beside it)",
                             path);
        dir = parent_of(path);
        st = dir ? load_dir(dir, path, want_optimizer, ck) : CLLM_ERR_NOMEM;
    } else if (!cllm_is_dir(path)) {
        return cllm_fail(CLLM_ERR_IO, "%s: no such checkpoint: %s", path, strerror(ENOENT));
    } else if (has_file(path, "model.safetensors") ||
               has_file(path, "model.safetensors.index.json")) {
        st = load_dir(path, NULL, want_optimizer, ck);
    } else if (has_file(path, "pytorch_model.bin")) {
        return cllm_fail(CLLM_ERR_UNSUPPORTED,
                         "%s: has pytorch_model.bin but no model.safetensors; cllm reads "
                         "safetensors (in Python: GPT2LMHeadModel.from_pretrained(dir)"
                         ".save_pretrained(dir2, safe_serialization=True))",
                         path);
    } else {
        dir = cllm_checkpoint_latest(path);
        if (!dir)
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: not a checkpoint (no model.safetensors, and no step_* "
                             "directory holding one)",
                             path);
        st = load_dir(dir, NULL, want_optimizer, ck);
    }
    free(dir);
    if (st != CLLM_OK) cllm_checkpoint_clear(ck);
    return st;
}

void cllm_checkpoint_clear(cllm_checkpoint *ck) {
    if (!ck) return;
    free(ck->params);
    free(ck->adam_m);
    free(ck->adam_v);
    free(ck->config_json);
    free(ck->state_json);
    free(ck->tokenizer_json);
    free(ck->lora_params);
    free(ck->lora_m);
    free(ck->lora_v);
    memset(ck, 0, sizeof *ck);
}
