/* cllm data prepare: read -> curate -> deduplicate -> tokenize -> split -> shards.
 *
 * Documents go through in chunks (a few thousand at a time). Per chunk: curation and MinHash
 * signatures in parallel; deduplication in corpus order (so the first of a group of
 * duplicates is kept, whatever the thread count); tokenization of the kept documents in
 * parallel (the tokenizer's batch encoder); tokens appended to a temporary file. At the end
 * the split is decided per document from a hash of its text and the seed, and the tokens are
 * copied into train/val shards. Everything is written into a work directory inside out_dir
 * and moved into place when complete. */
#include "cllm/data.h"
#include "cllm/tokenizer.h"
#include "cllm/util.h"
#include "data_internal.h"
#include "eval_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_DOCS 8192
#define CHUNK_BYTES ((size_t)32 << 20)
#define PREVIEW_CHARS 100

cllm_prepare_opts cllm_prepare_opts_default(void) {
    cllm_prepare_opts o = {0};
    o.read = cllm_reader_opts_default();
    o.curate = cllm_curate_opts_default();
    o.dedup = cllm_dedup_opts_default();
    o.val_fraction = 0.005;
    o.seed = 1337;
    o.shard_tokens = 100000000;
    o.removed_log = true;
    return o;
}

/* ---- a parallel loop over [0, n) ---- */

typedef struct {
    void (*fn)(void *ctx, size_t i);
    void *ctx;
    size_t n;
    atomic_size_t next;
} par_loop;

static void *par_worker(void *arg) {
    par_loop *p = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) break;
        p->fn(p->ctx, i);
    }
    return NULL;
}

static void parallel_for(int threads, size_t n, void (*fn)(void *, size_t), void *ctx) {
    par_loop p = {fn, ctx, n, 0};
    if (threads > (int)n) threads = (int)n;
    pthread_t t[256];
    int started = 0;
    for (int k = 1; k < threads && k < 256; k++)
        if (pthread_create(&t[started], NULL, par_worker, &p) == 0) started++;
    par_worker(&p); /* the calling thread works too; with no helper it does everything */
    for (int k = 0; k < started; k++)
        pthread_join(t[k], NULL);
}

/* ---- one chunk of documents ---- */

typedef struct {
    char *raw; /* the document as read (the reader reuses its buffer) */
    size_t raw_len;
    const char *path;
    uint64_t line, id;
    cllm_curated cur;
    cllm_doc_sig sig;
    uint64_t split_hash;
    cllm_doc_rule rule;
    uint64_t dup_of;
    double sim;
} item;

typedef struct {
    const cllm_prepare_opts *o;
    cllm_dedup *dedup;
    item *items;
    uint32_t *minhash; /* (CHUNK_DOCS, num_perm) */
    /* the first failure of a worker */
    pthread_mutex_t lock;
    cllm_status st;
    char err[512];
} chunk_ctx;

static void curate_one(void *arg, size_t i) {
    chunk_ctx *c = arg;
    item *it = &c->items[i];
    cllm_status st = cllm_curate(&c->o->curate, it->raw, it->raw_len, &it->cur);
    if (st != CLLM_OK) {
        pthread_mutex_lock(&c->lock);
        if (c->st == CLLM_OK) {
            c->st = st;
            snprintf(c->err, sizeof c->err, "%s:%llu: %s", it->path, (unsigned long long)it->line,
                     cllm_last_error());
        }
        pthread_mutex_unlock(&c->lock);
        return;
    }
    it->split_hash = cllm_xxh64(it->cur.text, it->cur.len, c->o->seed ^ 0x53504c4954ull);
    if (it->cur.rule == CLLM_DOC_KEPT) {
        it->sig.minhash = c->minhash ? c->minhash + i * (size_t)c->o->dedup.num_perm : NULL;
        cllm_dedup_signature(c->dedup, it->cur.text, it->cur.len, &it->sig);
    }
}

/* ---- kept documents (for dup_of sources and the split) ---- */

typedef struct {
    uint64_t id;      /* document number in corpus order */
    const char *path; /* owned by the reader */
    uint64_t line;
    uint64_t split_hash;
    uint64_t tok_off; /* first token in the temporary file */
    uint64_t n_tok;   /* including <|endoftext|> */
    uint64_t bytes;   /* cleaned text */
} kept_doc;

typedef struct {
    const cllm_prepare_opts *o;
    cllm_prepare_stats *s;
    char *work; /* out_dir/.prepare.<pid> */
    cllm_reader *reader;
    cllm_tokenizer *tok;
    cllm_dedup *dedup;
    /* held-out texts (o->held_out): their own index, with the same permutations as dedup so
     * that a document's signature can be looked up in it; text k came from
     * o->held_out[excl_src[k].file], line excl_src[k].line */
    cllm_dedup *excl;
    struct {
        int file;
        uint64_t line;
    } *excl_src;
    uint64_t excl_cap;
    FILE *tokens; /* work/tokens.u32 */
    uint64_t n_tokens;
    FILE *removed; /* work/removed.jsonl */
    kept_doc *kept;
    uint64_t n_kept, cap_kept; /* n_kept: tokenized; n_listed >= n_kept: deduplicated */
    uint64_t n_listed;
    uint64_t next_id;
    uint64_t total_bytes; /* of the input files, for progress */
    double t0, last_progress;
    int threads;
} prep;

static const kept_doc *find_kept(const prep *p, uint64_t id) {
    uint64_t lo = 0, hi = p->n_listed;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (p->kept[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->n_listed && p->kept[lo].id == id ? &p->kept[lo] : NULL;
}

/* A short single-line preview of a text for removed.jsonl: at most PREVIEW_CHARS code points,
 * valid UTF-8. */
static char *preview(const char *s, size_t n) {
    char *out = malloc(4 * PREVIEW_CHARS + 4);
    if (!out) return NULL;
    size_t o = 0, i = 0;
    int chars = 0;
    while (i < n && chars < PREVIEW_CHARS) {
        uint32_t c;
        int k = cllm_utf8_decode((const unsigned char *)s + i, n - i, &c);
        if (k < 0) {
            c = 0xFFFD;
            k = -k;
        }
        i += (size_t)k;
        if (c < 0x20 || c == 0x7F) c = ' ';
        o += cllm_utf8_encode(c, out + o);
        chars++;
    }
    if (i < n) o += cllm_utf8_encode(0x2026, out + o); /* ... */
    out[o] = 0;
    return out;
}

static cllm_status log_removed(prep *p, const item *it) {
    if (!p->removed) return CLLM_OK;
    cJSON *j = cJSON_CreateObject();
    if (!j) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    char *src = cllm_strdup_printf("%s:%llu", it->path, (unsigned long long)it->line);
    cJSON_AddNumberToObject(j, "doc", (double)it->id);
    cJSON_AddStringToObject(j, "source", src ? src : "");
    cJSON_AddStringToObject(j, "rule", cllm_doc_rule_name(it->rule));
    switch (it->rule) {
    case CLLM_DOC_TOO_SHORT:
    case CLLM_DOC_TOO_LONG:
        cJSON_AddNumberToObject(j, "chars", it->cur.value);
        break;
    case CLLM_DOC_LOW_ALPHA:
        cJSON_AddNumberToObject(j, "alpha", it->cur.value);
        break;
    case CLLM_DOC_REPEATED_LINES:
        cJSON_AddNumberToObject(j, "repeated_lines", it->cur.value);
        break;
    case CLLM_DOC_LONG_WORD:
        cJSON_AddNumberToObject(j, "word_chars", it->cur.value);
        break;
    case CLLM_DOC_EXACT_DUP:
    case CLLM_DOC_NEAR_DUP: {
        cJSON_AddNumberToObject(j, "dup_of", (double)it->dup_of);
        const kept_doc *k = find_kept(p, it->dup_of);
        if (k) {
            char *ks = cllm_strdup_printf("%s:%llu", k->path, (unsigned long long)k->line);
            cJSON_AddStringToObject(j, "dup_of_source", ks ? ks : "");
            free(ks);
        }
        if (it->rule == CLLM_DOC_NEAR_DUP) cJSON_AddNumberToObject(j, "jaccard", it->sim);
        break;
    }
    case CLLM_DOC_HELD_OUT: {
        char *by = cllm_strdup_printf("%s:%llu", p->o->held_out[p->excl_src[it->dup_of].file],
                                      (unsigned long long)p->excl_src[it->dup_of].line);
        cJSON_AddStringToObject(j, "held_out_in", by ? by : "");
        free(by);
        cJSON_AddNumberToObject(j, "jaccard", it->sim);
        break;
    }
    default:
        break;
    }
    char *pv =
        preview(it->cur.text ? it->cur.text : it->raw, it->cur.text ? it->cur.len : it->raw_len);
    cJSON_AddStringToObject(j, "preview", pv ? pv : "");
    free(pv);
    free(src);
    char *line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!line) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    int bad = fputs(line, p->removed) < 0 || fputc('\n', p->removed) == EOF;
    free(line);
    if (bad) return cllm_fail(CLLM_ERR_IO, "%s/removed.jsonl: write: %s", p->work, strerror(errno));
    return CLLM_OK;
}

static void progress(prep *p, bool final) {
    if (!p->o->progress) return;
    double now = cllm_now();
    if (!final && now - p->last_progress < 0.25) return;
    p->last_progress = now;
    const cllm_reader_stats *r = cllm_reader_get_stats(p->reader);
    double el = now - p->t0;
    uint64_t files = 0, done = cllm_reader_done_bytes(p->reader, &files);
    double pct = p->total_bytes ? 100.0 * (double)done / (double)p->total_bytes : 100;
    fprintf(stderr,
            "\rprepare: %3.0f%% (file %llu of %llu), %.1f MB read, %llu documents, "
            "%llu kept, %.2f MB/s   ",
            pct, (unsigned long long)files, (unsigned long long)cllm_reader_num_files(p->reader),
            (double)r->bytes / 1e6, (unsigned long long)r->documents, (unsigned long long)p->n_kept,
            el > 0 ? (double)r->bytes / 1e6 / el : 0.0);
    if (final) fprintf(stderr, "\n");
    fflush(stderr);
}

/* Deduplicate (in order), tokenize the kept documents and append them to the token file. */
static cllm_status finish_chunk(prep *p, item *items, size_t n) {
    cllm_prepare_stats *s = p->s;
    cllm_status st = CLLM_OK;
    size_t n_keep = 0;
    double t = cllm_now();
    for (size_t i = 0; i < n; i++) {
        item *it = &items[i];
        it->rule = it->cur.rule;
        s->changed_utf8 += (it->cur.changes & CLLM_CHANGED_UTF8) != 0;
        s->changed_clean += (it->cur.changes & CLLM_CHANGED_CLEAN) != 0;
        s->changed_nfc += (it->cur.changes & CLLM_CHANGED_NFC) != 0;
        if (it->rule == CLLM_DOC_KEPT && p->excl) {
            cllm_doc_rule v;
            cllm_dedup_find(p->excl, &it->sig, &v, &it->dup_of, &it->sim);
            if (v != CLLM_DOC_KEPT) it->rule = CLLM_DOC_HELD_OUT;
        }
        if (it->rule == CLLM_DOC_KEPT) {
            st = cllm_dedup_add(p->dedup, &it->sig, it->id, &it->rule, &it->dup_of, &it->sim);
            if (st != CLLM_OK) return st;
        }
        s->removed[it->rule]++;
        s->removed_bytes[it->rule] += it->raw_len;
        if (it->rule != CLLM_DOC_KEPT) {
            if ((st = log_removed(p, it)) != CLLM_OK) return st;
            continue;
        }
        if (p->n_kept + n_keep + 1 > p->cap_kept) {
            uint64_t cap = p->cap_kept ? 2 * p->cap_kept : 4096;
            while (cap < p->n_kept + n_keep + 1)
                cap *= 2;
            kept_doc *nk = realloc(p->kept, cap * sizeof *nk);
            if (!nk)
                return cllm_fail(CLLM_ERR_NOMEM, "out of memory (%llu documents)",
                                 (unsigned long long)cap);
            p->kept = nk;
            p->cap_kept = cap;
        }
        p->kept[p->n_kept + n_keep++] = (kept_doc){.id = it->id,
                                                   .path = it->path,
                                                   .line = it->line,
                                                   .split_hash = it->split_hash,
                                                   .bytes = it->cur.len};
        s->kept_bytes += it->cur.len;
        p->n_listed = p->n_kept + n_keep;
    }
    s->t_dedup += cllm_now() - t;
    if (n_keep == 0) return CLLM_OK;
    t = cllm_now();
    cllm_text *texts = cllm_malloc(n_keep * sizeof *texts);
    cllm_tokens *toks = cllm_calloc(n_keep, sizeof *toks);
    if (!texts || !toks) {
        free(texts);
        free(toks);
        return CLLM_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].rule == CLLM_DOC_KEPT)
            texts[k++] = (cllm_text){items[i].cur.text, items[i].cur.len};
    st = cllm_tokenizer_encode_batch(p->tok, texts, n_keep, NULL, p->threads, toks);
    s->t_tokenize += cllm_now() - t;
    uint32_t eot = s->eot;
    for (size_t j = 0; j < n_keep && st == CLLM_OK; j++) {
        st = cllm_tokens_push(&toks[j], &eot, 1);
        if (st != CLLM_OK) break;
        if (fwrite(toks[j].ids, sizeof(uint32_t), toks[j].n, p->tokens) != toks[j].n) {
            st = cllm_fail(CLLM_ERR_IO, "%s/tokens.u32: write: %s", p->work, strerror(errno));
            break;
        }
        kept_doc *kd = &p->kept[p->n_kept + j];
        kd->tok_off = p->n_tokens;
        kd->n_tok = toks[j].n;
        p->n_tokens += toks[j].n;
    }
    for (size_t j = 0; j < n_keep; j++)
        cllm_tokens_free(&toks[j]);
    free(toks);
    free(texts);
    if (st == CLLM_OK) p->n_kept += n_keep;
    return st;
}

static void free_items(item *items, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(items[i].raw);
        free(items[i].cur.text);
    }
    memset(items, 0, n * sizeof *items);
}

/* Phase 1: every document through curation, dedup and tokenization. */
static cllm_status read_all(prep *p) {
    const cllm_prepare_opts *o = p->o;
    cllm_status st = CLLM_OK;
    item *items = cllm_calloc(CHUNK_DOCS, sizeof *items);
    uint32_t *mh = NULL;
    if (!items) return CLLM_ERR_NOMEM;
    if (o->dedup.near_threshold > 0) {
        mh = cllm_malloc((size_t)CHUNK_DOCS * (size_t)o->dedup.num_perm * sizeof *mh);
        if (!mh) {
            free(items);
            return CLLM_ERR_NOMEM;
        }
    }
    chunk_ctx c = {.o = o, .dedup = p->dedup, .items = items, .minhash = mh, .st = CLLM_OK};
    pthread_mutex_init(&c.lock, NULL);
    bool done = false;
    while (!done) {
        size_t n = 0, bytes = 0;
        double t = cllm_now();
        while (n < CHUNK_DOCS && bytes < CHUNK_BYTES) {
            cllm_doc d;
            CLLM_TRY(cllm_reader_next(p->reader, &d));
            if (!d.text) {
                done = true;
                break;
            }
            item *it = &items[n];
            it->raw = cllm_malloc(d.len + 1);
            if (!it->raw) {
                st = CLLM_ERR_NOMEM;
                goto fail;
            }
            memcpy(it->raw, d.text, d.len);
            it->raw[d.len] = 0;
            it->raw_len = d.len;
            it->path = d.path;
            it->line = d.line;
            it->id = p->next_id++;
            bytes += d.len;
            n++;
        }
        p->s->t_read += cllm_now() - t;
        if (n == 0) break;
        t = cllm_now();
        parallel_for(p->threads, n, curate_one, &c);
        p->s->t_curate += cllm_now() - t;
        if (c.st != CLLM_OK) {
            st = cllm_fail(c.st, "%s", c.err);
            goto fail;
        }
        CLLM_TRY(finish_chunk(p, items, n));
        free_items(items, n);
        progress(p, false);
    }
fail:
    free_items(items, CHUNK_DOCS);
    free(items);
    free(mh);
    pthread_mutex_destroy(&c.lock);
    return st;
}

/* ---- phase 2: split and shards ---- */

typedef struct {
    const char *name; /* "train" | "val" */
    cllm_split_stats *s;
    uint64_t total; /* tokens this split will hold */
    int width;      /* digits in shard numbers */
    cllm_shard_writer *w;
} split_out;

static int digits(uint64_t n) {
    int d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

static cllm_status split_write(prep *p, split_out *so, const uint32_t *t, uint64_t n) {
    cllm_status st;
    while (n > 0) {
        if (!so->w) {
            char name[64];
            snprintf(name, sizeof name, "%s_%0*llu.bin", so->name, so->width,
                     (unsigned long long)so->s->shards);
            char *path = cllm_path_join(p->work, name);
            if (!path) return CLLM_ERR_NOMEM;
            st = cllm_shard_writer_open(&so->w, path, p->s->vocab_size);
            free(path);
            if (st != CLLM_OK) return st;
            so->s->shards++;
        }
        uint64_t room = p->o->shard_tokens - cllm_shard_writer_count(so->w);
        uint64_t k = n < room ? n : room;
        if ((st = cllm_shard_writer_append(so->w, t, (size_t)k)) != CLLM_OK) return st;
        t += k;
        n -= k;
        so->s->tokens += k;
        if (cllm_shard_writer_count(so->w) == p->o->shard_tokens) {
            st = cllm_shard_writer_close(so->w);
            so->w = NULL;
            if (st != CLLM_OK) return st;
        }
    }
    return CLLM_OK;
}

static cllm_status write_shards(prep *p) {
    cllm_prepare_stats *s = p->s;
    if (p->n_kept < 2)
        return cllm_fail(CLLM_ERR_USAGE,
                         "%llu document(s) left after curation and deduplication; a train/val "
                         "split needs at least 2 (see the counts per rule: %llu read)",
                         (unsigned long long)p->n_kept, (unsigned long long)p->next_id);
    /* The split: a document is in val when the hash of its text (and the seed) falls below
     * val_fraction; if that leaves a side empty, the document nearest the cut moves over. */
    bool *val = cllm_calloc(p->n_kept, sizeof *val);
    if (!val) return CLLM_ERR_NOMEM;
    double cut = p->o->val_fraction * 18446744073709551616.0;
    uint64_t n_val = 0, lo = 0, hi = 0;
    for (uint64_t i = 0; i < p->n_kept; i++) {
        uint64_t h = p->kept[i].split_hash;
        val[i] = (double)h < cut;
        n_val += val[i];
        if (h < p->kept[lo].split_hash) lo = i;
        if (h > p->kept[hi].split_hash) hi = i;
    }
    if (n_val == 0) val[lo] = true;
    if (n_val == p->n_kept) val[hi] = false;
    split_out out[2] = {{"train", &s->train}, {"val", &s->val}};
    for (uint64_t i = 0; i < p->n_kept; i++) {
        split_out *so = &out[val[i]];
        so->s->documents++;
        so->s->bytes += p->kept[i].bytes;
        so->total += p->kept[i].n_tok;
    }
    for (int k = 0; k < 2; k++) {
        uint64_t shards = (out[k].total + p->o->shard_tokens - 1) / p->o->shard_tokens;
        out[k].width = digits(shards ? shards - 1 : 0);
        if (out[k].width < 3) out[k].width = 3;
    }
    cllm_status st = CLLM_OK;
    const uint32_t *map = NULL;
    size_t map_len = 0;
    int fd = -1;
    char *tpath = cllm_path_join(p->work, "tokens.u32");
    if (!tpath) {
        st = CLLM_ERR_NOMEM;
        goto done;
    }
    if (p->n_tokens) {
        fd = open(tpath, O_RDONLY);
        if (fd < 0) {
            st = cllm_fail(CLLM_ERR_IO, "%s: %s", tpath, strerror(errno));
            goto done;
        }
        map_len = p->n_tokens * sizeof(uint32_t);
        void *m = mmap(NULL, map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = cllm_fail(CLLM_ERR_IO, "%s: mmap: %s", tpath, strerror(errno));
            goto done;
        }
        map = m;
        madvise(m, map_len, MADV_SEQUENTIAL);
    }
    for (uint64_t i = 0; i < p->n_kept && st == CLLM_OK; i++)
        st = split_write(p, &out[val[i]], map + p->kept[i].tok_off, p->kept[i].n_tok);
    for (int k = 0; k < 2; k++) {
        if (out[k].w) {
            if (st == CLLM_OK) {
                st = cllm_shard_writer_close(out[k].w);
            } else {
                cllm_shard_writer_abort(out[k].w);
            }
            out[k].w = NULL;
        }
    }
done:
    if (map) munmap((void *)map, map_len);
    if (fd >= 0) close(fd);
    if (tpath) unlink(tpath);
    free(tpath);
    free(val);
    return st;
}

/* ---- stats.json ---- */

static void add_u64(cJSON *o, const char *k, uint64_t v) {
    cJSON_AddNumberToObject(o, k, (double)v);
}

char *cllm_prepare_stats_json(const cllm_prepare_opts *o, const cllm_prepare_stats *s) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON *in = cJSON_AddObjectToObject(j, "inputs");
    cJSON *paths = cJSON_AddArrayToObject(in, "paths");
    for (int i = 0; i < o->n_inputs; i++)
        cJSON_AddItemToArray(paths, cJSON_CreateString(o->inputs[i]));
    add_u64(in, "files", s->read.files);
    add_u64(in, "files_skipped_binary", s->read.files_binary);
    add_u64(in, "files_skipped_same", s->read.files_same);
    add_u64(in, "files_excluded", s->read.files_excluded);
    add_u64(in, "bytes_on_disk", s->read.bytes_compressed);
    add_u64(in, "malformed_jsonl_lines", s->read.malformed_lines);
    add_u64(j, "documents_in", s->read.documents);
    add_u64(j, "bytes_in", s->read.bytes);
    cJSON *ch = cJSON_AddObjectToObject(j, "changed");
    add_u64(ch, "utf8_repaired", s->changed_utf8);
    add_u64(ch, "cleaned", s->changed_clean);
    add_u64(ch, "nfc", s->changed_nfc);
    cJSON *rm = cJSON_AddObjectToObject(j, "removed");
    uint64_t removed = 0, removed_bytes = 0;
    for (int r = 1; r < CLLM_DOC_N_RULES; r++) {
        cJSON *e = cJSON_AddObjectToObject(rm, cllm_doc_rule_name((cllm_doc_rule)r));
        add_u64(e, "documents", s->removed[r]);
        add_u64(e, "bytes", s->removed_bytes[r]);
        removed += s->removed[r];
        removed_bytes += s->removed_bytes[r];
    }
    cJSON *tot = cJSON_AddObjectToObject(rm, "total");
    add_u64(tot, "documents", removed);
    add_u64(tot, "bytes", removed_bytes);
    cJSON *kept = cJSON_AddObjectToObject(j, "kept");
    add_u64(kept, "documents", s->removed[CLLM_DOC_KEPT]);
    add_u64(kept, "bytes", s->kept_bytes);
    cJSON *sp = cJSON_AddObjectToObject(j, "splits");
    const cllm_split_stats *ss[2] = {&s->train, &s->val};
    const char *names[2] = {"train", "val"};
    for (int k = 0; k < 2; k++) {
        cJSON *e = cJSON_AddObjectToObject(sp, names[k]);
        add_u64(e, "documents", ss[k]->documents);
        add_u64(e, "bytes", ss[k]->bytes);
        add_u64(e, "tokens", ss[k]->tokens);
        add_u64(e, "shards", ss[k]->shards);
    }
    uint64_t tokens = s->train.tokens + s->val.tokens;
    uint64_t docs = s->train.documents + s->val.documents;
    /* Text tokens only: the <|endoftext|> after each document is not counted. */
    cJSON_AddNumberToObject(j, "bytes_per_token",
                            tokens > docs ? (double)s->kept_bytes / (double)(tokens - docs) : 0);
    cJSON *tk = cJSON_AddObjectToObject(j, "tokenizer");
    cJSON_AddStringToObject(tk, "source", o->tokenizer ? o->tokenizer : "");
    add_u64(tk, "vocab_size", s->vocab_size);
    add_u64(tk, "eot", s->eot);
    cJSON *op = cJSON_AddObjectToObject(j, "options");
    cJSON_AddStringToObject(op, "format", o->read.format ? o->read.format : "auto");
    if (o->read.doc_separator)
        cJSON_AddStringToObject(op, "doc_separator", o->read.doc_separator);
    else
        cJSON_AddNullToObject(op, "doc_separator");
    cJSON_AddStringToObject(op, "text_key", o->read.text_key ? o->read.text_key : "text");
    cJSON_AddBoolToObject(op, "strict", o->read.strict);
    cJSON_AddBoolToObject(op, "clean", o->curate.clean);
    cJSON_AddBoolToObject(op, "nfc", o->curate.nfc);
    add_u64(op, "min_chars", o->curate.min_chars);
    add_u64(op, "max_chars", o->curate.max_chars);
    cJSON_AddNumberToObject(op, "min_alpha", o->curate.min_alpha);
    cJSON_AddNumberToObject(op, "max_repeated_lines", o->curate.max_repeated_lines);
    add_u64(op, "max_word_chars", o->curate.max_word_chars);
    cJSON_AddBoolToObject(op, "exact_dedup", o->dedup.exact);
    cJSON_AddNumberToObject(op, "near_dup_threshold", o->dedup.near_threshold);
    cJSON_AddNumberToObject(op, "shingle_words", o->dedup.shingle_words);
    cJSON_AddNumberToObject(op, "minhash_perms", o->dedup.num_perm);
    cJSON_AddNumberToObject(op, "lsh_bands", s->lsh_bands);
    cJSON_AddNumberToObject(op, "lsh_rows", s->lsh_rows);
    cJSON *ex = cJSON_AddArrayToObject(op, "held_out");
    for (int i = 0; i < o->n_held_out; i++)
        cJSON_AddItemToArray(ex, cJSON_CreateString(o->held_out[i]));
    add_u64(op, "held_out_texts", s->held_out_texts);
    cJSON_AddNumberToObject(op, "val_fraction", o->val_fraction);
    add_u64(op, "seed", o->seed);
    add_u64(op, "shard_tokens", o->shard_tokens);
    cJSON_AddNumberToObject(j, "seconds", s->seconds);
    cJSON *ph = cJSON_AddObjectToObject(j, "seconds_by_phase");
    cJSON_AddNumberToObject(ph, "setup", s->t_setup);
    cJSON_AddNumberToObject(ph, "read", s->t_read);
    cJSON_AddNumberToObject(ph, "curate", s->t_curate);
    cJSON_AddNumberToObject(ph, "dedup", s->t_dedup);
    cJSON_AddNumberToObject(ph, "tokenize", s->t_tokenize);
    cJSON_AddNumberToObject(ph, "write", s->t_write);
    cJSON_AddNumberToObject(j, "mb_per_s",
                            s->seconds > 0 ? (double)s->read.bytes / 1e6 / s->seconds : 0);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}

/* ---- output directory ---- */

/* Files of a previous preparation in dir: shards the loader would take, and our other files. */
static bool ours(const char *name) {
    return cllm_shard_name_in_split(name, "train") || cllm_shard_name_in_split(name, "val") ||
           !strcmp(name, "stats.json") || !strcmp(name, "removed.jsonl");
}

static cllm_status check_out_dir(const char *dir, bool force, bool remove) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return CLLM_OK;
        return cllm_fail(CLLM_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    }
    cllm_status st = CLLM_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ours(e->d_name)) continue;
        if (!force) {
            st = cllm_fail(CLLM_ERR_USAGE,
                           "%s already holds prepared data (%s); pass --force to replace it, or "
                           "choose another --out",
                           dir, e->d_name);
            break;
        }
        if (remove) {
            char *p = cllm_path_join(dir, e->d_name);
            if (!p || unlink(p) != 0) {
                st = cllm_fail(CLLM_ERR_IO, "%s: cannot remove: %s", p ? p : dir, strerror(errno));
                free(p);
                break;
            }
            free(p);
        }
    }
    closedir(d);
    return st;
}

/* Move every file of the work directory into out_dir (replacing what --force allows). */
static cllm_status publish(prep *p) {
    cllm_status st = check_out_dir(p->o->out_dir, p->o->force, true);
    if (st != CLLM_OK) return st;
    DIR *d = opendir(p->work);
    if (!d) return cllm_fail(CLLM_ERR_IO, "%s: %s", p->work, strerror(errno));
    struct dirent *e;
    while (st == CLLM_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *from = cllm_path_join(p->work, e->d_name),
             *to = cllm_path_join(p->o->out_dir, e->d_name);
        if (!from || !to)
            st = CLLM_ERR_NOMEM;
        else if (rename(from, to) != 0)
            st = cllm_fail(CLLM_ERR_IO, "%s: rename to %s: %s", from, to, strerror(errno));
        free(from);
        free(to);
    }
    closedir(d);
    if (st == CLLM_OK) st = cllm_fsync_dir(p->o->out_dir);
    return st;
}

static cllm_status open_work_file(const prep *p, const char *name, const char *mode, FILE **f) {
    char *path = cllm_path_join(p->work, name);
    *f = path ? fopen(path, mode) : NULL;
    cllm_status st = CLLM_OK;
    if (!*f)
        st =
            cllm_fail(CLLM_ERR_IO, "%s: cannot create: %s", path ? path : p->work, strerror(errno));
    free(path);
    return st;
}

static cllm_status check_opts(const cllm_prepare_opts *o) {
    if (!o->out_dir || !*o->out_dir)
        return cllm_fail(CLLM_ERR_USAGE, "no output directory (--out)");
    if (!o->tokenizer || !*o->tokenizer)
        return cllm_fail(CLLM_ERR_USAGE, "no tokenizer (--tokenizer)");
    if (!(o->val_fraction > 0 && o->val_fraction < 1))
        return cllm_fail(CLLM_ERR_USAGE, "--val-fraction %g (expected a share in (0, 1))",
                         o->val_fraction);
    if (o->shard_tokens < 1 || o->shard_tokens > CLLM_SHARD_MAX_TOKENS)
        return cllm_fail(CLLM_ERR_USAGE,
                         "--shard-tokens %llu (expected 1..%llu, the header "
                         "holds an int32)",
                         (unsigned long long)o->shard_tokens, CLLM_SHARD_MAX_TOKENS);
    if (o->curate.max_chars && o->curate.min_chars > o->curate.max_chars)
        return cllm_fail(CLLM_ERR_USAGE, "--min-chars %llu exceeds --max-chars %llu",
                         (unsigned long long)o->curate.min_chars,
                         (unsigned long long)o->curate.max_chars);
    if (o->curate.min_alpha < 0 || o->curate.min_alpha > 1)
        return cllm_fail(CLLM_ERR_USAGE, "--min-alpha %g (expected a share in [0, 1])",
                         o->curate.min_alpha);
    if (o->curate.max_repeated_lines < 0)
        return cllm_fail(CLLM_ERR_USAGE, "--max-repeated-lines %g (expected a share in [0, 1])",
                         o->curate.max_repeated_lines);
    if (o->read.doc_separator && !*o->read.doc_separator)
        return cllm_fail(CLLM_ERR_USAGE, "--doc-separator is empty (expected the text of a "
                                         "separator line, e.g. %%)");
    return CLLM_OK;
}

/* ---- held-out texts to keep out (decontamination) ---- */

/* Remember one held-out text (cleaned like a document) in p->excl as record k. */
static cllm_status held_out_add(prep *p, const char *text, int file, uint64_t line, uint32_t *mh) {
    cllm_curated c;
    cllm_status st = cllm_curate(&p->o->curate, text, strlen(text), &c);
    if (st != CLLM_OK) return st;
    if (c.len == 0) {
        free(c.text);
        return CLLM_OK;
    }
    uint64_t k = p->s->held_out_texts;
    if (k == p->excl_cap) {
        uint64_t cap = k ? 2 * k : 1024;
        void *ns = realloc(p->excl_src, cap * sizeof *p->excl_src);
        if (!ns) {
            free(c.text);
            return cllm_fail(CLLM_ERR_NOMEM, "out of memory (%llu held-out texts)",
                             (unsigned long long)cap);
        }
        p->excl_src = ns;
        p->excl_cap = cap;
    }
    p->excl_src[k].file = file;
    p->excl_src[k].line = line;
    cllm_doc_sig sig = {.minhash = mh};
    cllm_dedup_signature(p->excl, c.text, c.len, &sig);
    free(c.text);
    cllm_doc_rule v;
    uint64_t of;
    double sim;
    st = cllm_dedup_add(p->excl, &sig, k, &v, &of, &sim);
    if (st == CLLM_OK) p->s->held_out_texts++;
    return st;
}

/* One record of a held-out file: its "text", "response" and assistant "messages" contents. */
typedef struct {
    prep *p;
    int file;
    uint32_t *mh; /* a signature's scratch */
} held_out_ctx;

static cllm_status held_out_line(void *user, const char *line, size_t len, long lineno) {
    held_out_ctx *h = user;
    cJSON *j = NULL;
    cllm_status st = ev_parse_object(&j, line, len);
    if (st != CLLM_OK) return st;
    int found = 0;
    static const char *const keys[] = {"text", "response"};
    for (size_t k = 0; k < 2 && st == CLLM_OK; k++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        if (!cJSON_IsString(t)) continue;
        found++;
        st = held_out_add(h->p, t->valuestring, h->file, (uint64_t)lineno, h->mh);
    }
    const cJSON *m, *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    if (!cJSON_IsArray(msgs)) msgs = NULL;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (st != CLLM_OK || !cJSON_IsString(r) || strcmp(r->valuestring, "assistant") ||
            !cJSON_IsString(c))
            continue;
        found++;
        st = held_out_add(h->p, c->valuestring, h->file, (uint64_t)lineno, h->mh);
    }
    cJSON_Delete(j);
    if (st == CLLM_OK && !found)
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "no \"text\", \"response\" or assistant \"messages\" content (expected "
                       "records of held-out texts)");
    return st;
}

/* Read o->held_out (JSONL, strict: a malformed line is an error naming FILE:LINE). */
static cllm_status load_held_out(prep *p, const cllm_dedup_opts *dopt) {
    const cllm_prepare_opts *o = p->o;
    cllm_status st = cllm_dedup_init(&p->excl, dopt);
    if (st != CLLM_OK) return st;
    held_out_ctx h = {.p = p};
    h.mh = malloc((size_t)(dopt->num_perm > 0 ? dopt->num_perm : 1) * sizeof *h.mh);
    if (!h.mh) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    for (int f = 0; f < o->n_held_out && st == CLLM_OK; f++) {
        uint64_t before = p->s->held_out_texts;
        cllm_jsonl_stats js;
        h.file = f;
        st = ev_jsonl_each(o->held_out[f], true, 0, "held-out texts", held_out_line, &h, &js);
        if (st == CLLM_OK && p->s->held_out_texts == before)
            st = cllm_fail(CLLM_ERR_FORMAT, "%s: no held-out texts (every one is empty)",
                           o->held_out[f]);
    }
    free(h.mh);
    return st;
}

cllm_status cllm_data_prepare(const cllm_prepare_opts *o, cllm_prepare_stats *s) {
    memset(s, 0, sizeof *s);
    cllm_status st = check_opts(o);
    if (st != CLLM_OK) return st;
    prep p = {.o = o, .s = s, .t0 = cllm_now()};
    p.threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (p.threads < 1) p.threads = 1;
    if (p.threads > 256) p.threads = 256;
    bool work_made = false, out_made = !cllm_is_dir(o->out_dir);
    cllm_dedup_opts dopt = o->dedup;
    dopt.seed = o->seed;

    CLLM_TRY(check_out_dir(o->out_dir, o->force, false));
    CLLM_TRY(cllm_tokenizer_load(&p.tok, o->tokenizer));
    s->vocab_size = cllm_tokenizer_vocab_size(p.tok);
    s->eot = cllm_tokenizer_eot(p.tok);
    if (s->eot == UINT32_MAX) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: the tokenizer has no %s token to end documents with",
                       o->tokenizer, CLLM_EOT_TEXT);
        goto fail;
    }
    CLLM_TRY(cllm_dedup_init(&p.dedup, &dopt));
    cllm_dedup_bands(p.dedup, &s->lsh_bands, &s->lsh_rows);
    if (o->n_held_out > 0) CLLM_TRY(load_held_out(&p, &dopt));
    CLLM_TRY(cllm_reader_init(&p.reader, o->inputs, o->n_inputs, &o->read));
    CLLM_TRY(cllm_mkdirs(o->out_dir));
    p.work = cllm_strdup_printf("%s/.prepare.%ld", o->out_dir, (long)getpid());
    if (!p.work) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    cllm_remove_tree(p.work);
    CLLM_TRY(cllm_mkdirs(p.work));
    work_made = true;
    CLLM_TRY(open_work_file(&p, "tokens.u32", "w+b", &p.tokens));
    if (o->removed_log) CLLM_TRY(open_work_file(&p, "removed.jsonl", "wb", &p.removed));
    p.total_bytes = cllm_reader_total_bytes(p.reader);

    s->t_setup = cllm_now() - p.t0;
    CLLM_TRY(read_all(&p));
    double t_w = cllm_now();
    s->read = *cllm_reader_get_stats(p.reader);
    progress(&p, true);
    if (fflush(p.tokens) != 0) {
        st = cllm_fail(CLLM_ERR_IO, "%s/tokens.u32: write: %s", p.work, strerror(errno));
        goto fail;
    }
    if (s->read.documents == 0) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "no documents in the inputs (%llu files read, %llu binary "
                       "skipped, %llu excluded)",
                       (unsigned long long)s->read.files, (unsigned long long)s->read.files_binary,
                       (unsigned long long)s->read.files_excluded);
        goto fail;
    }
    CLLM_TRY(write_shards(&p));
    if (p.removed) {
        int bad = fflush(p.removed) != 0 || fsync(fileno(p.removed)) != 0;
        bad |= fclose(p.removed) != 0;
        p.removed = NULL;
        if (bad) {
            st = cllm_fail(CLLM_ERR_IO, "%s/removed.jsonl: write: %s", p.work, strerror(errno));
            goto fail;
        }
    }
    char *tj = cllm_path_join(p.work, "tokenizer.json");
    st = tj ? cllm_tokenizer_save(p.tok, tj) : CLLM_ERR_NOMEM;
    free(tj);
    if (st != CLLM_OK) goto fail;
    s->seconds = cllm_now() - p.t0;
    s->t_write = cllm_now() - t_w; /* shards, tokenizer.json, removed.jsonl */
    char *json = cllm_prepare_stats_json(o, s);
    char *sp = cllm_path_join(p.work, "stats.json");
    if (!json || !sp) {
        free(json);
        free(sp);
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t jl = strlen(json);
    json[jl] = '\n'; /* cJSON's text ends without a newline; the NUL becomes one */
    st = cllm_write_file_atomic(sp, json, jl + 1);
    free(json);
    free(sp);
    if (st != CLLM_OK) goto fail;
    CLLM_TRY(publish(&p));
fail:
    if (p.tokens) fclose(p.tokens);
    if (p.removed) fclose(p.removed);
    if (work_made) {
        cllm_status keep = st;
        char keep_msg[1024];
        snprintf(keep_msg, sizeof keep_msg, "%s", cllm_last_error());
        cllm_remove_tree(p.work);
        if (keep != CLLM_OK) cllm_fail(keep, "%s", keep_msg);
    }
    if (st != CLLM_OK && out_made) rmdir(o->out_dir); /* ours, and empty again */
    free(p.work);
    free(p.kept);
    cllm_reader_free(p.reader);
    cllm_dedup_free(p.dedup);
    cllm_dedup_free(p.excl);
    free(p.excl_src);
    cllm_tokenizer_free(p.tok);
    return st;
}
