/* safetensors: dtype table, half-precision conversions (published bit patterns, exhaustive
 * round trips, rounding against a brute-force nearest search), write/read round trips, a table
 * of malformed headers with the message each must give, and fuzzing (every truncation, every
 * header byte mutated) that must never crash. */
#include "testutil.h"

#include "cllm/safetensors.h"
#include "cllm/util.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_dtypes(void) {
    static const struct {
        const char *name;
        size_t size;
    } want[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
                {"U16", 2},  {"I16", 2}, {"F16", 2}, {"BF16", 2},    {"U32", 4},
                {"I32", 4},  {"F32", 4}, {"U64", 8}, {"I64", 8},     {"F64", 8}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        cllm_st_dtype dt;
        CHECK_MSG(cllm_st_dtype_parse(want[i].name, &dt), "%s", want[i].name);
        CHECK(!strcmp(cllm_st_dtype_name(dt), want[i].name));
        CHECK(cllm_st_dtype_size(dt) == want[i].size);
    }
    cllm_st_dtype dt;
    CHECK(!cllm_st_dtype_parse("f32", &dt));
    CHECK(!cllm_st_dtype_parse("FP32", &dt));
}

/* binary16 value from its fields, by the formula (independent of the bit-twiddling code). */
static double f16_formula(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_half(void) {
    /* Published binary16 / bfloat16 encodings. */
    static const struct {
        uint16_t h;
        float f;
    } f16[] = {{0x3c00, 1.0f},        {0xc000, -2.0f},          {0x7bff, 65504.0f},
               {0x0400, 6.103515625e-05f}, {0x0001, 5.9604644775390625e-08f},
               {0x03ff, 6.097555160522461e-05f}, {0x3555, 0.333251953125f},
               {0x0000, 0.0f},        {0x7c00, INFINITY},       {0xfc00, -INFINITY}},
      bf16[] = {{0x3f80, 1.0f}, {0xc000, -2.0f}, {0x7f7f, 3.3895313892515355e+38f},
                {0x0080, 1.1754943508222875e-38f}, {0x3eab, 0.333984375f}};
    for (size_t i = 0; i < sizeof f16 / sizeof *f16; i++) {
        CHECK_MSG(cllm_f16_to_f32(f16[i].h) == f16[i].f, "f16 %04x", f16[i].h);
        CHECK_MSG(cllm_f32_to_f16(f16[i].f) == f16[i].h, "f16 %04x", f16[i].h);
    }
    for (size_t i = 0; i < sizeof bf16 / sizeof *bf16; i++) {
        CHECK_MSG(cllm_bf16_to_f32(bf16[i].h) == bf16[i].f, "bf16 %04x", bf16[i].h);
        CHECK_MSG(cllm_f32_to_bf16(bf16[i].f) == bf16[i].h, "bf16 %04x", bf16[i].h);
    }
    float nz = cllm_f16_to_f32(0x8000);
    CHECK(nz == 0.0f && signbit(nz));
    CHECK(isnan(cllm_f16_to_f32(0x7e00)) && isnan(cllm_bf16_to_f32(0x7fc0)));
    CHECK((cllm_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (cllm_f32_to_f16(NAN) & 0x3ff));
    /* Every binary16 value: decode matches the formula, and encoding gives the same bits. */
    int bad_dec = 0, bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double ref = f16_formula((uint16_t)h);
        float f = cllm_f16_to_f32((uint16_t)h);
        if (isnan(ref)) {
            bad_dec += !isnan(f);
            continue;
        }
        bad_dec += (double)f != ref || (signbit(f) != 0) != (h >> 15 != 0);
        bad_rt += cllm_f32_to_f16(f) != h;
        bad_rt += cllm_bf16_to_f32(cllm_f32_to_bf16(cllm_bf16_to_f32((uint16_t)h))) !=
                  cllm_bf16_to_f32((uint16_t)h);
    }
    CHECK_MSG(bad_dec == 0, "%d binary16 values decode wrongly", bad_dec);
    CHECK_MSG(bad_rt == 0, "%d half values do not round-trip", bad_rt);
    /* Rounding: the nearest binary16 (ties to the even mantissa), found by search over all
     * finite positive halves, for random floats across the whole range, and exact ties. */
    static double pos[31744]; /* 0x0000 .. 0x7bff */
    for (int h = 0; h < 31744; h++) pos[h] = f16_formula((uint16_t)h);
    test_rng r = {42};
    int bad_round = 0;
    for (int k = 0; k < 20000; k++) {
        double x;
        if (k % 4 == 0) { /* an exact tie between two neighbours */
            int h = (int)(test_rng_u64(&r) % 31743);
            x = 0.5 * (pos[h] + pos[h + 1]);
        } else {
            x = ldexp(test_rng_uniform(&r), (int)(test_rng_u64(&r) % 44) - 28);
        }
        float f = (float)x;
        if ((double)f != x) continue; /* the tie must be exact in float */
        int lo = 0, hi = 31743;       /* last pos[] <= f */
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (pos[mid] <= f)
                lo = mid;
            else
                hi = mid - 1;
        }
        uint16_t want;
        if (f >= 65520.0f) {
            want = 0x7c00;
        } else if (lo == 31743) {
            want = 0x7bff;
        } else {
            double dl = f - pos[lo], dh = pos[lo + 1] - f;
            want = (uint16_t)(dl < dh ? lo : dh < dl ? lo + 1 : (lo % 2 == 0 ? lo : lo + 1));
        }
        uint16_t got = cllm_f32_to_f16(f), gotn = cllm_f32_to_f16(-f);
        bad_round += got != want || gotn != (want | 0x8000);
    }
    CHECK_MSG(bad_round == 0, "%d floats round to the wrong binary16", bad_round);
    /* bfloat16 rounding: ties to even on the upper 16 bits. */
    CHECK(cllm_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);  /* tie, even stays */
    CHECK(cllm_f32_to_bf16(1.0f + 0x3p-8f) == 0x3f82);  /* tie, odd rounds up */
    CHECK(cllm_f32_to_bf16(1.0f + 0x1p-9f) == 0x3f80);  /* below half */
    CHECK(cllm_f32_to_bf16(1.0f + 0x3p-9f) == 0x3f81);  /* above half */
}

/* ------------------------------------------------------------------ round trip */

typedef struct {
    int calls;
    bool fail_on_2;
} fill_ctx;

static cllm_status fill_ramp(void *user, int index, void *dst, size_t bytes) {
    fill_ctx *c = user;
    c->calls++;
    if (c->fail_on_2 && index == 2) return cllm_fail(CLLM_ERR_NUMERIC, "fill refused tensor 2");
    float *f = dst;
    for (size_t i = 0; i < bytes / 4; i++) f[i] = (float)i * 0.5f - 3.0f;
    return CLLM_OK;
}

static bool dir_has_tmp(const char *dir) {
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) found = true;
    if (d) closedir(d);
    return found;
}

static void test_round_trip(void) {
    char *dir = test_tmpdir("safetensors_rt");
    char *path = cllm_path_join(dir, "a.safetensors");
    float f32[6] = {1.5f, -2.25f, 3e-8f, 65504.0f, -0.0f, 1e30f};
    uint16_t f16[3] = {0x3c00, 0xc000, 0x0001}, bf16[2] = {0x3f80, 0x4049};
    double f64[2] = {0.1, -1e-3};
    int64_t i64[3] = {-5, 2147483647, 7};
    uint8_t u8[4] = {0, 1, 200, 255};
    int16_t i16[2] = {-32768, 12};
    float scalar = 42.0f;
    fill_ctx fc = {0};
    const cllm_st_entry e[] = {
        {"w.f32", CLLM_ST_F32, 2, {2, 3}, f32},
        {"w.f16", CLLM_ST_F16, 1, {3}, f16},
        {"w.bf16", CLLM_ST_BF16, 2, {1, 2}, bf16},
        {"w.f64", CLLM_ST_F64, 1, {2}, f64},
        {"ids", CLLM_ST_I64, 1, {3}, i64},
        {"bytes", CLLM_ST_U8, 1, {4}, u8},
        {"short", CLLM_ST_I16, 1, {2}, i16},
        {"scalar", CLLM_ST_F32, 0, {0}, &scalar},
        {"empty", CLLM_ST_F32, 2, {0, 5}, f32},
        {"filled", CLLM_ST_F32, 2, {3, 4}, NULL},
        {"name with \"quotes\" and \\", CLLM_ST_U8, 1, {1}, u8},
    };
    const int n = (int)(sizeof e / sizeof *e);
    const cllm_st_meta meta[] = {{"format", "pt"},
                                 {"config", "{\"a\": 1,\n\t\"b\": \"x\\y\"}"},
                                 {"unicode", "na\xc3\xafve \xe2\x82\xac"}};
    CHECK_OK(cllm_safetensors_save(path, e, n, meta, 3, fill_ramp, &fc));
    CHECK(fc.calls == 1);
    CHECK(!dir_has_tmp(dir));

    char *raw = NULL;
    size_t len = 0;
    CHECK_OK(cllm_read_file(path, &raw, &len));
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | (unsigned char)raw[i];
    CHECK_MSG(hl % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hl);
    size_t last = 8 + hl - 1; /* the JSON ends in '}', padded with spaces only */
    while (last > 8 && raw[last] == ' ') last--;
    CHECK(raw[8] == '{' && raw[last] == '}' && 8 + hl - 1 - last < 8);

    cllm_safetensors *st = NULL;
    CHECK_OK(cllm_safetensors_open(&st, path));
    if (!st) goto out;
    CHECK(cllm_safetensors_count(st) == n);
    CHECK(!strcmp(cllm_safetensors_metadata(st, "format"), "pt"));
    CHECK(!strcmp(cllm_safetensors_metadata(st, "config"), meta[1].value));
    CHECK(!strcmp(cllm_safetensors_metadata(st, "unicode"), meta[2].value));
    CHECK(cllm_safetensors_metadata(st, "absent") == NULL);
    CHECK(cllm_safetensors_metadata_count(st) == 3);
    for (int i = 0; i < n; i++) {
        const cllm_st_tensor *t = cllm_safetensors_tensor(st, i);
        CHECK(!strcmp(t->name, e[i].name) && t->dtype == e[i].dtype && t->ndim == e[i].ndim);
        CHECK(cllm_safetensors_find(st, e[i].name) == t);
    }
    float got[12];
    const cllm_st_tensor *t = cllm_safetensors_find(st, "w.f32");
    CHECK_OK(cllm_safetensors_read_f32(st, t, got));
    CHECK(!memcmp(got, f32, sizeof f32));
    CHECK(t->numel == 6 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK_OK(cllm_safetensors_read_f32(st, cllm_safetensors_find(st, "w.f16"), got));
    CHECK(got[0] == 1.0f && got[1] == -2.0f && got[2] == 0x1p-24f);
    CHECK_OK(cllm_safetensors_read_f32(st, cllm_safetensors_find(st, "w.bf16"), got));
    CHECK(got[0] == 1.0f && got[1] == 3.140625f);
    CHECK_OK(cllm_safetensors_read_f32(st, cllm_safetensors_find(st, "w.f64"), got));
    CHECK(got[0] == 0.1f && got[1] == -1e-3f);
    CHECK_OK(cllm_safetensors_read_f32(st, cllm_safetensors_find(st, "scalar"), got));
    CHECK(got[0] == 42.0f && cllm_safetensors_find(st, "scalar")->numel == 1);
    CHECK(cllm_safetensors_find(st, "empty")->numel == 0);
    CHECK_OK(cllm_safetensors_read_f32(st, cllm_safetensors_find(st, "empty"), got));
    CHECK_OK(cllm_safetensors_read_f32(st, cllm_safetensors_find(st, "filled"), got));
    CHECK(got[0] == -3.0f && got[11] == 2.5f);
    int32_t ids[4];
    CHECK_OK(cllm_safetensors_read_i32(st, cllm_safetensors_find(st, "ids"), ids));
    CHECK(ids[0] == -5 && ids[1] == 2147483647 && ids[2] == 7);
    CHECK_OK(cllm_safetensors_read_i32(st, cllm_safetensors_find(st, "bytes"), ids));
    CHECK(ids[0] == 0 && ids[2] == 200 && ids[3] == 255);
    CHECK_OK(cllm_safetensors_read_i32(st, cllm_safetensors_find(st, "short"), ids));
    CHECK(ids[0] == -32768 && ids[1] == 12);
    /* Wrong kinds are refused, naming the tensor. */
    CHECK(cllm_safetensors_read_f32(st, cllm_safetensors_find(st, "ids"), got) != CLLM_OK);
    CHECK(strstr(cllm_last_error(), "\"ids\"") && strstr(cllm_last_error(), "I64"));
    CHECK(cllm_safetensors_read_i32(st, cllm_safetensors_find(st, "w.f32"), ids) != CLLM_OK);
    cllm_safetensors_free(st);

    /* An int64 beyond int32 is refused, not wrapped. */
    int64_t big[2] = {1, (int64_t)1 << 40};
    const cllm_st_entry eb[] = {{"big", CLLM_ST_I64, 1, {2}, big}};
    CHECK_OK(cllm_safetensors_save(path, eb, 1, NULL, 0, NULL, NULL));
    CHECK_OK(cllm_safetensors_open(&st, path));
    if (st) {
        CHECK(cllm_safetensors_read_i32(st, cllm_safetensors_find(st, "big"), ids) ==
              CLLM_ERR_FORMAT);
        CHECK(strstr(cllm_last_error(), "out of range") != NULL);
        cllm_safetensors_free(st);
    }

    /* A failing fill leaves the previous file untouched and no temporary behind. */
    char *before = NULL, *after = NULL;
    size_t lb = 0, la = 0;
    CHECK_OK(cllm_read_file(path, &before, &lb));
    fill_ctx fail = {0, true};
    const cllm_st_entry ef[] = {{"a", CLLM_ST_F32, 1, {2}, NULL},
                                {"b", CLLM_ST_F32, 1, {2}, NULL},
                                {"c", CLLM_ST_F32, 1, {2}, NULL}};
    CHECK(cllm_safetensors_save(path, ef, 3, NULL, 0, fill_ramp, &fail) == CLLM_ERR_NUMERIC);
    CHECK_OK(cllm_read_file(path, &after, &la));
    CHECK(lb == la && !memcmp(before, after, lb));
    CHECK(!dir_has_tmp(dir));
    /* Bad entries are refused before anything is written. */
    const cllm_st_entry dup[] = {{"x", CLLM_ST_F32, 1, {1}, f32}, {"x", CLLM_ST_F32, 1, {1}, f32}};
    CHECK(cllm_safetensors_save(path, dup, 2, NULL, 0, NULL, NULL) != CLLM_OK);
    CHECK(strstr(cllm_last_error(), "\"x\"") != NULL);
    const cllm_st_entry res[] = {{"__metadata__", CLLM_ST_F32, 1, {1}, f32}};
    CHECK(cllm_safetensors_save(path, res, 1, NULL, 0, NULL, NULL) != CLLM_OK);
    /* No tensors at all is a valid file. */
    CHECK_OK(cllm_safetensors_save(path, NULL, 0, meta, 1, NULL, NULL));
    CHECK_OK(cllm_safetensors_open(&st, path));
    if (st) CHECK(cllm_safetensors_count(st) == 0);
    cllm_safetensors_free(st);
    free(before);
    free(after);
out:
    free(raw);
    free(path);
    free(dir);
}

/* ------------------------------------------------------------------ malformed headers */

/* A file in memory: an 8-byte length (hdr's, unless len_override >= 0), the header, `data`
 * bytes of zeros. */
static char *make_file(const char *hdr, long long len_override, size_t data, size_t *size) {
    size_t h = strlen(hdr);
    *size = 8 + h + data;
    char *b = calloc(1, *size + 1);
    uint64_t n = len_override >= 0 ? (uint64_t)len_override : h;
    for (int i = 0; i < 8; i++) b[i] = (char)(n >> (8 * i));
    memcpy(b + 8, hdr, h);
    return b;
}

static void test_malformed(void) {
    static const struct {
        const char *hdr;
        long long len; /* -1: the header's length */
        size_t data;
        const char *needle;
    } bad[] = {
        {"", 0, 0, "header length 0 is too short"},
        {"{}", 1000, 0, "runs past the end of the file"},
        {"{}", 200000000, 0, "larger than safetensors allows"},
        {"[]", -1, 0, "does not start with '{'"},
        {"{\"a\":", -1, 0, "not valid JSON"},
        {"{\"a\":{}} x", -1, 0, "junk after the JSON header"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 0,
         "run past the end of the data"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4,
         "unknown dtype \"F33\""},
        {"{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, "\"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", -1, 4,
         "span 4 bytes but F32 with shape [2] needs 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", -1, 4,
         "shape entry 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", -1, 4,
         "shape entry 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", -1, 4, "\"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", -1, 4,
         "9 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,4]}}",
         -1, 4, "shape too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", -1, 4,
         "end before they begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", -1, 4,
         "\"data_offsets\" must be [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", -1, 4,
         "\"data_offsets\" must be [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", -1, 4,
         "\"data_offsets\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8,
         "data must start at 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         -1, 12, "\"b\" starts at byte 8 but \"a\" ends at 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         -1, 8, "without gaps or overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 6,
         "trailing bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         -1, 8, "tensor \"a\" appears twice"},
        {"{\"a\":[1,2]}", -1, 0, "tensor \"a\": not an object"},
        {"{\"__metadata__\":{\"k\":1}}", -1, 0, "key \"k\": value must be a string"},
        {"{\"__metadata__\":[\"k\"]}", -1, 0, "\"__metadata__\" must be an object"},
        {"{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", -1, 0, "key \"k\" appears twice"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", -1, 0, "\"__metadata__\" appears twice"},
        {"{\"__metadata__\":{\"k\":\"\xff\"}}", -1, 0, "not valid UTF-8"},
        {"{\"\xed\xa0\x80\":1}", -1, 0, "not valid UTF-8"}, /* a UTF-16 surrogate */
        {"{\"\xc0\xaf\":1}", -1, 0, "not valid UTF-8"},     /* overlong '/' */
        {"{}", -1, 3, "no tensors, but 3 bytes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t size;
        char *b = make_file(bad[i].hdr, bad[i].len, bad[i].data, &size);
        cllm_safetensors *st = (cllm_safetensors *)1;
        cllm_status s = cllm_safetensors_open_memory(&st, b, size, "bad.safetensors");
        CHECK_MSG(s == CLLM_ERR_FORMAT && st == NULL, "case %zu accepted", i);
        const char *m = cllm_last_error();
        CHECK_MSG(strstr(m, bad[i].needle) && !strncmp(m, "bad.safetensors: ", 17),
                  "case %zu: got '%s', want '%s'", i, m, bad[i].needle);
        CHECK_MSG(!strchr(m, '\n'), "case %zu: message is not one line", i);
        free(b);
    }
    /* Files shorter than the length prefix; a directory; a missing file. */
    cllm_safetensors *st = NULL;
    CHECK(cllm_safetensors_open_memory(&st, "\x02\0\0", 3, "short") == CLLM_ERR_FORMAT);
    CHECK(strstr(cllm_last_error(), "too short") != NULL);
    char *dir = test_tmpdir("safetensors_bad");
    CHECK(cllm_safetensors_open(&st, dir) == CLLM_ERR_IO && st == NULL);
    char *missing = cllm_path_join(dir, "missing.safetensors");
    CHECK(cllm_safetensors_open(&st, missing) == CLLM_ERR_IO);
    CHECK(strstr(cllm_last_error(), "missing.safetensors") != NULL);
    /* Accepted: whitespace padding, a null __metadata__, a scalar, zero-sized tensors at
     * the same offset, tensors listed out of offset order. */
    size_t size;
    char *b = make_file("{\"__metadata__\":null,\"z\":{\"dtype\":\"U8\",\"shape\":[0],"
                        "\"data_offsets\":[4,4]},\"s\":{\"dtype\":\"I32\",\"shape\":[],"
                        "\"data_offsets\":[0,4]},\"y\":{\"dtype\":\"U8\",\"shape\":[0],"
                        "\"data_offsets\":[4,4]}}   \n ",
                        -1, 4, &size);
    CHECK_OK(cllm_safetensors_open_memory(&st, b, size, "ok"));
    if (st) CHECK(cllm_safetensors_count(st) == 3);
    cllm_safetensors_free(st);
    free(b);
    free(missing);
    free(dir);
}

/* ------------------------------------------------------------------ fuzzing */

static void read_everything(cllm_safetensors *st) {
    for (int i = 0; i < cllm_safetensors_count(st); i++) {
        const cllm_st_tensor *t = cllm_safetensors_tensor(st, i);
        void *buf = malloc(t->end - t->begin + 1);
        CHECK_OK(cllm_safetensors_read_raw(st, t, buf));
        float *f = malloc(t->numel * sizeof *f + 1);
        cllm_safetensors_read_f32(st, t, f); /* may refuse the dtype; must not crash */
        cllm_safetensors_read_i32(st, t, (int32_t *)f);
        free(f);
        free(buf);
    }
}

static void test_fuzz(void) {
    char *dir = test_tmpdir("safetensors_fuzz");
    char *path = cllm_path_join(dir, "f.safetensors"), *cut = cllm_path_join(dir, "cut.safetensors");
    float w[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[2] = {0x3c00, 0x4000};
    int32_t ids[3] = {1, 2, 3};
    const cllm_st_entry e[] = {{"w", CLLM_ST_F32, 2, {2, 3}, w},
                               {"h", CLLM_ST_F16, 1, {2}, h},
                               {"ids", CLLM_ST_I32, 1, {3}, ids}};
    const cllm_st_meta meta[] = {{"format", "pt"}};
    CHECK_OK(cllm_safetensors_save(path, e, 3, meta, 1, NULL, NULL));
    char *file = NULL;
    size_t len = 0;
    CHECK_OK(cllm_read_file(path, &file, &len));
    /* Every truncation is refused (the data must be indexed entirely), with the file's name:
     * on disk for the first bytes and the end, in memory for all. */
    int accepted = 0, unnamed = 0;
    for (size_t cutlen = 0; cutlen < len; cutlen++) {
        cllm_safetensors *st = NULL;
        if (cllm_safetensors_open_memory(&st, file, cutlen, "cut") == CLLM_OK) {
            accepted++;
            cllm_safetensors_free(st);
        } else if (strncmp(cllm_last_error(), "cut: ", 5)) {
            unnamed++;
        }
        if (cutlen < 24 || cutlen + 24 > len) {
            CHECK_OK(cllm_write_file_atomic(cut, file, cutlen));
            CHECK(cllm_safetensors_open(&st, cut) == CLLM_ERR_FORMAT);
            CHECK(strstr(cllm_last_error(), cut) != NULL);
        }
    }
    CHECK_MSG(accepted == 0, "%d truncations accepted", accepted);
    CHECK_MSG(unnamed == 0, "%d messages do not name the file", unnamed);
    /* Every byte of the length prefix and header replaced by a few values: never a crash; an
     * accepted file reads back without error. */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | (unsigned char)file[i];
    static const unsigned char vals[] = {0, ' ', '"', '0', '9', '-', '[', '{', '}', ',', 0x80, 0xff};
    char *mut = malloc(len);
    int opened = 0;
    for (size_t pos = 0; pos < 8 + hl; pos++)
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(mut, file, len);
            if ((unsigned char)mut[pos] == vals[v]) continue;
            mut[pos] = (char)vals[v];
            cllm_safetensors *st = NULL;
            if (cllm_safetensors_open_memory(&st, mut, len, "mut") == CLLM_OK) {
                opened++;
                read_everything(st);
                cllm_safetensors_free(st);
            } else {
                CHECK(strncmp(cllm_last_error(), "mut: ", 5) == 0);
            }
        }
    /* Random multi-byte corruption of the header. */
    test_rng r = {7};
    for (int k = 0; k < 3000; k++) {
        memcpy(mut, file, len);
        int nflip = 1 + (int)(test_rng_u64(&r) % 4);
        for (int j = 0; j < nflip; j++)
            mut[8 + test_rng_u64(&r) % hl] = (char)(test_rng_u64(&r) & 0xff);
        cllm_safetensors *st = NULL;
        if (cllm_safetensors_open_memory(&st, mut, len, "rnd") == CLLM_OK) {
            read_everything(st);
            cllm_safetensors_free(st);
        }
    }
    printf("fuzz: %zu truncations refused, %d of %zu single-byte mutations still valid\n", len,
           opened, (size_t)(8 + hl) * sizeof vals);
    free(mut);
    free(file);
    free(cut);
    free(path);
    free(dir);
}

int main(void) {
    test_dtypes();
    test_half();
    test_round_trip();
    test_malformed();
    test_fuzz();
    return test_exit();
}
