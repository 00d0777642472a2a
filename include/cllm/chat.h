/* cllm/chat.h — the chat template shared by `cllm sft` (training) and `cllm chat` /
 * `cllm generate --chat` (inference), so that both render a conversation into exactly the
 * same tokens. No OpenCL here.
 *
 * The format ("cllm-chat-v1"). Four special tokens:
 *     <|system|>  <|user|>  <|assistant|>  <|end|>
 * A conversation is its messages in order, each rendered as
 *     ROLE_TOKEN  content tokens  <|end|>
 * with no separators (no newline, no space) between the pieces, and no token before the first
 * message. The content is encoded by the tokenizer with no special tokens allowed, so a user
 * who types "<|end|>" gets the plain text "<|end|>" (several ordinary tokens), never the control
 * token. A generation prompt (a conversation that the model is to continue with an assistant
 * reply) ends with <|assistant|>; the model's reply then ends when it produces <|end|>:
 *
 *     [{system: "Be brief."}, {user: "Hi"}] + generation prompt  ->
 *     <|system|> Be brief. <|end|> <|user|> Hi <|end|> <|assistant|>
 *
 * Because every piece is encoded on its own, rendering messages one by one and concatenating
 * gives the same ids as rendering them all at once: a chat can feed each new turn to a
 * key/value cache without re-encoding the conversation.
 *
 * The training mask (sft): 1 on exactly the tokens of every assistant message's content and
 * its closing <|end|>, 0 elsewhere (role tokens, system and user messages, and the trailing
 * <|assistant|> of a generation prompt). sft makes the targets of 0-masked positions
 * CLLM_IGNORE_TARGET (gpt.h): target[i] = mask[i + 1] ? ids[i + 1] : CLLM_IGNORE_TARGET.
 *
 * Where it is recorded. A fine-tuned checkpoint carries
 *   - in tokenizer.json, the four tokens as special ("added") tokens, and
 *   - in config.json, the key
 *         "chat_template": {"format": "cllm-chat-v1", "system": "<|system|>",
 *                           "user": "<|user|>", "assistant": "<|assistant|>", "end": "<|end|>"}
 *     naming the token of each role (another spelling of the tokens may be chosen; the format
 *     name fixes the rendering rule above). A Hugging Face config.json never holds this key
 *     (HF keeps its Jinja templates in tokenizer_config.json), and transformers ignores it.
 *
 *     cllm_chat_template t;
 *     bool found;
 *     CLLM_TRY(cllm_chat_template_from_config(&t, mdl->ck.config_json, mdl->path, &found));
 *     if (!found) ... not fine-tuned for chat ...
 *     CLLM_TRY(cllm_chat_template_bind(&t, mdl->tok, mdl->path));  // look up the ids
 *     cllm_chat_message msgs[] = {{CLLM_ROLE_USER, "Hi", 2}};
 *     cllm_tokens ids = {0};
 *     CLLM_TRY(cllm_chat_render(&t, mdl->tok, msgs, 1, true, &ids, NULL));
 *
 *   and for training (sft): cllm_chat_template_default(&t); cllm_chat_template_add_tokens(&t,
 *   tok, &added) (the embedding grows by `added` rows); render with a mask; save config.json
 *   from cllm_chat_template_write_config(&t, config_json, &out) and the grown tokenizer.
 *
 * Ownership: the template is a plain value (fixed-size strings, no pointers). Rendering
 * appends to the caller's arrays.
 */
#ifndef CLLM_CHAT_H
#define CLLM_CHAT_H

#include "cllm/common.h"
#include "cllm/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLLM_CHAT_FORMAT "cllm-chat-v1"
#define CLLM_CHAT_CONFIG_KEY "chat_template"

typedef enum {
    CLLM_ROLE_SYSTEM = 0,
    CLLM_ROLE_USER = 1,
    CLLM_ROLE_ASSISTANT = 2,
    CLLM_ROLE_COUNT
} cllm_chat_role;

/* "system", "user", "assistant" (the JSONL "role" values and config keys). */
const char *cllm_chat_role_name(cllm_chat_role r);
/* The role named `name`; false if it is none of them. */
bool cllm_chat_role_parse(const char *name, cllm_chat_role *r);

typedef struct {
    cllm_chat_role role;
    const char *content; /* bytes (need not be NUL-terminated) */
    size_t len;
} cllm_chat_message;

#define CLLM_CHAT_TOKEN_MAX 64

typedef struct {
    char role[CLLM_ROLE_COUNT][CLLM_CHAT_TOKEN_MAX]; /* "<|system|>", "<|user|>", "<|assistant|>" */
    char end[CLLM_CHAT_TOKEN_MAX];                   /* "<|end|>" */
    /* filled by _bind / _add_tokens: */
    uint32_t role_id[CLLM_ROLE_COUNT], end_id;
    bool bound;
} cllm_chat_template;

/* The four tokens above, not bound to a tokenizer. */
void cllm_chat_template_default(cllm_chat_template *t);

/* Read config.json's "chat_template" (see above). *found = false, CLLM_OK, when the key is
 * absent; a key that is present but malformed (not an object, an unknown "format", a token
 * missing, empty, too long or repeated) is CLLM_ERR_FORMAT naming `source`. */
cllm_status cllm_chat_template_from_config(cllm_chat_template *t, const char *config_json,
                                           const char *source, bool *found);
/* config_json with "chat_template" set to `t` (added, or replaced; the other keys kept in
 * order), pretty-printed, malloc'd into *out. */
cllm_status cllm_chat_template_write_config(const cllm_chat_template *t, const char *config_json,
                                            char **out);
/* Look up the tokens' ids: each must be a special token of `tok`, else CLLM_ERR_FORMAT naming
 * `source` and the token. */
cllm_status cllm_chat_template_bind(cllm_chat_template *t, const cllm_tokenizer *tok,
                                    const char *source);
/* Make the tokens special tokens of `tok` (new ids at the end of its vocabulary for those it
 * lacks; *added, may be NULL, says how many) and bind them. */
cllm_status cllm_chat_template_add_tokens(cllm_chat_template *t, cllm_tokenizer *tok, int *added);
/* The template of a checkpoint for inference, from its config.json and tokenizer: read and
 * bound; absent, it is CLLM_ERR_FORMAT saying that `source` has no chat template and that it
 * must be fine-tuned with `cllm sft` first (or used with `cllm generate`). */
cllm_status cllm_chat_template_load(cllm_chat_template *t, const char *config_json,
                                    const cllm_tokenizer *tok, const char *source);

/* Growable per-token mask, parallel to a cllm_tokens; zero-init is empty. */
typedef struct {
    uint8_t *v;
    size_t n, cap;
} cllm_chat_mask;
void cllm_chat_mask_free(cllm_chat_mask *m);

/* Render n messages (and, with generation_prompt, the trailing <|assistant|>) and append the
 * ids to *ids and, when mask is not NULL, one mask value per id to *mask (which must be as
 * long as *ids before the call). The template must be bound. */
cllm_status cllm_chat_render(const cllm_chat_template *t, const cllm_tokenizer *tok,
                             const cllm_chat_message *msgs, int n, bool generation_prompt,
                             cllm_tokens *ids, cllm_chat_mask *mask);

/* The template's four token ids, system, user, assistant, end (a reply ends at any of them:
 * the stop tokens of chat). The template must be bound. */
void cllm_chat_template_ids(const cllm_chat_template *t, uint32_t ids[CLLM_ROLE_COUNT + 1]);
/* Is `id` one of the template's four tokens? */
bool cllm_chat_is_template_token(const cllm_chat_template *t, uint32_t id);

#ifdef __cplusplus
}
#endif
#endif
