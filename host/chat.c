/* The chat template (chat.h): reading and writing config.json's "chat_template", binding its
 * tokens to a tokenizer, and rendering conversations with the sft loss mask. */
#include "cllm/chat.h"

#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *const ROLE_NAMES[CLLM_ROLE_COUNT] = {"system", "user", "assistant"};

const char *cllm_chat_role_name(cllm_chat_role r) {
    return r >= 0 && r < CLLM_ROLE_COUNT ? ROLE_NAMES[r] : "?";
}

bool cllm_chat_role_parse(const char *name, cllm_chat_role *r) {
    for (int i = 0; name && i < CLLM_ROLE_COUNT; i++)
        if (!strcmp(name, ROLE_NAMES[i])) {
            *r = (cllm_chat_role)i;
            return true;
        }
    return false;
}

void cllm_chat_template_default(cllm_chat_template *t) {
    memset(t, 0, sizeof *t);
    strcpy(t->role[CLLM_ROLE_SYSTEM], "<|system|>");
    strcpy(t->role[CLLM_ROLE_USER], "<|user|>");
    strcpy(t->role[CLLM_ROLE_ASSISTANT], "<|assistant|>");
    strcpy(t->end, "<|end|>");
}

/* The template's four token texts in a fixed order: system, user, assistant, end. */
static const char *token_text(const cllm_chat_template *t, int i) {
    return i < CLLM_ROLE_COUNT ? t->role[i] : t->end;
}
static const char *token_key(int i) {
    return i < CLLM_ROLE_COUNT ? ROLE_NAMES[i] : "end";
}

cllm_status cllm_chat_template_from_config(cllm_chat_template *t, const char *config_json,
                                           const char *source, bool *found) {
    *found = false;
    memset(t, 0, sizeof *t);
    if (!source) source = "config.json";
    cJSON *root = config_json ? cJSON_Parse(config_json) : NULL;
    if (!root) return cllm_fail(CLLM_ERR_FORMAT, "%s: config.json is not valid JSON", source);
    cllm_status st = CLLM_OK;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, CLLM_CHAT_CONFIG_KEY);
    if (!ct) goto done;
    if (!cJSON_IsObject(ct)) {
        st =
            cllm_fail(CLLM_ERR_FORMAT,
                      "%s: config.json's \"%s\" must be an object {\"format\": \"%s\", \"system\", "
                      "\"user\", \"assistant\", \"end\"}",
                      source, CLLM_CHAT_CONFIG_KEY, CLLM_CHAT_FORMAT);
        goto done;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(ct, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, CLLM_CHAT_FORMAT) != 0) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\".format is %s%s%s; this cllm reads \"%s\"",
                       source, CLLM_CHAT_CONFIG_KEY, cJSON_IsString(fmt) ? "\"" : "",
                       cJSON_IsString(fmt) ? fmt->valuestring : "missing",
                       cJSON_IsString(fmt) ? "\"" : "", CLLM_CHAT_FORMAT);
        goto done;
    }
    for (int i = 0; i <= CLLM_ROLE_COUNT; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ct, token_key(i));
        size_t n = cJSON_IsString(v) ? strlen(v->valuestring) : 0;
        if (n == 0 || n >= CLLM_CHAT_TOKEN_MAX) {
            st =
                cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\".%s must be the token's text (1 to %d bytes)",
                          source, CLLM_CHAT_CONFIG_KEY, token_key(i), CLLM_CHAT_TOKEN_MAX - 1);
            goto done;
        }
        char *dst = i < CLLM_ROLE_COUNT ? t->role[i] : t->end;
        memcpy(dst, v->valuestring, n + 1);
        for (int j = 0; j < i; j++)
            if (!strcmp(token_text(t, j), dst)) {
                st = cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\".%s and .%s are the same token %s",
                               source, CLLM_CHAT_CONFIG_KEY, token_key(j), token_key(i), dst);
                goto done;
            }
    }
    *found = true;
done:
    if (st != CLLM_OK) memset(t, 0, sizeof *t);
    cJSON_Delete(root);
    return st;
}

cllm_status cllm_chat_template_write_config(const cllm_chat_template *t, const char *config_json,
                                            char **out) {
    *out = NULL;
    cJSON *root = config_json ? cJSON_Parse(config_json) : NULL;
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cllm_fail(CLLM_ERR_FORMAT, "config.json is not a JSON object");
    }
    cJSON *ct = cJSON_CreateObject();
    bool ok = ct && cJSON_AddStringToObject(ct, "format", CLLM_CHAT_FORMAT);
    for (int i = 0; ok && i <= CLLM_ROLE_COUNT; i++)
        ok = cJSON_AddStringToObject(ct, token_key(i), token_text(t, i)) != NULL;
    if (ok) {
        if (cJSON_GetObjectItemCaseSensitive(root, CLLM_CHAT_CONFIG_KEY))
            ok = cJSON_ReplaceItemInObjectCaseSensitive(root, CLLM_CHAT_CONFIG_KEY, ct);
        else
            ok = cJSON_AddItemToObject(root, CLLM_CHAT_CONFIG_KEY, ct);
        if (ok) ct = NULL;
    }
    char *s = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(ct);
    cJSON_Delete(root);
    if (!s) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (config.json)");
    *out = s;
    return CLLM_OK;
}

/* The id of `text` among the tokenizer's special tokens, or UINT32_MAX. */
static uint32_t special_id(const cllm_tokenizer *tok, const char *text) {
    uint32_t n = cllm_tokenizer_special_count(tok), id;
    for (uint32_t i = 0; i < n; i++) {
        const char *s = cllm_tokenizer_special(tok, i, &id);
        if (s && !strcmp(s, text)) return id;
    }
    return UINT32_MAX;
}

static void set_id(cllm_chat_template *t, int i, uint32_t id) {
    if (i < CLLM_ROLE_COUNT)
        t->role_id[i] = id;
    else
        t->end_id = id;
}

cllm_status cllm_chat_template_bind(cllm_chat_template *t, const cllm_tokenizer *tok,
                                    const char *source) {
    t->bound = false;
    for (int i = 0; i <= CLLM_ROLE_COUNT; i++) {
        uint32_t id = special_id(tok, token_text(t, i));
        if (id == UINT32_MAX)
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: the chat template's %s token %s is not a special token of the "
                             "tokenizer",
                             source ? source : "tokenizer", token_key(i), token_text(t, i));
        set_id(t, i, id);
    }
    t->bound = true;
    return CLLM_OK;
}

cllm_status cllm_chat_template_add_tokens(cllm_chat_template *t, cllm_tokenizer *tok, int *added) {
    int n = 0;
    t->bound = false;
    for (int i = 0; i <= CLLM_ROLE_COUNT; i++) {
        uint32_t before = cllm_tokenizer_vocab_size(tok), id;
        cllm_status st = cllm_tokenizer_add_special(tok, token_text(t, i), &id);
        if (st != CLLM_OK) return st;
        n += cllm_tokenizer_vocab_size(tok) > before;
        set_id(t, i, id);
    }
    t->bound = true;
    if (added) *added = n;
    return CLLM_OK;
}

cllm_status cllm_chat_template_load(cllm_chat_template *t, const char *config_json,
                                    const cllm_tokenizer *tok, const char *source) {
    bool found;
    cllm_status st = cllm_chat_template_from_config(t, config_json, source, &found);
    if (st != CLLM_OK) return st;
    if (!found)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s has no chat template (no \"%s\" in config.json): fine-tune it for "
                         "chat with cllm sft first, or use cllm generate with a plain prompt",
                         source, CLLM_CHAT_CONFIG_KEY);
    if (!tok)
        return cllm_fail(CLLM_ERR_FORMAT, "%s has a chat template but no tokenizer.json", source);
    return cllm_chat_template_bind(t, tok, source);
}

void cllm_chat_mask_free(cllm_chat_mask *m) {
    if (!m) return;
    free(m->v);
    memset(m, 0, sizeof *m);
}

static cllm_status mask_push(cllm_chat_mask *m, uint8_t v, size_t count) {
    if (m->n + count > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->n + count)
            cap *= 2;
        uint8_t *nv = realloc(m->v, cap);
        if (!nv) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (chat mask)");
        m->v = nv;
        m->cap = cap;
    }
    memset(m->v + m->n, v, count);
    m->n += count;
    return CLLM_OK;
}

cllm_status cllm_chat_render(const cllm_chat_template *t, const cllm_tokenizer *tok,
                             const cllm_chat_message *msgs, int n, bool generation_prompt,
                             cllm_tokens *ids, cllm_chat_mask *mask) {
    if (!t->bound)
        return cllm_fail(CLLM_ERR_STATE, "chat template: bind it to the tokenizer first");
    if (mask && mask->n != ids->n)
        return cllm_fail(CLLM_ERR_USAGE, "chat render: the mask (%zu) and ids (%zu) differ",
                         mask->n, ids->n);
    cllm_status st = CLLM_OK;
    for (int i = 0; i < n; i++) {
        const cllm_chat_message *m = &msgs[i];
        if (m->role < 0 || m->role >= CLLM_ROLE_COUNT)
            return cllm_fail(CLLM_ERR_USAGE, "chat message %d: unknown role %d", i, (int)m->role);
        const uint8_t learn = m->role == CLLM_ROLE_ASSISTANT;
        CLLM_TRY(cllm_tokens_push(ids, &t->role_id[m->role], 1));
        if (mask) CLLM_TRY(mask_push(mask, 0, 1));
        size_t before = ids->n;
        /* "none": specials in the content are plain text, never control tokens */
        CLLM_TRY(cllm_tokenizer_encode(tok, m->content ? m->content : "", m->len, "none", ids));
        if (mask) CLLM_TRY(mask_push(mask, learn, ids->n - before));
        CLLM_TRY(cllm_tokens_push(ids, &t->end_id, 1));
        if (mask) CLLM_TRY(mask_push(mask, learn, 1));
    }
    if (generation_prompt) {
        CLLM_TRY(cllm_tokens_push(ids, &t->role_id[CLLM_ROLE_ASSISTANT], 1));
        if (mask) CLLM_TRY(mask_push(mask, 0, 1));
    }
fail:
    return st;
}

void cllm_chat_template_ids(const cllm_chat_template *t, uint32_t ids[CLLM_ROLE_COUNT + 1]) {
    for (int i = 0; i < CLLM_ROLE_COUNT; i++)
        ids[i] = t->role_id[i];
    ids[CLLM_ROLE_COUNT] = t->end_id;
}

bool cllm_chat_is_template_token(const cllm_chat_template *t, uint32_t id) {
    if (!t->bound) return false;
    for (int i = 0; i < CLLM_ROLE_COUNT; i++)
        if (t->role_id[i] == id) return true;
    return id == t->end_id;
}
