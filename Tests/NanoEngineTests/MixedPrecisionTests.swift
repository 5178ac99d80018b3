import NanoCPU
import NanoTestSupport
@testable import NanoEngine
import Testing

/// bf16 mixed precision (`MixedPrecision.run(.bfloat16)`): matrix products round their operands
/// (and, in backward, the incoming gradient) to bfloat16 and accumulate in float32; everything
/// else stays float32. References are float32 products of operands rounded by `cast`.
@Suite struct MixedPrecisionTests {
    /// x rounded to bfloat16 and back, as a float32 tensor without gradient.
    private func rounded(_ x: Tensor) throws -> Tensor {
        try withNoGrad { try x.cast(to: .bfloat16).cast(to: .float32) }
    }

    private func fresh(_ t: Tensor, grad: Bool = true) throws -> Tensor {
        let c = try Tensor(try t.toArray(), shape: t.shape)
        c.requiresGrad = grad
        return c
    }

    private func largestDifference(_ a: Tensor, _ b: Tensor) throws -> Float {
        let x = try a.toArray(), y = try b.toArray()
        #expect(x.count == y.count)
        return zip(x, y).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
    }

    @Test func matmulMultipliesOperandsRoundedToBF16() throws {
        let a = try randomTensor([3, 17, 33], seed: 1), b = try randomTensor([33, 19], seed: 2)
        let mixed = try MixedPrecision.run(.bfloat16) { try a.matmul(b) }
        #expect(mixed.dtype == .float32)
        let reference = try rounded(a).matmul(rounded(b))
        #expect(try largestDifference(mixed, reference) < 1e-5)
        // The rounding happened: the float32 product differs by about bf16's resolution.
        let exact = try a.matmul(b)
        #expect(try largestDifference(mixed, exact) > 1e-3)
        // Outside the scope products are float32 again.
        #expect(try largestDifference(try a.matmul(b), exact) == 0)
    }

    /// float16 works the same way with fp16 rounding, and overflows where fp16 does (65504).
    @Test func float16RoundsOperandsAndOverflowsLikeHardware() throws {
        let a = try randomTensor([2, 11, 21], seed: 21), b = try randomTensor([21, 13], seed: 22)
        let mixed = try MixedPrecision.run(.float16) { try a.matmul(b) }
        let half = { (t: Tensor) throws -> Tensor in try withNoGrad { try t.cast(to: .float16).cast(to: .float32) } }
        #expect(try largestDifference(mixed, try half(a).matmul(half(b))) < 1e-5)
        #expect(try largestDifference(mixed, try a.matmul(b)) > 1e-5)
        // fp16 keeps 3 more mantissa bits than bf16: its product is closer to float32.
        let bf16 = try MixedPrecision.run(.bfloat16) { try a.matmul(b) }
        #expect(try largestDifference(mixed, try a.matmul(b)) < (try largestDifference(bf16, try a.matmul(b))) / 2)
        let big = try half(try Tensor([65504, 65520, -70000, 1e-8], shape: [4])).toArray()
        #expect(big[0] == 65504 && big[1] == .infinity && big[2] == -.infinity && big[3] == 0)
        let y = try MixedPrecision.run(.float16) { try Tensor([70000, 1], shape: [1, 2]).matmul(try Tensor([1, 1], shape: [2, 1])) }
        #expect(try y.toArray()[0] == .infinity)
    }

    @Test func linearGradientsAreProductsOfRoundedTensors() throws {
        let x0 = try randomTensor([4, 6, 24], seed: 3), w0 = try randomTensor([10, 24], seed: 4, scale: 0.3)
        let b0 = try randomTensor([10], seed: 5), r = try randomTensor([4, 6, 10], seed: 6)
        let (x, w, b) = (try fresh(x0), try fresh(w0), try fresh(b0))
        let y = try MixedPrecision.run(.bfloat16) { try x.linear(weight: w, bias: b) }
        try (y * r).sum().backward()
        // Forward: round(x)·round(W)ᵀ + b. Backward: dX = round(G)·round(W), dW = round(G)ᵀ·round(X), db = Σ G.
        let xr = try rounded(x0).reshaped([-1, 24]), wr = try rounded(w0), gr = try rounded(r).reshaped([-1, 10])
        #expect(try largestDifference(y, try (xr.matmul(wr, transposeOther: true) + b0).reshaped([4, 6, 10])) < 1e-5)
        #expect(try largestDifference(x.grad!, try gr.matmul(wr).reshaped([4, 6, 24])) < 1e-5)
        #expect(try largestDifference(w.grad!, try gr.matmul(xr, transposeSelf: true)) < 1e-5)
        #expect(try largestDifference(b.grad!, try r.reshaped([-1, 10]).sum(axes: [0])) < 1e-5)
        #expect(w.dtype == .float32 && w.grad!.dtype == .float32 && x.grad!.dtype == .float32)
    }

    /// bf16 gradients stay within bf16's resolution of the float32 ones.
    @Test func matmulGradientsAreCloseToFloat32() throws {
        let a0 = try randomTensor([2, 9, 40], seed: 7), b0 = try randomTensor([2, 40, 12], seed: 8), r = try randomTensor([2, 9, 12], seed: 9)
        var grads: [[Tensor]] = []
        for type in [DType.float32, .bfloat16] {
            let a = try fresh(a0), b = try fresh(b0)
            try MixedPrecision.run(type) { try (a.matmul(b) * r).sum() }.backward()
            grads.append([a.grad!, b.grad!])
        }
        for (g32, g16) in zip(grads[0], grads[1]) {
            let d = try largestDifference(g16, g32)
            #expect(d > 0 && d < 5e-2, "bf16 vs float32 gradient: \(d)")
        }
    }

    /// The fused f(x)·Wᵀ matches GELU then Linear under bf16 too, forward and gradients.
    @Test func activatedLinearMatchesGeluThenLinearInBF16() throws {
        let x0 = try randomTensor([5, 32], seed: 10), w0 = try randomTensor([7, 32], seed: 11, scale: 0.3)
        let b0 = try randomTensor([7], seed: 12), r = try randomTensor([5, 7], seed: 13)
        var results: [[Tensor]] = []
        for fused in [true, false] {
            let x = try fresh(x0), w = try fresh(w0), b = try fresh(b0)
            let y = try MixedPrecision.run(.bfloat16) {
                fused ? try x.activatedLinear(.gelu, weight: w, bias: b) : try x.gelu().linear(weight: w, bias: b)
            }
            try (y * r).sum().backward()
            results.append([y, x.grad!, w.grad!, b.grad!])
        }
        for (name, (f, u)) in zip(["y", "dx", "dW", "db"], zip(results[0], results[1])) {
            #expect(try largestDifference(f, u) < 1e-5, "\(name)")
        }
    }

    /// MoE expert GEMMs: bf16 forward and gradients equal float32 ones on rounded operands.
    @Test func groupedMatmulMultipliesRoundedOperands() throws {
        let x0 = try randomTensor([9, 12], seed: 20), w0 = try randomTensor([3, 12, 5], seed: 21), r = try randomTensor([9, 5], seed: 22)
        let groups = [4, 0, 5]
        let x = try fresh(x0), w = try fresh(w0)
        let y = try MixedPrecision.run(.bfloat16) { try x.groupedMatmul(w, groupSizes: groups) }
        try (y * r).sum().backward()
        let xr = try fresh(try rounded(x0)), wr = try fresh(try rounded(w0))
        let yr = try xr.groupedMatmul(wr, groupSizes: groups)
        try (yr * rounded(r)).sum().backward()
        #expect(try largestDifference(y, yr) < 1e-5)
        #expect(try largestDifference(x.grad!, xr.grad!) < 1e-5)
        #expect(try largestDifference(w.grad!, wr.grad!) < 1e-5)
        #expect(try largestDifference(y, try x0.groupedMatmul(w0, groupSizes: groups)) > 1e-3)
    }

    @Test func onlyFloatingPointTypesAreComputeTypes() throws {
        #expect(throws: TensorError.self) { try MixedPrecision.run(.int32) { 0 } }
        #expect(MixedPrecision.compute == .float32)
    }

    /// The backend's bf16 GEMM (oneDNN's where the CPU has one, widened operands where not)
    /// against float32 GEMMs of the rounded values, with transposes, batches and a bias.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func backendBF16GemmMatchesWidenedOperands(_ t: (Bool, Bool)) throws {
        let (m, n, k) = (13, 21, 34)
        let a = try randomTensor(t.0 ? [2, k, m] : [2, m, k], seed: 14), b = try randomTensor(t.1 ? [n, k] : [k, n], seed: 15)
        let bias = try randomTensor([n], seed: 16)
        let low = try Tensor.gemm(a.cast(to: .bfloat16), b.cast(to: .bfloat16), transA: t.0, transB: t.1, bias: bias)
        let reference = try Tensor.gemm(rounded(a), rounded(b), transA: t.0, transB: t.1, bias: bias)
        #expect(try largestDifference(low, reference) < 1e-5)
    }
}
