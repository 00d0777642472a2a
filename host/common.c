/* Status names, per-thread error messages and the log callback. */
#include "cllm/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERRBUF 1024

/* Per-thread last error (see common.h for why this is not hung off an object). */
static _Thread_local char errbuf[ERRBUF];

const char *cllm_last_error(void) { return errbuf; }

void cllm_clear_error(void) { errbuf[0] = 0; }

cllm_status cllm_fail(cllm_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return status;
}

cllm_status cllm_fail_context(cllm_status status, const char *fmt, ...) {
    char old[ERRBUF];
    memcpy(old, errbuf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n + 2 < sizeof errbuf) {
        size_t used = (size_t)n;
        memcpy(errbuf + used, ": ", 2);
        used += 2;
        size_t room = sizeof errbuf - used - 1, ol = strlen(old);
        if (ol > room) ol = room;
        memcpy(errbuf + used, old, ol);
        errbuf[used + ol] = 0;
    }
    return status;
}

const char *cllm_status_name(cllm_status s) {
    switch (s) {
#define N(x, v)                                                                                \
    case v:                                                                                    \
        return #x
        N(CLLM_OK, 0);
        N(CLLM_ERR_USAGE, CLLM_ERR_USAGE);
        N(CLLM_ERR_IO, CLLM_ERR_IO);
        N(CLLM_ERR_FORMAT, CLLM_ERR_FORMAT);
        N(CLLM_ERR_NOMEM, CLLM_ERR_NOMEM);
        N(CLLM_ERR_NO_DEVICE, CLLM_ERR_NO_DEVICE);
        N(CLLM_ERR_BUILD, CLLM_ERR_BUILD);
        N(CLLM_ERR_TOO_LARGE, CLLM_ERR_TOO_LARGE);
        N(CLLM_ERR_NUMERIC, CLLM_ERR_NUMERIC);
        N(CLLM_ERR_STATE, CLLM_ERR_STATE);
        N(CLLM_ERR_UNSUPPORTED, CLLM_ERR_UNSUPPORTED);
        N(CLLM_ERR_INTERRUPTED, CLLM_ERR_INTERRUPTED);
        N(CLLM_ERR_BLAS, CLLM_ERR_BLAS);
        /* OpenCL's codes, spelled out so this file needs no CL header. */
        N(CL_DEVICE_NOT_FOUND, -1);
        N(CL_DEVICE_NOT_AVAILABLE, -2);
        N(CL_COMPILER_NOT_AVAILABLE, -3);
        N(CL_MEM_OBJECT_ALLOCATION_FAILURE, -4);
        N(CL_OUT_OF_RESOURCES, -5);
        N(CL_OUT_OF_HOST_MEMORY, -6);
        N(CL_PROFILING_INFO_NOT_AVAILABLE, -7);
        N(CL_MEM_COPY_OVERLAP, -8);
        N(CL_IMAGE_FORMAT_MISMATCH, -9);
        N(CL_IMAGE_FORMAT_NOT_SUPPORTED, -10);
        N(CL_BUILD_PROGRAM_FAILURE, -11);
        N(CL_MAP_FAILURE, -12);
        N(CL_MISALIGNED_SUB_BUFFER_OFFSET, -13);
        N(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, -14);
        N(CL_COMPILE_PROGRAM_FAILURE, -15);
        N(CL_LINKER_NOT_AVAILABLE, -16);
        N(CL_LINK_PROGRAM_FAILURE, -17);
        N(CL_DEVICE_PARTITION_FAILED, -18);
        N(CL_KERNEL_ARG_INFO_NOT_AVAILABLE, -19);
        N(CL_INVALID_VALUE, -30);
        N(CL_INVALID_DEVICE_TYPE, -31);
        N(CL_INVALID_PLATFORM, -32);
        N(CL_INVALID_DEVICE, -33);
        N(CL_INVALID_CONTEXT, -34);
        N(CL_INVALID_QUEUE_PROPERTIES, -35);
        N(CL_INVALID_COMMAND_QUEUE, -36);
        N(CL_INVALID_HOST_PTR, -37);
        N(CL_INVALID_MEM_OBJECT, -38);
        N(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR, -39);
        N(CL_INVALID_IMAGE_SIZE, -40);
        N(CL_INVALID_SAMPLER, -41);
        N(CL_INVALID_BINARY, -42);
        N(CL_INVALID_BUILD_OPTIONS, -43);
        N(CL_INVALID_PROGRAM, -44);
        N(CL_INVALID_PROGRAM_EXECUTABLE, -45);
        N(CL_INVALID_KERNEL_NAME, -46);
        N(CL_INVALID_KERNEL_DEFINITION, -47);
        N(CL_INVALID_KERNEL, -48);
        N(CL_INVALID_ARG_INDEX, -49);
        N(CL_INVALID_ARG_VALUE, -50);
        N(CL_INVALID_ARG_SIZE, -51);
        N(CL_INVALID_KERNEL_ARGS, -52);
        N(CL_INVALID_WORK_DIMENSION, -53);
        N(CL_INVALID_WORK_GROUP_SIZE, -54);
        N(CL_INVALID_WORK_ITEM_SIZE, -55);
        N(CL_INVALID_GLOBAL_OFFSET, -56);
        N(CL_INVALID_EVENT_WAIT_LIST, -57);
        N(CL_INVALID_EVENT, -58);
        N(CL_INVALID_OPERATION, -59);
        N(CL_INVALID_GL_OBJECT, -60);
        N(CL_INVALID_BUFFER_SIZE, -61);
        N(CL_INVALID_MIP_LEVEL, -62);
        N(CL_INVALID_GLOBAL_WORK_SIZE, -63);
        N(CL_INVALID_PROPERTY, -64);
        N(CL_INVALID_IMAGE_DESCRIPTOR, -65);
        N(CL_INVALID_COMPILER_OPTIONS, -66);
        N(CL_INVALID_LINKER_OPTIONS, -67);
        N(CL_INVALID_DEVICE_PARTITION_COUNT, -68);
        N(CL_INVALID_PIPE_SIZE, -69);
        N(CL_INVALID_DEVICE_QUEUE, -70);
        N(CL_PLATFORM_NOT_FOUND_KHR, -1001);
#undef N
    default:
        return "unknown status";
    }
}

static void default_log(cllm_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level == CLLM_LOG_INFO)
        fprintf(stderr, "%s\n", msg);
    else
        fprintf(stderr, "cllm %s: %s\n", names[level], msg);
}

static cllm_log_fn log_fn = default_log;
static void *log_user;
static cllm_log_level log_min = CLLM_LOG_INFO;

void cllm_log_set(cllm_log_fn fn, void *user, cllm_log_level min_level) {
    log_fn = fn ? fn : default_log;
    log_user = user;
    log_min = min_level;
}

void cllm_log(cllm_log_level level, const char *fmt, ...) {
    if (level < log_min) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}
