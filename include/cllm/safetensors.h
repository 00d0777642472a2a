/* cllm/safetensors.h — reading and writing safetensors files (Hugging Face's tensor format).
 *
 * The format: an unsigned 64-bit little-endian N, then N bytes of UTF-8 JSON (the header),
 * then the data. The header maps each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (byte offsets into the data, which follows the header), and may hold
 * "__metadata__", an object of string values. Data is little-endian, row-major, and the
 * tensors tile the data exactly: sorted by offset they are contiguous, non-overlapping, start
 * at 0 and end at the file's end.
 *
 * Tutorial:
 *     cllm_safetensors *st;
 *     if (cllm_safetensors_open(&st, "model.safetensors") != CLLM_OK)
 *         fprintf(stderr, "%s\n", cllm_last_error());   // "model.safetensors: tensor ..."
 *     const cllm_st_tensor *t = cllm_safetensors_find(st, "wte.weight");
 *     float *w = malloc(t->numel * sizeof *w);
 *     cllm_safetensors_read_f32(st, t, w);               // F32, F16, BF16, F64 -> float
 *     const char *fmt = cllm_safetensors_metadata(st, "format");   // "pt", or NULL
 *     cllm_safetensors_free(st);
 *
 *     cllm_st_entry e[] = {{"x", CLLM_ST_F32, 2, {3, 4}, xdata}};
 *     cllm_st_meta meta[] = {{"format", "pt"}};
 *     cllm_safetensors_save("x.safetensors", e, 1, meta, 1, NULL, NULL);
 *
 * Opening validates the whole header (and the file's size) before anything is read, and
 * refuses a bad file with one line naming the file and the tensor or key at fault. Tensor
 * data is read on demand (pread), so a large file costs no memory until it is read.
 * Writing is atomic: "<path>.tmp.<pid>", fsync, rename, fsync of the directory.
 * No OpenCL here.
 */
#ifndef CLLM_SAFETENSORS_H
#define CLLM_SAFETENSORS_H

#include "cllm/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CLLM_ST_BOOL,
    CLLM_ST_U8,
    CLLM_ST_I8,
    CLLM_ST_F8_E4M3,
    CLLM_ST_F8_E5M2,
    CLLM_ST_U16,
    CLLM_ST_I16,
    CLLM_ST_F16,
    CLLM_ST_BF16,
    CLLM_ST_U32,
    CLLM_ST_I32,
    CLLM_ST_F32,
    CLLM_ST_U64,
    CLLM_ST_I64,
    CLLM_ST_F64,
    CLLM_ST_DTYPE_COUNT
} cllm_st_dtype;

#define CLLM_ST_MAX_DIMS 8

/* The dtype's name in the header ("F32"), its size in bytes, and the reverse lookup
 * (returns false for a name safetensors does not define). */
const char *cllm_st_dtype_name(cllm_st_dtype dt);
size_t cllm_st_dtype_size(cllm_st_dtype dt);
bool cllm_st_dtype_parse(const char *name, cllm_st_dtype *dt);

/* One tensor of an open file. */
typedef struct {
    char *name;
    cllm_st_dtype dtype;
    int ndim;                         /* 0 (a scalar) .. CLLM_ST_MAX_DIMS */
    int64_t shape[CLLM_ST_MAX_DIMS];
    size_t numel;                     /* product of shape (1 for a scalar) */
    uint64_t begin, end;              /* byte offsets in the data section */
} cllm_st_tensor;

typedef struct cllm_safetensors cllm_safetensors;

/* Open and validate a file. The file stays open until cllm_safetensors_free. */
cllm_status cllm_safetensors_open(cllm_safetensors **st, const char *path);
/* The same on `len` bytes in memory, which the caller keeps alive until _free; `name`
 * stands for the file in messages. */
cllm_status cllm_safetensors_open_memory(cllm_safetensors **st, const void *data, size_t len,
                                         const char *name);
void cllm_safetensors_free(cllm_safetensors *st);

const char *cllm_safetensors_path(const cllm_safetensors *st);
/* Tensors in header order. */
int cllm_safetensors_count(const cllm_safetensors *st);
const cllm_st_tensor *cllm_safetensors_tensor(const cllm_safetensors *st, int i);
/* NULL if there is no tensor of that name. */
const cllm_st_tensor *cllm_safetensors_find(const cllm_safetensors *st, const char *name);
/* A "__metadata__" value, or NULL. */
const char *cllm_safetensors_metadata(const cllm_safetensors *st, const char *key);
int cllm_safetensors_metadata_count(const cllm_safetensors *st);
void cllm_safetensors_metadata_at(const cllm_safetensors *st, int i, const char **key,
                                  const char **value);

/* Read a tensor's raw bytes (end - begin of them, little-endian as stored). */
cllm_status cllm_safetensors_read_raw(const cllm_safetensors *st, const cllm_st_tensor *t,
                                      void *dst);
/* Read a floating-point tensor (F32, F16, BF16 or F64) as t->numel floats. Other dtypes are
 * refused naming the tensor. */
cllm_status cllm_safetensors_read_f32(const cllm_safetensors *st, const cllm_st_tensor *t,
                                      float *dst);
/* Read an integer tensor (I8..I64, U8..U64, BOOL) as t->numel int32 values; a value outside
 * int32's range is refused naming the tensor. */
cllm_status cllm_safetensors_read_i32(const cllm_safetensors *st, const cllm_st_tensor *t,
                                      int32_t *dst);

/* Half-precision conversions (IEEE binary16 and bfloat16 bit patterns), exact for every value;
 * float -> half rounds to nearest even. */
float cllm_f16_to_f32(uint16_t h);
float cllm_bf16_to_f32(uint16_t h);
uint16_t cllm_f32_to_f16(float f);
uint16_t cllm_f32_to_bf16(float f);

/* ---------------------------------------------------------------- writing */

typedef struct {
    const char *name;
    cllm_st_dtype dtype;
    int ndim;
    int64_t shape[CLLM_ST_MAX_DIMS];
    const void *data; /* numel * dtype size bytes, little-endian; NULL: produced by `fill` */
} cllm_st_entry;

typedef struct {
    const char *key, *value;
} cllm_st_meta;

/* Produces entry `index`'s bytes into dst (`bytes` of them) when its data is NULL, so that a
 * tensor can be converted (transposed, cast) while writing without a second copy of all. */
typedef cllm_status (*cllm_st_fill_fn)(void *user, int index, void *dst, size_t bytes);

/* Write `n` tensors (data in this order, header padded with spaces to a multiple of 8 bytes as
 * the reference implementation does) and `n_meta` metadata strings, atomically. Names must be
 * unique, non-empty and not "__metadata__". */
cllm_status cllm_safetensors_save(const char *path, const cllm_st_entry *entries, int n,
                                  const cllm_st_meta *meta, int n_meta, cllm_st_fill_fn fill,
                                  void *user);

#ifdef __cplusplus
}
#endif
#endif
