/* cllm import: a Hugging Face GPT-2 directory or an llm.c model file as a cllm run (step 0).
 * (Merging LoRA adapters on import belongs here too, as a further option, when SFT adds them.) */
#include "args.h"
#include "cllm/checkpoint.h"
#include "cllm/llmc.h"
#include "cllm/tokenizer.h"
#include "cllm/util.h"
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An llm.c model file: a regular file that starts with llm.c's magic, or any *.bin (so that
 * the llm.c reader explains what is wrong with it). */
static bool looks_llmc(const char *path) {
    if (!cllm_is_file(path)) return false;
    size_t n = strlen(path);
    if (n >= 4 && !strcmp(path + n - 4, ".bin")) return true;
    FILE *f = fopen(path, "rb");
    unsigned char b[4] = {0};
    bool ok = f && fread(b, 1, 4, f) == 4 &&
              (uint32_t)(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24) == CLLM_LLMC_MAGIC;
    if (f) fclose(f);
    return ok;
}

/* The tokenizer to store: --tokenizer, else the source's tokenizer.json, else GPT-2's
 * vocab.json + merges.txt beside the weights. Validated by loading it; *json may stay NULL. */
static cllm_status find_tokenizer(const char *from, const char *tok_path, char **json,
                                  const char **origin, uint32_t *vocab) {
    cllm_tokenizer *tok = NULL;
    cllm_status st = CLLM_OK;
    *vocab = 0;
    if (tok_path) {
        st = cllm_tokenizer_load(&tok, tok_path);
        if (st == CLLM_OK) {
            free(*json);
            *json = cllm_tokenizer_to_json(tok);
            if (!*json) st = CLLM_ERR_NOMEM;
            *origin = tok_path;
        }
    } else if (*json) {
        st = cllm_tokenizer_from_json(&tok, *json, strlen(*json), "the source's tokenizer.json");
        if (st != CLLM_OK)
            st = cllm_fail_context(st, "%s: its tokenizer.json cannot be used (pass --tokenizer)",
                                   from);
        *origin = "the source's tokenizer.json";
    } else if (cllm_is_dir(from)) {
        char *v = cllm_path_join(from, "vocab.json"), *m = cllm_path_join(from, "merges.txt");
        if (v && m && cllm_is_file(v) && cllm_is_file(m)) {
            st = cllm_tokenizer_load_gpt2(&tok, v, m);
            if (st == CLLM_OK) {
                *json = cllm_tokenizer_to_json(tok);
                if (!*json) st = CLLM_ERR_NOMEM;
                *origin = "the source's vocab.json + merges.txt";
            }
        }
        free(v);
        free(m);
    }
    if (tok) *vocab = cllm_tokenizer_vocab_size(tok);
    cllm_tokenizer_free(tok);
    return st;
}

int cmd_import(int argc, char **argv) {
    const char *from = NULL, *out = NULL, *tok_path = NULL;
    const cli_opt opts[] = {
        {"from", 0, CLI_STR, &from, "PATH",
         "a Hugging Face GPT-2 directory (or its .safetensors file), an llm.c model file "
         "(.bin), or a cllm run or step directory",
         .required = true},
        {"out", 'o', CLI_STR, &out, "RUN", "the run directory to create (step 0 goes there)",
         .required = true},
        {"tokenizer", 't', CLI_STR, &tok_path, "TOK",
         "tokenizer to store: tokenizer.json, or a directory with it or GPT-2's encoder.json + "
         "vocab.bpe (default: the source's tokenizer.json, or its vocab.json + merges.txt)"},
    };
    const cli_spec spec = {
        "cllm import",
        "--from PATH --out RUN [--tokenizer TOK]",
        "Bring a model from elsewhere into a cllm run directory as its step 0 checkpoint, ready\n"
        "for cllm train/sft/eval/generate. A Hugging Face GPT-2 directory needs\n"
        "model.safetensors (or a sharded model.safetensors.index.json) and config.json; names\n"
        "with or without \"transformer.\", F32/F16/BF16/F64 weights; every tensor is checked\n"
        "against config.json. An llm.c model file (gpt2_124M.bin: versions 3 and 5, and 1) needs\n"
        "nothing else. Weights are stored as float32. No optimizer or training state is\n"
        "created. LoRA adapters beside the weights (adapter_config.json +\n"
        "adapter_model.safetensors, PEFT's format) come along, checked against the model.\n"
        "RUN must not hold checkpoints already.",
        opts,
        CLI_COUNT(opts),
        "examples:\n"
        "  cllm import --from ~/models/gpt2 --out runs/gpt2          # HF files of GPT-2 124M\n"
        "  cllm import --from gpt2_124M.bin --out runs/gpt2 --tokenizer ../shared/data/gpt2",
        0,
        0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    char *existing = cllm_is_dir(out) ? cllm_checkpoint_latest(out) : NULL;
    if (existing) {
        rc = cli_usage_error(&spec, "--out %s already holds checkpoints (%s); import into a new "
                                    "run directory",
                             out, existing);
        free(existing);
        return rc;
    }
    if (cllm_is_file(out)) return cli_usage_error(&spec, "--out %s is a file", out);
    cllm_checkpoint ck = {0};
    cllm_status st;
    bool llmc = looks_llmc(from);
    if (llmc) {
        st = cllm_llmc_load(from, &ck.cfg, &ck.params);
    } else {
        st = cllm_checkpoint_load(from, false, &ck);
        free(ck.state_json); /* a fresh run: the source's training state does not apply */
        ck.state_json = NULL;
    }
    const char *origin = NULL;
    uint32_t vocab = 0;
    if (st == CLLM_OK) st = find_tokenizer(from, tok_path, &ck.tokenizer_json, &origin, &vocab);
    if (st == CLLM_OK && vocab > (uint32_t)ck.cfg.vocab_size)
        st = cllm_fail(CLLM_ERR_USAGE,
                       "the tokenizer (%s) has %u tokens but the model's vocabulary has only %d",
                       origin, vocab, ck.cfg.vocab_size);
    char *dir = NULL;
    if (st == CLLM_OK) st = cllm_checkpoint_save(out, 0, &ck, 0, &dir);
    if (st == CLLM_OK) {
        printf("imported %s (%s; %zu parameters: %d layers, %d wide, %d heads, vocabulary %d, "
               "context %d) into %s\n",
               from, llmc ? "llm.c model file" : "Hugging Face GPT-2 weights",
               cllm_gpt_num_params(&ck.cfg), ck.cfg.n_layer, ck.cfg.n_embd, ck.cfg.n_head,
               ck.cfg.vocab_size, ck.cfg.n_positions, dir);
        if (ck.tokenizer_json)
            printf("tokenizer: %s (%u tokens)\n", origin, vocab);
        else
            printf("tokenizer: none found (pass --tokenizer to store one)\n");
        if (ck.lora.rank > 0) {
            char targets[80];
            cllm_lora_targets_text(ck.lora.targets, targets, sizeof targets);
            printf("LoRA adapters: rank %d, alpha %g on %s (%zu values), kept beside the base "
                   "model\n",
                   ck.lora.rank, (double)ck.lora.alpha, targets,
                   cllm_lora_numel(&ck.cfg, &ck.lora));
        }
    }
    free(dir);
    cllm_checkpoint_clear(&ck);
    return cli_report(st);
}
