/* cllm/eval.h — the model-independent half of `cllm eval`: multiple-choice data sets scored
 * the way lm-evaluation-harness scores them, generation metrics computed the way sacreBLEU
 * and Google's rouge-score compute them, and the reports (`--json`, `--log-samples`, table).
 * No OpenCL here: whoever runs the model hands in log-likelihoods and generated text.
 *
 * Tutorial: multiple choice.
 *
 *     cllm_mc_set set;
 *     CLLM_TRY(cllm_mc_load(&set, "hellaswag_val.jsonl", CLLM_MC_AUTO, strict, limit));
 *     cllm_mc_results res;
 *     CLLM_TRY(cllm_mc_results_init(&res, &set));
 *     for (int i = 0; i < set.n; i++) {
 *         const cllm_mc_item *it = &set.items[i];
 *         cllm_mc_choice_score sc[it->n_choices];
 *         // Run it->context once, then each it->continuations[c]: sc[c].loglik is the summed
 *         // natural-log probability of the continuation's tokens, sc[c].n_tokens their count.
 *         CLLM_TRY(cllm_mc_results_set(&res, &set, i, sc));
 *         if (samples) { char *line = cllm_mc_sample_json(&set, &res, i); ... free(line); }
 *     }
 *     cllm_mc_results_summarize(&res);         // acc, acc_norm, acc_bytes, acc_token ± stderr
 *
 *   or let cllm_mc_evaluate() run that loop with a callback. How the model half must score a
 *   continuation to match lm-evaluation-harness (its `loglikelihood` of HFLM):
 *     - context tokens = encode(context); continuation tokens = encode(context + cont)
 *       [len(encode(context)):]  (the loader has already moved any trailing whitespace of the
 *       context to the front of every continuation, as lm-eval's _encode_pair does);
 *     - an empty context is replaced by the end-of-text token;
 *     - when context + continuation exceed the window T, keep the last T+1 tokens (the
 *       context is truncated on the left), feed all but the last and score the continuation;
 *     - loglik = sum of log_softmax(logits)[next token] over the continuation tokens; greedy =
 *       every continuation token was the argmax.
 *
 * Tutorial: generation metrics.
 *
 *     cllm_gen_set gs;   CLLM_TRY(cllm_gen_load(&gs, "gen.jsonl", strict, limit));
 *     char **out = ...;  // greedy continuation of gs.items[i].prompt, cut with
 *                        // cllm_gen_stop_at(text, stops, n_stops) and --max-tokens
 *     cllm_gen_results gr; CLLM_TRY(cllm_gen_score(&gr, &gs, (const char *const *)out));
 *
 *   gr.bleu is sacreBLEU's corpus BLEU with its defaults (BLEU(): tokenize '13a', max n-gram
 *   order 4, smooth_method 'exp', effective_order False, closest reference length);
 *   gr.rouge is the mean over pairs of rouge-score's RougeScorer(['rouge1','rouge2','rougeL'],
 *   use_stemmer=False).score(reference, output) precision/recall/F1 (a plain mean; rouge-score's
 *   BootstrapAggregator would report the same mid value up to resampling noise).
 *
 * Tutorial: reports.
 *
 *     cllm_eval_report *rep; CLLM_TRY(cllm_eval_report_init(&rep));
 *     cllm_eval_report_add_mc(rep, "hellaswag", &set, &res);
 *     cllm_eval_report_add_gen(rep, "gen", &gs, &gr);
 *     cllm_eval_report_add_value(rep, "val", "loss", 3.21);  // perplexity etc.
 *     if (json) { char *s = cllm_eval_report_json(rep); puts(s); free(s); }
 *     else cllm_eval_report_print(rep, stdout);
 *     cllm_eval_report_free(rep);
 *
 * Ownership: every struct filled by a _load/_init function owns its memory until the matching
 * _free (which accepts NULL and zeroed structs). Strings returned by functions are malloc'd
 * and the caller frees them. Text is UTF-8 throughout.
 */
#ifndef CLLM_EVAL_H
#define CLLM_EVAL_H

#include "cllm/common.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Multiple-choice data sets                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* Record formats (JSONL, one object per line). The contexts and choices each task builds
 * follow lm-evaluation-harness 0.4 (lm_eval/tasks/...):
 *   HELLASWAG   {activity_label, ctx_a, ctx_b | ctx, endings[], label}; hellaswag/utils.py:
 *               context = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())
 *               (or preprocess(activity_label + ": " + ctx) when only `ctx` is present),
 *               choices = preprocess(ending) for each ending.
 *   ARC         {question: "..." | {stem, choices}, choices: {text[], label[]} | [{text,label}]
 *               | [text], answerKey}; arc/arc_easy.yaml: context "Question: {q}\nAnswer:",
 *               choices = choices.text, gold = choices.label.index(answerKey) (without labels:
 *               answerKey "A".. or "1".. counts from the first choice).
 *   MMLU        {question, choices[], answer (index, digit or letter), subject?};
 *               mmlu/continuation (task mmlu_continuation): "[The following are questions (with
 *               answers) about {subject with _ -> space}.\n\n]Question: {question.strip()}
 *               \nAnswer:", choices = the answer texts.
 *   MMLU_LETTERS the same records scored like lm-eval's default `mmlu` task (mmlu/default):
 *               "[The following are multiple choice questions (with answers) about {subject}.
 *               \n\n]{question.strip()}\nA. {c0}\nB. {c1}...\nAnswer:", choices "A", "B", ...
 *   GENERIC     {context, choices[], label (index)}; what `cllm data make-mc` writes.
 * Every choice is scored as the continuation " " + choice (lm-eval's target_delimiter).
 * AUTO looks at the first record that parses: `endings` -> HELLASWAG, `answerKey` -> ARC,
 * `question` + `choices` + `answer` -> MMLU, `context` + `choices` -> GENERIC. */
typedef enum {
    CLLM_MC_AUTO = 0,
    CLLM_MC_HELLASWAG,
    CLLM_MC_ARC,
    CLLM_MC_MMLU,
    CLLM_MC_MMLU_LETTERS,
    CLLM_MC_GENERIC,
} cllm_mc_task;

/* "auto", "hellaswag", "arc", "mmlu", "mmlu_letters", "generic". */
const char *cllm_mc_task_name(cllm_mc_task task);
/* Parse one of the names above; CLLM_ERR_USAGE naming the accepted ones otherwise. */
cllm_status cllm_mc_task_parse(cllm_mc_task *task, const char *name);
#define CLLM_MC_TASK_CHOICES "auto|hellaswag|arc|mmlu|mmlu_letters|generic"

typedef struct {
    char *context;        /* what the model conditions on; trailing whitespace moved out */
    int n_choices;        /* >= 2 */
    char **choices;       /* (n_choices) answer texts (lm-eval's doc_to_choice); the lengths
                           * acc_norm and acc_bytes divide by are measured on these */
    char **continuations; /* (n_choices) the strings to score: moved whitespace + " " + choice */
    int gold;             /* index of the right choice */
    long line;            /* 1-based line in the file (0 when parsed from a string) */
    char *id;             /* the record's "ind" or "id" as text, or NULL */
} cllm_mc_item;

/* What reading a JSONL file met. */
typedef struct {
    long lines;   /* lines read (blank ones included) */
    long blank;   /* blank lines ignored */
    long skipped; /* malformed lines skipped (only when not strict) */
    long first_skipped_line;
    char first_skip_reason[256]; /* "FILE:LINE: what is wrong", "" if none was skipped */
} cllm_jsonl_stats;

typedef struct {
    cllm_mc_task task;  /* the task the records were read as (AUTO resolved) */
    char *path;
    int n;              /* items */
    cllm_mc_item *items;
    cllm_jsonl_stats stats;
} cllm_mc_set;

/* Read a JSONL file of multiple-choice records. strict: the first malformed line is an error
 * (CLLM_ERR_FORMAT, "FILE:LINE: what is wrong"); otherwise malformed lines are skipped,
 * counted in set->stats.skipped and reported in one warning line. limit > 0 stops after that many
 * items. A file without a single item is an error. */
cllm_status cllm_mc_load(cllm_mc_set *set, const char *path, cllm_mc_task task, bool strict,
                         int limit);
void cllm_mc_set_free(cllm_mc_set *set);

/* One record (a JSON object in `json`, `len` bytes) as `task` (not AUTO). On failure the
 * message says what is wrong without a file:line prefix. */
cllm_status cllm_mc_parse_record(cllm_mc_item *item, const char *json, size_t len,
                                 cllm_mc_task task);
/* Which task a record looks like (see AUTO above). */
cllm_status cllm_mc_detect(cllm_mc_task *task, const char *json, size_t len);
void cllm_mc_item_free(cllm_mc_item *item);

/* lm-eval's HellaSwag `preprocess`: strip, " [title]" -> ". ", remove every "[...]" (shortest
 * match, not across newlines), then one pass of "  " -> " ". Returns a malloc'd string. */
char *cllm_mc_hellaswag_preprocess(const char *text);
/* Python's str.capitalize (first character title-cased, the rest lower-cased; simple Unicode
 * case mappings from utf8proc plus U+0130's full lower-case mapping). malloc'd. */
char *cllm_mc_capitalize(const char *text);

/* ---------------------------------------------------------------------------------------- */
/* Multiple-choice scoring                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* The four accuracies: the prediction is argmax over choices of loglik / divisor (the first
 * maximum on ties, as numpy.argmax), divisor = 1 (acc), the choice's length in Unicode
 * characters (acc_norm, lm-eval), in UTF-8 bytes (acc_bytes, lm-eval), or the continuation's
 * token count (acc_token: llm.c's HellaSwag "acc_norm", the mean per-token loss). */
typedef enum {
    CLLM_MC_ACC = 0,
    CLLM_MC_ACC_NORM,
    CLLM_MC_ACC_BYTES,
    CLLM_MC_ACC_TOKEN,
    CLLM_MC_N_METRICS
} cllm_mc_metric;

/* "acc", "acc_norm", "acc_bytes", "acc_token". */
const char *cllm_mc_metric_name(cllm_mc_metric m);

/* What the model half computes for one choice. */
typedef struct {
    double loglik; /* sum over the continuation's tokens of ln p(token | all before it) */
    int n_tokens;  /* continuation tokens scored (>= 1) */
    bool greedy;   /* every continuation token was the model's argmax (lm-eval's is_greedy) */
} cllm_mc_choice_score;

typedef struct {
    bool done;                    /* scores were set */
    int n_choices;
    cllm_mc_choice_score *scores; /* (n_choices) */
    int *chars;                   /* (n_choices) choice length in characters */
    int *bytes;                   /* (n_choices) choice length in UTF-8 bytes */
    int gold;
    int pred[CLLM_MC_N_METRICS];  /* predicted choice per metric */
} cllm_mc_item_result;

typedef struct {
    int n;                       /* items in the set */
    cllm_mc_item_result *items;  /* (n) */
    int n_done;                  /* items scored (summarize counts only these) */
    double mean[CLLM_MC_N_METRICS];   /* accuracy in [0, 1] */
    double stderr_[CLLM_MC_N_METRICS]; /* lm-eval's mean_stderr: sample stddev / sqrt(n);
                                        * NaN when fewer than 2 items */
} cllm_mc_results;

cllm_status cllm_mc_results_init(cllm_mc_results *res, const cllm_mc_set *set);
void cllm_mc_results_free(cllm_mc_results *res);
/* Record item i's scores (n_choices of them) and compute its predictions. A NaN loglik is
 * CLLM_ERR_NUMERIC; n_tokens < 1 is CLLM_ERR_USAGE. */
cllm_status cllm_mc_results_set(cllm_mc_results *res, const cllm_mc_set *set, int i,
                                const cllm_mc_choice_score *scores);
/* Accuracies and standard errors over the items scored so far. */
void cllm_mc_results_summarize(cllm_mc_results *res);

/* Score one item: fill scores (item->n_choices of them). */
typedef cllm_status (*cllm_mc_loglik_fn)(void *user, const cllm_mc_item *item,
                                         cllm_mc_choice_score *scores);
/* The whole loop: init, call fn for every item, set, write one --log-samples line per item
 * to `samples` (may be NULL), summarize. On failure res is freed. */
cllm_status cllm_mc_evaluate(cllm_mc_results *res, const cllm_mc_set *set, cllm_mc_loglik_fn fn,
                             void *user, FILE *samples);

/* One --log-samples line (JSON, no newline) for item i: file, index, line, id, context, gold, and
 * per choice its text, continuation, loglik, chars, bytes, tokens, greedy and the normalised
 * scores; then pred/correct per metric. malloc'd, NULL on failure. */
char *cllm_mc_sample_json(const cllm_mc_set *set, const cllm_mc_results *res, int i);

/* The token layout of one loglikelihood request, as lm-eval's HFLM builds it: the model reads
 * the last T+1 tokens of context + continuation without the last one (the context is cut on
 * the left), and the continuation's tokens are predicted at the last n_cont positions.
 *   in:    (T) filled with n_in <= T tokens
 *   first: the position whose logits predict cont[0]; cont[j] is predicted at first + j
 * An empty context is replaced by `eot` (lm-eval's prefix token). A continuation longer than
 * T tokens cannot be scored whole: CLLM_ERR_TOO_LARGE. */
cllm_status cllm_mc_window(uint32_t *in, int *n_in, int *first, const uint32_t *ctx, int n_ctx,
                           const uint32_t *cont, int n_cont, int T, uint32_t eot);
/* ln p(target) under softmax(logits) (V floats), computed in double, and whether target is the
 * argmax (the first maximum). A target >= V is CLLM_ERR_USAGE. */
cllm_status cllm_mc_token_logprob(double *logprob, bool *is_argmax, const float *logits, int V,
                                  uint32_t target);

/* ---------------------------------------------------------------------------------------- */
/* Generation metrics                                                                        */
/* ---------------------------------------------------------------------------------------- */

#define CLLM_BLEU_MAX_ORDER 4

/* sacreBLEU's BLEUScore. */
typedef struct {
    double score;                             /* 0..100 */
    double precisions[CLLM_BLEU_MAX_ORDER];   /* percent */
    double bp;                                /* brevity penalty */
    double ratio;                             /* sys_len / ref_len (0 when ref_len is 0) */
    long long sys_len, ref_len;
    long long counts[CLLM_BLEU_MAX_ORDER];    /* matched n-grams (clipped) */
    long long totals[CLLM_BLEU_MAX_ORDER];    /* hypothesis n-grams */
} cllm_bleu;

/* sacreBLEU's tokenize_13a (mteval-v13a) after BLEU's own rstrip: malloc'd, tokens joined by
 * single spaces. */
char *cllm_bleu_tokenize_13a(const char *text);
/* Corpus BLEU of n hypotheses against n references (one reference each), as
 * sacrebleu.corpus_bleu(hyps, [refs]) with its defaults. */
cllm_status cllm_bleu_corpus(cllm_bleu *out, const char *const *hyps, const char *const *refs,
                             int n);
/* sacrebleu.sentence_bleu(hyp, [ref]) (exp smoothing, effective order). */
cllm_status cllm_bleu_sentence(cllm_bleu *out, const char *hyp, const char *ref);

typedef struct {
    double precision, recall, f1;
} cllm_prf;

typedef struct {
    cllm_prf rouge1, rouge2, rougeL;
} cllm_rouge;

/* rouge-score's default tokenizer without stemming: lower-case, every run of characters other
 * than [a-z0-9] separates tokens. Returns the tokens joined by single spaces (malloc'd). */
char *cllm_rouge_tokenize(const char *text);
/* RougeScorer(['rouge1','rouge2','rougeL'], use_stemmer=False).score(target, prediction). */
cllm_status cllm_rouge_pair(cllm_rouge *out, const char *target, const char *prediction);

/* Generation data: JSONL {"prompt": ..., "reference": ...}. */
typedef struct {
    char *prompt;
    char *reference;
    long line;
    char *id; /* the record's "id" as text, or NULL */
} cllm_gen_item;

typedef struct {
    char *path;
    int n;
    cllm_gen_item *items;
    cllm_jsonl_stats stats;
} cllm_gen_set;

/* Same conventions as cllm_mc_load. */
cllm_status cllm_gen_load(cllm_gen_set *set, const char *path, bool strict, int limit);
void cllm_gen_set_free(cllm_gen_set *set);

typedef struct {
    int n;            /* pairs scored */
    cllm_bleu bleu;   /* corpus BLEU */
    cllm_rouge rouge; /* mean over pairs */
} cllm_gen_results;

/* Score outputs[i] (the model's text for set->items[i], already cut at stop strings) against
 * the references. */
cllm_status cllm_gen_score(cllm_gen_results *res, const cllm_gen_set *set,
                           const char *const *outputs);
/* One --log-samples line (JSON, no newline) for item i: file, index, line, id, prompt, reference,
 * output, sentence BLEU and ROUGE-1/2/L F1. malloc'd, NULL on failure. */
char *cllm_gen_sample_json(const cllm_gen_set *set, int i, const char *output);

/* Where a generated text must be cut: the offset of the earliest occurrence of any non-empty
 * stop string, or strlen(text) if none occurs. Call it on the decoded text after each new
 * token; when the result is < strlen(text), stop and keep text[0 .. result). */
size_t cllm_gen_stop_at(const char *text, const char *const *stops, int n_stops);

/* ---------------------------------------------------------------------------------------- */
/* Reports: --json and the readable table                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct cllm_eval_report cllm_eval_report;

cllm_status cllm_eval_report_init(cllm_eval_report **rep);
void cllm_eval_report_free(cllm_eval_report *rep);
/* A multiple-choice section `name`: task, file, n, skipped, and each metric with _stderr. */
cllm_status cllm_eval_report_add_mc(cllm_eval_report *rep, const char *name,
                                    const cllm_mc_set *set, const cllm_mc_results *res);
/* A generation section: n, skipped, bleu (+ its precisions, bp, lengths), rouge1/2/L F1
 * (+ precision and recall). */
cllm_status cllm_eval_report_add_gen(cllm_eval_report *rep, const char *name,
                                     const cllm_gen_set *set, const cllm_gen_results *res);
/* Any other number or string, in section `section` (created on first use), e.g.
 * ("perplexity", "loss", 3.2), ("perplexity", "tokens", 1e6), ("model", "ckpt", "run/latest").
 * A non-finite value is written as JSON null. */
cllm_status cllm_eval_report_add_value(cllm_eval_report *rep, const char *section,
                                       const char *key, double value);
cllm_status cllm_eval_report_add_string(cllm_eval_report *rep, const char *section,
                                        const char *key, const char *value);
/* The whole report as one JSON object {section: {key: value}} (pretty when `pretty`). */
char *cllm_eval_report_json(const cllm_eval_report *rep, bool pretty);
/* A readable table: multiple-choice metrics as value ± stderr, BLEU/ROUGE in percent. */
void cllm_eval_report_print(const cllm_eval_report *rep, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
