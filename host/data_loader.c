/* The (B, T+1) batch loader over memory-mapped token shards (see cllm/data.h for the
 * window and rank layout). */
#include "cllm/util.h"
#include "data_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *path;
    void *map;
    size_t map_len;
    const unsigned char *tokens; /* (n) tokens of `width` bytes, little-endian */
    uint64_t n;
    int width;
    uint64_t first_window; /* global index of this shard's first window */
    uint64_t n_windows;
} shard;

struct cllm_loader {
    cllm_loader_opts o;
    shard *shards; /* (n_shards) */
    int n_shards;
    uint64_t n_windows, n_tokens, batches_per_epoch;
    uint32_t max_token;
    uint64_t epoch, batch; /* the next batch */
    uint64_t *perm;        /* (n_windows) order of the windows in epoch perm_epoch */
    uint64_t perm_epoch;
    bool perm_valid;
};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound), without modulo bias. */
static uint64_t rand_below(uint64_t *s, uint64_t bound) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do
        r = splitmix64(s);
    while (r >= limit);
    return r % bound;
}

/* The window order of `epoch`: a Fisher-Yates permutation drawn from (seed, epoch). */
static void draw_perm(cllm_loader *l, uint64_t epoch) {
    uint64_t s = l->o.seed;
    uint64_t k = splitmix64(&s);
    s = k ^ (epoch * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull);
    for (uint64_t i = 0; i < l->n_windows; i++)
        l->perm[i] = i;
    for (uint64_t i = l->n_windows; i > 1; i--) {
        uint64_t j = rand_below(&s, i);
        uint64_t t = l->perm[i - 1];
        l->perm[i - 1] = l->perm[j];
        l->perm[j] = t;
    }
    l->perm_epoch = epoch;
    l->perm_valid = true;
}

/* Does `name` (a directory entry) hold tokens of `split`? Any *.bin whose stem, split at '_',
 * has a part equal to split: train_000.bin (cllm), fineweb_train_000001.bin and
 * tinyshakespeare_val.bin (llm.c). */
bool cllm_shard_name_in_split(const char *name, const char *split) {
    size_t n = strlen(name), ls = strlen(split);
    if (n < 5 || strcmp(name + n - 4, ".bin") != 0 || name[0] == '.') return false;
    size_t stem = n - 4;
    for (size_t i = 0; i < stem;) {
        size_t j = i;
        while (j < stem && name[j] != '_')
            j++;
        if (j - i == ls && memcmp(name + i, split, ls) == 0) return true;
        i = j + 1;
    }
    return false;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static cllm_status list_shards(const char *dir, const char *split, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return cllm_fail(CLLM_ERR_IO, "%s: cannot open data directory: %s", dir, strerror(errno));
    char **v = NULL;
    int cnt = 0, cap = 0;
    struct dirent *e;
    cllm_status st = CLLM_OK;
    while ((e = readdir(d)) != NULL) {
        if (!cllm_shard_name_in_split(e->d_name, split)) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 16;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of memory listing %s", dir);
                break;
            }
            v = nv;
        }
        if (!(v[cnt] = cllm_path_join(dir, e->d_name))) {
            st = CLLM_ERR_NOMEM;
            break;
        }
        cnt++;
    }
    closedir(d);
    if (st != CLLM_OK) {
        for (int i = 0; i < cnt; i++)
            free(v[i]);
        free(v);
        return st;
    }
    if (cnt) qsort(v, (size_t)cnt, sizeof *v, cmp_str);
    *names = v;
    *n = cnt;
    return CLLM_OK;
}

static cllm_status map_shard(shard *s) {
    int fd = open(s->path, O_RDONLY);
    if (fd < 0) return cllm_fail(CLLM_ERR_IO, "%s: cannot open: %s", s->path, strerror(errno));
    cllm_status st = CLLM_OK;
    struct stat sb;
    unsigned char hdr[12];
    ssize_t got;
    if (fstat(fd, &sb) != 0) {
        st = cllm_fail(CLLM_ERR_IO, "%s: stat: %s", s->path, strerror(errno));
        goto done;
    }
    got = pread(fd, hdr, sizeof hdr, 0);
    if (got < 0) {
        st = cllm_fail(CLLM_ERR_IO, "%s: read: %s", s->path, strerror(errno));
        goto done;
    }
    cllm_shard_info info;
    st = cllm_shard_check_header(s->path, hdr, (size_t)got, (uint64_t)sb.st_size, &info);
    if (st != CLLM_OK) goto done;
    s->map_len = (size_t)sb.st_size;
    s->map = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (s->map == MAP_FAILED) {
        s->map = NULL;
        st = cllm_fail(CLLM_ERR_IO, "%s: mmap of %zu bytes: %s", s->path, s->map_len,
                       strerror(errno));
        goto done;
    }
    s->tokens = (const unsigned char *)s->map + CLLM_SHARD_HEADER_BYTES;
    s->n = info.n_tokens;
    s->width = (int)info.token_bytes;
done:
    close(fd);
    return st;
}

static inline uint32_t token_at(const shard *s, uint64_t i) {
    const unsigned char *p = s->tokens + i * (uint64_t)s->width;
    if (s->width == 2) return (uint32_t)p[0] | (uint32_t)p[1] << 8;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t scan_max(const shard *s) {
    uint32_t m = 0;
    for (uint64_t i = 0; i < s->n; i++) {
        uint32_t t = token_at(s, i);
        if (t > m) m = t;
    }
    return m;
}

cllm_status cllm_loader_init(cllm_loader **out, const cllm_loader_opts *o) {
    *out = NULL;
    if (!o->dir || !o->split || !*o->split)
        return cllm_fail(CLLM_ERR_USAGE, "loader: a data directory and a split name are needed");
    if (o->B < 1 || o->T < 1)
        return cllm_fail(CLLM_ERR_USAGE, "loader: B=%d, T=%d (both must be >= 1)", o->B, o->T);
    if (o->world < 1 || o->rank < 0 || o->rank >= o->world)
        return cllm_fail(CLLM_ERR_USAGE, "loader: rank %d of world %d (need 0 <= rank < world)",
                         o->rank, o->world);
    cllm_status st = CLLM_OK;
    char **names = NULL;
    int n_names = 0;
    cllm_loader *l = cllm_calloc(1, sizeof *l);
    if (!l) return CLLM_ERR_NOMEM;
    l->o = *o;
    l->o.dir = l->o.split = NULL; /* not kept: the caller's strings may not outlive us */
    CLLM_TRY(list_shards(o->dir, o->split, &names, &n_names));
    if (n_names == 0) {
        st = cllm_fail(CLLM_ERR_IO,
                       "%s: no %s shards (expected %s_000.bin, ... as cllm data prepare writes, "
                       "or llm.c's *_%s_*.bin)",
                       o->dir, o->split, o->split, o->split);
        goto fail;
    }
    l->shards = cllm_calloc((size_t)n_names, sizeof *l->shards);
    if (!l->shards) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < n_names; i++) {
        shard *s = &l->shards[i];
        s->path = names[i];
        names[i] = NULL;
        l->n_shards = i + 1;
        CLLM_TRY(map_shard(s));
        s->first_window = l->n_windows;
        s->n_windows = s->n > (uint64_t)o->T ? (s->n - 1) / (uint64_t)o->T : 0;
        l->n_windows += s->n_windows;
        l->n_tokens += s->n;
        uint32_t m = scan_max(s);
        if (m > l->max_token) l->max_token = m;
        if (o->shuffle && s->map_len) madvise(s->map, s->map_len, MADV_RANDOM);
    }
    uint64_t per_step = (uint64_t)o->B * (uint64_t)o->world;
    l->batches_per_epoch = l->n_windows / per_step;
    if (l->batches_per_epoch == 0) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "%s: the %s split holds %llu tokens in %d shard(s), %llu windows of T+1 = "
                       "%d tokens; one batch needs B*world = %llu windows (lower -B/-T or add "
                       "data)",
                       o->dir, o->split, (unsigned long long)l->n_tokens, l->n_shards,
                       (unsigned long long)l->n_windows, o->T + 1, (unsigned long long)per_step);
        goto fail;
    }
    if (o->shuffle) {
        l->perm = cllm_malloc(l->n_windows * sizeof *l->perm);
        if (!l->perm) {
            st = CLLM_ERR_NOMEM;
            goto fail;
        }
    }
    free(names);
    *out = l;
    return CLLM_OK;
fail:
    for (int i = 0; i < n_names; i++)
        free(names ? names[i] : NULL);
    free(names);
    cllm_loader_free(l);
    return st;
}

void cllm_loader_free(cllm_loader *l) {
    if (!l) return;
    for (int i = 0; i < l->n_shards; i++) {
        if (l->shards[i].map) munmap(l->shards[i].map, l->shards[i].map_len);
        free(l->shards[i].path);
    }
    free(l->shards);
    free(l->perm);
    free(l);
}

/* The shard that holds global window w (binary search on first_window). */
static const shard *shard_of(const cllm_loader *l, uint64_t w) {
    int lo = 0, hi = l->n_shards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->shards[mid].first_window <= w)
            lo = mid;
        else
            hi = mid - 1;
    }
    /* Shards without windows share first_window with the next one: step past them. */
    while (l->shards[lo].n_windows == 0 ||
           w >= l->shards[lo].first_window + l->shards[lo].n_windows)
        lo++;
    return &l->shards[lo];
}

cllm_status cllm_loader_next(cllm_loader *l, uint32_t *inputs, uint32_t *targets) {
    const int B = l->o.B, T = l->o.T;
    if (l->o.shuffle && (!l->perm_valid || l->perm_epoch != l->epoch)) draw_perm(l, l->epoch);
    uint64_t base = (l->batch * (uint64_t)l->o.world + (uint64_t)l->o.rank) * (uint64_t)B;
    for (int b = 0; b < B; b++) {
        uint64_t w = base + (uint64_t)b;
        if (l->o.shuffle) w = l->perm[w];
        const shard *s = shard_of(l, w);
        uint64_t off = (w - s->first_window) * (uint64_t)T;
        uint32_t *x = inputs + (size_t)b * T, *y = targets + (size_t)b * T;
        uint32_t prev = token_at(s, off);
        for (int t = 0; t < T; t++) {
            uint32_t next = token_at(s, off + (uint64_t)t + 1);
            x[t] = prev;
            y[t] = next;
            prev = next;
        }
    }
    if (++l->batch == l->batches_per_epoch) {
        l->batch = 0;
        l->epoch++;
    }
    return CLLM_OK;
}

void cllm_loader_get_cursor(const cllm_loader *l, cllm_loader_cursor *c) {
    c->epoch = l->epoch;
    c->batch = l->batch;
}

cllm_status cllm_loader_set_cursor(cllm_loader *l, const cllm_loader_cursor *c) {
    if (c->batch >= l->batches_per_epoch)
        return cllm_fail(CLLM_ERR_USAGE,
                         "data cursor batch %llu is outside this split's %llu batches per epoch "
                         "(did the data, B, T or the number of ranks change?)",
                         (unsigned long long)c->batch, (unsigned long long)l->batches_per_epoch);
    l->epoch = c->epoch;
    l->batch = c->batch;
    return CLLM_OK;
}

void cllm_loader_reset(cllm_loader *l) {
    l->epoch = 0;
    l->batch = 0;
}

uint64_t cllm_loader_batches_per_epoch(const cllm_loader *l) {
    return l->batches_per_epoch;
}
uint64_t cllm_loader_num_tokens(const cllm_loader *l) {
    return l->n_tokens;
}
uint32_t cllm_loader_max_token(const cllm_loader *l) {
    return l->max_token;
}
int cllm_loader_num_shards(const cllm_loader *l) {
    return l->n_shards;
}
uint64_t cllm_loader_num_windows(const cllm_loader *l) {
    return l->n_windows;
}
