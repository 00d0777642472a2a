/* Learning-rate schedules. */
#include "cllm/optim.h"

#include <math.h>
#include <string.h>

double cllm_schedule_lr(const cllm_schedule *s, int64_t step) {
    if (step < 1) step = 1;
    if (s->warmup > 0 && step <= s->warmup) return s->lr * (double)step / (double)s->warmup;
    if (s->kind == CLLM_SCHED_CONSTANT) return s->lr;
    double span = (double)(s->total - s->warmup);
    double r = span > 0 ? (double)(step - s->warmup) / span : 1.0;
    if (r < 0) r = 0;
    if (r > 1) r = 1;
    if (s->kind == CLLM_SCHED_LINEAR) return s->lr - r * (s->lr - s->min_lr);
    return s->min_lr + 0.5 * (1.0 + cos(M_PI * r)) * (s->lr - s->min_lr);
}

static const char *const names[] = {"cosine", "linear", "constant"};

cllm_status cllm_schedule_kind_parse(const char *name, cllm_schedule_kind *kind) {
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i])) {
            *kind = (cllm_schedule_kind)i;
            return CLLM_OK;
        }
    return cllm_fail(CLLM_ERR_USAGE, "unknown schedule '%s' (expected cosine, linear or constant)",
                     name ? name : "");
}

const char *cllm_schedule_kind_name(cllm_schedule_kind kind) {
    return (unsigned)kind < 3 ? names[kind] : "?";
}
