/* cllm/llmc.h — llm.c's model file (gpt2_124M.bin and friends), for moving models between
 * llm.c and cllm.
 *
 * The format (llm.c's train_gpt2.py write_model / train_gpt2.c gpt2_build_from_checkpoint):
 * 256 little-endian int32 — [0] magic 20240326, [1] version, [2] maxT (n_positions), [3] V,
 * [4] L, [5] NH, [6] C, [7] Vp (padded vocab) — then every parameter in llm.c's order, which is
 * cllm's layout (gpt.h) with Vp rows of wte. Version 3 stores float32, version 5 bfloat16;
 * version 1 (older llm.c) is float32 without padding (Vp = V, [7] unused). llm.c has no
 * layer_norm_epsilon: it is 1e-5.
 *
 *     cllm_gpt_config cfg; float *params;
 *     cllm_llmc_load("gpt2_124M.bin", &cfg, &params);      // cllm layout, cllm's Vp
 *     cllm_llmc_save("out.bin", &cfg, params, false);       // version 3, float32
 *
 * No OpenCL here.
 */
#ifndef CLLM_LLMC_H
#define CLLM_LLMC_H

#include "cllm/common.h"
#include "cllm/gpt.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLLM_LLMC_MAGIC 20240326

/* Read an llm.c model file: *params (malloc'd, caller frees) in cllm's layout with cllm's Vp;
 * wte rows beyond V are zero whatever the file's padding held. The file's size must match its
 * header exactly; values must be finite. */
cllm_status cllm_llmc_load(const char *path, cllm_gpt_config *cfg, float **params);
/* Write one atomically: version 3 (float32), or version 5 (bfloat16, rounded to nearest even)
 * with `bf16`; Vp = cllm's padded vocab (a multiple of 128, as llm.c pads). Refuses a config
 * whose layer_norm_epsilon is not llm.c's 1e-5. */
cllm_status cllm_llmc_save(const char *path, const cllm_gpt_config *cfg, const float *params,
                           bool bf16);

#ifdef __cplusplus
}
#endif
#endif
