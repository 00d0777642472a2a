/* cllm/common.h — status codes, error messages and logging shared by every module.
 *
 * Tutorial.
 *   Every fallible cllm function returns a cllm_status: CLLM_OK (0) on success, a negative
 *   OpenCL error code (CL_OUT_OF_RESOURCES = -5, ...) when the OpenCL runtime failed, or one
 *   of cllm's own codes below (all <= -1000). On failure the function has also recorded a
 *   one-line, human-readable message naming the file, key, flag or value at fault:
 *
 *       cllm_status st = cllm_tokenizer_load(&tok, "tok.json");
 *       if (st != CLLM_OK) fprintf(stderr, "cllm: %s\n", cllm_last_error());
 *
 *   The message lives in a per-thread buffer (like dlerror/strerror_r): it is valid until the
 *   next failing cllm call on the same thread. This is the one piece of state outside an
 *   object, kept so that modules without a context (tokenizer, json, png) can report errors.
 *
 *   Logging goes through one callback (the only global, as STYLE.md allows); the default
 *   writes to stderr at CLLM_LOG_INFO and above.
 */
#ifndef CLLM_COMMON_H
#define CLLM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLLM_VERSION_STRING "0.1.0"

typedef int cllm_status;

enum {
    CLLM_OK = 0,
    /* -1 ... -1999: OpenCL's own error codes (and extensions', e.g. -1001 = no ICD platform),
     * returned unchanged. */
    CLLM_ERR_USAGE = -2000,       /* bad argument or option value (CLI exit code 2) */
    CLLM_ERR_IO = -2001,          /* a file could not be opened, read or written */
    CLLM_ERR_FORMAT = -2002,      /* a file or record is malformed */
    CLLM_ERR_NOMEM = -2003,       /* host memory allocation failed */
    CLLM_ERR_NO_DEVICE = -2004,   /* no OpenCL platform/device, or SPEC matched none */
    CLLM_ERR_BUILD = -2005,       /* an OpenCL program failed to build */
    CLLM_ERR_TOO_LARGE = -2006,   /* does not fit the device (memory, max allocation) */
    CLLM_ERR_NUMERIC = -2007,     /* non-finite values where finite ones are required */
    CLLM_ERR_STATE = -2008,       /* an object is used in a state that does not allow it */
    CLLM_ERR_UNSUPPORTED = -2009, /* valid request that this device/build cannot do */
    CLLM_ERR_INTERRUPTED = -2010, /* stopped by a signal, state is consistent */
    CLLM_ERR_BLAS = -2011,        /* CLBlast reported an error of its own */
};

/* The message recorded by the last failing cllm call on this thread ("" if none). */
const char *cllm_last_error(void);
/* Record a message (printf format) and return `status`, so a failure is one statement:
 *     return cllm_fail(CLLM_ERR_FORMAT, "%s: bad magic %d (expected %d)", path, m, MAGIC); */
cllm_status cllm_fail(cllm_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefix the current message with more context ("loading x: " + old message). */
cllm_status cllm_fail_context(cllm_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cllm_clear_error(void);

/* Name of a status code: "CL_OUT_OF_RESOURCES", "CLLM_ERR_IO", ... */
const char *cllm_status_name(cllm_status status);

typedef enum {
    CLLM_LOG_DEBUG = 0,
    CLLM_LOG_INFO = 1,
    CLLM_LOG_WARN = 2,
    CLLM_LOG_ERROR = 3,
} cllm_log_level;

typedef void (*cllm_log_fn)(cllm_log_level level, const char *msg, void *user);
/* Replace the log callback (NULL restores the default, which prints to stderr). */
void cllm_log_set(cllm_log_fn fn, void *user, cllm_log_level min_level);
void cllm_log(cllm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CLLM_TRY(expr)                                                                         \
    do {                                                                                       \
        st = (expr);                                                                           \
        if (st != CLLM_OK) goto fail;                                                          \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
