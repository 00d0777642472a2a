/* cllm bench: benchmarks. `cllm bench train` times the training step (forward, backward,
 * clipping, AdamW) of a model config on a device, and measures in the same run the best
 * CLBlast SGEMM rate on the GEMM shapes that step uses, so that the step's rate is reported
 * as a fraction of what the device's GEMMs reach. `cllm bench generate` times generation with
 * and without the key/value cache (bench/torch_generate.py is its PyTorch peer). Modes are
 * rows of MODES[]. */
#include "args.h"
#include "commands.h"

#include "blas.h"
#include "cllm/generate.h"
#include "cllm/gpt.h"
#include "cllm/lora.h"
#include "cllm/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Best GFLOP/s of C (M, N) = A (M, K) @ B^T (N, K), the orientation of every linear layer's
 * forward, over `reps` timed runs after one untimed: by `choice` (NULL: the path the tune table
 * gives, as the step's own products take). */
static cllm_status gemm_rate(cllm_runtime *rt, const cllm_gemm_choice *choice, size_t M, size_t N,
                             size_t K, int reps, double *gflops) {
    cl_mem a = NULL, b = NULL, c = NULL;
    cllm_status st = CLLM_OK;
    *gflops = 0;
    CLLM_TRY(cllm_rt_alloc(rt, M * K * sizeof(float), &a));
    CLLM_TRY(cllm_rt_alloc(rt, N * K * sizeof(float), &b));
    CLLM_TRY(cllm_rt_alloc(rt, M * N * sizeof(float), &c));
    CLLM_TRY(cllm_rt_fill_zero(rt, a, 0, M * K * sizeof(float)));
    CLLM_TRY(cllm_rt_fill_zero(rt, b, 0, N * K * sizeof(float)));
    for (int r = -1; r < reps; r++) {
        CLLM_TRY(cllm_runtime_finish(rt));
        double t0 = cllm_now();
        const cllm_gemm_shape sh = {CLLM_BLAS_N, CLLM_BLAS_T, M, N, K, 1};
        if (choice)
            CLLM_TRY(cllm_blas_sgemm_with(rt, choice, &sh, 1.0f, a, 0, K, 0, b, 0, K, 0, 0.0f, c,
                                          0, N, 0));
        else
            CLLM_TRY(cllm_blas_sgemm(rt, CLLM_BLAS_N, CLLM_BLAS_T, M, N, K, 1.0f, a, 0, K, b, 0,
                                     K, 0.0f, c, 0, N));
        CLLM_TRY(cllm_runtime_finish(rt));
        double g = 2.0 * M * N * K / (cllm_now() - t0) / 1e9;
        if (r >= 0 && g > *gflops) *gflops = g;
    }
fail:
    if (a) clReleaseMemObject(a);
    if (b) clReleaseMemObject(b);
    if (c) clReleaseMemObject(c);
    return st;
}

/* ---------------------------------------------------------------- bench train */

/* One training step of m (zero grads, forward, backward, clip to norm 1, AdamW), timed: t[0]
 * start, t[1] after the forward, t[2] after the backward (synchronised there only with
 * `phases`), t[3] the end (the loss read waits for all of it). */
static cllm_status train_step(cllm_runtime *rt, cllm_gpt *m, const uint32_t *in, const uint32_t *tg,
                              int B, int T, int step, bool phases, double t[4], float *loss) {
    const cllm_adamw_params hp = {
        .lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    cllm_status st = CLLM_OK;
    CLLM_TRY(cllm_runtime_finish(rt));
    t[0] = cllm_now();
    CLLM_TRY(cllm_gpt_zero_grad(m));
    CLLM_TRY(cllm_gpt_forward(m, in, tg, B, T));
    if (phases) CLLM_TRY(cllm_runtime_finish(rt));
    t[1] = cllm_now();
    CLLM_TRY(cllm_gpt_backward(m, 1.0f));
    if (phases) CLLM_TRY(cllm_runtime_finish(rt));
    t[2] = cllm_now();
    CLLM_TRY(cllm_gpt_clip_grad_norm(m, 1.0f, NULL));
    CLLM_TRY(cllm_gpt_adamw_step(m, &hp, step));
    CLLM_TRY(cllm_gpt_get_loss(m, loss));
    t[3] = cllm_now();
    if (!isfinite(*loss)) st = cllm_fail(CLLM_ERR_NUMERIC, "step %d: the loss is %g", step, *loss);
fail:
    return st;
}

static int bench_train(int argc, char **argv) {
    const char *model = NULL, *dev = NULL, *plat = NULL, *lora_targets = "all-linear";
    int batch = 8, seq = 256, steps = 5, warmup = 1, gemm_reps = 3, lora_rank = 0;
    float lora_alpha = 16.0f;
    long long seed = 1337;
    bool phases = false, json = false, memory_only = false, clblast = false;
    const cli_opt opts[] = {
        {"model", 'm', CLI_STR, &model, "FILE", "model config (JSON, Hugging Face GPT-2 keys)",
         .required = true},
        {"batch", 'b', CLI_INT, &batch, "N", "sequences per step", .lo = 1, .hi = 1 << 20},
        {"seq", 't', CLI_INT, &seq, "N", "tokens per sequence (at most the model's n_positions)",
         .lo = 1, .hi = 1 << 20},
        {"steps", 'n', CLI_INT, &steps, "N", "timed steps", .lo = 1, .hi = 1e6},
        {"warmup", 0, CLI_INT, &warmup, "N",
         "untimed steps first (kernel builds, CLBlast compiles its kernels on first use)", .lo = 0,
         .hi = 1e6},
        {"gemm-reps", 0, CLI_INT, &gemm_reps, "N",
         "timed runs of each GPT-shaped product for the device's best GEMM rate (0: skip)", .lo = 0,
         .hi = 1e6},
        {"seed", 0, CLI_I64, &seed, "N", "seed of the weights and the random tokens"},
        {"lora-rank", 0, CLI_INT, &lora_rank, "R",
         "train LoRA adapters of rank R instead of all weights (0: full training)", .lo = 0,
         .hi = 1 << 20},
        {"lora-alpha", 0, CLI_FLOAT, &lora_alpha, "A", "LoRA scale numerator (scale = A / R)"},
        {"lora-targets", 0, CLI_STR, &lora_targets, "LIST",
         "projections with adapters (PEFT target_modules: c_attn, attn.c_proj, c_fc, mlp.c_proj, "
         "c_proj, all-linear)"},
        {"memory-only", 0, CLI_FLAG, &memory_only, NULL,
         "print the device memory of the step (and with --lora-rank of full training beside) and "
         "exit: nothing is allocated, so models larger than the device can be sized"},
        {"clblast", 0, CLI_FLAG, &clblast, NULL,
         "also time CLBlast alone on those shapes (its direct and indirect paths)"},
        {"phases", 0, CLI_FLAG, &phases, NULL,
         "also time forward, backward and optimizer apart (synchronises between them)"},
        {"json", 0, CLI_FLAG, &json, NULL, "print one JSON object instead of text"},
        CLI_DEVICE_OPTS(&dev, &plat),
    };
    const cli_spec spec = {
        "cllm bench train",
        "--model FILE [options]",
        "Time the training step of a model: forward, backward, gradient clipping (max norm 1) "
        "and AdamW on random tokens, the same work as one step of cllm train. Reports tokens/s, "
        "the achieved GFLOP/s (6 x matmul parameters x tokens, plus attention: 12 L T C per "
        "token), and the best rate of the step's own GEMM shapes run alone the way the step runs "
        "them (the device's tune table: see cllm tune), measured in the same run, with their "
        "ratio; --clblast adds CLBlast's own rate on those shapes.",
        opts,
        CLI_COUNT(opts),
        "With --lora-rank the step trains LoRA adapters only (the base frozen: no gradients or\n"
        "AdamW moments for it); the full-training step is timed beside it in the same run (steps\n"
        "interleaved, when both fit the device), with both device memories.\n"
        "Timings on a shared machine are noisy: the best and the median step are printed.\n"
        "examples:\n"
        "  cllm bench train --model models/gpt-mini.json --batch 8 --seq 256 --steps 5\n"
        "  cllm bench train --model models/gpt-mini.json --batch 8 --seq 256 --lora-rank 8"};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;

    cllm_gpt_config cfg;
    cllm_runtime *rt = NULL;
    cllm_gpt *m = NULL, *peer = NULL; /* peer: full training beside LoRA, steps interleaved */
    uint32_t *tok = NULL;
    double *times = NULL, *peer_times = NULL;
    cllm_status st = cllm_gpt_config_load(model, &cfg);
    if (st != CLLM_OK) return cli_report(st);
    if (seq > cfg.n_positions)
        return cli_usage_error(&spec, "--seq %d exceeds the model's n_positions (%d)", seq,
                               cfg.n_positions);
    cllm_gpt_opts go = {.max_batch = batch, .max_seq = seq, .training = true};
    if (lora_rank > 0) {
        go.lora = (cllm_lora_config){.rank = lora_rank, .alpha = lora_alpha};
        st = cllm_lora_parse_targets(lora_targets, &go.lora.targets);
        if (st == CLLM_OK) st = cllm_lora_config_check(&cfg, &go.lora);
        if (st != CLLM_OK) return cli_report(CLLM_ERR_USAGE);
    }
    cllm_gpt_opts full = go;
    full.lora.rank = 0;
    const size_t mem = cllm_gpt_memory_required(&cfg, &go),
                 mem_full = cllm_gpt_memory_required(&cfg, &full);
    const double n_lora = (double)cllm_lora_numel(&cfg, &go.lora);
    if (memory_only) {
        if (json)
            printf("{\"model\": \"%s\", \"params\": %zu, \"batch\": %d, \"seq\": %d, "
                   "\"memory_bytes\": %zu, \"full_memory_bytes\": %zu, \"lora_rank\": %d, "
                   "\"lora_values\": %.0f}\n",
                   model, cllm_gpt_num_params(&cfg), batch, seq, mem, mem_full, lora_rank, n_lora);
        else if (lora_rank > 0)
            printf("%s, batch %d x sequence %d, training: full %.1f MiB, LoRA rank %d on %s "
                   "(%.0f trainable values) %.1f MiB (%.0f%%, %.1f MiB less)\n",
                   model, batch, seq, mem_full / 1048576.0, lora_rank, lora_targets, n_lora,
                   mem / 1048576.0, 100.0 * (double)mem / (double)mem_full,
                   (double)(mem_full - mem) / 1048576.0);
        else
            printf("%s, batch %d x sequence %d, training: %.1f MiB\n", model, batch, seq,
                   mem / 1048576.0);
        return 0;
    }
    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.device_spec = dev;
    ro.platform_spec = plat;
    CLLM_TRY(cllm_runtime_init(&rt, &ro));
    CLLM_TRY(cllm_gpt_init(&m, rt, &cfg, &go));
    CLLM_TRY(cllm_gpt_init_weights(m, (uint64_t)seed));
    if (lora_rank > 0) {
        CLLM_TRY(cllm_gpt_lora_init_weights(m, (uint64_t)seed));
        st = cllm_gpt_init(&peer, rt, &cfg, &full);
        if (st == CLLM_ERR_TOO_LARGE && !json)
            printf("note: full training does not fit beside LoRA on this device (%s): LoRA is "
                   "timed alone\n",
                   cllm_last_error());
        if (st != CLLM_OK && st != CLLM_ERR_TOO_LARGE) goto fail;
        if (peer) CLLM_TRY(cllm_gpt_init_weights(peer, (uint64_t)seed));
        st = CLLM_OK;
    }
    const size_t BT = (size_t)batch * seq;
    tok = malloc(2 * BT * sizeof *tok);
    times = calloc((size_t)steps, sizeof *times);
    peer_times = calloc((size_t)steps, sizeof *peer_times);
    if (!tok || !times || !peer_times) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    uint64_t s = (uint64_t)seed;
    for (size_t i = 0; i < 2 * BT; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        tok[i] = (uint32_t)((s >> 33) % (uint64_t)cfg.vocab_size);
    }
    const double C = cfg.n_embd, L = cfg.n_layer, V = cfg.vocab_size;
    const double n_matmul = 12.0 * L * C * C + V * C;
    /* LoRA: forward and input gradients through the base (none below layer 0's qkv), and 6
     * flops per adapter value and token (2 forward, 4 backward) */
    const double flops =
        (lora_rank > 0 ? 4.0 * n_matmul - 6.0 * C * C + 6.0 * n_lora : 6.0 * n_matmul) *
            (double)BT +
        12.0 * L * seq * C * (double)BT;
    if (!json) {
        printf("%s on %s: %zu parameters, batch %d x sequence %d = %zu tokens per step, "
               "%.1f GFLOP per step, %.0f MiB on the device\n",
               model, cllm_runtime_device(rt)->name, cllm_gpt_num_params(&cfg), batch, seq, BT,
               flops / 1e9, mem / 1048576.0);
        if (lora_rank > 0)
            printf("LoRA rank %d, alpha %g on %s: %.0f trainable values (%.2f%% of the model); "
                   "full training would need %.0f MiB (LoRA: %.0f%% of it)\n",
                   lora_rank, (double)lora_alpha, lora_targets, n_lora,
                   100.0 * n_lora / (double)cllm_gpt_num_params(&cfg), mem_full / 1048576.0,
                   100.0 * (double)mem / (double)mem_full);
    }

    double ph[3] = {1e30, 1e30, 1e30}; /* best forward, backward, optimizer */
    float loss = 0, peer_loss = 0;
    const uint32_t *in = tok, *tg = tok + BT; /* any ids: the rate does not depend on them */
    for (int i = 0; i < warmup + steps; i++) {
        double t[4], tp[4] = {0};
        CLLM_TRY(train_step(rt, m, in, tg, batch, seq, i + 1, phases, t, &loss));
        if (peer) CLLM_TRY(train_step(rt, peer, in, tg, batch, seq, i + 1, false, tp, &peer_loss));
        if (i >= warmup) {
            times[i - warmup] = t[3] - t[0];
            peer_times[i - warmup] = tp[3] - tp[0];
            if (phases) {
                ph[0] = fmin(ph[0], t[1] - t[0]);
                ph[1] = fmin(ph[1], t[2] - t[1]);
                ph[2] = fmin(ph[2], t[3] - t[2]);
            }
        }
        if (!json && peer)
            printf("step %d: LoRA %.3f s, loss %.4f; full %.3f s, loss %.4f%s\n", i + 1,
                   t[3] - t[0], loss, tp[3] - tp[0], peer_loss,
                   i < warmup ? " (warm-up, not counted)" : "");
        else if (!json)
            printf("step %d: %.3f s, loss %.4f%s\n", i + 1, t[3] - t[0], loss,
                   i < warmup ? " (warm-up, not counted)" : "");
    }
    double best = times[0], peer_best = peer_times[0];
    for (int i = 1; i < steps; i++) {
        best = fmin(best, times[i]);
        peer_best = fmin(peer_best, peer_times[i]);
    }
    double med = median(times, steps), peer_med = median(peer_times, steps);

    /* The step's GEMM shapes (forward orientation): qkv, attention projection, MLP up and
     * down, LM head. Their best rate is what the step could reach if it were all GEMM. */
    const size_t c = (size_t)cfg.n_embd, vp = (size_t)cllm_gpt_padded_vocab(&cfg);
    const size_t shapes[][3] = {
        {BT, 3 * c, c}, {BT, c, c}, {BT, 4 * c, c}, {BT, c, 4 * c}, {BT, vp, c}};
    double gemm_best = 0, clblast_best = 0;
    size_t best_shape = 0, clblast_shape = 0;
    const cllm_gemm_choice paths[2] = {{CLLM_GEMM_CLBLAST_DIRECT}, {CLLM_GEMM_CLBLAST_INDIRECT}};
    for (size_t i = 0; gemm_reps > 0 && i < sizeof shapes / sizeof *shapes; i++) {
        double g;
        CLLM_TRY(gemm_rate(rt, NULL, shapes[i][0], shapes[i][1], shapes[i][2], gemm_reps, &g));
        if (g > gemm_best) gemm_best = g, best_shape = i;
        for (int p = 0; p < 2 && clblast; p++) {
            CLLM_TRY(
                gemm_rate(rt, &paths[p], shapes[i][0], shapes[i][1], shapes[i][2], gemm_reps, &g));
            if (g > clblast_best) clblast_best = g, clblast_shape = i;
        }
    }
    const cllm_tune_table *table = NULL;
    CLLM_TRY(cllm_blas_table(rt, &table));
    double step_gflops = flops / best / 1e9;
    if (json) {
        printf("{\"model\": \"%s\", \"device\": \"%s\", \"params\": %zu, \"batch\": %d, "
               "\"seq\": %d, \"steps\": %d, \"best_step_s\": %.6f, \"median_step_s\": %.6f, "
               "\"tokens_per_s\": %.2f, \"median_tokens_per_s\": %.2f, \"gflop_per_step\": %.4f, "
               "\"gflops\": %.3f, \"gemm_best_gflops\": %.3f, \"clblast_best_gflops\": %.3f, "
               "\"tune_table\": \"%s\", \"loss\": %.6f, "
               "\"memory_bytes\": %zu, \"full_memory_bytes\": %zu, \"lora_rank\": %d, "
               "\"lora_values\": %.0f",
               model, cllm_runtime_device(rt)->name, cllm_gpt_num_params(&cfg), batch, seq, steps,
               best, med, BT / best, BT / med, flops / 1e9, step_gflops, gemm_best, clblast_best,
               table->origin, loss, mem, mem_full, lora_rank, n_lora);
        if (phases)
            printf(", \"forward_s\": %.6f, \"backward_s\": %.6f, \"optimizer_s\": %.6f", ph[0],
                   ph[1], ph[2]);
        if (peer)
            printf(", \"full_best_step_s\": %.6f, \"full_median_step_s\": %.6f, "
                   "\"full_tokens_per_s\": %.2f",
                   peer_best, peer_med, BT / peer_best);
        printf("}\n");
    } else {
        printf("train step (forward + backward + clip + AdamW), %d timed: best %.3f s, median "
               "%.3f s -> %.1f tokens/s (median %.1f), %.1f GFLOP/s\n",
               steps, best, med, BT / best, BT / med, step_gflops);
        if (phases)
            printf("phases (best of each, synchronised): forward %.3f s, backward %.3f s, "
                   "clip + AdamW %.3f s\n",
                   ph[0], ph[1], ph[2]);
        if (peer)
            printf("full training, steps interleaved with LoRA's: best %.3f s, median %.3f s -> "
                   "%.1f tokens/s; the LoRA step takes %.2f of its time (median %.2f)\n",
                   peer_best, peer_med, BT / peer_best, best / peer_best, med / peer_med);
        if (gemm_reps > 0)
            printf("best product rate on the step's shapes, as the step runs them (tune table: "
                   "%s): %.1f GFLOP/s (%zux%zux%zu); the step reaches %.0f%% of it\n",
                   table->origin, gemm_best, shapes[best_shape][0], shapes[best_shape][1],
                   shapes[best_shape][2], 100.0 * step_gflops / gemm_best);
        if (gemm_reps > 0 && clblast)
            printf("best CLBlast SGEMM on the step's shapes (direct or indirect, parameters in "
                   "effect): %.1f GFLOP/s (%zux%zux%zu)\n",
                   clblast_best, shapes[clblast_shape][0], shapes[clblast_shape][1],
                   shapes[clblast_shape][2]);
    }
fail:
    free(tok);
    free(times);
    free(peer_times);
    cllm_gpt_free(peer);
    cllm_gpt_free(m);
    cllm_runtime_free(rt);
    return cli_report(st);
}

/* ---------------------------------------------------------------- bench generate */

/* Best rates over `reps` greedy runs of cllm_gen_run from a fresh context: prompt positions/s
 * of the prompt pass and generated tokens/s after it. */
static cllm_status gen_rates(cllm_gpt *m, bool no_cache, const uint32_t *prompt, int n_prompt,
                             int tokens, int samples, const cllm_sampler *sampler, int reps,
                             double *prompt_rate, double *gen_rate, double *gen_s) {
    cllm_gen *g = NULL;
    cllm_gen_setup su = {.no_cache = no_cache};
    cllm_status st = cllm_gen_init(&g, m, NULL, &su);
    if (st != CLLM_OK) return st;
    cllm_gen_opts o = cllm_gen_opts_default();
    o.max_tokens = tokens;
    o.num_samples = samples;
    o.sampler = *sampler;
    *prompt_rate = *gen_rate = 0;
    *gen_s = 1e30;
    for (int r = 0; r < reps; r++) {
        cllm_gen_result res = {0};
        cllm_gen_reset(g);
        CLLM_TRY(cllm_gen_append(g, prompt, n_prompt));
        CLLM_TRY(cllm_gen_run(g, &o, &res));
        double pr = res.prompt_positions / res.prompt_s, gr = res.generated / res.gen_s;
        if (pr > *prompt_rate) *prompt_rate = pr;
        if (gr > *gen_rate) *gen_rate = gr, *gen_s = res.gen_s;
        cllm_gen_result_free(&res);
    }
fail:
    cllm_gen_free(g);
    return st;
}

static int bench_generate(int argc, char **argv) {
    const char *model = NULL, *dev = NULL, *plat = NULL;
    int n_prompt = 64, tokens = 128, reps = 3, samples = 1, nc_tokens = -1;
    long long seed = 1337;
    bool json = false, sampled = false;
    const cli_opt opts[] = {
        {"model", 'm', CLI_STR, &model, "FILE", "model config (JSON, Hugging Face GPT-2 keys)",
         .required = true},
        {"prompt-tokens", 'p', CLI_INT, &n_prompt, "N", "random prompt tokens", .lo = 1,
         .hi = 1 << 20},
        {"tokens", 'n', CLI_INT, &tokens, "N",
         "tokens generated per run (prompt + tokens must fit "
         "n_positions: no window slides)",
         .lo = 1, .hi = 1 << 20},
        {"no-cache-tokens", 0, CLI_INT, &nc_tokens, "N",
         "tokens per run without the cache (-1: as --tokens; 0: skip that measurement)", .lo = -1,
         .hi = 1 << 20},
        {"samples", 'b', CLI_INT, &samples, "N", "samples generated together (batch rows)", .lo = 1,
         .hi = 4096},
        {"reps", 'r', CLI_INT, &reps, "N", "timed runs of each mode (the best is reported)",
         .lo = 1, .hi = 1e6},
        {"sampled", 0, CLI_FLAG, &sampled, NULL,
         "sample (temperature 1, top-k 40, top-p 0.95) instead of greedy argmax"},
        {"seed", 0, CLI_I64, &seed, "N", "seed of the weights and the prompt"},
        {"json", 0, CLI_FLAG, &json, NULL, "print one JSON object instead of text"},
        CLI_DEVICE_OPTS(&dev, &plat),
    };
    const cli_spec spec = {
        "cllm bench generate",
        "--model FILE [options]",
        "Time generation with a model of random weights (speed does not depend on them): the "
        "prompt's batched pass (prompt tokens/s), then new tokens through the key/value cache "
        "(generated tokens/s), and the same without the cache (the whole forward recomputed "
        "for every token), after one untimed warm-up run. bench/torch_generate.py runs the "
        "same in PyTorch and then this, for the ratio.",
        opts,
        CLI_COUNT(opts),
        "example: cllm bench generate --model models/gpt-mini.json --prompt-tokens 64 "
        "--tokens 128"};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    cllm_gpt_config cfg;
    cllm_runtime *rt = NULL;
    cllm_gpt *m = NULL;
    uint32_t *prompt = NULL;
    cllm_status st = cllm_gpt_config_load(model, &cfg);
    if (st != CLLM_OK) return cli_report(st);
    if (nc_tokens < 0) nc_tokens = tokens;
    int need = n_prompt + (tokens > nc_tokens ? tokens : nc_tokens);
    if (need > cfg.n_positions)
        return cli_usage_error(&spec,
                               "--prompt-tokens + --tokens = %d exceeds the model's "
                               "n_positions (%d)",
                               need, cfg.n_positions);
    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.device_spec = dev;
    ro.platform_spec = plat;
    CLLM_TRY(cllm_runtime_init(&rt, &ro));
    cllm_gpt_opts go = {.max_batch = samples, .max_seq = need, .kv_cache = true};
    CLLM_TRY(cllm_gpt_init(&m, rt, &cfg, &go));
    CLLM_TRY(cllm_gpt_init_weights(m, (uint64_t)seed));
    prompt = malloc((size_t)n_prompt * sizeof *prompt);
    if (!prompt) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    uint64_t s = (uint64_t)seed;
    for (int i = 0; i < n_prompt; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        prompt[i] = (uint32_t)((s >> 33) % (uint64_t)cfg.vocab_size);
    }
    cllm_sampler sp = cllm_sampler_default();
    if (sampled) {
        sp.top_k = 40;
        sp.top_p = 0.95f;
    } else {
        sp.greedy = true;
    }
    if (!json)
        printf("%s on %s: %zu parameters, prompt %d tokens, %d new tokens x %d sample%s, %s\n",
               model, cllm_runtime_device(rt)->name, cllm_gpt_num_params(&cfg), n_prompt, tokens,
               samples, samples == 1 ? "" : "s",
               sampled ? "sampled (top-k 40, top-p 0.95)" : "greedy");
    double pr, gr, gs, npr = 0, ngr = 0, ngs = 0, wpr, wgr, wgs;
    /* warm-up: kernel builds and CLBlast's first compiles of each GEMM shape */
    CLLM_TRY(gen_rates(m, false, prompt, n_prompt, tokens, samples, &sp, 1, &wpr, &wgr, &wgs));
    if (nc_tokens > 0)
        CLLM_TRY(
            gen_rates(m, true, prompt, n_prompt, nc_tokens, samples, &sp, 1, &wpr, &wgr, &wgs));
    CLLM_TRY(gen_rates(m, false, prompt, n_prompt, tokens, samples, &sp, reps, &pr, &gr, &gs));
    if (nc_tokens > 0)
        CLLM_TRY(
            gen_rates(m, true, prompt, n_prompt, nc_tokens, samples, &sp, reps, &npr, &ngr, &ngs));
    if (json) {
        printf("{\"model\": \"%s\", \"device\": \"%s\", \"params\": %zu, \"prompt_tokens\": %d, "
               "\"tokens\": %d, \"no_cache_tokens\": %d, \"samples\": %d, \"sampled\": %s, "
               "\"reps\": %d, \"prompt_tokens_per_s\": %.2f, \"tokens_per_s\": %.2f, "
               "\"no_cache_tokens_per_s\": %.2f}\n",
               model, cllm_runtime_device(rt)->name, cllm_gpt_num_params(&cfg), n_prompt, tokens,
               nc_tokens, samples, sampled ? "true" : "false", reps, pr, gr, ngr);
    } else {
        printf("prompt pass: %.1f tokens/s (best of %d)\n", pr, reps);
        printf("generation with the cache: %.1f tokens/s (%d tokens in %.3f s)\n", gr,
               tokens * samples, gs);
        if (nc_tokens > 0)
            printf("generation without the cache: %.1f tokens/s (%d tokens in %.3f s); the cache "
                   "is %.1fx faster\n",
                   ngr, nc_tokens * samples, ngs, gr / ngr);
    }
fail:
    free(prompt);
    cllm_gpt_free(m);
    cllm_runtime_free(rt);
    return cli_report(st);
}

/* ---------------------------------------------------------------- dispatch */

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} bench_mode;

static const bench_mode MODES[] = {
    {"train", bench_train, "tokens/s and GFLOP/s of a model's training step, beside its GEMMs"},
    {"generate", bench_generate, "prompt and generated tokens/s, with and without the KV cache"},
};
#define N_MODES ((int)(sizeof MODES / sizeof *MODES))

static void bench_usage(FILE *f) {
    fprintf(f, "usage: cllm bench <mode> [options]\n\nBenchmarks; every figure comes with a peer "
               "measured in the same run.\n\nmodes:\n");
    for (int i = 0; i < N_MODES; i++)
        fprintf(f, "  %-8s %s\n", MODES[i].name, MODES[i].summary);
    fprintf(f, "\n'cllm bench <mode> --help' describes a mode.\n");
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2) {
        bench_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        bench_usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_MODES; i++) {
        if (strcmp(argv[1], MODES[i].name) != 0) continue;
        char name[64];
        snprintf(name, sizeof name, "cllm bench %s", MODES[i].name);
        argv[1] = name;
        return MODES[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "cllm bench: '%s' is not a mode; modes:", argv[1]);
    for (int i = 0; i < N_MODES; i++)
        fprintf(stderr, " %s", MODES[i].name);
    fprintf(stderr, " (see 'cllm bench --help')\n");
    return 2;
}
