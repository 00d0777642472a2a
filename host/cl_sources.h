/* host/cl_sources.h — the cl/ *.cl files embedded at build time (generated cl_sources.c). */
#ifndef CLLM_CL_SOURCES_H
#define CLLM_CL_SOURCES_H
#include <stddef.h>

typedef struct {
    const char *name; /* "layernorm.cl" */
    const char *text; /* NUL-terminated source */
    size_t len;
} cllm_cl_source;

extern const cllm_cl_source cllm_cl_sources[];
extern const int cllm_cl_source_count;

#endif
