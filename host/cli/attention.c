/* cllm attention: a model's attention over a text, as viridis heatmaps (PNG) or numbers. */
#include "args.h"
#include "cllm/attnmap.h"
#include "cllm/util.h"
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --layer / --head: 0-based, negative counts from the end (-1 = the last). */
static cllm_status resolve_index(int *v, int n, const char *what, const char *plural) {
    int orig = *v;
    if (*v < 0) *v += n;
    if (*v < 0 || *v >= n)
        return cllm_fail(CLLM_ERR_USAGE,
                         "--%s %d is out of range: the model has %d %s (0..%d, "
                         "or -%d..-1 counting from the end)",
                         what, orig, n, plural, n - 1, n);
    return CLLM_OK;
}

int cmd_attention(int argc, char **argv) {
    const char *ckpt = NULL, *text = NULL, *text_file = NULL, *out = NULL, *format = "png";
    const char *title = NULL, *allowed = "none", *dev = NULL, *plat = NULL;
    int layer = 0, head = 0, cell = 0;
    double vmax = 1;
    bool all = false, truncate = false, layer_set = false, head_set = false;
    const cli_opt opts[] = {
        {"ckpt", 'c', CLI_STR, &ckpt, "PATH",
         "checkpoint: a run directory (its latest step), a step directory or a Hugging Face "
         "GPT-2 directory; it must hold a tokenizer",
         .required = true},
        {"text", 't', CLI_STR, &text, "TEXT", "the text to run the model over"},
        {"text-file", 0, CLI_STR, &text_file, "FILE", "read the text from a file instead"},
        {"out", 'o', CLI_STR, &out, "FILE", "the file to write (replaced atomically)",
         .required = true},
        {"layer", 'l', CLI_INT, &layer, "L", "layer, 0-based; negative counts from the end",
         .seen = &layer_set},
        {"head", 0, CLI_INT, &head, "H", "head, 0-based; negative counts from the end",
         .seen = &head_set},
        {"all", 'a', CLI_FLAG, &all, NULL,
         "every layer x head as a grid (with --layer L: that layer's heads; with --head H: that "
         "head in every layer)"},
        {"format", 'f', CLI_CHOICE, &format, NULL,
         "png = heatmaps; csv = one row per (layer, head, query, key <= query); npy = float32 "
         "array (T, T), (NH, T, T), (L, T, T) or (L, NH, T, T)",
         .choices = "png|csv|npy"},
        {"truncate", 0, CLI_FLAG, &truncate, NULL,
         "keep the first n_positions tokens of a longer text (default: refuse it)"},
        {"allowed-special", 0, CLI_STR, &allowed, "all|none|TOK,...",
         "special tokens recognised in the text (e.g. <|endoftext|>)"},
        {"cell", 0, CLI_INT, &cell, "PX", "pixels per heatmap cell; 0 = from the text's length",
         .lo = 0, .hi = 200},
        {"vmax", 0, CLI_DOUBLE, &vmax, "V",
         "top of the colour scale; weights above it take its colour (e.g. 0.2 shows small "
         "weights)",
         .lo = 1e-6, .hi = 1},
        {"title", 0, CLI_STR, &title, "T", "picture title (default: layer, head and checkpoint)"},
        CLI_DEVICE_OPTS(&dev, &plat),
    };
    const cli_spec spec = {
        "cllm attention",
        "--ckpt CKPT --text TEXT -o attn.png [options]",
        "Run the model over a text and show where each token looks: the softmaxed attention\n"
        "of one layer and head (0-based; default layer 0, head 0) as a T x T heatmap in\n"
        "viridis (matplotlib's colormap: 0 dark purple .. 1 yellow). Row i is the token at\n"
        "position i attending, column j the token attended to; above the diagonal the causal\n"
        "mask makes every weight 0. The tokens label both axes, decoded: a space shown as\n"
        "'\xC2\xB7', newline, tab and CR as \\n \\t \\r, other control and invalid bytes as\n"
        "\\xNN, other non-ASCII characters as \\uXXXX, a backslash as \\\\; labels longer than\n"
        "12 characters are cut with '\xE2\x80\xA6'. Long texts get smaller cells and every\n"
        "k-th label. --all draws a grid of every layer (rows) x head (columns) with one colour\n"
        "bar; --format csv|npy write the numbers instead. A text longer than the model's\n"
        "context (n_positions) is refused unless --truncate.",
        opts,
        CLI_COUNT(opts),
        "examples:\n"
        "  cllm attention --ckpt runs/nano --text 'The cat sat on the mat.' -o attn.png\n"
        "  cllm attention --ckpt runs/nano --text 'The cat sat on the mat.' --all -o grid.png\n"
        "  cllm attention --ckpt runs/nano --text-file fortune.txt --layer -1 --head 2 "
        "--format npy -o attn.npy\n"
        "  python3 -c \"import numpy; print(numpy.load('attn.npy').sum(-1))\"   # rows sum to 1",
        0,
        0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    if (!text == !text_file)
        return cli_usage_error(&spec, text ? "give --text or --text-file, not both"
                                           : "--text TEXT or --text-file FILE is required");

    char *file_text = NULL;
    size_t text_len = 0;
    cllm_runtime *rt = NULL;
    cllm_model *mdl = NULL;
    cllm_tokens ids = {0};
    cllm_attnmap am = {0};
    int pw = 0, ph = 0;
    char *auto_title = NULL;
    cllm_status st = CLLM_OK;
    if (text_file) {
        CLLM_TRY(cllm_read_file(text_file, &file_text, &text_len));
        text = file_text;
    } else {
        text_len = strlen(text);
    }
    if (text_len == 0) {
        st = cllm_fail(CLLM_ERR_USAGE, "the text is empty: there is nothing to attend to");
        goto fail;
    }
    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.device_spec = dev;
    ro.platform_spec = plat;
    ro.quiet = true;
    CLLM_TRY(cllm_runtime_init(&rt, &ro));
    cllm_gpt_opts go = {.max_batch = 1, .keep_attention = true};
    CLLM_TRY(cllm_model_load(&mdl, rt, ckpt, &go, NULL));
    CLLM_TRY(cllm_model_require_tokenizer(mdl));
    const cllm_gpt_config *cfg = cllm_gpt_get_config(mdl->gpt);
    /* the choice of maps, checked before any work */
    if (layer_set || !all) CLLM_TRY(resolve_index(&layer, cfg->n_layer, "layer", "layers"));
    if (head_set || !all) CLLM_TRY(resolve_index(&head, cfg->n_head, "head", "heads per layer"));
    int sel_layer = all && !layer_set ? -1 : layer, sel_head = all && !head_set ? -1 : head;
    if (all && layer_set && head_set) {
        st = cllm_fail(CLLM_ERR_USAGE, "--all with both --layer and --head names one map: drop "
                                       "--all, or one of them");
        goto fail;
    }
    CLLM_TRY(cllm_tokenizer_encode(mdl->tok, text, text_len, allowed, &ids));
    int T = (int)ids.n;
    if (T > cfg->n_positions) {
        if (!truncate) {
            st = cllm_fail(CLLM_ERR_USAGE,
                           "the text is %d tokens, more than the model's context "
                           "of %d (n_positions): shorten it, or pass --truncate to keep the first "
                           "%d",
                           T, cfg->n_positions, cfg->n_positions);
            goto fail;
        }
        fprintf(stderr,
                "cllm attention: the text is %d tokens; keeping the first %d (the "
                "model's context)\n",
                T, cfg->n_positions);
        T = cfg->n_positions;
    }
    CLLM_TRY(cllm_attnmap_capture(&am, mdl, ids.ids, T));
    if (!strcmp(format, "csv")) {
        CLLM_TRY(cllm_attnmap_write_csv(&am, out, sel_layer, sel_head));
    } else if (!strcmp(format, "npy")) {
        CLLM_TRY(cllm_attnmap_write_npy(&am, out, sel_layer, sel_head));
    } else {
        if (!title) {
            const char *p = mdl->path;
            if (sel_layer >= 0 && sel_head >= 0)
                auto_title =
                    cllm_strdup_printf("attention, layer %d head %d: %s", sel_layer, sel_head, p);
            else if (sel_layer >= 0)
                auto_title = cllm_strdup_printf("attention, layer %d: %s", sel_layer, p);
            else if (sel_head >= 0)
                auto_title = cllm_strdup_printf("attention, head %d: %s", sel_head, p);
            else
                auto_title = cllm_strdup_printf("attention: %s", p);
            if (!auto_title) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
                goto fail;
            }
        }
        CLLM_TRY(cllm_attnmap_write_png(&am, out, sel_layer, sel_head, title ? title : auto_title,
                                        cell, vmax, &pw, &ph));
    }
    printf("wrote %s", out);
    if (pw) printf(" (%dx%d)", pw, ph);
    printf(": ");
    if (sel_layer >= 0 && sel_head >= 0)
        printf("layer %d, head %d", sel_layer, sel_head);
    else if (sel_layer >= 0)
        printf("the %d heads of layer %d", cfg->n_head, sel_layer);
    else if (sel_head >= 0)
        printf("head %d of the %d layers", sel_head, cfg->n_layer);
    else
        printf("%d layers x %d heads", cfg->n_layer, cfg->n_head);
    printf(" of %s over %d tokens\n", mdl->path, T);
fail:
    free(auto_title);
    cllm_attnmap_clear(&am);
    cllm_tokens_free(&ids);
    cllm_model_free(mdl);
    cllm_runtime_free(rt);
    free(file_text);
    return cli_report(st);
}
