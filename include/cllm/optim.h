/* cllm/optim.h — learning-rate schedules and AdamW hyper-parameters (the AdamW update itself
 * runs on the device: cllm_gpt_adamw_step in gpt.h). No OpenCL here.
 *
 * Schedules (steps are 1-based, as the optimizer counts them):
 *   warmup    lr * step / warmup for step <= warmup (none when warmup == 0)
 *   cosine    then min_lr + 0.5 (1 + cos(pi r)) (lr - min_lr), r = (step - warmup)/(total - warmup)
 *   linear    then lr - r (lr - min_lr)
 *   constant  then lr
 * r is clamped to [0, 1], so steps past `total` stay at min_lr.
 */
#ifndef CLLM_OPTIM_H
#define CLLM_OPTIM_H

#include "cllm/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CLLM_SCHED_COSINE = 0,
    CLLM_SCHED_LINEAR = 1,
    CLLM_SCHED_CONSTANT = 2,
} cllm_schedule_kind;

typedef struct {
    cllm_schedule_kind kind;
    double lr;      /* peak learning rate */
    double min_lr;  /* floor reached at `total` (cosine, linear) */
    int64_t warmup; /* steps of linear warmup */
    int64_t total;  /* steps in the run */
} cllm_schedule;

double cllm_schedule_lr(const cllm_schedule *s, int64_t step);
/* "cosine" | "linear" | "constant" <-> kind. */
cllm_status cllm_schedule_kind_parse(const char *name, cllm_schedule_kind *kind);
const char *cllm_schedule_kind_name(cllm_schedule_kind kind);

#ifdef __cplusplus
}
#endif
#endif
