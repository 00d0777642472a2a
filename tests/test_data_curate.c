/* Curation, one crafted document per behaviour: UTF-8 repair (expected bytes from Python's
 * bytes.decode("utf-8", "replace")), clean-up, NFC (expected bytes from Python's
 * unicodedata.normalize("NFC")), and each removal rule at and around its threshold. */
#include "cllm/data.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *in;
    const char *want; /* cleaned text (NULL: do not compare) */
    cllm_doc_rule rule;
    unsigned changes;
} text_case;

/* Default options: clean-up and NFC on, rules at their defaults. */
static const text_case CLEAN[] = {
    {"plain", "Hello, world.", "Hello, world.", CLLM_DOC_KEPT, 0},
    {"crlf", "Hello\r\nworld\r", "Hello\nworld", CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"lone cr", "one\rtwo", "one\ntwo", CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"trailing space", "a line   \t\nnext line ", "a line\nnext line", CLLM_DOC_KEPT,
     CLLM_CHANGED_CLEAN},
    {"indent kept", "  indented\n\tcode", "  indented\n\tcode", CLLM_DOC_KEPT, 0},
    {"blank runs", "\n\n  \npara one\n\n\n\n\npara two\n\n", "para one\n\npara two", CLLM_DOC_KEPT,
     CLLM_CHANGED_CLEAN},
    {"one blank line kept", "a\n\nb", "a\n\nb", CLLM_DOC_KEPT, 0},
    {"controls",
     "a\x01"
     "b\x07"
     "c\x7f"
     "d\xc2\x80"
     "e\x1b[0m",
     "abcde[0m", CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"bom", "\xEF\xBB\xBFHi", "Hi", CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"nbsp at end", "word\xC2\xA0", "word", CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"form feed", "page one\fpage two", "page one\npage two", CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"underline overstrike", "in your whole ____\b\b\b\bBODY!", "in your whole BODY!",
     CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"underline before", "An interpretation _\bI satisfies", "An interpretation I satisfies",
     CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"underline after", "I\b_ am", "I am", CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"bold overstrike", "B\bBold", "Bold", CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"backspace at start", "\b\bstart", "start", CLLM_DOC_KEPT, CLLM_CHANGED_CLEAN},
    {"bad byte",
     "a\xff"
     "b",
     "a\xef\xbf\xbd"
     "b",
     CLLM_DOC_KEPT, CLLM_CHANGED_UTF8},
    {"truncated sequence", "x\xe2\x82", "x\xef\xbf\xbd", CLLM_DOC_KEPT, CLLM_CHANGED_UTF8},
    {"surrogate", "sur\xed\xa0\x80rogate", "sur\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdrogate",
     CLLM_DOC_KEPT, CLLM_CHANGED_UTF8},
    {"overlong", "over\xc0\xaflong", "over\xef\xbf\xbd\xef\xbf\xbdlong", CLLM_DOC_KEPT,
     CLLM_CHANGED_UTF8},
    {"above U+10FFFF",
     "high\xf4\x90\x80\x80"
     "er",
     "high\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
     "er",
     CLLM_DOC_KEPT, CLLM_CHANGED_UTF8},
    {"valid euro", "ok\xe2\x82\xac ok", "ok\xe2\x82\xac ok", CLLM_DOC_KEPT, 0},
    {"nfc compose",
     "caf"
     "e\xcc\x81",
     "caf\xc3\xa9", CLLM_DOC_KEPT, CLLM_CHANGED_NFC},
    {"nfc hangul", "\xe1\x84\x80\xe1\x85\xa1", "\xea\xb0\x80", CLLM_DOC_KEPT, CLLM_CHANGED_NFC},
    {"nfc reorder", "A\xcc\x8a\xcc\xa3", "\xe1\xba\xa0\xcc\x8a", CLLM_DOC_KEPT, CLLM_CHANGED_NFC},
    {"nfc keeps ligature", "\xef\xac\x81ne", "\xef\xac\x81ne", CLLM_DOC_KEPT, 0},
    {"empty", "", "", CLLM_DOC_EMPTY, 0},
    {"only space", "  \n\t\n  ", "", CLLM_DOC_EMPTY, CLLM_CHANGED_CLEAN},
    {"only controls", "\x01\x02\x03", "", CLLM_DOC_EMPTY, CLLM_CHANGED_CLEAN},
    {"all changes", "e\xcc\x81\xff\r\n", "\xc3\xa9\xef\xbf\xbd", CLLM_DOC_KEPT,
     CLLM_CHANGED_UTF8 | CLLM_CHANGED_CLEAN | CLLM_CHANGED_NFC},
};

static void run_case(const cllm_curate_opts *o, const text_case *c) {
    cllm_curated d;
    CHECK_OK(cllm_curate(o, c->in, strlen(c->in), &d));
    if (c->want)
        CHECK_MSG(d.text && d.len == strlen(c->want) && memcmp(d.text, c->want, d.len) == 0 &&
                      d.text[d.len] == 0,
                  "%s: got '%s'", c->name, d.text ? d.text : "(null)");
    CHECK_MSG(d.rule == c->rule, "%s: rule %s, expected %s", c->name, cllm_doc_rule_name(d.rule),
              cllm_doc_rule_name(c->rule));
    CHECK_MSG(d.changes == c->changes, "%s: changes %u, expected %u", c->name, d.changes,
              c->changes);
    free(d.text);
}

static void test_switches(void) {
    cllm_curate_opts o = cllm_curate_opts_default();
    o.clean = false;
    o.nfc = false;
    /* With both off only invalid UTF-8 is touched. */
    const text_case raw[] = {
        {"raw crlf", "a  \r\nb\x01", "a  \r\nb\x01", CLLM_DOC_KEPT, 0},
        {"raw nfd", "e\xcc\x81", "e\xcc\x81", CLLM_DOC_KEPT, 0},
        {"raw bad", "bad\xff", "bad\xef\xbf\xbd", CLLM_DOC_KEPT, CLLM_CHANGED_UTF8},
        {"raw blank", " \n ", " \n ", CLLM_DOC_EMPTY, 0},
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++)
        run_case(&o, &raw[i]);
    o.nfc = true;
    const text_case nfc_only = {"nfc only", "e\xcc\x81  \r\n", "\xc3\xa9  \r\n", CLLM_DOC_KEPT,
                                CLLM_CHANGED_NFC};
    run_case(&o, &nfc_only);
    /* NUL bytes inside a document (len given explicitly). */
    o = cllm_curate_opts_default();
    cllm_curated d;
    CHECK_OK(cllm_curate(&o, "a\0b", 3, &d));
    CHECK(d.len == 2 && d.text && !strcmp(d.text, "ab"));
    free(d.text);
}

typedef struct {
    const char *name;
    const char *in;
    cllm_doc_rule rule;
    double value;
} rule_case;

static void run_rules(const cllm_curate_opts *o, const rule_case *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        cllm_curated d;
        CHECK_OK(cllm_curate(o, c[i].in, strlen(c[i].in), &d));
        CHECK_MSG(d.rule == c[i].rule, "%s: rule %s, expected %s", c[i].name,
                  cllm_doc_rule_name(d.rule), cllm_doc_rule_name(c[i].rule));
        if (c[i].rule != CLLM_DOC_KEPT)
            CHECK_MSG(test_close(d.value, c[i].value, 1e-9, 0), "%s: value %g, expected %g",
                      c[i].name, d.value, c[i].value);
        free(d.text);
    }
}

static void test_rules(void) {
    cllm_curate_opts o = cllm_curate_opts_default();
    o.min_chars = 10;
    o.max_chars = 30;
    const rule_case len[] = {
        {"short", "short", CLLM_DOC_TOO_SHORT, 5},
        {"exactly min", "exactly 10", CLLM_DOC_KEPT, 0},
        {"code points, not bytes", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 ab",
         CLLM_DOC_TOO_SHORT, 8},
        {"counted after clean-up", "  \n\nnine char  \n\n", CLLM_DOC_TOO_SHORT, 9},
        {"exactly max", "abcdefghij abcdefghij abcdefgh", CLLM_DOC_KEPT, 0},
        {"long", "abcdefghij abcdefghij abcdefghi", CLLM_DOC_TOO_LONG, 31},
        {"newlines count", "abcde\nfghij", CLLM_DOC_KEPT, 0},
    };
    run_rules(&o, len, sizeof len / sizeof len[0]);

    o = cllm_curate_opts_default();
    o.min_alpha = 0.5;
    const rule_case alpha[] = {
        /* 3 letters of 17 non-space characters */
        {"digits", "12345 67890 !!!! abc", CLLM_DOC_LOW_ALPHA, 3.0 / 17.0},
        {"ascii art", "/\\_/\\\n( o.o )\n > ^ <", CLLM_DOC_LOW_ALPHA, 2.0 / 13.0},
        {"half", "ab12", CLLM_DOC_KEPT, 0},
        {"just below", "ab123", CLLM_DOC_LOW_ALPHA, 0.4},
        {"cyrillic", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, 42", CLLM_DOC_KEPT, 0},
        {"cjk", "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c", CLLM_DOC_KEPT, 0},
        {"prose", "It was the best of times, it was the worst of times.", CLLM_DOC_KEPT, 0},
    };
    run_rules(&o, alpha, sizeof alpha / sizeof alpha[0]);

    o = cllm_curate_opts_default();
    o.max_repeated_lines = 0.3;
    const rule_case rep[] = {
        {"half repeated", "spam\neggs\nspam\nspam", CLLM_DOC_REPEATED_LINES, 0.5},
        {"a quarter", "a line\nb line\nc line\na line", CLLM_DOC_KEPT, 0},
        {"blank lines do not count", "x\n\ny\n\nz\n\nx", CLLM_DOC_KEPT, 0},
        {"compared trimmed", "la la\n  la la\nfa\nso", CLLM_DOC_KEPT, 0},
        {"trimmed repeats", "la la\n  la la\n la la\nso", CLLM_DOC_REPEATED_LINES, 0.5},
        {"single line", "only one line", CLLM_DOC_KEPT, 0},
    };
    run_rules(&o, rep, sizeof rep / sizeof rep[0]);

    o = cllm_curate_opts_default();
    o.max_word_chars = 10;
    const rule_case word[] = {
        {"long word", "short words and averyveryverylongword", CLLM_DOC_LONG_WORD, 21},
        {"ten", "abcdefghij is fine", CLLM_DOC_KEPT, 0},
        {"url", "see https://example.org/x", CLLM_DOC_LONG_WORD, 21},
        {"word at a line end", "abcdefghijk\nx", CLLM_DOC_LONG_WORD, 11},
    };
    run_rules(&o, word, sizeof word / sizeof word[0]);

    /* Rules run in order: too short before low alpha. */
    o = cllm_curate_opts_default();
    o.min_chars = 100;
    o.min_alpha = 0.9;
    const rule_case order[] = {{"first rule wins", "1234", CLLM_DOC_TOO_SHORT, 4}};
    run_rules(&o, order, 1);

    /* Thresholds at their "off" values keep everything. */
    o = cllm_curate_opts_default();
    o.min_alpha = 0;
    o.max_repeated_lines = 1;
    o.max_word_chars = 0;
    const rule_case off[] = {
        {"digits kept", "1234 5678", CLLM_DOC_KEPT, 0},
        {"repeats kept", "a\na\na\na", CLLM_DOC_KEPT, 0},
    };
    run_rules(&o, off, 2);
}

static void test_names(void) {
    CHECK(!strcmp(cllm_doc_rule_name(CLLM_DOC_KEPT), "kept"));
    CHECK(!strcmp(cllm_doc_rule_name(CLLM_DOC_LOW_ALPHA), "low_alpha"));
    CHECK(!strcmp(cllm_doc_rule_name(CLLM_DOC_NEAR_DUP), "near_dup"));
    CHECK(!strcmp(cllm_doc_rule_name(CLLM_DOC_N_RULES), "unknown"));
}

int main(void) {
    cllm_curate_opts o = cllm_curate_opts_default();
    for (size_t i = 0; i < sizeof CLEAN / sizeof CLEAN[0]; i++)
        run_case(&o, &CLEAN[i]);
    test_switches();
    test_rules();
    test_names();
    return test_exit();
}
