/* cllm export: a checkpoint as a Hugging Face GPT-2 directory, or as an llm.c model file;
 * with --merge-lora, its LoRA adapters folded into the weights first. */
#include "args.h"
#include "cllm/checkpoint.h"
#include "cllm/llmc.h"
#include "cllm/lora.h"
#include "cllm/util.h"
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *format = "hf", *dtype = "f32", *adapter = NULL;
    bool force = false, merge = false;
    const cli_opt opts[] = {
        {"ckpt", 'c', CLI_STR, &ckpt, "PATH",
         "checkpoint: a run directory (its latest step), a step directory, or a Hugging Face "
         "GPT-2 directory",
         .required = true},
        {"out", 'o', CLI_STR, &out, "PATH",
         "hf: the directory to create; llmc: the file to write (e.g. gpt2_124M.bin)",
         .required = true},
        {"format", 0, CLI_CHOICE, &format, NULL,
         "hf = Hugging Face GPT-2 directory; llmc = llm.c model file", .choices = "hf|llmc"},
        {"dtype", 0, CLI_CHOICE, &dtype, NULL,
         "weight precision (llmc: f32 = version 3, bf16 = version 5; no f16)",
         .choices = "f32|f16|bf16"},
        {"force", 'f', CLI_FLAG, &force, NULL,
         "replace an existing --out (only once the new one is complete)"},
        {"merge-lora", 0, CLI_FLAG, &merge, NULL,
         "fold the checkpoint's LoRA adapters into its weights (W += alpha/r * B A) and export "
         "the fine-tuned model as a plain one"},
        {"adapter", 0, CLI_STR, &adapter, "DIR",
         "with --merge-lora: the adapters of DIR (adapter_config.json + "
         "adapter_model.safetensors, as cllm or PEFT's save_pretrained writes them) instead of "
         "the checkpoint's own"},
    };
    const cli_spec spec = {
        "cllm export",
        "--ckpt PATH --out PATH [--format hf|llmc] [--dtype f32|f16|bf16] [--merge-lora [--adapter "
        "DIR]]",
        "Export a model for other tools. --format hf writes a Hugging Face GPT-2 directory:\n"
        "model.safetensors (\"transformer.*\" names, Conv1D weights (in, out), the LM head tied\n"
        "to wte), config.json (GPT-2 keys, torch_dtype set to --dtype) and tokenizer.json when\n"
        "the checkpoint has one; transformers.GPT2LMHeadModel.from_pretrained(OUT) loads it.\n"
        "--format llmc writes llm.c's model file (header 20240326, version 3 float32 or 5\n"
        "bfloat16, vocabulary padded to a multiple of 128), which llm.c's train_gpt2 loads.\n"
        "Optimizer state and training state are not exported. The output is written under a\n"
        "temporary name and renamed into place; an existing --out is refused unless --force.\n"
        "A checkpoint with LoRA adapters holds the frozen base model and the adapters beside it\n"
        "(adapter_model.safetensors, adapter_config.json: PEFT's format); without\n"
        "--merge-lora the base model alone is exported (PEFT loads the adapters from the\n"
        "checkpoint itself), with it the merged, fine-tuned model. --merge-lora on a checkpoint\n"
        "without adapters is a usage error.",
        opts,
        CLI_COUNT(opts),
        "examples:\n"
        "  cllm export --ckpt runs/nano --out hf/nano\n"
        "  cllm export --ckpt runs/nano/step_00001000 --out nano.bin --format llmc\n"
        "  cllm export --ckpt runs/lora --merge-lora --out hf/nano-tuned   # LoRA, merged\n"
        "  cllm export --ckpt runs/gpt2 --merge-lora --adapter peft-out --out hf/gpt2-tuned\n"
        "  python3 tools/check_export.py hf/nano      # logits in PyTorch",
        0,
        0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    bool llmc = !strcmp(format, "llmc");
    if (llmc && !strcmp(dtype, "f16"))
        return cli_usage_error(&spec, "--format llmc stores f32 or bf16, not f16");
    if (llmc && cllm_is_dir(out))
        return cli_usage_error(&spec, "--out %s is a directory; --format llmc writes one file "
                                      "(e.g. --out %s/model.bin)",
                               out, out);
    if (llmc && cllm_is_file(out) && !force)
        return cli_usage_error(&spec, "--out %s exists (pass --force to replace it)", out);
    if (adapter && !merge)
        return cli_usage_error(&spec, "--adapter merges adapters into the model: pass --merge-lora "
                                      "with it");
    cllm_checkpoint ck = {0};
    cllm_status st = cllm_checkpoint_load(ckpt, false, &ck);
    if (st != CLLM_OK) return cli_report(st);
    if (adapter) { /* replaces the checkpoint's own */
        free(ck.lora_params);
        ck.lora_params = NULL;
        st = cllm_lora_load(adapter, &ck.cfg, &ck.lora, &ck.lora_params, NULL);
        if (st != CLLM_OK) {
            cllm_checkpoint_clear(&ck);
            return cli_report(st);
        }
    }
    cllm_lora_config merged = ck.lora;
    char targets[80] = "";
    cllm_lora_targets_text(merged.targets, targets, sizeof targets);
    if (merge && ck.lora.rank == 0) {
        cllm_checkpoint_clear(&ck);
        return cli_usage_error(&spec,
                               "--merge-lora: %s has no LoRA adapters (no %s beside its "
                               "weights); export it without --merge-lora, or pass "
                               "--adapter DIR",
                               ckpt, CLLM_LORA_CONFIG_FILE);
    }
    if (merge) {
        cllm_lora_merge(&ck.cfg, &ck.lora, ck.params, ck.lora_params);
    } else if (ck.lora.rank > 0) {
        fprintf(stderr,
                "cllm export: note: %s has LoRA adapters (rank %d on %s) that are not "
                "part of this export: the base model is written; pass --merge-lora for "
                "the fine-tuned model\n",
                ckpt, ck.lora.rank, targets);
    }
    cllm_st_dtype dt = !strcmp(dtype, "f32") ? CLLM_ST_F32 : !strcmp(dtype, "f16") ? CLLM_ST_F16
                                                                                   : CLLM_ST_BF16;
    if (llmc)
        st = cllm_llmc_save(out, &ck.cfg, ck.params, dt == CLLM_ST_BF16);
    else
        st = cllm_checkpoint_write_hf(out, &ck, dt, force);
    if (st == CLLM_OK)
        printf("exported %s (%zu parameters: %d layers, %d wide, %d heads, vocabulary %d, context "
               "%d) to %s as %s, %s%s\n",
               ckpt, cllm_gpt_num_params(&ck.cfg), ck.cfg.n_layer, ck.cfg.n_embd, ck.cfg.n_head,
               ck.cfg.vocab_size, ck.cfg.n_positions, out,
               llmc ? "an llm.c model file" : "a Hugging Face GPT-2 directory",
               dt == CLLM_ST_F32 ? "float32" : dt == CLLM_ST_F16 ? "float16" : "bfloat16",
               llmc || ck.tokenizer_json ? "" : " (no tokenizer.json: the checkpoint has none)");
    if (st == CLLM_OK && merge)
        printf("merged LoRA adapters%s%s: rank %d, alpha %g (scale %g) on %s of every layer\n",
               adapter ? " from " : "", adapter ? adapter : "", merged.rank, (double)merged.alpha,
               (double)cllm_lora_scale(&merged), targets);
    cllm_checkpoint_clear(&ck);
    return cli_report(st);
}
