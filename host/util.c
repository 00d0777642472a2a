/* Whole-file I/O, crash-safe writes, directories, hashing, time. */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700
#include "cllm/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void *cllm_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) cllm_fail(CLLM_ERR_NOMEM, "out of host memory (asked for %zu bytes)", size);
    return p;
}

void *cllm_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) cllm_fail(CLLM_ERR_NOMEM, "out of host memory (asked for %zu x %zu bytes)", n, size);
    return p;
}

cllm_status cllm_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cllm_fail(CLLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return cllm_fail(CLLM_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return cllm_fail(CLLM_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return cllm_fail(CLLM_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return CLLM_OK;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

cllm_status cllm_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return cllm_fail(CLLM_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    /* Some file systems refuse fsync on directories (EINVAL); the rename is still done. */
    if (fsync(fd) != 0 && errno != EINVAL) {
        int e = errno;
        close(fd);
        return cllm_fail(CLLM_ERR_IO, "%s: fsync: %s", dir, strerror(e));
    }
    close(fd);
    return CLLM_OK;
}

cllm_status cllm_atomic_begin(cllm_atomic_file *f, const char *path) {
    f->fd = -1;
    f->path = strdup(path);
    f->tmp = cllm_strdup_printf("%s.tmp.%ld", path, (long)getpid());
    if (!f->path || !f->tmp) {
        cllm_atomic_abort(f);
        return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    }
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f->fd < 0) {
        cllm_status st = cllm_fail(CLLM_ERR_IO, "%s: cannot create: %s", f->tmp, strerror(errno));
        cllm_atomic_abort(f);
        return st;
    }
    return CLLM_OK;
}

cllm_status cllm_atomic_write(cllm_atomic_file *f, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return cllm_fail(CLLM_ERR_IO, "%s: write: %s", f->tmp, strerror(errno));
        }
        p += w;
        len -= (size_t)w;
    }
    return CLLM_OK;
}

cllm_status cllm_atomic_commit(cllm_atomic_file *f) {
    cllm_status st = CLLM_OK;
    if (fsync(f->fd) != 0) st = cllm_fail(CLLM_ERR_IO, "%s: fsync: %s", f->tmp, strerror(errno));
    if (close(f->fd) != 0 && st == CLLM_OK)
        st = cllm_fail(CLLM_ERR_IO, "%s: close: %s", f->tmp, strerror(errno));
    f->fd = -1;
    if (st == CLLM_OK && rename(f->tmp, f->path) != 0)
        st = cllm_fail(CLLM_ERR_IO, "%s: rename to %s: %s", f->tmp, f->path, strerror(errno));
    if (st != CLLM_OK) {
        cllm_atomic_abort(f);
        return st;
    }
    char *dir = dir_of(f->path);
    st = dir ? cllm_fsync_dir(dir) : cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    free(dir);
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
    return st;
}

void cllm_atomic_abort(cllm_atomic_file *f) {
    if (!f->tmp && !f->path) return; /* zeroed, or committed already */
    if (f->fd >= 0) close(f->fd);
    if (f->tmp) unlink(f->tmp);
    free(f->tmp);
    free(f->path);
    f->fd = -1;
    f->tmp = f->path = NULL;
}

cllm_status cllm_write_file_atomic(const char *path, const void *data, size_t len) {
    cllm_atomic_file f;
    cllm_status st = cllm_atomic_begin(&f, path);
    if (st != CLLM_OK) return st;
    st = cllm_atomic_write(&f, data, len);
    if (st != CLLM_OK) {
        cllm_atomic_abort(&f);
        return st;
    }
    return cllm_atomic_commit(&f);
}

cllm_status cllm_mkdirs(const char *path) {
    char *p = strdup(path);
    if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                cllm_status st = cllm_fail(CLLM_ERR_IO, "%s: cannot create directory: %s", p,
                                           strerror(errno));
                free(p);
                return st;
            }
            p[i] = c;
        }
    }
    free(p);
    if (!cllm_is_dir(path))
        return cllm_fail(CLLM_ERR_IO, "%s: exists and is not a directory", path);
    return CLLM_OK;
}

cllm_status cllm_remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? CLLM_OK : cllm_fail(CLLM_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return cllm_fail(CLLM_ERR_IO, "%s: cannot open directory: %s", path, strerror(errno));
        struct dirent *e;
        cllm_status st = CLLM_OK;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *sub = cllm_path_join(path, e->d_name);
            if (!sub) {
                st = CLLM_ERR_NOMEM;
                break;
            }
            st = cllm_remove_tree(sub);
            free(sub);
            if (st != CLLM_OK) break;
        }
        closedir(d);
        if (st != CLLM_OK) return st;
        if (rmdir(path) != 0) return cllm_fail(CLLM_ERR_IO, "%s: rmdir: %s", path, strerror(errno));
        return CLLM_OK;
    }
    if (unlink(path) != 0) return cllm_fail(CLLM_ERR_IO, "%s: unlink: %s", path, strerror(errno));
    return CLLM_OK;
}

bool cllm_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool cllm_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

char *cllm_strdup_printf(const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap2);
    else
        cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    va_end(ap2);
    return s;
}

char *cllm_path_join(const char *a, const char *b) {
    size_t la = strlen(a);
    if (la == 0) return cllm_strdup_printf("%s", b);
    return cllm_strdup_printf("%s%s%s", a, a[la - 1] == '/' ? "" : "/", b);
}

uint64_t cllm_hash64(const void *data, size_t len, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

double cllm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
