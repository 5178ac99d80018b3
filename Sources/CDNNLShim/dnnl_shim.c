#include "dnnl_shim.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dnnl.h>
#include <dnnl_version.h>

struct nd_matmul {
    dnnl_primitive_t prim;
    dnnl_primitive_desc_t pd;
    dnnl_memory_t mem_a, mem_b, mem_bias, mem_c;
    int has_bias;
    char impl[128];
};

static dnnl_engine_t g_engine = NULL;
static dnnl_stream_t g_stream = NULL;

static int ensure_engine(void) {
    if (g_engine) return 0;
    if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) return -1;
    if (dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags) != dnnl_success) return -1;
    return 0;
}

int nd_dnnl_version(void) {
    const dnnl_version_t *v = dnnl_version();
    return v->major * 10000 + v->minor * 100 + v->patch;
}

#if DNNL_VERSION_MAJOR >= 3
typedef dnnl_memory_desc_t md_t;
static int md_make(md_t *md, int nd, const int64_t *dims, dnnl_data_type_t dt, const int64_t *strides) {
    return dnnl_memory_desc_create_with_strides(md, nd, dims, dt, strides) == dnnl_success ? 0 : -1;
}
static void md_free(md_t md) { if (md) dnnl_memory_desc_destroy(md); }
#define MD_ARG(md) (md)
#else
typedef dnnl_memory_desc_t md_t;
static int md_make(md_t *md, int nd, const int64_t *dims, dnnl_data_type_t dt, const int64_t *strides) {
    return dnnl_memory_desc_init_by_strides(md, nd, dims, dt, strides) == dnnl_success ? 0 : -1;
}
static void md_free(md_t md) { (void)md; }
#define MD_ARG(md) (&(md))
#endif

nd_matmul *nd_matmul_create(int dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                            int trans_a, int trans_b, int has_bias, int accumulate,
                            char *err, int err_len) {
    if (ensure_engine() != 0) { snprintf(err, err_len, "oneDNN: could not create the CPU engine"); return NULL; }
    dnnl_data_type_t dt = dtype == ND_BF16 ? dnnl_bf16 : dnnl_f32;
    int64_t a_dims[3] = {batch, m, k}, b_dims[3] = {batch, k, n}, c_dims[3] = {batch, m, n}, bias_dims[3] = {1, 1, n};
    int64_t a_str[3], b_str[3], c_str[3] = {m * n, n, 1}, bias_str[3] = {n, n, 1};
    if (trans_a) { a_str[0] = m * k; a_str[1] = 1; a_str[2] = m; } else { a_str[0] = m * k; a_str[1] = k; a_str[2] = 1; }
    if (trans_b) { b_str[0] = k * n; b_str[1] = 1; b_str[2] = k; } else { b_str[0] = k * n; b_str[1] = n; b_str[2] = 1; }
    md_t a_md, b_md, c_md, bias_md;
    memset(&a_md, 0, sizeof a_md); memset(&b_md, 0, sizeof b_md);
    memset(&c_md, 0, sizeof c_md); memset(&bias_md, 0, sizeof bias_md);
    if (md_make(&a_md, 3, a_dims, dt, a_str) || md_make(&b_md, 3, b_dims, dt, b_str) ||
        md_make(&c_md, 3, c_dims, dnnl_f32, c_str) ||
        (has_bias && md_make(&bias_md, 3, bias_dims, dnnl_f32, bias_str))) {
        snprintf(err, err_len, "oneDNN: invalid memory descriptor for matmul %lldx%lldx%lld", (long long)m, (long long)n, (long long)k);
        return NULL;
    }
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_attr_create(&attr);
    if (accumulate) {
        dnnl_post_ops_create(&po);
#if DNNL_VERSION_MAJOR >= 3
        dnnl_post_ops_append_sum(po, 1.0f, 0, dnnl_data_type_undef);
#else
        dnnl_post_ops_append_sum(po, 1.0f);
#endif
        dnnl_primitive_attr_set_post_ops(attr, po);
    }
    nd_matmul *mm = calloc(1, sizeof *mm);
    mm->has_bias = has_bias;
    dnnl_status_t st;
#if DNNL_VERSION_MAJOR >= 3
    st = dnnl_matmul_primitive_desc_create(&mm->pd, g_engine, a_md, b_md, has_bias ? bias_md : NULL, c_md, attr);
#else
    dnnl_matmul_desc_t desc;
    st = dnnl_matmul_desc_init(&desc, &a_md, &b_md, has_bias ? &bias_md : NULL, &c_md);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&mm->pd, &desc, attr, g_engine, NULL);
#endif
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) {
        snprintf(err, err_len, "oneDNN: no matmul implementation for %s %lldx%lldx%lld (status %d)",
                 dtype == ND_BF16 ? "bf16" : "f32", (long long)m, (long long)n, (long long)k, (int)st);
        free(mm); md_free(a_md); md_free(b_md); md_free(c_md); if (has_bias) md_free(bias_md);
        return NULL;
    }
    dnnl_primitive_create(&mm->prim, mm->pd);
    dnnl_memory_create(&mm->mem_a, MD_ARG(a_md), g_engine, DNNL_MEMORY_NONE);
    dnnl_memory_create(&mm->mem_b, MD_ARG(b_md), g_engine, DNNL_MEMORY_NONE);
    dnnl_memory_create(&mm->mem_c, MD_ARG(c_md), g_engine, DNNL_MEMORY_NONE);
    if (has_bias) dnnl_memory_create(&mm->mem_bias, MD_ARG(bias_md), g_engine, DNNL_MEMORY_NONE);
    md_free(a_md); md_free(b_md); md_free(c_md); if (has_bias) md_free(bias_md);
    const char *impl = NULL;
    dnnl_primitive_desc_query(mm->pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(mm->impl, sizeof mm->impl, "%s", impl ? impl : "unknown");
    return mm;
}

int nd_matmul_execute(nd_matmul *mm, const void *a, const void *b, const float *bias, float *c) {
    dnnl_memory_set_data_handle(mm->mem_a, (void *)a);
    dnnl_memory_set_data_handle(mm->mem_b, (void *)b);
    dnnl_memory_set_data_handle(mm->mem_c, c);
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, mm->mem_a}, {DNNL_ARG_WEIGHTS, mm->mem_b}, {DNNL_ARG_DST, mm->mem_c}, {DNNL_ARG_BIAS, mm->mem_bias}};
    int nargs = 3;
    if (mm->has_bias) { dnnl_memory_set_data_handle(mm->mem_bias, (void *)bias); nargs = 4; }
    if (dnnl_primitive_execute(mm->prim, g_stream, nargs, args) != dnnl_success) return -1;
    return dnnl_stream_wait(g_stream) == dnnl_success ? 0 : -1;
}

const char *nd_matmul_impl_name(const nd_matmul *mm) { return mm->impl; }

void nd_matmul_destroy(nd_matmul *mm) {
    if (!mm) return;
    dnnl_primitive_destroy(mm->prim);
    dnnl_primitive_desc_destroy(mm->pd);
    dnnl_memory_destroy(mm->mem_a); dnnl_memory_destroy(mm->mem_b); dnnl_memory_destroy(mm->mem_c);
    if (mm->has_bias) dnnl_memory_destroy(mm->mem_bias);
    free(mm);
}
