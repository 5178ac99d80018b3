import NanoCPU
import NanoTestSupport
@testable import NanoEngine
import Testing

/// Fused kernels against the same computation written with unfused ops (matmul, mask, softmax),
/// forward and gradients, at sizes that cross the kernels' internal block boundaries.
@Suite struct FusedKernelTests {
    /// softmax(Q·Kᵀ·scale + mask)·V from separate ops; queries are the last Tq of Tk positions.
    private func unfusedAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, causal: Bool) throws -> Tensor {
        let (tq, tk, d) = (q.shape[2], k.shape[2], q.shape[3])
        var scores = try q.matmul(k, transposeOther: true).scaled(by: 1 / Float(d).squareRoot())
        if causal {
            let hidden = (0..<tq).flatMap { i in (0..<tk).map { j in j > tk - tq + i ? Float(1) : 0 } }
            scores = try scores.maskedFill(Tensor(hidden, shape: [tq, tk]), value: -.infinity)
        }
        return try scores.softmax().matmul(v)
    }

    private func expectClose(_ a: Tensor, _ b: Tensor, _ what: String, tolerance: Float = 2e-5) throws {
        let x = try a.toArray(), y = try b.toArray()
        #expect(x.count == y.count)
        let worst = zip(x, y).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        #expect(worst < tolerance, "\(what): largest relative difference \(worst)")
    }

    @Test(arguments: [(tq: 150, tk: 150, d: 64, causal: true), (tq: 70, tk: 150, d: 20, causal: true),
                      (tq: 130, tk: 130, d: 37, causal: false), (tq: 1, tk: 90, d: 16, causal: true)])
    func attentionMatchesUnfusedOps(_ c: (tq: Int, tk: Int, d: Int, causal: Bool)) throws {
        let q = try randomTensor([2, 3, c.tq, c.d], seed: 31), k = try randomTensor([2, 3, c.tk, c.d], seed: 32)
        let v = try randomTensor([2, 3, c.tk, c.d], seed: 33), g = try randomTensor([2, 3, c.tq, c.d], seed: 34)
        var grads: [[Tensor]] = []
        var outputs: [Tensor] = []
        for fused in [true, false] {
            let inputs = [q, k, v].map { t -> Tensor in
                let copy = try! Tensor(try! t.toArray(), shape: t.shape)
                copy.requiresGrad = true
                return copy
            }
            let out = fused ? try Tensor.scaledDotProductAttention(q: inputs[0], k: inputs[1], v: inputs[2], causal: c.causal)
                            : try unfusedAttention(inputs[0], inputs[1], inputs[2], causal: c.causal)
            try out.backward(gradient: g)
            outputs.append(out)
            grads.append(inputs.map { $0.grad! })
        }
        try expectClose(outputs[0], outputs[1], "output")
        for (name, i) in [("dq", 0), ("dk", 1), ("dv", 2)] { try expectClose(grads[0][i], grads[1][i], name, tolerance: 1e-4) }
    }

    /// The packed kernel (heads read in place from a QKV projection) against split + permute +
    /// the unpacked kernel, with and without dropout (the same mask either way).
    @Test(arguments: [Float(0), 0.25])
    func packedAttentionMatchesSplitHeads(_ dropout: Float) throws {
        let (b, t, h, d) = (2, 100, 3, 24)
        let qkv = try randomTensor([b, t, 3 * h * d], seed: 41), g = try randomTensor([b, t, h * d], seed: 42)
        var outputs: [Tensor] = [], grads: [Tensor] = []
        for packed in [true, false] {
            let x = try Tensor(try qkv.toArray(), shape: qkv.shape)
            x.requiresGrad = true
            let gen = Generator(seed: 7)
            let out: Tensor
            if packed {
                out = try Tensor.packedCausalAttention(qkv: x, heads: h, dropout: dropout, generator: gen)
            } else {
                let parts = try x.split([h * d, h * d, h * d], axis: 2).map { try $0.reshaped([b, t, h, d]).permuted([0, 2, 1, 3]) }
                out = try Tensor.scaledDotProductAttention(q: parts[0], k: parts[1], v: parts[2], dropout: dropout, generator: gen)
                    .permuted([0, 2, 1, 3]).reshaped([b, t, h * d])
            }
            try out.backward(gradient: g)
            outputs.append(out); grads.append(x.grad!)
        }
        try expectClose(outputs[0], outputs[1], "output", tolerance: 1e-6)
        try expectClose(grads[0], grads[1], "dqkv", tolerance: 1e-6)
    }

    @Test func packedAttentionRejectsBadShapes() throws {
        #expect(throws: TensorError.self) { try Tensor.packedCausalAttention(qkv: randomTensor([2, 5, 10], seed: 1), heads: 3) }
        #expect(throws: TensorError.self) { try Tensor.packedCausalAttention(qkv: randomTensor([10, 9], seed: 1), heads: 3) }
    }

    /// linear(f(x)) that recomputes f(x) in backward against the two ops it replaces.
    @Test func activatedLinearMatchesActivationThenLinear() throws {
        let x = try randomTensor([3, 40, 48], seed: 51), w = try randomTensor([24, 48], seed: 52, scale: 0.2)
        let b = try randomTensor([24], seed: 53), g = try randomTensor([3, 40, 24], seed: 54)
        var results: [[Tensor]] = []
        for fused in [true, false] {
            let leaves = [x, w, b].map { t -> Tensor in
                let copy = try! Tensor(try! t.toArray(), shape: t.shape)
                copy.requiresGrad = true
                return copy
            }
            let y = fused ? try leaves[0].activatedLinear(.gelu, weight: leaves[1], bias: leaves[2])
                          : try leaves[0].gelu().linear(weight: leaves[1], bias: leaves[2])
            try y.backward(gradient: g)
            results.append([y] + leaves.map { $0.grad! })
        }
        for (i, name) in ["y", "dx", "dw", "db"].enumerated() { try expectClose(results[0][i], results[1][i], name, tolerance: 1e-6) }
    }
}

/// The LM head fused with its cross-entropy over chunks of rows gives the unfused head's loss and
/// gradients, for any chunk size, with ignored rows, and under bf16 autocast.
@Suite struct LinearCrossEntropyTests {
    func unfused(_ h: Tensor, _ w: Tensor, _ t: Tensor) throws -> (Float, [Float], [Float]) {
        let hh = try h.detached(), ww = try w.detached()
        hh.requiresGrad = true; ww.requiresGrad = true
        let loss = try hh.linear(weight: ww).crossEntropy(targets: t)
        try loss.backward()
        return (try loss.item(), try hh.grad!.toArray(), try ww.grad!.toArray())
    }

    func fused(_ h: Tensor, _ w: Tensor, _ t: Tensor, chunk: Int?) throws -> (Float, [Float], [Float]) {
        let hh = try h.detached(), ww = try w.detached()
        hh.requiresGrad = true; ww.requiresGrad = true
        let loss = try Tensor.linearCrossEntropy(hidden: hh, weight: ww, targets: t, chunkRows: chunk)
        try (loss * Tensor.full([], value: 3)).backward()   // an upstream gradient other than 1
        return (try loss.item(), try hh.grad!.toArray().map { $0 / 3 }, try ww.grad!.toArray().map { $0 / 3 })
    }

    func worst(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) / max(1e-3, abs($1)) }.max() ?? 0 }

    @Test func matchesTheUnfusedHeadForEveryChunkSize() throws {
        let h = try randomTensor([3, 7, 16], seed: 31), w = try randomTensor([40, 16], seed: 32, scale: 0.3)
        let t = try Tensor(indices: (0..<21).map { $0 % 5 == 2 ? -1 : Int32(($0 * 7) % 40) }, shape: [3, 7])
        let (loss, dh, dw) = try unfused(h, w, t)
        for chunk in [1, 4, 21, 100, nil] {
            let (l, fh, fw) = try fused(h, w, t, chunk: chunk)
            #expect(abs(l - loss) <= 1e-6 * abs(loss), "chunk \(String(describing: chunk)): loss \(l) vs \(loss)")
            #expect(worst(fh, dh) <= 1e-4 && worst(fw, dw) <= 1e-4, "chunk \(String(describing: chunk)): d hidden \(worst(fh, dh)), d weight \(worst(fw, dw))")
        }
        try MixedPrecision.run(.bfloat16) {
            let (l16, h16, w16) = try unfused(h, w, t), (lf, hf, wf) = try fused(h, w, t, chunk: 5)
            #expect(abs(lf - l16) <= 1e-4 * abs(l16) && worst(hf, h16) <= 2e-2 && worst(wf, w16) <= 2e-2, "bf16: \(lf) vs \(l16)")
        }
    }

    @Test func withoutGradientsOnlyTheLossIsMadeAndBadInputIsNamed() throws {
        let h = try randomTensor([4, 8], seed: 33), w = try randomTensor([10, 8], seed: 34)
        let t = try Tensor(indices: [1, 2, 3, 9], shape: [4])
        let loss = try Tensor.linearCrossEntropy(hidden: h, weight: w, targets: t, chunkRows: 3)
        #expect(!loss.requiresGrad)
        #expect(abs(try loss.item() - (try h.linear(weight: w).crossEntropy(targets: t).item())) < 1e-6)
        #expect { try Tensor.linearCrossEntropy(hidden: h, weight: w, targets: try Tensor(indices: [1, 2, 3], shape: [3])) } throws: {
            "\($0)".contains("linearCrossEntropy") && "\($0)".contains("[4, 8]")
        }
        #expect { try Tensor.linearCrossEntropy(hidden: h, weight: w, targets: t, chunkRows: 0) } throws: { "\($0)".contains("chunkRows 0") }
        #expect { try Tensor.linearCrossEntropy(hidden: h, weight: w, targets: try Tensor(indices: [1, 2, 3, 10], shape: [4])) } throws: {
            "\($0)".contains("10")
        }
    }
}
