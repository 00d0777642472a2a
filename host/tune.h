/* host/tune.h — internal: where a device's tune table comes from (host/tune_cache.c) and how
 * `cllm tune` finds one (host/tune.c, public API in cllm/tune.h).
 *
 * The tune cache is one JSON file per device beside the program cache:
 * $XDG_CACHE_HOME/cllm/tune-<key>.json, the key a hash of the device's name, vendor and
 * version, the driver's version and the platform's name and version (as the program cache is
 * keyed), written tmp + rename. A file that does not parse or validate is ignored with a
 * warning (`cllm tune` rewrites it).
 */
#ifndef CLLM_TUNE_INTERNAL_H
#define CLLM_TUNE_INTERNAL_H

#include "blas.h"

/* This device's tune cache file (malloc'd), or NULL with an error when no cache directory can
 * be found ($XDG_CACHE_HOME and $HOME unset). */
char *cllm_tune_cache_path(const cllm_runtime *rt);

/* Read a tune cache written for this device into t (origin "cache"). CLLM_ERR_IO when the
 * file does not exist; CLLM_ERR_FORMAT (message names the file and the fault) when it is not a
 * valid tune cache for this device and this cl/gemm.cl. */
cllm_status cllm_tune_cache_load(const cllm_runtime *rt, const char *path, cllm_tune_table *t);
/* Write t for this device (tmp + rename), creating the directory. */
cllm_status cllm_tune_cache_save(const cllm_runtime *rt, const char *path,
                                 const cllm_tune_table *t);

/* The built-in table for a device the developers measured (origin "builtin"); false if there
 * is none for this device. */
bool cllm_tune_builtin(const cllm_device_info *d, cllm_tune_table *t);

/* The table a runtime starts with: by CLLM_TUNE (unset or 1: the cache, else the built-in
 * table, else none; "builtin": the built-in table or none; 0: none). A corrupt cache is
 * reported as a warning and skipped. */
cllm_status cllm_tune_table_for(const cllm_runtime *rt, cllm_tune_table *t);

/* The Xgemm parameters measured on PoCL's CPU device (DESIGN.md), as a starting point. */
void cllm_tune_pocl_xgemm(cllm_clblast_params *p);

/* Add a parameter to a CLBlast parameter set; false when the set is full. */
bool cllm_clblast_params_set(cllm_clblast_params *p, const char *name, size_t value);

#endif
