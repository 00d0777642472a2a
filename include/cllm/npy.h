/* cllm/npy.h — NumPy's .npy format (version 1.0) for float32 arrays, which numpy.load reads:
 * the magic "\x93NUMPY", a header dict {'descr': '<f4', 'fortran_order': False, 'shape': (...)}
 * padded to a multiple of 64 bytes, then the data, little-endian, C order.
 *
 *     int64_t shape[2] = {T, T};
 *     CLLM_TRY(cllm_npy_write_f32("attn.npy", att, 2, shape));   // atomic
 */
#ifndef CLLM_NPY_H
#define CLLM_NPY_H

#include "cllm/common.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLLM_NPY_MAX_DIMS 8

/* Write `data` (the product of shape[0..ndim) floats, C order) to `path` atomically. */
cllm_status cllm_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);
/* Read a '<f4' C-order .npy file: *data malloc'd (caller frees), *ndim and shape[] filled
 * (at most CLLM_NPY_MAX_DIMS). Other dtypes or Fortran order are CLLM_ERR_UNSUPPORTED. */
cllm_status cllm_npy_read_f32(const char *path, float **data, int *ndim, int64_t *shape);

#ifdef __cplusplus
}
#endif
#endif
