// A small, version-neutral C interface to oneDNN's matmul primitive.
// oneDNN 2.x (Debian 12) and 3.x (newer distributions) differ in their C API; the
// difference stays inside dnnl_shim.c so Swift code sees one interface.
#ifndef ND_DNNL_SHIM_H
#define ND_DNNL_SHIM_H
#include <stdint.h>

typedef struct nd_matmul nd_matmul;

/// Element type of the A and B operands. C is always float32.
enum { ND_F32 = 0, ND_BF16 = 1 };

/// Creates a batched matmul C[b] (M×N) = op(A[b]) (M×K) · op(B[b]) (K×N) (+ bias[N]) (+ C if accumulate).
/// A is stored (M×K) row-major, or (K×M) when transA; B is (K×N), or (N×K) when transB.
/// Returns NULL and writes a message into err on failure.
nd_matmul *nd_matmul_create(int dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                            int trans_a, int trans_b, int has_bias, int accumulate,
                            char *err, int err_len);
/// Runs the primitive on the given buffers; returns 0 on success.
int nd_matmul_execute(nd_matmul *mm, const void *a, const void *b, const float *bias, float *c);
/// The implementation oneDNN chose (e.g. "brg:avx512_core").
const char *nd_matmul_impl_name(const nd_matmul *mm);
void nd_matmul_destroy(nd_matmul *mm);
/// oneDNN's version as major*10000 + minor*100 + patch.
int nd_dnnl_version(void);

#endif
