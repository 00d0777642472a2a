/* Declarative option parsing for the subcommands (see args.h). */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_report(cllm_status st) {
    if (st == CLLM_OK) return 0;
    const char *msg = cllm_last_error();
    fprintf(stderr, "cllm: %s\n", *msg ? msg : cllm_status_name(st));
    return st == CLLM_ERR_USAGE ? 2 : 1;
}

static int usage_v(const char *cmd, const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see '%s --help')\n", cmd);
    return 2;
}

int cli_usage_error(const cli_spec *spec, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = usage_v(spec->cmd, fmt, ap);
    va_end(ap);
    return rc;
}

int cli_usage_cmd(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = usage_v(cmd, fmt, ap);
    va_end(ap);
    return rc;
}

void cli_strlist_free(cli_strlist *l) {
    if (!l) return;
    free(l->items);
    free(l->argi);
    l->items = NULL;
    l->argi = NULL;
    l->n = 0;
}

int cli_strlist_push(cli_strlist *l, const char *s, int argi) {
    const char **n = realloc(l->items, (size_t)(l->n + 1) * sizeof *n);
    if (!n) return -1;
    l->items = n;
    int *a = realloc(l->argi, (size_t)(l->n + 1) * sizeof *a);
    if (!a) return -1;
    l->argi = a;
    l->argi[l->n] = argi;
    l->items[l->n++] = s;
    return 0;
}

static void print_default(const cli_opt *o) {
    switch (o->kind) {
    case CLI_INT:
        printf(" (default: %d)", *(int *)o->dst);
        break;
    case CLI_I64:
        printf(" (default: %lld)", *(long long *)o->dst);
        break;
    case CLI_DOUBLE: /* NaN: unset, the help text says what happens then */
        if (!isnan(*(double *)o->dst)) printf(" (default: %g)", *(double *)o->dst);
        break;
    case CLI_FLOAT:
        printf(" (default: %g)", (double)*(float *)o->dst);
        break;
    case CLI_STR:
    case CLI_CHOICE:
        if (*(const char **)o->dst) printf(" (default: %s)", *(const char **)o->dst);
        break;
    default:
        break;
    }
}

void cli_print_help(const cli_spec *spec) {
    printf("usage: %s %s\n\n", spec->cmd, spec->usage ? spec->usage : "[options]");
    if (spec->summary) printf("%s\n\n", spec->summary);
    printf("options:\n");
    for (int i = 0; i < spec->n_opts; i++) {
        const cli_opt *o = &spec->opts[i];
        char left[96];
        const char *mv = o->kind == CLI_CHOICE ? o->choices : o->metavar;
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, mv ? " " : "",
                     mv ? mv : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, mv ? " " : "", mv ? mv : "");
        printf("  %-34s %s", left, o->help ? o->help : "");
        if (o->required)
            printf(" (required)");
        else if (!o->no_default)
            print_default(o);
        if (o->kind == CLI_STRS) printf(" (repeatable)");
        printf("\n");
    }
    printf("  %-34s %s\n", "-h, --help", "show this help and exit");
    if (spec->epilog) printf("\n%s\n", spec->epilog);
}

static const cli_opt *find_long(const cli_spec *spec, const char *name, size_t len) {
    for (int i = 0; i < spec->n_opts; i++)
        if (strlen(spec->opts[i].name) == len && !strncmp(spec->opts[i].name, name, len))
            return &spec->opts[i];
    return NULL;
}

static const cli_opt *find_short(const cli_spec *spec, char c) {
    for (int i = 0; i < spec->n_opts; i++)
        if (spec->opts[i].short_name == c) return &spec->opts[i];
    return NULL;
}

static bool choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

static int set_value(const cli_spec *spec, const cli_opt *o, const char *v, int argi) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case CLI_INT:
    case CLI_I64: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno)
            return cli_usage_error(spec, "--%s expects an integer, got '%s'", o->name, v);
        if (o->lo < o->hi && (x < o->lo || x > o->hi))
            return cli_usage_error(spec, "--%s must be in [%g, %g], got %s", o->name, o->lo,
                                   o->hi, v);
        if (o->kind == CLI_INT) {
            if (x < -2147483647LL || x > 2147483647LL)
                return cli_usage_error(spec, "--%s: %s is out of range", o->name, v);
            *(int *)o->dst = (int)x;
        } else {
            *(long long *)o->dst = x;
        }
        return 0;
    }
    case CLI_DOUBLE:
    case CLI_FLOAT: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            return cli_usage_error(spec, "--%s expects a number, got '%s'", o->name, v);
        if (o->lo < o->hi && (x < o->lo || x > o->hi))
            return cli_usage_error(spec, "--%s must be in [%g, %g], got %s", o->name, o->lo,
                                   o->hi, v);
        if (o->kind == CLI_DOUBLE)
            *(double *)o->dst = x;
        else
            *(float *)o->dst = (float)x;
        return 0;
    }
    case CLI_STR:
        *(const char **)o->dst = v;
        return 0;
    case CLI_CHOICE:
        if (!choice_ok(o->choices, v))
            return cli_usage_error(spec, "--%s must be one of %s, got '%s'", o->name, o->choices,
                                   v);
        *(const char **)o->dst = v;
        return 0;
    case CLI_STRS:
        if (cli_strlist_push((cli_strlist *)o->dst, v, argi) != 0) {
            fprintf(stderr, "%s: out of memory\n", spec->cmd);
            return 1;
        }
        return 0;
    case CLI_FLAG:
        break;
    }
    return 0;
}

int cli_parse(const cli_spec *spec, int argc, char **argv, cli_strlist *pos) {
    bool seen[256] = {0};
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const cli_opt *o = NULL;
        const char *val = NULL;
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        if (!only_pos && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            cli_print_help(spec);
            return 0;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            o = find_long(spec, a + 2, len);
            if (!o) return cli_usage_error(spec, "unknown option '%.*s'", (int)len + 2, a);
            if (eq) val = eq + 1;
        } else if (!only_pos && a[0] == '-' && a[1] && a[1] != '-' && !(a[1] >= '0' && a[1] <= '9')) {
            o = find_short(spec, a[1]);
            if (!o) return cli_usage_error(spec, "unknown option '-%c'", a[1]);
            if (a[2]) val = a + 2;
        } else {
            if (!pos || (spec->max_pos >= 0 && pos->n >= spec->max_pos))
                return cli_usage_error(spec, "unexpected argument '%s'", a);
            if (cli_strlist_push(pos, a, i) != 0) return 1;
            continue;
        }
        int idx = (int)(o - spec->opts), argi = i;
        if (idx < 256) seen[idx] = true;
        if (o->seen) *o->seen = true;
        if (o->kind == CLI_FLAG) {
            if (val) return cli_usage_error(spec, "--%s takes no value", o->name);
            *(bool *)o->dst = true;
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) return cli_usage_error(spec, "--%s needs a value (%s)", o->name,
                                                      o->kind == CLI_CHOICE ? o->choices
                                                      : o->metavar ? o->metavar : "VALUE");
            val = argv[++i];
        }
        int rc = set_value(spec, o, val, argi);
        if (rc) return rc;
    }
    for (int i = 0; i < spec->n_opts && i < 256; i++)
        if (spec->opts[i].required && !seen[i])
            return cli_usage_error(spec, "--%s is required", spec->opts[i].name);
    int npos = pos ? pos->n : 0;
    if (npos < spec->min_pos)
        return cli_usage_error(spec, "expected %s%d argument%s, got %d",
                               spec->max_pos == spec->min_pos ? "" : "at least ", spec->min_pos,
                               spec->min_pos == 1 ? "" : "s", npos);
    return -1;
}
