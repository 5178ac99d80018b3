import Foundation

/// A cuBLASLt call that failed.
public struct CUBLASLtError: Error, CustomStringConvertible {
    public var call: String, status: Int32
    public var description: String { "\(call) failed: cuBLAS status \(status)" }
}

/// GEMMs through cuBLASLt (libcublasLt, loaded at run time), in the engine's row-major terms:
/// C[m×n] (+)= op(A)·op(B) (+ bias[n]) with A stored [m×k] ([k×m] when transA) and B stored [k×n]
/// ([n×k] when transB), batched with strides. fp32, TF32 (fp32 storage, tensor cores) or bf16
/// operands with fp32 output, and the bias / bias+GELU epilogues.
///
/// cuBLASLt is column-major: a row-major C is a column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so B's buffer is
/// passed first and A's second, with no copy. Written against cublasLt.h's documented
/// signatures and enum values; it has not run on a GPU yet (`nanodecoder cuda selftest` checks it).
public final class CUBLASLt {
    public enum Precision: Sendable { case float32, tf32, bfloat16, float16 }
    public enum Epilogue: Sendable { case none, bias, geluBias }

    private typealias Create = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    private typealias DescCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, Int32) -> Int32
    private typealias SetAttribute = @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Int32
    private typealias Destroy = @convention(c) (OpaquePointer?) -> Int32
    private typealias LayoutCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UInt64, UInt64, Int64) -> Int32
    private typealias Heuristic = @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
                                                  OpaquePointer?, OpaquePointer?, Int32, UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Int32
    private typealias Matmul = @convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer, UInt64, OpaquePointer?, UInt64,
                                               OpaquePointer?, UnsafeRawPointer, UInt64, OpaquePointer?, UInt64, OpaquePointer?,
                                               UnsafeRawPointer?, UInt64, Int, OpaquePointer?) -> Int32

    // cublasLt.h / library_types.h values.
    private static let computeFloat32: Int32 = 68, computeFastTF32: Int32 = 77   // CUBLAS_COMPUTE_32F(_FAST_TF32)
    private static let typeFloat32: Int32 = 0, typeBFloat16: Int32 = 14, typeFloat16: Int32 = 2   // CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F
    private static let descTransA: Int32 = 3, descTransB: Int32 = 4, descEpilogue: Int32 = 7, descBiasPointer: Int32 = 8
    private static let layoutBatchCount: Int32 = 5, layoutBatchStride: Int32 = 6
    private static let preferenceMaxWorkspace: Int32 = 1
    /// CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (uint32): without them the heuristic
    /// assumes 256-byte aligned matrices, and views (MoE experts' rows) are not.
    private static let preferenceAlignment: [Int32] = [5, 6, 7, 8]
    private static let epilogueDefault: UInt32 = 1, epilogueBias: UInt32 = 4, epilogueGeluBias: UInt32 = 36
    /// sizeof(cublasLtMatmulHeuristicResult_t): algo (64 bytes), workspaceSize, state, wavesCount, reserved[4].
    private static let heuristicResultBytes = 96

    private let context: CUDAContext
    private let handle: OpaquePointer?
    private let descCreate: DescCreate, descSet: SetAttribute, descDestroy: Destroy
    private let layoutCreate: LayoutCreate, layoutSet: SetAttribute, layoutDestroy: Destroy
    private let preferenceCreate: Create, preferenceSet: SetAttribute, preferenceDestroy: Destroy
    private let heuristic: Heuristic, matmulCall: Matmul, destroy: Destroy
    private let workspace: CUDAContext.DevicePointer
    public let workspaceBytes = 32 << 20

    public init(context: CUDAContext, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.context = context
        let sym = try CUDALibraryLoader.symbols(["libcublasLt.so", "libcublasLt.so.13", "libcublasLt.so.12"], environment: environment)
        descCreate = try sym("cublasLtMatmulDescCreate", DescCreate.self)
        descSet = try sym("cublasLtMatmulDescSetAttribute", SetAttribute.self)
        descDestroy = try sym("cublasLtMatmulDescDestroy", Destroy.self)
        layoutCreate = try sym("cublasLtMatrixLayoutCreate", LayoutCreate.self)
        layoutSet = try sym("cublasLtMatrixLayoutSetAttribute", SetAttribute.self)
        layoutDestroy = try sym("cublasLtMatrixLayoutDestroy", Destroy.self)
        preferenceCreate = try sym("cublasLtMatmulPreferenceCreate", Create.self)
        preferenceSet = try sym("cublasLtMatmulPreferenceSetAttribute", SetAttribute.self)
        preferenceDestroy = try sym("cublasLtMatmulPreferenceDestroy", Destroy.self)
        heuristic = try sym("cublasLtMatmulAlgoGetHeuristic", Heuristic.self)
        matmulCall = try sym("cublasLtMatmul", Matmul.self)
        destroy = try sym("cublasLtDestroy", Destroy.self)
        var h: OpaquePointer? = nil
        let status = try sym("cublasLtCreate", Create.self)(&h)
        guard status == 0 else { throw CUBLASLtError(call: "cublasLtCreate", status: status) }
        handle = h
        workspace = try context.allocate(workspaceBytes)
    }

    deinit {
        for plan in plans.values {
            _ = descDestroy(plan.desc)
            for l in [plan.first, plan.second, plan.out] { _ = layoutDestroy(l) }
            plan.algo.deallocate()
        }
        context.release(workspace)
        _ = destroy(handle)
    }

    private func check(_ call: String, _ status: Int32) throws {
        if status != 0 { throw CUBLASLtError(call: call, status: status) }
    }

    private func set<T>(_ setter: SetAttribute, _ object: OpaquePointer?, _ attribute: Int32, _ value: T, _ call: String) throws {
        var v = value
        try withUnsafeBytes(of: &v) { try check(call, setter(object, attribute, $0.baseAddress!, $0.count)) }
    }

    /// What a GEMM's descriptors depend on; the bias pointer is set on every call.
    private struct PlanKey: Hashable {
        var m: Int, n: Int, k: Int, transA: Bool, transB: Bool, batch: Int, sharedB: Bool
        var precision: Precision, epilogue: Epilogue
        /// Alignment in bytes (a power of two up to 256) of the engine's A, B and C buffers, and of
        /// the bias (cuBLASLt's heuristic reads the bias pointer's alignment from the descriptor).
        var alignA: Int, alignB: Int, alignC: Int, alignBias: Int
    }

    /// The largest power of two up to 256 that divides the address.
    private static func alignment(_ p: CUDAContext.DevicePointer) -> Int {
        p == 0 ? 256 : min(256, 1 << p.trailingZeroBitCount)
    }

    /// A shape's descriptors and the algorithm cuBLASLt's heuristic picked, made once: a training
    /// step repeats the same few dozen shapes, and the heuristic query costs more than small GEMMs.
    private final class Plan {
        let desc: OpaquePointer?, first: OpaquePointer?, second: OpaquePointer?, out: OpaquePointer?
        let algo: UnsafeMutableRawPointer
        init(desc: OpaquePointer?, first: OpaquePointer?, second: OpaquePointer?, out: OpaquePointer?, algo: UnsafeMutableRawPointer) {
            self.desc = desc; self.first = first; self.second = second; self.out = out; self.algo = algo
        }
    }

    private var plans: [PlanKey: Plan] = [:]
    private let lock = NSLock()

    /// C (+)= op(A)·op(B) (+ bias, then GELU for `.geluBias`); `batch` products at element
    /// strides m·k, k·n (0: B shared) and m·n. A and B are bf16 for `.bfloat16`, fp16 for `.float16`,
    /// else fp32; C is fp32 (the compute type is fp32 in every case: fp32 accumulation).
    public func matmul(a: CUDAContext.DevicePointer, b: CUDAContext.DevicePointer, c: CUDAContext.DevicePointer,
                       bias: CUDAContext.DevicePointer? = nil, m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false,
                       batch: Int = 1, sharedB: Bool = false, precision: Precision = .float32, epilogue: Epilogue = .none,
                       accumulate: Bool = false) throws {
        if epilogue != .none && bias == nil {
            throw CUBLASLtError(call: "matmul: the \(epilogue) epilogue needs a bias", status: -1)
        }
        try context.makeCurrent()
        lock.lock(); defer { lock.unlock() }
        let key = PlanKey(m: m, n: n, k: k, transA: transA, transB: transB, batch: batch, sharedB: sharedB, precision: precision,
                          epilogue: epilogue, alignA: Self.alignment(a), alignB: Self.alignment(b), alignC: Self.alignment(c),
                          alignBias: Self.alignment(bias ?? 0))
        let plan: Plan
        if let cached = plans[key] {
            plan = cached
        } else {
            plan = try makePlan(key, bias: bias)
            plans[key] = plan
        }
        if let bias { try set(descSet, plan.desc, Self.descBiasPointer, bias, "set BIAS_POINTER") }
        var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
        // The algorithm is the first 64 bytes of the heuristic result.
        try check("cublasLtMatmul", matmulCall(handle, plan.desc, &alpha, b, plan.first, a, plan.second, &beta, c, plan.out, c, plan.out,
                                                UnsafeRawPointer(plan.algo), workspace, workspaceBytes, context.stream))
    }

    private func makePlan(_ key: PlanKey, bias: CUDAContext.DevicePointer?) throws -> Plan {
        let (m, n, k, batch) = (key.m, key.n, key.k, key.batch)
        let operandType = key.precision == .bfloat16 ? Self.typeBFloat16 : key.precision == .float16 ? Self.typeFloat16 : Self.typeFloat32
        var desc: OpaquePointer? = nil
        var layouts: [OpaquePointer?] = []
        var done = false
        defer {   // on a failure, free what was made
            if !done { _ = descDestroy(desc); for l in layouts { _ = layoutDestroy(l) } }
        }
        try check("cublasLtMatmulDescCreate", descCreate(&desc, key.precision == .tf32 ? Self.computeFastTF32 : Self.computeFloat32, Self.typeFloat32))
        // First operand: B's buffer (op(B)ᵀ, n×k); second: A's buffer (op(A)ᵀ, k×m).
        try set(descSet, desc, Self.descTransA, Int32(key.transB ? 1 : 0), "set TRANSA")
        try set(descSet, desc, Self.descTransB, Int32(key.transA ? 1 : 0), "set TRANSB")
        let epilogueCode: UInt32 = switch key.epilogue { case .none: Self.epilogueDefault; case .bias: Self.epilogueBias; case .geluBias: Self.epilogueGeluBias }
        try set(descSet, desc, Self.descEpilogue, epilogueCode, "set EPILOGUE")
        // The heuristic takes the bias's alignment from this pointer (cublasLt.h, BIAS_POINTER); a
        // plan is reused only for biases aligned alike (PlanKey.alignBias).
        if let bias { try set(descSet, desc, Self.descBiasPointer, bias, "set BIAS_POINTER") }
        func layout(_ type: Int32, rows: Int, cols: Int, ld: Int, stride: Int) throws -> OpaquePointer? {
            var l: OpaquePointer? = nil
            try check("cublasLtMatrixLayoutCreate", layoutCreate(&l, type, UInt64(rows), UInt64(cols), Int64(ld)))
            layouts.append(l)
            if batch > 1 {
                try set(layoutSet, l, Self.layoutBatchCount, Int32(batch), "set BATCH_COUNT")
                try set(layoutSet, l, Self.layoutBatchStride, Int64(stride), "set STRIDED_BATCH_OFFSET")
            }
            return l
        }
        let first = key.transB ? try layout(operandType, rows: k, cols: n, ld: k, stride: key.sharedB ? 0 : k * n)
                               : try layout(operandType, rows: n, cols: k, ld: n, stride: key.sharedB ? 0 : k * n)
        let second = key.transA ? try layout(operandType, rows: m, cols: k, ld: m, stride: m * k)
                                 : try layout(operandType, rows: k, cols: m, ld: k, stride: m * k)
        let out = try layout(Self.typeFloat32, rows: n, cols: m, ld: n, stride: m * n)

        var preference: OpaquePointer? = nil
        try check("cublasLtMatmulPreferenceCreate", preferenceCreate(&preference))
        defer { _ = preferenceDestroy(preference) }
        try set(preferenceSet, preference, Self.preferenceMaxWorkspace, UInt64(workspaceBytes), "set MAX_WORKSPACE_BYTES")
        // cuBLASLt's A is the engine's B buffer and its B the engine's A (the operand swap); C and D are the output.
        for (attribute, bytes) in zip(Self.preferenceAlignment, [key.alignB, key.alignA, key.alignC, key.alignC]) {
            try set(preferenceSet, preference, attribute, UInt32(bytes), "set MIN_ALIGNMENT_BYTES")
        }
        let result = UnsafeMutableRawPointer.allocate(byteCount: Self.heuristicResultBytes, alignment: 16)
        var found: Int32 = 0
        do {
            try check("cublasLtMatmulAlgoGetHeuristic", heuristic(handle, desc, first, second, out, out, preference, 1, result, &found))
            // The result's fields are valid only when its state (offset 72) is CUBLAS_STATUS_SUCCESS.
            guard found > 0, result.load(fromByteOffset: 72, as: Int32.self) == 0 else {
                throw CUBLASLtError(call: "cublasLtMatmulAlgoGetHeuristic: no algorithm for m \(m) n \(n) k \(k) \(key.precision) \(key.epilogue)", status: -1)
            }
        } catch {
            result.deallocate()
            throw error
        }
        done = true
        return Plan(desc: desc, first: first, second: second, out: out, algo: result)
    }
}
