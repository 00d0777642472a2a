/* Learning-rate schedules at points whose values follow from the definitions. */
#include "testutil.h"

#include "cllm/optim.h"

#include <string.h>

int main(void) {
    cllm_schedule s = {CLLM_SCHED_COSINE, 1e-3, 1e-4, 10, 110};
    CHECK(test_close(cllm_schedule_lr(&s, 1), 1e-4, 1e-12, 1e-9));   /* 1/10 of peak */
    CHECK(test_close(cllm_schedule_lr(&s, 5), 5e-4, 1e-12, 1e-9));
    CHECK(test_close(cllm_schedule_lr(&s, 10), 1e-3, 1e-12, 1e-9));  /* peak at the end of warmup */
    CHECK(test_close(cllm_schedule_lr(&s, 60), 5.5e-4, 1e-12, 1e-9)); /* cosine midpoint */
    CHECK(test_close(cllm_schedule_lr(&s, 110), 1e-4, 1e-12, 1e-9));
    CHECK(test_close(cllm_schedule_lr(&s, 500), 1e-4, 1e-12, 1e-9)); /* clamped past the end */
    /* cos(pi/4) at a quarter: min + (1 + sqrt(2)/2)/2 * (max - min) */
    CHECK(test_close(cllm_schedule_lr(&s, 35), 1e-4 + 0.5 * (1 + sqrt(0.5)) * 9e-4, 1e-12, 1e-9));
    double prev = 1;
    int mono = 1;
    for (int64_t t = 10; t <= 110; t++) {
        double lr = cllm_schedule_lr(&s, t);
        mono &= lr <= prev + 1e-15;
        prev = lr;
    }
    CHECK(mono);
    s.kind = CLLM_SCHED_LINEAR;
    CHECK(test_close(cllm_schedule_lr(&s, 60), 5.5e-4, 1e-12, 1e-9));
    CHECK(test_close(cllm_schedule_lr(&s, 35), 1e-3 - 0.25 * 9e-4, 1e-12, 1e-9));
    s.kind = CLLM_SCHED_CONSTANT;
    CHECK(test_close(cllm_schedule_lr(&s, 100), 1e-3, 1e-12, 1e-9));
    CHECK(test_close(cllm_schedule_lr(&s, 3), 3e-4, 1e-12, 1e-9));
    s.warmup = 0;
    CHECK(test_close(cllm_schedule_lr(&s, 1), 1e-3, 1e-12, 1e-9));
    cllm_schedule_kind k;
    CHECK_OK(cllm_schedule_kind_parse("linear", &k));
    CHECK(k == CLLM_SCHED_LINEAR);
    CHECK(cllm_schedule_kind_parse("exp", &k) == CLLM_ERR_USAGE);
    CHECK(strstr(cllm_last_error(), "cosine, linear or constant") != NULL);
    return test_exit();
}
