/// Mixed precision by scope ("autocast"): while `MixedPrecision.run(.bfloat16) { ... }` (or
/// `.float16`) runs, matrix products (`matmul`, `linear`, `activatedLinear`, `groupedMatmul`)
/// round their float32 operands to bfloat16 (float16) and multiply them with float32
/// accumulation and a float32 result. Everything else
/// stays float32: weights (the master copy the optimizer updates), gradients, optimizer state,
/// normalisation, softmax, losses and every reduction. Fused attention is told the compute type
/// (`AttentionShape.productType`): under bfloat16 a GPU runs its two products on bf16 tensor
/// cores with fp32 softmax and accumulation; the CPU keeps it float32.
///
/// The decision is taken when an op runs forward and kept by its backward closure, so backward
/// multiplies in the same precision wherever it runs. A matrix product saves its bfloat16
/// operands for backward instead of float32 ones, which halves what it keeps.
///
/// float16 has a narrow range (largest 65504, smallest normal 6.1e-5): a gradient rounded to it
/// underflows to 0 or overflows to inf. Training in float16 therefore scales the loss (the
/// trainer's `LossScaler`): small gradients stay representable, and an overflow shows up as a
/// non-finite gradient, which skips the step and lowers the scale.
public enum MixedPrecision {
    /// The element type matrix products compute in on this task/thread: float32, bfloat16 or float16.
    @TaskLocal public static var compute: DType = .float32

    /// Runs `body` with matrix products in `dtype` (float32, bfloat16 or float16).
    public static func run<T>(_ dtype: DType, _ body: () throws -> T) throws -> T {
        guard dtype.isFloatingPoint else {
            throw TensorError.dtypeMismatch(op: "MixedPrecision.run", got: dtype, expected: "float32, bfloat16 or float16")
        }
        return try $compute.withValue(dtype) { try body() }
    }
}

extension Tensor {
    /// This tensor in the matrix-product element type `dtype`: itself when it already is, else a
    /// converted copy (not recorded: the op that asks keeps track of gradients itself).
    func inComputeType(_ dtype: DType) throws -> Tensor {
        if dtype == self.dtype || dtype == .float32 { return self }
        let out = try emptyLike(shape, dtype: dtype)
        backend.cast(self, to: out)
        return out
    }
}
