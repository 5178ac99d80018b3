// Build (OUT holds libcuda.so.1 from fake_cuda.cpp, which provides nd_emu_enqueue; add -pthread on
// a glibc older than 2.34):
//   clang++ -std=c++17 -O2 -fPIC -shared fake_cublaslt.cpp -o OUT/libcublasLt.so -Wl,-soname,libcublasLt.so \
//     -L OUT -l:libcuda.so.1 -Wl,-rpath,'$ORIGIN'
//
// A CPU stand-in for NVIDIA's libcublasLt: the subset of cublasLt.h (cuBLAS 12.9 header) that
// Sources/NanoCUDA/CUBLASLt.swift uses, with the same C signatures, enum values and struct layouts,
// so the CUDA backend's GEMM path can be tested without a GPU.
//
// - Descriptors (matmul, matrix layout, preference) are heap objects holding every attribute as raw
//   bytes. Attributes the header documents are checked for their exact size (the real library
//   answers CUBLAS_STATUS_INVALID_VALUE on a size mismatch) and have the header's defaults; unknown
//   attribute ids are accepted and stored.
// - cublasLtMatmulAlgoGetHeuristic validates the problem as cublasLtMatmul will and returns one
//   algorithm (workspace 0) whose 64-byte blob records the problem's types and the alignments the
//   preference promised; cublasLtMatmul checks the blob against its arguments.
// - cublasLtMatmul computes D = epilogue(alpha·op(A)·op(B) + beta·C (+ bias)) with double
//   accumulation for A/B in fp32, fp16 or bf16 (fp64 with CUBLAS_COMPUTE_64F), C/D in fp32 or the
//   operands' 16-bit type, column- or row-ordered layouts with leading dimensions, strided batches,
//   CUBLAS_OP_N/T/C, and the DEFAULT, RELU, BIAS, RELU_BIAS, GELU and GELU_BIAS epilogues (bias of
//   length rows(D), added to every column; GELU is the tanh approximation). TF32 / fast compute
//   types compute in full precision. Stores round to nearest even as CUDA's conversions do.
// - The work is not run here: everything it needs (pointers, sizes, types, host alpha/beta values,
//   bias pointer, epilogue) is copied into a heap context handed to nd_emu_enqueue, which runs it
//   in stream order or records it into a CUDA graph that is being captured.
//
// Device pointers are the fake driver's host addresses.
//
// Environment: ND_EMU_CUBLASLT_LOG=1 logs every matmul and heuristic query to stderr;
// ND_EMU_CUBLASLT_STRICT=1 turns the warning about a bias pointer under 16-byte alignment (which
// faults with "misaligned address" on real GPUs) into a CUBLAS_STATUS_INVALID_VALUE.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <thread>
#include <vector>

extern "C" void nd_emu_enqueue(void *stream, void (*run)(void *), void *ctx, void (*release)(void *));

namespace {

// ---- cublas_api.h / library_types.h / cublasLt.h values -------------------------------------

typedef int cublasStatus_t;
enum : int {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16,
};

// cudaDataType_t
enum : int32_t { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16F = 2, CUDA_R_16BF = 14 };

// cublasComputeType_t
enum : int32_t {
    CUBLAS_COMPUTE_16F = 64, CUBLAS_COMPUTE_16F_PEDANTIC = 65,
    CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    CUBLAS_COMPUTE_64F = 70, CUBLAS_COMPUTE_64F_PEDANTIC = 71,
    CUBLAS_COMPUTE_32I = 72, CUBLAS_COMPUTE_32I_PEDANTIC = 73,
    CUBLAS_COMPUTE_32F_FAST_16F = 74, CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77, CUBLAS_COMPUTE_32F_EMULATED_16BFX9 = 78,
};

enum : int32_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 };
enum : int32_t { CUBLAS_FILL_MODE_FULL = 2 };
enum : int32_t { CUBLASLT_POINTER_MODE_HOST = 0, CUBLASLT_POINTER_MODE_DEVICE = 1 };
enum : int32_t { CUBLASLT_ORDER_COL = 0, CUBLASLT_ORDER_ROW = 1 };

// cublasLtEpilogue_t
enum : uint32_t {
    CUBLASLT_EPILOGUE_DEFAULT = 1, CUBLASLT_EPILOGUE_RELU = 2, CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_RELU_BIAS = 6, CUBLASLT_EPILOGUE_GELU = 32, CUBLASLT_EPILOGUE_GELU_BIAS = 36,
};

// cublasLtMatmulDescAttributes_t
enum : int {
    DESC_COMPUTE_TYPE = 0, DESC_SCALE_TYPE = 1, DESC_POINTER_MODE = 2, DESC_TRANSA = 3, DESC_TRANSB = 4,
    DESC_TRANSC = 5, DESC_FILL_MODE = 6, DESC_EPILOGUE = 7, DESC_BIAS_POINTER = 8, DESC_BIAS_BATCH_STRIDE = 10,
    DESC_EPILOGUE_AUX_POINTER = 11, DESC_EPILOGUE_AUX_LD = 12, DESC_EPILOGUE_AUX_BATCH_STRIDE = 13,
    DESC_ALPHA_VECTOR_BATCH_STRIDE = 14, DESC_SM_COUNT_TARGET = 15, DESC_A_SCALE_POINTER = 17,
    DESC_B_SCALE_POINTER = 18, DESC_C_SCALE_POINTER = 19, DESC_D_SCALE_POINTER = 20, DESC_AMAX_D_POINTER = 21,
    DESC_EPILOGUE_AUX_DATA_TYPE = 22, DESC_EPILOGUE_AUX_SCALE_POINTER = 23, DESC_EPILOGUE_AUX_AMAX_POINTER = 24,
    DESC_FAST_ACCUM = 25, DESC_BIAS_DATA_TYPE = 26, DESC_ATOMIC_SYNC_NUM_CHUNKS_D_ROWS = 27,
    DESC_ATOMIC_SYNC_NUM_CHUNKS_D_COLS = 28, DESC_ATOMIC_SYNC_IN_COUNTERS_POINTER = 29,
    DESC_ATOMIC_SYNC_OUT_COUNTERS_POINTER = 30, DESC_A_SCALE_MODE = 31, DESC_B_SCALE_MODE = 32,
    DESC_C_SCALE_MODE = 33, DESC_D_SCALE_MODE = 34, DESC_EPILOGUE_AUX_SCALE_MODE = 35,
    DESC_D_OUT_SCALE_POINTER = 36, DESC_D_OUT_SCALE_MODE = 37,
};

// cublasLtMatrixLayoutAttribute_t
enum : int {
    LAYOUT_TYPE = 0, LAYOUT_ORDER = 1, LAYOUT_ROWS = 2, LAYOUT_COLS = 3, LAYOUT_LD = 4, LAYOUT_BATCH_COUNT = 5,
    LAYOUT_STRIDED_BATCH_OFFSET = 6, LAYOUT_PLANE_OFFSET = 7, LAYOUT_BATCH_MODE = 8,
};

// cublasLtMatmulPreferenceAttributes_t
enum : int {
    PREF_SEARCH_MODE = 0, PREF_MAX_WORKSPACE_BYTES = 1, PREF_REDUCTION_SCHEME_MASK = 3,
    PREF_MIN_ALIGNMENT_A_BYTES = 5, PREF_MIN_ALIGNMENT_B_BYTES = 6, PREF_MIN_ALIGNMENT_C_BYTES = 7,
    PREF_MIN_ALIGNMENT_D_BYTES = 8, PREF_MAX_WAVES_COUNT = 9, PREF_IMPL_MASK = 12,
};

// ---- logging ------------------------------------------------------------------------------

bool envFlag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}
bool logging() { static const bool on = envFlag("ND_EMU_CUBLASLT_LOG"); return on; }
bool strict() { static const bool on = envFlag("ND_EMU_CUBLASLT_STRICT"); return on; }

void logf(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "[fake cublasLt] ");
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
}

/// An error worth a line even without ND_EMU_CUBLASLT_LOG: the caller gets only a status code.
cublasStatus_t fail(cublasStatus_t status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "[fake cublasLt] error %d: ", status);
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
    return status;
}

// ---- descriptors ----------------------------------------------------------------------------

/// Attributes as raw bytes. `known` holds the header's defaults: their sizes are checked on set.
struct Attributes {
    std::map<int, std::vector<uint8_t>> values;
    std::map<int, size_t> knownSize;

    template <typename T> void define(int attribute, T value) {
        std::vector<uint8_t> bytes(sizeof(T));
        memcpy(bytes.data(), &value, sizeof(T));
        values[attribute] = bytes;
        knownSize[attribute] = sizeof(T);
    }
    cublasStatus_t set(int attribute, const void *buf, size_t size, const char *what) {
        if (!buf) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s attribute %d: buf is NULL", what, attribute);
        auto known = knownSize.find(attribute);
        if (known != knownSize.end() && known->second != size)
            return fail(CUBLAS_STATUS_INVALID_VALUE, "%s attribute %d: sizeInBytes %zu, the header's type has %zu",
                        what, attribute, size, known->second);
        values[attribute] = std::vector<uint8_t>((const uint8_t *)buf, (const uint8_t *)buf + size);
        return CUBLAS_STATUS_SUCCESS;
    }
    cublasStatus_t get(int attribute, void *buf, size_t size, size_t *written) const {
        auto it = values.find(attribute);
        if (it == values.end()) return CUBLAS_STATUS_INVALID_VALUE;
        if (size == 0) {
            if (!written) return CUBLAS_STATUS_INVALID_VALUE;
            *written = it->second.size();
            return CUBLAS_STATUS_SUCCESS;
        }
        if (!buf || size != it->second.size()) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(buf, it->second.data(), size);
        if (written) *written = size;
        return CUBLAS_STATUS_SUCCESS;
    }
    template <typename T> T value(int attribute) const {
        T v{};
        auto it = values.find(attribute);
        if (it != values.end()) memcpy(&v, it->second.data(), std::min(sizeof(T), it->second.size()));
        return v;
    }
};

constexpr uint32_t kHandleMagic = 0x4e444c48, kDescMagic = 0x4e444c44, kLayoutMagic = 0x4e444c4c,
                   kPreferenceMagic = 0x4e444c50, kAlgoMagic = 0x4e444c41, kDead = 0xdeadbeef;

struct Handle { uint32_t magic = kHandleMagic; };
struct MatmulDesc { uint32_t magic = kDescMagic; Attributes attributes; };
struct Layout { uint32_t magic = kLayoutMagic; Attributes attributes; };
struct Preference { uint32_t magic = kPreferenceMagic; Attributes attributes; };

template <typename T> T *checked(void *p, uint32_t magic) {
    T *object = (T *)p;
    return object && object->magic == magic ? object : nullptr;
}

/// cublasLtMatmulAlgo_t (uint64_t data[8]) as this library fills it.
struct Algo {
    uint32_t magic, computeType;
    int32_t scaleType, typeA, typeB, typeC, typeD, epilogue;
    uint32_t alignA, alignB, alignC, alignD;
    uint8_t unused[16];
};
static_assert(sizeof(Algo) == 64, "cublasLtMatmulAlgo_t is 64 bytes");

/// cublasLtMatmulHeuristicResult_t.
struct HeuristicResult {
    uint64_t algo[8];
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
};
static_assert(sizeof(HeuristicResult) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes");

// ---- number formats -------------------------------------------------------------------------

size_t elementSize(int32_t type) {
    switch (type) {
    case CUDA_R_32F: return 4;
    case CUDA_R_64F: return 8;
    case CUDA_R_16F: case CUDA_R_16BF: return 2;
    default: return 0;
    }
}

const char *typeName(int32_t type) {
    switch (type) {
    case CUDA_R_32F: return "R_32F";
    case CUDA_R_64F: return "R_64F";
    case CUDA_R_16F: return "R_16F";
    case CUDA_R_16BF: return "R_16BF";
    default: return "?";
    }
}

float halfToFloat(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {   // subnormal: mantissa · 2^-24, exact in fp32
        float f = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/// Round to nearest even, as cuda_fp16.hpp's __float2half_rn (NaN → 0x7fff, overflow → ±inf).
uint16_t floatToHalf(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t u = x & 0x7fffffffu, sign = (x >> 16) & 0x8000u, remainder, result;
    if (u >= 0x7f800000u) {
        return (uint16_t)(u == 0x7f800000u ? (sign | 0x7c00u) : 0x7fffu);
    } else if (u > 0x477fefffu) {
        remainder = 0x80000000u;
        result = sign | 0x7bffu;
    } else if (u >= 0x38800000u) {
        remainder = u << 19;
        u -= 0x38000000u;
        result = sign | (u >> 13);
    } else if (u < 0x33000001u) {
        remainder = u;
        result = sign;
    } else {
        uint32_t exponent = u >> 23, shift = 0x7eu - exponent, mantissa = (u & 0x7fffffu) | 0x800000u;
        remainder = mantissa << (32 - shift);
        result = (sign | (mantissa >> shift)) & 0xffffu;
    }
    if (remainder > 0x80000000u || (remainder == 0x80000000u && (result & 1u))) result++;
    return (uint16_t)result;
}

float bfloat16ToFloat(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/// Round to nearest even, as cuda_bf16.hpp's __float2bfloat16_rn (NaN → 0x7fff).
uint16_t floatToBfloat16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    uint32_t remainder = x << 16, result = x >> 16;
    if (remainder > 0x80000000u || (remainder == 0x80000000u && (result & 1u))) result++;
    return (uint16_t)result;
}

double load(const void *p, int32_t type) {
    switch (type) {
    case CUDA_R_32F: { float f; memcpy(&f, p, 4); return f; }
    case CUDA_R_64F: { double d; memcpy(&d, p, 8); return d; }
    case CUDA_R_16F: { uint16_t h; memcpy(&h, p, 2); return halfToFloat(h); }
    case CUDA_R_16BF: { uint16_t h; memcpy(&h, p, 2); return bfloat16ToFloat(h); }
    default: return 0;
    }
}

/// Stores `v` as the GPU would from its fp32 result: rounded to fp32, then to a 16-bit type.
void store(void *p, int32_t type, double v) {
    switch (type) {
    case CUDA_R_32F: { float f = (float)v; memcpy(p, &f, 4); break; }
    case CUDA_R_64F: { memcpy(p, &v, 8); break; }
    case CUDA_R_16F: { uint16_t h = floatToHalf((float)v); memcpy(p, &h, 2); break; }
    case CUDA_R_16BF: { uint16_t h = floatToBfloat16((float)v); memcpy(p, &h, 2); break; }
    }
}

// ---- problem resolution (shared by the heuristic and the matmul) ----------------------------

struct Matrix {
    int32_t type, order;
    uint64_t rows, cols;
    int64_t ld, stride;
    int32_t batch;
    /// Byte offset of element (r, c) from the matrix start.
    size_t offset(uint64_t r, uint64_t c) const {
        size_t index = order == CUBLASLT_ORDER_COL ? (size_t)(r + c * (uint64_t)ld) : (size_t)(r * (uint64_t)ld + c);
        return index * elementSize(type);
    }
};

struct Problem {
    int32_t computeType, scaleType, pointerMode, transA, transB;
    uint32_t epilogue;
    int32_t biasType;
    int64_t biasStride;
    const void *bias;
    Matrix a, b, c, d;
    uint64_t m, n, k;
    int32_t batch;
    bool fp64;
    bool hasBias() const { return epilogue & CUBLASLT_EPILOGUE_BIAS; }
};

cublasStatus_t readMatrix(const Layout *layout, const char *name, Matrix &out) {
    const Attributes &at = layout->attributes;
    out.type = (int32_t)at.value<uint32_t>(LAYOUT_TYPE);
    out.order = at.value<int32_t>(LAYOUT_ORDER);
    out.rows = at.value<uint64_t>(LAYOUT_ROWS);
    out.cols = at.value<uint64_t>(LAYOUT_COLS);
    out.ld = at.value<int64_t>(LAYOUT_LD);
    out.batch = at.value<int32_t>(LAYOUT_BATCH_COUNT);
    out.stride = at.value<int64_t>(LAYOUT_STRIDED_BATCH_OFFSET);
    if (elementSize(out.type) == 0) return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: data type %d not emulated", name, out.type);
    if (out.order != CUBLASLT_ORDER_COL && out.order != CUBLASLT_ORDER_ROW)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: order %d not emulated (COL and ROW are)", name, out.order);
    if (at.value<int64_t>(LAYOUT_PLANE_OFFSET) != 0) return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: planar complex", name);
    if (at.value<uint32_t>(LAYOUT_BATCH_MODE) != 0)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: only the strided batch mode is emulated", name);
    if (out.batch < 1) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: BATCH_COUNT %d", name, out.batch);
    if (out.stride < 0) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: negative STRIDED_BATCH_OFFSET %lld", name, (long long)out.stride);
    uint64_t minLd = out.order == CUBLASLT_ORDER_COL ? out.rows : out.cols;
    if (out.ld < 1 || (uint64_t)out.ld < minLd)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: LD %lld < %s %llu", name, (long long)out.ld,
                    out.order == CUBLASLT_ORDER_COL ? "rows" : "cols", (unsigned long long)minLd);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t resolve(const MatmulDesc *desc, const Layout *la, const Layout *lb, const Layout *lc, const Layout *ld,
                       Problem &p) {
    const Attributes &at = desc->attributes;
    p.computeType = at.value<int32_t>(DESC_COMPUTE_TYPE);
    p.scaleType = at.value<int32_t>(DESC_SCALE_TYPE);
    p.pointerMode = at.value<int32_t>(DESC_POINTER_MODE);
    p.transA = at.value<int32_t>(DESC_TRANSA);
    p.transB = at.value<int32_t>(DESC_TRANSB);
    p.epilogue = at.value<uint32_t>(DESC_EPILOGUE);
    p.bias = at.value<const void *>(DESC_BIAS_POINTER);
    p.biasStride = at.value<int64_t>(DESC_BIAS_BATCH_STRIDE);
    p.biasType = at.value<int32_t>(DESC_BIAS_DATA_TYPE);
    cublasStatus_t s;
    if ((s = readMatrix(la, "Adesc", p.a)) || (s = readMatrix(lb, "Bdesc", p.b)) || (s = readMatrix(lc, "Cdesc", p.c)) ||
        (s = readMatrix(ld, "Ddesc", p.d)))
        return s;

    // Types: what cuBLASLt's cublasLtMatmul() table allows for these compute types.
    switch (p.computeType) {
    case CUBLAS_COMPUTE_32F: case CUBLAS_COMPUTE_32F_PEDANTIC: case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF: case CUBLAS_COMPUTE_32F_FAST_TF32: case CUBLAS_COMPUTE_32F_EMULATED_16BFX9:
        p.fp64 = false;
        if (p.scaleType != CUDA_R_32F)
            return fail(CUBLAS_STATUS_NOT_SUPPORTED, "compute type %d needs scale type R_32F, got %d", p.computeType, p.scaleType);
        break;
    case CUBLAS_COMPUTE_64F: case CUBLAS_COMPUTE_64F_PEDANTIC:
        p.fp64 = true;
        if (p.scaleType != CUDA_R_64F)
            return fail(CUBLAS_STATUS_NOT_SUPPORTED, "compute type %d needs scale type R_64F, got %d", p.computeType, p.scaleType);
        break;
    default:
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "compute type %d not emulated", p.computeType);
    }
    if (p.a.type != p.b.type)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "A is %s but B is %s", typeName(p.a.type), typeName(p.b.type));
    if (p.c.type != p.d.type)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "C is %s but D is %s", typeName(p.c.type), typeName(p.d.type));
    bool typesOK;
    if (p.fp64) {
        typesOK = p.a.type == CUDA_R_64F && p.c.type == CUDA_R_64F;
    } else if (p.computeType == CUBLAS_COMPUTE_32F || p.computeType == CUBLAS_COMPUTE_32F_PEDANTIC) {
        typesOK = (p.a.type == CUDA_R_32F && p.c.type == CUDA_R_32F) ||
                  ((p.a.type == CUDA_R_16F || p.a.type == CUDA_R_16BF) && (p.c.type == p.a.type || p.c.type == CUDA_R_32F));
    } else {   // the fast / emulated fp32 compute types take fp32 matrices only
        typesOK = p.a.type == CUDA_R_32F && p.c.type == CUDA_R_32F;
    }
    if (!typesOK)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "no kernel for compute type %d with A/B %s and C/D %s", p.computeType,
                    typeName(p.a.type), typeName(p.c.type));

    if (p.pointerMode != CUBLASLT_POINTER_MODE_HOST && p.pointerMode != CUBLASLT_POINTER_MODE_DEVICE)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "pointer mode %d not emulated", p.pointerMode);
    for (int32_t t : {p.transA, p.transB})
        if (t != CUBLAS_OP_N && t != CUBLAS_OP_T && t != CUBLAS_OP_C)
            return fail(CUBLAS_STATUS_INVALID_VALUE, "transpose value %d", t);
    if (at.value<int32_t>(DESC_TRANSC) != CUBLAS_OP_N) return fail(CUBLAS_STATUS_NOT_SUPPORTED, "TRANSC must be CUBLAS_OP_N");
    if (at.value<int32_t>(DESC_FILL_MODE) != CUBLAS_FILL_MODE_FULL)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "FILL_MODE %d not emulated", at.value<int32_t>(DESC_FILL_MODE));
    switch (p.epilogue) {
    case CUBLASLT_EPILOGUE_DEFAULT: case CUBLASLT_EPILOGUE_RELU: case CUBLASLT_EPILOGUE_BIAS:
    case CUBLASLT_EPILOGUE_RELU_BIAS: case CUBLASLT_EPILOGUE_GELU: case CUBLASLT_EPILOGUE_GELU_BIAS:
        break;
    default:
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "epilogue %u not emulated", p.epilogue);
    }
    if (p.hasBias()) {
        if (p.biasType == -1) p.biasType = p.d.type;   // the header: bias elements default to D's type
        if (elementSize(p.biasType) == 0) return fail(CUBLAS_STATUS_NOT_SUPPORTED, "bias data type %d", p.biasType);
        if (p.biasStride < 0) return fail(CUBLAS_STATUS_INVALID_VALUE, "negative BIAS_BATCH_STRIDE");
    }

    // Shapes: op(A) is m×k, op(B) k×n, C and D m×n.
    bool ta = p.transA != CUBLAS_OP_N, tb = p.transB != CUBLAS_OP_N;
    p.m = ta ? p.a.cols : p.a.rows;
    p.k = ta ? p.a.rows : p.a.cols;
    uint64_t kb = tb ? p.b.cols : p.b.rows;
    p.n = tb ? p.b.rows : p.b.cols;
    if (kb != p.k)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "op(A) is %llux%llu but op(B) is %llux%llu", (unsigned long long)p.m,
                    (unsigned long long)p.k, (unsigned long long)kb, (unsigned long long)p.n);
    for (const Matrix *x : {&p.c, &p.d})
        if (x->rows != p.m || x->cols != p.n)
            return fail(CUBLAS_STATUS_INVALID_VALUE, "%s is %llux%llu, op(A)·op(B) is %llux%llu", x == &p.c ? "C" : "D",
                        (unsigned long long)x->rows, (unsigned long long)x->cols, (unsigned long long)p.m,
                        (unsigned long long)p.n);
    p.batch = p.d.batch;
    if (p.a.batch != p.batch || p.b.batch != p.batch || p.c.batch != p.batch)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "batch counts differ: A %d B %d C %d D %d", p.a.batch, p.b.batch, p.c.batch,
                    p.d.batch);
    return CUBLAS_STATUS_SUCCESS;
}

uint32_t alignmentOf(const void *p) {
    uintptr_t a = (uintptr_t)p;
    if (a == 0) return 256;
    uint32_t r = 1;
    while (r < 256 && (a & r) == 0) r <<= 1;
    return r;
}

// ---- execution ------------------------------------------------------------------------------

/// Everything one matmul needs, copied at call time (a CUDA graph may run it many times).
struct Work {
    Problem p;
    const char *A, *B, *C;
    char *D;
    double alpha, beta;                    // host pointer mode
    const void *alphaPtr, *betaPtr;        // device pointer mode: read when the work runs
};

double gelu(double x) {
    const double c = 0.7978845608028654;   // √(2/π)
    return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}

void runWork(void *context) {
    const Work &w = *(const Work *)context;
    const Problem &p = w.p;
    double alpha = w.alpha, beta = w.beta;
    if (p.pointerMode == CUBLASLT_POINTER_MODE_DEVICE) {
        alpha = load(w.alphaPtr, p.scaleType);
        beta = load(w.betaPtr, p.scaleType);
    }
    const uint64_t m = p.m, n = p.n, k = p.k;
    if (m == 0 || n == 0) return;
    const bool ta = p.transA != CUBLAS_OP_N, tb = p.transB != CUBLAS_OP_N, product = alpha != 0 && k > 0;
    const size_t esA = elementSize(p.a.type), esB = elementSize(p.b.type), esC = elementSize(p.c.type),
                 esD = elementSize(p.d.type), esBias = p.hasBias() ? elementSize(p.biasType) : 0;
    std::vector<double> opA, opB;
    try {
        if (product) { opA.resize(m * k); opB.resize(n * k); }
    } catch (const std::bad_alloc &) {
        fprintf(stderr, "[fake cublasLt] out of memory packing a %llux%llux%llu matmul\n", (unsigned long long)m,
                (unsigned long long)n, (unsigned long long)k);
        return;
    }
    unsigned threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
    if ((double)m * n * std::max<uint64_t>(k, 1) < 4e6) threads = 1;

    for (int32_t batch = 0; batch < p.batch; batch++) {
        const char *A = w.A + (size_t)batch * p.a.stride * esA, *B = w.B + (size_t)batch * p.b.stride * esB;
        const char *C = w.C ? w.C + (size_t)batch * p.c.stride * esC : nullptr;
        char *D = w.D + (size_t)batch * p.d.stride * esD;
        const char *bias = p.hasBias() ? (const char *)p.bias + (size_t)batch * p.biasStride * esBias : nullptr;
        if (product) {
            // op(A) by rows (opA[i·k + l]) and op(B) by columns (opB[j·k + l]): contiguous dot products.
            for (uint64_t i = 0; i < m; i++)
                for (uint64_t l = 0; l < k; l++)
                    opA[i * k + l] = load(A + (ta ? p.a.offset(l, i) : p.a.offset(i, l)), p.a.type);
            for (uint64_t j = 0; j < n; j++)
                for (uint64_t l = 0; l < k; l++)
                    opB[j * k + l] = load(B + (tb ? p.b.offset(j, l) : p.b.offset(l, j)), p.b.type);
        }
        auto columns = [&](uint64_t j0, uint64_t j1) {
            for (uint64_t j = j0; j < j1; j++) {
                for (uint64_t i = 0; i < m; i++) {
                    double v = 0;
                    if (product) {
                        const double *x = &opA[i * k], *y = &opB[j * k];
                        double acc = 0;
                        for (uint64_t l = 0; l < k; l++) acc += x[l] * y[l];
                        v = alpha * acc;
                    }
                    if (beta != 0) v += beta * load(C + p.c.offset(i, j), p.c.type);
                    if (bias) v += load(bias + i * esBias, p.biasType);
                    switch (p.epilogue) {
                    case CUBLASLT_EPILOGUE_RELU: case CUBLASLT_EPILOGUE_RELU_BIAS: v = v > 0 ? v : 0; break;
                    case CUBLASLT_EPILOGUE_GELU: case CUBLASLT_EPILOGUE_GELU_BIAS: v = gelu(v); break;
                    default: break;
                    }
                    store(D + p.d.offset(i, j), p.d.type, v);
                }
            }
        };
        if (threads == 1 || n < 2) {
            columns(0, n);
        } else {
            std::vector<std::thread> pool;
            uint64_t per = (n + threads - 1) / threads;
            for (unsigned t = 0; t < threads; t++) {
                uint64_t j0 = t * per, j1 = std::min<uint64_t>(n, j0 + per);
                if (j0 < j1) pool.emplace_back(columns, j0, j1);
            }
            for (auto &t : pool) t.join();
        }
    }
}

void releaseWork(void *context) { delete (Work *)context; }

}  // namespace

// ---- the C API ----------------------------------------------------------------------------

extern "C" {

typedef void *cublasLtHandle_t;
typedef void *cublasLtMatmulDesc_t;
typedef void *cublasLtMatrixLayout_t;
typedef void *cublasLtMatmulPreference_t;
typedef void *cudaStream_t;

__attribute__((visibility("default"))) size_t cublasLtGetVersion(void) { return 120903; }
__attribute__((visibility("default"))) size_t cublasLtGetCudartVersion(void) { return 12090; }

__attribute__((visibility("default"))) const char *cublasLtGetStatusName(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "<unknown>";
    }
}
__attribute__((visibility("default"))) const char *cublasLtGetStatusString(cublasStatus_t status) {
    return cublasLtGetStatusName(status);
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new (std::nothrow) Handle();
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    Handle *h = checked<Handle>(handle, kHandleMagic);
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->magic = kDead;
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

// Matmul descriptor

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *out, int32_t computeType,
                                                                               int32_t scaleType) {
    if (!out) return CUBLAS_STATUS_INVALID_VALUE;
    MatmulDesc *d = new (std::nothrow) MatmulDesc();
    if (!d) return CUBLAS_STATUS_ALLOC_FAILED;
    Attributes &a = d->attributes;
    a.define<int32_t>(DESC_COMPUTE_TYPE, computeType);
    a.define<int32_t>(DESC_SCALE_TYPE, scaleType);
    a.define<int32_t>(DESC_POINTER_MODE, CUBLASLT_POINTER_MODE_HOST);
    a.define<int32_t>(DESC_TRANSA, CUBLAS_OP_N);
    a.define<int32_t>(DESC_TRANSB, CUBLAS_OP_N);
    a.define<int32_t>(DESC_TRANSC, CUBLAS_OP_N);
    a.define<int32_t>(DESC_FILL_MODE, CUBLAS_FILL_MODE_FULL);
    a.define<uint32_t>(DESC_EPILOGUE, CUBLASLT_EPILOGUE_DEFAULT);
    a.define<const void *>(DESC_BIAS_POINTER, nullptr);
    a.define<int64_t>(DESC_BIAS_BATCH_STRIDE, 0);
    a.define<void *>(DESC_EPILOGUE_AUX_POINTER, nullptr);
    a.define<int64_t>(DESC_EPILOGUE_AUX_LD, 0);
    a.define<int64_t>(DESC_EPILOGUE_AUX_BATCH_STRIDE, 0);
    a.define<int64_t>(DESC_ALPHA_VECTOR_BATCH_STRIDE, 0);
    a.define<int32_t>(DESC_SM_COUNT_TARGET, 0);
    for (int attr : {DESC_A_SCALE_POINTER, DESC_B_SCALE_POINTER, DESC_C_SCALE_POINTER, DESC_D_SCALE_POINTER,
                     DESC_AMAX_D_POINTER, DESC_EPILOGUE_AUX_SCALE_POINTER, DESC_EPILOGUE_AUX_AMAX_POINTER,
                     DESC_ATOMIC_SYNC_IN_COUNTERS_POINTER, DESC_ATOMIC_SYNC_OUT_COUNTERS_POINTER, DESC_D_OUT_SCALE_POINTER})
        a.define<void *>(attr, nullptr);
    a.define<int32_t>(DESC_EPILOGUE_AUX_DATA_TYPE, -1);
    a.define<int8_t>(DESC_FAST_ACCUM, 0);
    a.define<int32_t>(DESC_BIAS_DATA_TYPE, -1);
    for (int attr : {DESC_ATOMIC_SYNC_NUM_CHUNKS_D_ROWS, DESC_ATOMIC_SYNC_NUM_CHUNKS_D_COLS, DESC_A_SCALE_MODE,
                     DESC_B_SCALE_MODE, DESC_C_SCALE_MODE, DESC_D_SCALE_MODE, DESC_EPILOGUE_AUX_SCALE_MODE,
                     DESC_D_OUT_SCALE_MODE})
        a.define<int32_t>(attr, 0);
    *out = d;
    return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    if (!desc) return CUBLAS_STATUS_SUCCESS;
    MatmulDesc *d = checked<MatmulDesc>(desc, kDescMagic);
    if (!d) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescDestroy: not a matmul descriptor");
    d->magic = kDead;
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, int attr,
                                                                                     const void *buf, size_t size) {
    MatmulDesc *d = checked<MatmulDesc>(desc, kDescMagic);
    if (!d) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescSetAttribute: not a matmul descriptor");
    return d->attributes.set(attr, buf, size, "matmul descriptor");
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t desc, int attr,
                                                                                     void *buf, size_t size, size_t *written) {
    MatmulDesc *d = checked<MatmulDesc>(desc, kDescMagic);
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    return d->attributes.get(attr, buf, size, written);
}

// Matrix layout

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *out, int32_t type,
                                                                                 uint64_t rows, uint64_t cols, int64_t ld) {
    if (!out) return CUBLAS_STATUS_INVALID_VALUE;
    Layout *l = new (std::nothrow) Layout();
    if (!l) return CUBLAS_STATUS_ALLOC_FAILED;
    Attributes &a = l->attributes;
    a.define<uint32_t>(LAYOUT_TYPE, (uint32_t)type);
    a.define<int32_t>(LAYOUT_ORDER, CUBLASLT_ORDER_COL);
    a.define<uint64_t>(LAYOUT_ROWS, rows);
    a.define<uint64_t>(LAYOUT_COLS, cols);
    a.define<int64_t>(LAYOUT_LD, ld);
    a.define<int32_t>(LAYOUT_BATCH_COUNT, 1);
    a.define<int64_t>(LAYOUT_STRIDED_BATCH_OFFSET, 0);
    a.define<int64_t>(LAYOUT_PLANE_OFFSET, 0);
    a.define<uint32_t>(LAYOUT_BATCH_MODE, 0);
    *out = l;
    return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    if (!layout) return CUBLAS_STATUS_SUCCESS;
    Layout *l = checked<Layout>(layout, kLayoutMagic);
    if (!l) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatrixLayoutDestroy: not a matrix layout");
    l->magic = kDead;
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, int attr,
                                                                                       const void *buf, size_t size) {
    Layout *l = checked<Layout>(layout, kLayoutMagic);
    if (!l) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatrixLayoutSetAttribute: not a matrix layout");
    return l->attributes.set(attr, buf, size, "matrix layout");
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t layout, int attr,
                                                                                       void *buf, size_t size, size_t *written) {
    Layout *l = checked<Layout>(layout, kLayoutMagic);
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    return l->attributes.get(attr, buf, size, written);
}

// Preference

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *out) {
    if (!out) return CUBLAS_STATUS_INVALID_VALUE;
    Preference *p = new (std::nothrow) Preference();
    if (!p) return CUBLAS_STATUS_ALLOC_FAILED;
    Attributes &a = p->attributes;
    a.define<uint32_t>(PREF_SEARCH_MODE, 0);
    a.define<uint64_t>(PREF_MAX_WORKSPACE_BYTES, 0);
    a.define<uint32_t>(PREF_REDUCTION_SCHEME_MASK, 0x7);
    for (int attr : {PREF_MIN_ALIGNMENT_A_BYTES, PREF_MIN_ALIGNMENT_B_BYTES, PREF_MIN_ALIGNMENT_C_BYTES,
                     PREF_MIN_ALIGNMENT_D_BYTES})
        a.define<uint32_t>(attr, 256);
    a.define<float>(PREF_MAX_WAVES_COUNT, 0.0f);
    a.define<uint64_t>(PREF_IMPL_MASK, ~0ull);
    *out = p;
    return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    if (!pref) return CUBLAS_STATUS_SUCCESS;
    Preference *p = checked<Preference>(pref, kPreferenceMagic);
    if (!p) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceDestroy: not a preference");
    p->magic = kDead;
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                                                           int attr, const void *buf,
                                                                                           size_t size) {
    Preference *p = checked<Preference>(pref, kPreferenceMagic);
    if (!p) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceSetAttribute: not a preference");
    return p->attributes.set(attr, buf, size, "preference");
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulPreferenceGetAttribute(cublasLtMatmulPreference_t pref,
                                                                                           int attr, void *buf, size_t size,
                                                                                           size_t *written) {
    Preference *p = checked<Preference>(pref, kPreferenceMagic);
    if (!p) return CUBLAS_STATUS_INVALID_VALUE;
    return p->attributes.get(attr, buf, size, written);
}

// Heuristic and matmul

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t handle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
    cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc, cublasLtMatmulPreference_t preference,
    int requestedAlgoCount, void *heuristicResultsArray, int *returnAlgoCount) {
    if (!checked<Handle>(handle, kHandleMagic)) return CUBLAS_STATUS_NOT_INITIALIZED;
    MatmulDesc *desc = checked<MatmulDesc>(operationDesc, kDescMagic);
    Layout *la = checked<Layout>(Adesc, kLayoutMagic), *lb = checked<Layout>(Bdesc, kLayoutMagic),
           *lc = checked<Layout>(Cdesc, kLayoutMagic), *ld = checked<Layout>(Ddesc, kLayoutMagic);
    Preference *pref = checked<Preference>(preference, kPreferenceMagic);
    if (!desc || !la || !lb || !lc || !ld || !pref)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulAlgoGetHeuristic: a descriptor is NULL or of the wrong kind");
    if (requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulAlgoGetHeuristic: requestedAlgoCount %d, results %p, count %p",
                    requestedAlgoCount, heuristicResultsArray, (void *)returnAlgoCount);
    *returnAlgoCount = 0;
    Problem p;
    cublasStatus_t s = resolve(desc, la, lb, lc, ld, p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    Algo algo{};
    algo.magic = kAlgoMagic;
    algo.computeType = (uint32_t)p.computeType;
    algo.scaleType = p.scaleType;
    algo.typeA = p.a.type; algo.typeB = p.b.type; algo.typeC = p.c.type; algo.typeD = p.d.type;
    algo.epilogue = (int32_t)p.epilogue;
    const Attributes &pa = pref->attributes;
    algo.alignA = pa.value<uint32_t>(PREF_MIN_ALIGNMENT_A_BYTES);
    algo.alignB = pa.value<uint32_t>(PREF_MIN_ALIGNMENT_B_BYTES);
    algo.alignC = pa.value<uint32_t>(PREF_MIN_ALIGNMENT_C_BYTES);
    algo.alignD = pa.value<uint32_t>(PREF_MIN_ALIGNMENT_D_BYTES);
    HeuristicResult result{};
    memcpy(result.algo, &algo, sizeof algo);
    result.workspaceSize = 0;
    result.state = CUBLAS_STATUS_SUCCESS;
    result.wavesCount = 1.0f;
    memcpy(heuristicResultsArray, &result, sizeof result);
    *returnAlgoCount = 1;
    if (logging())
        logf("heuristic: m %llu n %llu k %llu batch %d A %s%s B %s%s C/D %s compute %d epilogue %u align A%u B%u C%u D%u "
             "max workspace %llu",
             (unsigned long long)p.m, (unsigned long long)p.n, (unsigned long long)p.k, p.batch, typeName(p.a.type),
             p.transA ? "ᵀ" : "", typeName(p.b.type), p.transB ? "ᵀ" : "", typeName(p.d.type), p.computeType,
             p.epilogue, algo.alignA, algo.alignB, algo.alignC, algo.alignD,
             (unsigned long long)pa.value<uint64_t>(PREF_MAX_WORKSPACE_BYTES));
    return CUBLAS_STATUS_SUCCESS;
}

__attribute__((visibility("default"))) cublasStatus_t cublasLtMatmul(
    cublasLtHandle_t handle, cublasLtMatmulDesc_t computeDesc, const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc,
    const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
    cublasLtMatrixLayout_t Ddesc, const void *algoPointer, void *workspace, size_t workspaceSizeInBytes,
    cudaStream_t stream) {
    (void)workspace;
    (void)workspaceSizeInBytes;   // every emulated algorithm needs no workspace
    if (!checked<Handle>(handle, kHandleMagic)) return CUBLAS_STATUS_NOT_INITIALIZED;
    MatmulDesc *desc = checked<MatmulDesc>(computeDesc, kDescMagic);
    Layout *la = checked<Layout>(Adesc, kLayoutMagic), *lb = checked<Layout>(Bdesc, kLayoutMagic),
           *lc = checked<Layout>(Cdesc, kLayoutMagic), *ld = checked<Layout>(Ddesc, kLayoutMagic);
    if (!desc || !la || !lb || !lc || !ld)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: a descriptor is NULL or of the wrong kind");
    Problem p;
    cublasStatus_t s = resolve(desc, la, lb, lc, ld, p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (!alpha || !beta) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: alpha or beta is NULL");

    if (algoPointer) {   // NULL: cuBLASLt runs an implicit heuristic query with default preferences
        Algo algo;
        memcpy(&algo, algoPointer, sizeof algo);
        if (algo.magic != kAlgoMagic)
            return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: algo is not one cublasLtMatmulAlgoGetHeuristic returned");
        if ((int32_t)algo.computeType != p.computeType || algo.scaleType != p.scaleType || algo.typeA != p.a.type ||
            algo.typeB != p.b.type || algo.typeC != p.c.type || algo.typeD != p.d.type || algo.epilogue != (int32_t)p.epilogue)
            return fail(CUBLAS_STATUS_INVALID_VALUE,
                        "cublasLtMatmul: algo was chosen for compute %u, types %s/%s/%s/%s, epilogue %d, not this call's "
                        "compute %d, types %s/%s/%s/%s, epilogue %u",
                        algo.computeType, typeName(algo.typeA), typeName(algo.typeB), typeName(algo.typeC),
                        typeName(algo.typeD), algo.epilogue, p.computeType, typeName(p.a.type), typeName(p.b.type),
                        typeName(p.c.type), typeName(p.d.type), p.epilogue);
        // The heuristic picked a kernel that may assume these alignments: a GPU faults on less.
        struct { const char *name; const void *pointer; uint32_t promised; } checks[] = {
            {"A", A, algo.alignA}, {"B", B, algo.alignB}, {"C", C, algo.alignC}, {"D", D, algo.alignD}};
        for (auto &c : checks)
            if (c.pointer && alignmentOf(c.pointer) < std::min<uint32_t>(c.promised, 256))
                return fail(CUBLAS_STATUS_INVALID_VALUE,
                            "cublasLtMatmul: %s = %p is %u-byte aligned but the heuristic was told MIN_ALIGNMENT_%s_BYTES %u",
                            c.name, c.pointer, alignmentOf(c.pointer), c.name, c.promised);
    }

    const bool deviceScalars = p.pointerMode == CUBLASLT_POINTER_MODE_DEVICE;
    double alphaValue = deviceScalars ? 1 : load(alpha, p.scaleType), betaValue = deviceScalars ? 1 : load(beta, p.scaleType);
    bool needProduct = p.m > 0 && p.n > 0 && p.k > 0 && (deviceScalars || alphaValue != 0);
    if (needProduct && (!A || !B)) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: A or B is NULL");
    if (!D && p.m > 0 && p.n > 0) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: D is NULL");
    if (!C && (deviceScalars || betaValue != 0)) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: C is NULL, beta ≠ 0");
    if (C && C == (const void *)D &&
        (p.c.ld != p.d.ld || p.c.order != p.d.order || (p.batch > 1 && p.c.stride != p.d.stride)))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: in place (C == D) with different C and D layouts");
    if (p.hasBias()) {
        if (!p.bias) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: epilogue %u needs BIAS_POINTER", p.epilogue);
        if (alignmentOf(p.bias) < 16) {
            if (strict())
                return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: bias %p is under 16-byte aligned", p.bias);
            static std::atomic<bool> warned{false};
            if (!warned.exchange(true))
                logf("warning: bias %p is only %u-byte aligned; cuBLASLt's bias epilogue kernels can fault (misaligned "
                     "address) under 16 bytes (reported once)",
                     p.bias, alignmentOf(p.bias));
        }
    }

    Work *work = new (std::nothrow) Work();
    if (!work) return CUBLAS_STATUS_ALLOC_FAILED;
    work->p = p;
    work->A = (const char *)A;
    work->B = (const char *)B;
    work->C = (const char *)C;
    work->D = (char *)D;
    work->alpha = alphaValue;
    work->beta = betaValue;
    work->alphaPtr = alpha;
    work->betaPtr = beta;
    if (logging())
        logf("matmul: m %llu n %llu k %llu batch %d (strides A %lld B %lld C %lld D %lld) A %s%s ld %lld, B %s%s ld %lld, "
             "C/D %s ld %lld/%lld, alpha %g beta %g%s, epilogue %u bias %p (%s, stride %lld), stream %p",
             (unsigned long long)p.m, (unsigned long long)p.n, (unsigned long long)p.k, p.batch, (long long)p.a.stride,
             (long long)p.b.stride, (long long)p.c.stride, (long long)p.d.stride, typeName(p.a.type), p.transA ? "ᵀ" : "",
             (long long)p.a.ld, typeName(p.b.type), p.transB ? "ᵀ" : "", (long long)p.b.ld, typeName(p.d.type),
             (long long)p.c.ld, (long long)p.d.ld, alphaValue, betaValue, deviceScalars ? " (device pointers)" : "",
             p.epilogue, p.hasBias() ? p.bias : nullptr, p.hasBias() ? typeName(p.biasType) : "-", (long long)p.biasStride,
             stream);
    nd_emu_enqueue(stream, runWork, work, releaseWork);
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
