/* cllm export: a checkpoint as a Hugging Face GPT-2 directory, or as an llm.c model file. */
#include "args.h"
#include "cllm/checkpoint.h"
#include "cllm/llmc.h"
#include "cllm/util.h"
#include "commands.h"

#include <stdio.h>
#include <string.h>

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *format = "hf", *dtype = "f32";
    bool force = false;
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
    };
    const cli_spec spec = {
        "cllm export", "--ckpt PATH --out PATH [--format hf|llmc] [--dtype f32|f16|bf16]",
        "Export a model for other tools. --format hf writes a Hugging Face GPT-2 directory:\n"
        "model.safetensors (\"transformer.*\" names, Conv1D weights (in, out), the LM head tied\n"
        "to wte), config.json (GPT-2 keys, torch_dtype set to --dtype) and tokenizer.json when\n"
        "the checkpoint has one; transformers.GPT2LMHeadModel.from_pretrained(OUT) loads it.\n"
        "--format llmc writes llm.c's model file (header 20240326, version 3 float32 or 5\n"
        "bfloat16, vocabulary padded to a multiple of 128), which llm.c's train_gpt2 loads.\n"
        "Optimizer state and training state are not exported. The output is written under a\n"
        "temporary name and renamed into place; an existing --out is refused unless --force.",
        opts, CLI_COUNT(opts),
        "examples:\n"
        "  cllm export --ckpt runs/nano --out hf/nano\n"
        "  cllm export --ckpt runs/nano/step_00001000 --out nano.bin --format llmc\n"
        "  python3 tools/check_export.py hf/nano      # logits in PyTorch",
        0, 0};
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
    cllm_checkpoint ck = {0};
    cllm_status st = cllm_checkpoint_load(ckpt, false, &ck);
    if (st != CLLM_OK) return cli_report(st);
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
    cllm_checkpoint_clear(&ck);
    return cli_report(st);
}
