/* Corpus reading: walk files and directories, read them through zlib (gzip or plain),
 * split them into documents (whole file, separator lines, or JSONL records). */
#include "cllm/data.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define BINARY_PROBE (64 * 1024)
#define MAX_WARNINGS 5

typedef struct {
    char *path;
    bool named; /* given on the command line (not found in a directory) */
    uint64_t size;
} input_file;

typedef struct {
    dev_t dev;
    ino_t ino;
} file_id;

struct cllm_reader {
    cllm_reader_opts o;
    input_file *files;
    int n_files, cap_files, next_file;
    file_id *seen; /* files and directories met in the walk */
    int n_seen, cap_seen;
    cllm_reader_stats stats;
    /* the open file */
    gzFile gz;
    const char *path;
    bool jsonl, at_eof, file_done;
    uint64_t line; /* number of the next line to read */
    char *buf;     /* raw bytes [beg, end) not consumed yet */
    size_t beg, end, cap;
    char *doc; /* the document being built */
    size_t doc_len, doc_cap;
    int warnings;
};

cllm_reader_opts cllm_reader_opts_default(void) {
    return (cllm_reader_opts){.format = "auto", .text_key = "text"};
}

static bool seen_before(cllm_reader *r, const struct stat *sb, cllm_status *st) {
    *st = CLLM_OK;
    for (int i = 0; i < r->n_seen; i++)
        if (r->seen[i].dev == sb->st_dev && r->seen[i].ino == sb->st_ino) return true;
    if (r->n_seen == r->cap_seen) {
        int cap = r->cap_seen ? 2 * r->cap_seen : 64;
        file_id *n = realloc(r->seen, (size_t)cap * sizeof *n);
        if (!n) {
            *st = cllm_fail(CLLM_ERR_NOMEM, "out of memory walking the inputs");
            return false;
        }
        r->seen = n;
        r->cap_seen = cap;
    }
    r->seen[r->n_seen++] = (file_id){sb->st_dev, sb->st_ino};
    return false;
}

static cllm_status add_file(cllm_reader *r, const char *path, bool named, uint64_t size) {
    if (r->n_files == r->cap_files) {
        int cap = r->cap_files ? 2 * r->cap_files : 64;
        input_file *n = realloc(r->files, (size_t)cap * sizeof *n);
        if (!n) return cllm_fail(CLLM_ERR_NOMEM, "out of memory walking the inputs");
        r->files = n;
        r->cap_files = cap;
    }
    char *p = strdup(path);
    if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of memory walking the inputs");
    r->files[r->n_files++] = (input_file){p, named, size};
    return CLLM_OK;
}

static bool wanted(const cllm_reader *r, const char *name) {
    for (int i = 0; i < r->o.n_exclude; i++)
        if (fnmatch(r->o.exclude[i], name, 0) == 0) return false;
    if (r->o.n_include == 0) return true;
    for (int i = 0; i < r->o.n_include; i++)
        if (fnmatch(r->o.include[i], name, 0) == 0) return true;
    return false;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static cllm_status walk(cllm_reader *r, const char *path, bool named) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cllm_fail(named ? CLLM_ERR_USAGE : CLLM_ERR_IO, "%s: %s", path, strerror(errno));
    cllm_status st;
    if (S_ISREG(sb.st_mode)) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (!named && !wanted(r, base)) {
            r->stats.files_excluded++;
            return CLLM_OK;
        }
        if (seen_before(r, &sb, &st)) {
            r->stats.files_same++;
            return CLLM_OK;
        }
        if (st != CLLM_OK) return st;
        return add_file(r, path, named, (uint64_t)sb.st_size);
    }
    if (!S_ISDIR(sb.st_mode)) {
        if (named) return cllm_fail(CLLM_ERR_USAGE, "%s: not a file or directory", path);
        return CLLM_OK; /* sockets, fifos, devices met in a directory */
    }
    if (seen_before(r, &sb, &st)) return CLLM_OK; /* a directory reached twice (symlink loop) */
    if (st != CLLM_OK) return st;
    DIR *d = opendir(path);
    if (!d) return cllm_fail(CLLM_ERR_IO, "%s: cannot open directory: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    st = CLLM_OK;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of memory walking %s", path);
                break;
            }
            names = nn;
        }
        if (!(names[n] = cllm_path_join(path, e->d_name))) {
            st = CLLM_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (st == CLLM_OK) {
        if (n) qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n && st == CLLM_OK; i++)
            st = walk(r, names[i], false);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

cllm_status cllm_reader_init(cllm_reader **out, const char *const *paths, int n_paths,
                             const cllm_reader_opts *o) {
    *out = NULL;
    const char *fmt = o->format ? o->format : "auto";
    if (strcmp(fmt, "auto") && strcmp(fmt, "text") && strcmp(fmt, "jsonl"))
        return cllm_fail(CLLM_ERR_USAGE, "input format '%s' (expected auto, text or jsonl)", fmt);
    if (n_paths < 1) return cllm_fail(CLLM_ERR_USAGE, "no input files or directories");
    cllm_reader *r = cllm_calloc(1, sizeof *r);
    if (!r) return CLLM_ERR_NOMEM;
    r->o = *o;
    r->o.format = fmt;
    if (!r->o.text_key) r->o.text_key = "text";
    cllm_status st = CLLM_OK;
    for (int i = 0; i < n_paths && st == CLLM_OK; i++)
        st = walk(r, paths[i], true);
    if (st == CLLM_OK) {
        r->cap = 1 << 17;
        r->buf = cllm_malloc(r->cap + 1);
        if (!r->buf) st = CLLM_ERR_NOMEM;
    }
    if (st != CLLM_OK) {
        cllm_reader_free(r);
        return st;
    }
    *out = r;
    return CLLM_OK;
}

static void close_file(cllm_reader *r) {
    if (r->gz) gzclose(r->gz);
    r->gz = NULL;
    r->path = NULL;
}

void cllm_reader_free(cllm_reader *r) {
    if (!r) return;
    close_file(r);
    for (int i = 0; i < r->n_files; i++)
        free(r->files[i].path);
    free(r->files);
    free(r->seen);
    free(r->buf);
    free(r->doc);
    free(r);
}

const cllm_reader_stats *cllm_reader_get_stats(const cllm_reader *r) {
    return &r->stats;
}
uint64_t cllm_reader_num_files(const cllm_reader *r) {
    return (uint64_t)r->n_files;
}

uint64_t cllm_reader_done_bytes(const cllm_reader *r, uint64_t *files_done) {
    uint64_t t = 0;
    for (int i = 0; i < r->next_file; i++)
        t += r->files[i].size;
    if (files_done) *files_done = (uint64_t)r->next_file;
    return t;
}

uint64_t cllm_reader_total_bytes(const cllm_reader *r) {
    uint64_t t = 0;
    for (int i = 0; i < r->n_files; i++)
        t += r->files[i].size;
    return t;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool is_jsonl_name(const char *p) {
    return ends_with(p, ".jsonl") || ends_with(p, ".ndjson") || ends_with(p, ".jsonl.gz") ||
           ends_with(p, ".ndjson.gz");
}

/* Read more bytes into buf[end..]; compacts and grows the buffer as needed. */
static cllm_status fill(cllm_reader *r) {
    if (r->beg > 0) {
        memmove(r->buf, r->buf + r->beg, r->end - r->beg);
        r->end -= r->beg;
        r->beg = 0;
    }
    if (r->end == r->cap) {
        size_t cap = 2 * r->cap;
        char *nb = realloc(r->buf, cap + 1);
        if (!nb)
            return cllm_fail(CLLM_ERR_NOMEM, "%s: out of memory (a line of %zu bytes)", r->path,
                             r->end);
        r->buf = nb;
        r->cap = cap;
    }
    int want = (int)((r->cap - r->end) > (1u << 30) ? (1u << 30) : (r->cap - r->end));
    int got = gzread(r->gz, r->buf + r->end, (unsigned)want);
    int errnum = Z_OK;
    const char *msg = got <= 0 ? gzerror(r->gz, &errnum) : "";
    /* A gzip stream cut short reads as an end of file with Z_BUF_ERROR pending. */
    if (got < 0 || errnum != Z_OK) {
        return cllm_fail(CLLM_ERR_FORMAT, "%s: %s after %llu bytes of text (line %llu): %s",
                         r->path,
                         errnum == Z_ERRNO ? "read error" : "corrupt or truncated gzip data",
                         (unsigned long long)(r->stats.bytes + r->end - r->beg),
                         (unsigned long long)r->line, errnum == Z_ERRNO ? strerror(errno) : msg);
    }
    if (got == 0) r->at_eof = true;
    r->end += (size_t)got;
    return CLLM_OK;
}

/* Open the next file that is not binary; *ok false at the end of the inputs. */
static cllm_status open_next(cllm_reader *r, bool *ok) {
    *ok = false;
    while (r->next_file < r->n_files) {
        input_file *f = &r->files[r->next_file++];
        r->gz = gzopen(f->path, "rb");
        if (!r->gz) return cllm_fail(CLLM_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
        gzbuffer(r->gz, 1 << 17);
        r->path = f->path;
        r->beg = r->end = 0;
        r->at_eof = r->file_done = false;
        r->line = 1;
        const char *fmt = r->o.format;
        r->jsonl = !strcmp(fmt, "jsonl") || (!strcmp(fmt, "auto") && is_jsonl_name(f->path));
        /* Probe the start for NUL bytes: strfile .dat indexes, images, UTF-16 text. */
        while (!r->at_eof && r->end < BINARY_PROBE) {
            cllm_status st = fill(r);
            if (st != CLLM_OK) {
                close_file(r);
                return st;
            }
        }
        const char *nul = memchr(r->buf, 0, r->end);
        if (nul) {
            bool utf16 = r->end >= 2 &&
                         ((unsigned char)r->buf[0] == 0xFF || (unsigned char)r->buf[0] == 0xFE) &&
                         ((unsigned char)r->buf[1] == 0xFE || (unsigned char)r->buf[1] == 0xFF);
            r->stats.files_binary++;
            if (f->named || utf16)
                cllm_log(CLLM_LOG_WARN, "%s: skipped: binary file (NUL byte at offset %zu)%s",
                         f->path, (size_t)(nul - r->buf),
                         utf16 ? "; UTF-16 text? convert it to UTF-8 (iconv -t UTF-8)" : "");
            close_file(r);
            continue;
        }
        r->stats.files++;
        r->stats.bytes_compressed += f->size;
        *ok = true;
        return CLLM_OK;
    }
    return CLLM_OK;
}

/* The next line of the open file in [*s, *s + *n) including its '\n' (if any); *n == 0 at
 * the end of the file. */
static cllm_status next_line(cllm_reader *r, const char **s, size_t *n) {
    size_t scan = r->beg;
    for (;;) {
        char *nl = memchr(r->buf + scan, '\n', r->end - scan);
        if (nl) {
            *s = r->buf + r->beg;
            *n = (size_t)(nl + 1 - (r->buf + r->beg));
            break;
        }
        if (r->at_eof) {
            *s = r->buf + r->beg;
            *n = r->end - r->beg;
            break;
        }
        size_t done = r->end - r->beg;
        cllm_status st = fill(r);
        if (st != CLLM_OK) return st;
        scan = r->beg + done;
    }
    r->beg += *n;
    r->stats.bytes += *n;
    if (*n) r->line++;
    return CLLM_OK;
}

static cllm_status doc_append(cllm_reader *r, const char *s, size_t n) {
    if (r->doc_len + n + 1 > r->doc_cap) {
        size_t cap = r->doc_cap ? r->doc_cap : 4096;
        while (cap < r->doc_len + n + 1)
            cap *= 2;
        char *nd = realloc(r->doc, cap);
        if (!nd)
            return cllm_fail(CLLM_ERR_NOMEM, "%s: out of memory (a document of %zu bytes)", r->path,
                             r->doc_len + n);
        r->doc = nd;
        r->doc_cap = cap;
    }
    memcpy(r->doc + r->doc_len, s, n);
    r->doc_len += n;
    r->doc[r->doc_len] = 0;
    return CLLM_OK;
}

/* A malformed JSONL line: an error with strict, else counted and (the first few) warned. */
static cllm_status malformed(cllm_reader *r, uint64_t line, const char *why) {
    if (r->o.strict)
        return cllm_fail(CLLM_ERR_FORMAT, "%s:%llu: %s (--strict refuses malformed lines)", r->path,
                         (unsigned long long)line, why);
    r->stats.malformed_lines++;
    if (++r->warnings <= MAX_WARNINGS)
        cllm_log(CLLM_LOG_WARN, "%s:%llu: skipped: %s%s", r->path, (unsigned long long)line, why,
                 r->warnings == MAX_WARNINGS ? " (further malformed lines are counted, not shown)"
                                             : "");
    return CLLM_OK;
}

/* One JSONL record into r->doc; *got false for a blank or skipped line. */
static cllm_status parse_jsonl(cllm_reader *r, const char *s, size_t n, uint64_t line, bool *got) {
    *got = false;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (line == 1 && n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) { /* BOM */
        s += 3;
        n -= 3;
    }
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == n) return CLLM_OK;
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    char why[160];
    if (!obj) {
        snprintf(why, sizeof why, "not valid JSON (at column %zu)",
                 end && end >= s ? (size_t)(end - s) + 1 : (size_t)1);
        return malformed(r, line, why);
    }
    cllm_status st = CLLM_OK;
    size_t rest = end ? (size_t)(end - s) : n;
    while (rest < n && (s[rest] == ' ' || s[rest] == '\t'))
        rest++;
    if (rest < n) {
        snprintf(why, sizeof why, "not valid JSON (text after the value at column %zu)", rest + 1);
        st = malformed(r, line, why);
    } else if (!cJSON_IsObject(obj)) {
        st = malformed(r, line, "not a JSON object");
    } else {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, r->o.text_key);
        if (!cJSON_IsString(v) || !v->valuestring) {
            snprintf(why, sizeof why, "%s string field \"%.60s\" (--text-key)", v ? "not a" : "no",
                     r->o.text_key);
            st = malformed(r, line, why);
        } else {
            r->doc_len = 0;
            st = doc_append(r, v->valuestring, strlen(v->valuestring));
            *got = st == CLLM_OK;
        }
    }
    cJSON_Delete(obj);
    return st;
}

static bool is_separator(const cllm_reader *r, const char *s, size_t n) {
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    size_t k = strlen(r->o.doc_separator);
    return n == k && memcmp(s, r->o.doc_separator, k) == 0;
}

cllm_status cllm_reader_next(cllm_reader *r, cllm_doc *doc) {
    memset(doc, 0, sizeof *doc);
    cllm_status st;
    for (;;) {
        if (r->gz && r->file_done) close_file(r);
        if (!r->gz) {
            bool ok;
            st = open_next(r, &ok);
            if (st != CLLM_OK) return st;
            if (!ok) return CLLM_OK; /* the end */
        }
        r->doc_len = 0;
        uint64_t start = r->line;
        bool have = false;
        for (;;) {
            const char *s;
            size_t n;
            uint64_t line = r->line;
            st = next_line(r, &s, &n);
            if (st != CLLM_OK) return st;
            if (n == 0) { /* end of file */
                r->file_done = true;
                /* Separators: the text after the last one, unless empty. Whole files: the
                 * file, even an empty one. */
                if (!r->jsonl) have = r->o.doc_separator ? r->doc_len > 0 : true;
                break;
            }
            if (r->jsonl) {
                st = parse_jsonl(r, s, n, line, &have);
                if (st != CLLM_OK) return st;
                if (have) {
                    start = line;
                    break;
                }
                continue;
            }
            if (r->o.doc_separator && is_separator(r, s, n)) {
                have = true;
                break;
            }
            if ((st = doc_append(r, s, n)) != CLLM_OK) return st;
        }
        if (have) {
            /* The line break that ends a text document's last line belongs to the file's
             * layout (before a separator line, at the end of a file), not to the text. */
            if (!r->jsonl && r->doc_len > 0 && r->doc[r->doc_len - 1] == '\n') {
                r->doc_len--;
                if (r->doc_len > 0 && r->doc[r->doc_len - 1] == '\r') r->doc_len--;
                r->doc[r->doc_len] = 0;
            }
            doc->text = r->doc ? r->doc : "";
            doc->len = r->doc_len;
            doc->path = r->path;
            doc->line = start;
            r->stats.documents++;
            return CLLM_OK;
        }
    }
}
