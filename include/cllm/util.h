/* cllm/util.h — small helpers every module uses: whole-file I/O, crash-safe writes,
 * directories, hashing, timing. No OpenCL here.
 *
 * Crash safety follows redis' rdb.c: write to "<path>.tmp.<pid>", fsync, rename over the
 * target, fsync the directory. A reader never sees a half-written file.
 */
#ifndef CLLM_UTIL_H
#define CLLM_UTIL_H

#include "cllm/common.h"

#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Read a whole file. *data is malloc'd (caller frees) and NUL-terminated (not counted in
 * *len), so text files can be used as C strings. */
cllm_status cllm_read_file(const char *path, char **data, size_t *len);
/* Write `len` bytes to `path` atomically (tmp + fsync + rename + fsync(dir)). */
cllm_status cllm_write_file_atomic(const char *path, const void *data, size_t len);
/* The same, streamed: begin creates "<path>.tmp.<pid>", write appends, commit fsyncs, closes,
 * renames over `path` and fsyncs the directory. abort closes and removes the temporary file
 * (call it after a failed write; begin and commit clean up after themselves; abort on a zeroed
 * or committed struct does nothing). For files too large to build in memory first. */
typedef struct {
    int fd;
    char *path, *tmp;
} cllm_atomic_file;
cllm_status cllm_atomic_begin(cllm_atomic_file *f, const char *path);
cllm_status cllm_atomic_write(cllm_atomic_file *f, const void *data, size_t len);
cllm_status cllm_atomic_commit(cllm_atomic_file *f);
void cllm_atomic_abort(cllm_atomic_file *f);
/* fsync a directory (after creating or renaming entries in it). */
cllm_status cllm_fsync_dir(const char *dir);
/* mkdir -p. */
cllm_status cllm_mkdirs(const char *path);
/* rm -r (used for old checkpoints and failed temporary directories). */
cllm_status cllm_remove_tree(const char *path);
bool cllm_is_dir(const char *path);
bool cllm_is_file(const char *path);
/* Join two path parts into a malloc'd string ("a" + "b" -> "a/b"). */
char *cllm_path_join(const char *a, const char *b);
/* malloc'd printf. */
char *cllm_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 64-bit FNV-1a; feed pieces with the previous value as seed (start with CLLM_FNV_SEED). */
#define CLLM_FNV_SEED 0xcbf29ce484222325ull
uint64_t cllm_hash64(const void *data, size_t len, uint64_t seed);

/* Monotonic time in seconds. */
double cllm_now(void);

/* Checked allocation helpers: return NULL and record CLLM_ERR_NOMEM on failure. */
void *cllm_malloc(size_t size);
void *cllm_calloc(size_t n, size_t size);

#ifdef __cplusplus
}
#endif
#endif
