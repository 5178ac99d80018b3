import Foundation
import NanoEngine

/// Every engine op run on two devices and compared: `nanodecoder cuda conformance` runs these on
/// a GPU against the CPU backend. Each case builds its inputs on the CPU from fixed seeds, moves
/// them to the device, runs forward ops and (where differentiable) backward, and returns what it
/// computed, gradients included. Only random fills and dropout draw on the device itself, so
/// they check that the GPU's Philox stream is the CPU's.
///
/// Differences are |a − b| / max(1, |b|) against the reference device, largest over all values.
public enum BackendConformance {
    public struct Case: Sendable {
        public let name: String
        /// The largest difference allowed (fp32 elementwise ops: 1e-5; sums in another order: more).
        public let tolerance: Float
        let run: @Sendable (Device) throws -> [Tensor]
        public init(_ name: String, tolerance: Float = 1e-5, _ run: @escaping @Sendable (Device) throws -> [Tensor]) {
            self.name = name; self.tolerance = tolerance; self.run = run
        }
        /// The same case allowing at least `tolerance` (TF32 GEMMs, say).
        public func allowing(_ tolerance: Float) -> Case { Case(name, tolerance: max(self.tolerance, tolerance), run) }
    }

    public struct Result: Sendable {
        public let name: String, tolerance: Float
        /// Largest difference, or nil when the case failed to run (see `error`).
        public let worst: Float?
        public let error: String?
        public var passed: Bool { worst.map { $0 <= tolerance } ?? false }
    }

    /// Runs every case on `device` and on `reference`, and compares.
    public static func compare(_ device: Device, against reference: Device = .cpu, cases: [Case] = all) -> [Result] {
        cases.map { c in
            do {
                let expected = try values(c.run(reference)), got = try values(c.run(device))
                guard expected.count == got.count, zip(expected, got).allSatisfy({ $0.count == $1.count }) else {
                    return Result(name: c.name, tolerance: c.tolerance, worst: nil,
                                  error: "different output sizes: \(got.map(\.count)) vs \(expected.map(\.count))")
                }
                var worst: Float = 0
                for (a, b) in zip(got, expected) {
                    for (x, y) in zip(a, b) {
                        if x.isNaN != y.isNaN || (x.isInfinite && x != y) { worst = .infinity; continue }
                        if x.isNaN || x.isInfinite { continue }
                        worst = max(worst, abs(x - y) / max(1, abs(y)))
                    }
                }
                return Result(name: c.name, tolerance: c.tolerance, worst: worst, error: nil)
            } catch {
                return Result(name: c.name, tolerance: c.tolerance, worst: nil, error: "\(error)")
            }
        }
    }

    private static func values(_ tensors: [Tensor]) throws -> [[Float]] {
        try tensors.map { t in t.dtype == .int32 ? try t.toInt32Array().map(Float.init) : try t.toArray() }
    }

    // MARK: Inputs

    /// Normal(0, scale) values made on the CPU from `seed`, moved to `device`.
    static func input(_ shape: [Int], _ seed: UInt64, on device: Device, scale: Float = 1, shift: Float = 0,
                      grad: Bool = true) throws -> Tensor {
        let t = try withNoGrad { try Tensor.randn(shape, mean: shift, std: scale, generator: Generator(seed: seed), device: .cpu).to(device) }
        t.requiresGrad = grad
        return t
    }

    static func indices(_ values: [Int32], _ shape: [Int], on device: Device) throws -> Tensor {
        try Tensor(indices: values, shape: shape, device: device)
    }

    /// Output plus the gradients of Σ output·r for fixed random weights r, for the listed inputs.
    static func withGradients(_ out: Tensor, _ inputs: [Tensor], seed: UInt64 = 99) throws -> [Tensor] {
        let r = try input(out.shape, seed, on: out.device, grad: false)
        try (out * r).sum().backward()
        return [out] + inputs.map { $0.grad ?? (try! Tensor.zeros([1], device: out.device)) }
    }

    // MARK: Cases

    public static var all: [Case] { pointwise + shaping + products + rows + attention + indexing + optimizer }

    static var pointwise: [Case] {
        var cases: [Case] = [
            Case("fill and casts (bf16, fp16, int32)") { d in
                let x = try input([1000], 1, on: d, scale: 100, grad: false)
                let full = try Tensor.full([5], value: 1.5, dtype: .bfloat16, device: d).cast(to: .float32)
                return [full, try x.cast(to: .bfloat16).cast(to: .float32), try x.cast(to: .float16).cast(to: .float32),
                        try x.cast(to: .int32), try x.cast(to: .int32).cast(to: .float32)]
            },
            // 40 MB of writes in 1 MB pieces: the GPU's pinned staging fills and reuses its halves
            // while earlier copies may still be in flight; a kernel then reads every piece.
            Case("host writes (pinned staging, reused) read by kernels") { d in
                var ends: [Tensor] = []
                for i in 0..<40 {
                    var values = [Float](repeating: Float(i) + 0.5, count: 262_144)
                    for j in 0..<300 { values[j] = Float(j * 40 + i); values[262_143 - j] = -values[j] }
                    let piece = try Tensor(values, shape: [262_144], device: d)
                    ends += [try piece.slice(axis: 0, start: 0, length: 300), try piece.slice(axis: 0, start: 262_144 - 300, length: 300)]
                }
                return [try Tensor.concat(ends, axis: 0)]
            },
            Case("random: uniform, bernoulli", tolerance: 1e-6) { d in
                [try Tensor.uniform([4099], low: -2, high: 3, generator: Generator(seed: 5), device: d),
                 try Tensor.random([4099], .bernoulli(p: 0.3), generator: Generator(seed: 6, offset: 17), device: d)]
            },
            Case("random: normal, truncated normal", tolerance: 1e-4) { d in
                [try Tensor.randn([4099], mean: 1, std: 2, generator: Generator(seed: 7), device: d),
                 try Tensor.random([4099], .truncatedNormal(mean: 0, std: 0.02, low: -0.04, high: 0.04), generator: Generator(seed: 8), device: d)]
            },
        ]
        let unaries: [(String, @Sendable (Tensor) throws -> Tensor, Float)] = [
            ("gelu", { try $0.gelu() }, 0), ("relu", { try $0.relu() }, 0), ("silu", { try $0.silu() }, 0),
            ("softplus", { try $0.softplus() }, 0), ("exp", { try $0.exp() }, 0), ("log", { try $0.log() }, 3),
            ("tanh", { try $0.tanh() }, 0), ("sigmoid", { try $0.sigmoid() }, 0), ("square", { try $0.square() }, 0),
            ("sqrt", { try $0.sqrt() }, 3), ("affine", { try $0.affine(scale: 1.5, shift: -0.25) }, 0),
        ]
        for (name, f, shift) in unaries {
            cases.append(Case("unary \(name) + backward", tolerance: 1e-5) { d in
                let x = try input([3, 333], 10, on: d, shift: shift)
                return try withGradients(try f(x), [x])
            })
        }
        let binaries: [(String, @Sendable (Tensor, Tensor) throws -> Tensor)] = [
            ("add", { try $0 + $1 }), ("sub", { try $0 - $1 }), ("mul", { try $0 * $1 }), ("div", { try $0 / $1 })]
        for (name, f) in binaries {
            cases.append(Case("binary \(name), broadcast + backward", tolerance: 1e-5) { d in
                let a = try input([2, 5, 7], 11, on: d), b = try input([5, 1], 12, on: d, shift: name == "div" ? 3 : 0)
                return try withGradients(try f(a, b), [a, b])
            })
        }
        cases.append(Case("where / maskedFill + backward") { d in
            let a = try input([4, 6], 13, on: d), b = try input([6], 14, on: d)
            let cond = try input([4, 1], 15, on: d, grad: false).relu()
            return try withGradients(try Tensor.where(cond, a, b), [a, b]) + [try a.maskedFill(cond, value: -7)]
        })
        cases.append(Case("dropout", tolerance: 1e-6) { d in
            let x = try input([3, 1000], 16, on: d)
            return try withGradients(try x.dropout(0.25, generator: Generator(seed: 17)), [x])
        })
        return cases
    }

    static var shaping: [Case] {
        [
            Case("permute, transpose, slice, concat, split + backward") { d in
                let x = try input([2, 3, 4, 5], 20, on: d)
                let p = try x.permuted([2, 0, 3, 1]), t = try x.transposed(1, 3)
                let s = try x.slice(axis: 2, start: 1, length: 2)
                let parts = try x.split([1, 3], axis: 2)
                let joined = try Tensor.concat([parts[1], parts[0]], axis: 2)
                let out = try Tensor.concat([p.reshaped([-1]), t.reshaped([-1]), s.reshaped([-1]), joined.reshaped([-1])], axis: 0)
                return try withGradients(out, [x])
            },
            Case("bf16 permute") { d in
                let x = try input([3, 4, 5], 21, on: d, grad: false).cast(to: .bfloat16)
                return [try x.permuted([2, 1, 0]).cast(to: .float32)]
            },
        ]
    }

    static var products: [Case] {
        [
            Case("matmul 2-D + backward", tolerance: 1e-4) { d in
                let a = try input([37, 64], 30, on: d), b = try input([64, 45], 31, on: d)
                return try withGradients(try a.matmul(b), [a, b])
            },
            Case("matmul batched, transposed + backward", tolerance: 1e-4) { d in
                let a = try input([3, 64, 20], 32, on: d), b = try input([3, 33, 64], 33, on: d)
                return try withGradients(try a.matmul(b, transposeSelf: true, transposeOther: true), [a, b])
            },
            Case("matmul shared weights + backward", tolerance: 1e-4) { d in
                let a = try input([4, 9, 48], 34, on: d), b = try input([48, 17], 35, on: d)
                return try withGradients(try a.matmul(b), [a, b])
            },
            Case("linear with bias + backward", tolerance: 1e-4) { d in
                let x = try input([2, 7, 96], 36, on: d), w = try input([80, 96], 37, on: d, scale: 0.1), b = try input([80], 38, on: d)
                return try withGradients(try x.linear(weight: w, bias: b), [x, w, b])
            },
            Case("activatedLinear (gelu) + backward", tolerance: 1e-4) { d in
                let x = try input([14, 64], 39, on: d), w = try input([32, 64], 40, on: d, scale: 0.1), b = try input([32], 41, on: d)
                return try withGradients(try x.activatedLinear(.gelu, weight: w, bias: b), [x, w, b])
            },
            Case("bf16 mixed-precision linear + backward", tolerance: 1e-4) { d in
                let x = try input([2, 7, 96], 42, on: d), w = try input([80, 96], 43, on: d, scale: 0.1)
                return try withGradients(try MixedPrecision.run(.bfloat16) { try x.linear(weight: w) }, [x, w])
            },
            Case("fp16 mixed-precision matmul + backward", tolerance: 1e-4) { d in
                let a = try input([3, 20, 64], 44, on: d), b = try input([64, 24], 45, on: d)
                return try withGradients(try MixedPrecision.run(.float16) { try a.matmul(b) }, [a, b])
            },
            Case("matmul with an empty inner dimension (zeros)") { d in
                let a = try input([3, 0], 48, on: d, grad: false), b = try input([0, 5], 49, on: d, grad: false)
                return [try a.matmul(b)]
            },
            Case("groupedMatmul (MoE experts) + backward", tolerance: 1e-4) { d in
                let x = try input([10, 32], 46, on: d), w = try input([3, 32, 24], 47, on: d, scale: 0.2)
                return try withGradients(try x.groupedMatmul(w, groupSizes: [4, 0, 6]), [x, w])
            },
        ]
    }

    static var rows: [Case] {
        [
            Case("sum, mean, max, cumsum + backward", tolerance: 1e-5) { d in
                let x = try input([4, 50, 6], 50, on: d)
                let parts = [try x.sum(axes: [1]).reshaped([-1]), try x.mean(axes: [0, 2]).reshaped([-1]), try x.max(axis: 2).reshaped([-1]),
                             try x.cumsum(axis: 1).reshaped([-1]), try x.cumsum(axis: 2, reverse: true).reshaped([-1])]
                return try withGradients(try Tensor.concat(parts, axis: 0), [x])
            },
            Case("softmax, logSoftmax + backward", tolerance: 1e-5) { d in
                let x = try input([6, 1000], 51, on: d, scale: 3)
                return try withGradients(try Tensor.concat([x.softmax(), x.logSoftmax()], axis: 1), [x])
            },
            Case("crossEntropy with ignored rows + backward", tolerance: 1e-5) { d in
                let logits = try input([9, 50_304], 52, on: d, scale: 2)
                let targets = try indices([3, 50_303, -1, 0, 17, -1, 9, 9, 40_000], [9], on: d)
                return try withGradients(try logits.crossEntropy(targets: targets), [logits])
            },
            Case("layerNorm (affine and plain) + backward", tolerance: 1e-4) { d in
                let x = try input([2, 37, 768], 53, on: d, scale: 2, shift: 0.5), w = try input([768], 54, on: d), b = try input([768], 55, on: d)
                let y = try Tensor.concat([x.layerNorm(weight: w, bias: b), x.layerNorm(weight: nil, bias: nil)], axis: 2)
                return try withGradients(y, [x, w, b])
            },
            Case("rmsNorm + backward", tolerance: 1e-4) { d in
                let x = try input([3, 11, 256], 56, on: d, scale: 2), w = try input([256], 57, on: d)
                return try withGradients(try x.rmsNorm(weight: w), [x, w])
            },
            Case("topK, sumOfSquares", tolerance: 1e-5) { d in
                let x = try input([5, 300], 58, on: d, grad: false)
                let (values, positions) = try x.topK(7)
                return [values, positions, try Tensor(scalar: Float(try x.sumOfSquares()), device: d)]
            },
            Case("gradientNorm over many tensors", tolerance: 1e-6) { d in
                let parts = try [[3, 700], [1], [0], [50_000], [16, 16]].enumerated().map { try input($0.element, 70 + UInt64($0.offset), on: d, grad: false) }
                return [try Tensor.gradientNorm(parts)]
            },
        ]
    }

    static var attention: [Case] {
        var cases: [Case] = []
        for (name, tq, tk, causal, dropout, dim) in [("causal", 70, 70, true, Float(0), 64), ("not causal", 33, 33, false, 0, 32),
                                                     ("KV cache (Tq < Tk)", 5, 40, true, 0, 64), ("causal, dropout 0.2", 48, 48, true, 0.2, 64),
                                                     ("head dim 128", 40, 40, true, 0, 128)] {
            cases.append(Case("attention \(name) + backward", tolerance: 1e-4) { d in
                let q = try input([2, 3, tq, dim], 60, on: d), k = try input([2, 3, tk, dim], 61, on: d), v = try input([2, 3, tk, dim], 62, on: d)
                let out = try Tensor.scaledDotProductAttention(q: q, k: k, v: v, causal: causal, dropout: dropout, generator: Generator(seed: 63))
                return try withGradients(out, [q, k, v])
            })
        }
        cases.append(Case("packed causal attention + backward", tolerance: 1e-4) { d in
            let qkv = try input([2, 65, 3 * 4 * 32], 64, on: d)
            return try withGradients(try Tensor.packedCausalAttention(qkv: qkv, heads: 4), [qkv])
        })
        // Under bf16 mixed precision a GPU takes the tensor-core kernels (bf16 products, fp32
        // softmax and accumulation) for head sizes 64 and 128; the CPU stays fp32, so these allow
        // bf16 rounding. Tile edges: rows that are not multiples of 16, 32 or 64; Tq < Tk.
        for (name, tq, tk, causal, dim) in [("causal", 70, 70, true, 64), ("not causal", 33, 33, false, 64),
                                            ("KV cache (Tq < Tk)", 5, 40, true, 64), ("head dim 128", 40, 40, true, 128)] {
            cases.append(Case("bf16 attention \(name) + backward", tolerance: 3e-2) { d in
                try MixedPrecision.run(.bfloat16) {
                    let q = try input([2, 3, tq, dim], 60, on: d), k = try input([2, 3, tk, dim], 61, on: d), v = try input([2, 3, tk, dim], 62, on: d)
                    return try withGradients(try Tensor.scaledDotProductAttention(q: q, k: k, v: v, causal: causal), [q, k, v])
                }
            })
        }
        // The forward alone, with peaked softmaxes (scores of std ~4), where the running max
        // rescales the output often. Rounding Q and K to bf16 moves such scores by ~1e-2, so
        // outputs move by a few percent (3.6e-2 on the emulated GPU); a kernel that skipped the
        // rescaling was off by 4.0.
        cases.append(Case("bf16 attention forward, peaked scores", tolerance: 0.1) { d in
            try MixedPrecision.run(.bfloat16) {
                let q = try input([2, 2, 150, 64], 65, on: d, scale: 2), k = try input([2, 2, 150, 64], 66, on: d, scale: 2)
                return [try withNoGrad { try Tensor.scaledDotProductAttention(q: q, k: k, v: try input([2, 2, 150, 64], 67, on: d)) }]
            }
        })
        cases.append(Case("bf16 packed causal attention + backward", tolerance: 3e-2) { d in
            try MixedPrecision.run(.bfloat16) {
                let qkv = try input([2, 97, 3 * 2 * 64], 64, on: d)
                return try withGradients(try Tensor.packedCausalAttention(qkv: qkv, heads: 2), [qkv])
            }
        })
        return cases
    }

    static var indexing: [Case] {
        [
            Case("embedding / indexSelect + backward", tolerance: 1e-5) { d in
                let table = try input([50, 24], 70, on: d)
                let tokens = try indices([3, 49, 0, 3, 3, 17, 8, 49], [2, 4], on: d)
                return try withGradients(try table.embedding(tokens), [table]) + [try table.indexSelect(axis: 1, index: try indices([5, 0, 23], [3], on: d))]
            },
            Case("gather, scatterAdding, indexAdding, oneHot + backward", tolerance: 1e-5) { d in
                let x = try input([4, 10], 71, on: d), src = try input([4, 3], 72, on: d)
                let index = try indices([1, 9, 1, 0, 0, 0, 5, 6, 7, 2, 2, 3], [4, 3], on: d)
                let g = try x.gather(axis: 1, index: index), s = try x.scatterAdding(axis: 1, index: index, source: src)
                let rows = try x.indexAdding(axis: 0, index: try indices([3, 3], [2], on: d), source: try input([2, 10], 73, on: d))
                let out = try Tensor.concat([g.reshaped([-1]), s.reshaped([-1]), rows.reshaped([-1])], axis: 0)
                return try withGradients(out, [x, src]) + [try indices([2, 0, 4], [3], on: d).oneHot(classes: 5)]
            },
        ]
    }

    static var optimizer: [Case] {
        [
            Case("AdamW update", tolerance: 1e-5) { d in
                let p = try input([1000], 80, on: d, grad: false), g = try input([1000], 81, on: d, grad: false)
                let m = try input([1000], 82, on: d, scale: 0.1, grad: false), v = try input([1000], 83, on: d, grad: false).square()
                try p.adamWUpdate(grad: g, m: m, v: v, AdamWStep(learningRate: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3))
                return [p, m, v]
            },
            Case("AdamW over many tensors (one launch)", tolerance: 1e-5) { d in
                let shapes = [[3, 700], [1], [0], [5000], [4100]]
                let groups = try shapes.enumerated().map { i, shape in
                    AdamWTensors(param: try input(shape, 90 + UInt64(i), on: d, grad: false), grad: try input(shape, 100 + UInt64(i), on: d, grad: false),
                                 m: try input(shape, 110 + UInt64(i), on: d, scale: 0.1, grad: false),
                                 v: try input(shape, 120 + UInt64(i), on: d, grad: false).square())
                }
                try Tensor.adamWUpdate(groups, AdamWStep(learningRate: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 7))
                return groups.flatMap { [$0.param, $0.m, $0.v] }
            },
            Case("gradient norm and AdamW read from device memory (recorded steps)", tolerance: 1e-5) { d in
                let shapes = [[3, 700], [1], [5000]]
                let groups = try shapes.enumerated().map { i, shape in
                    AdamWTensors(param: try input(shape, 130 + UInt64(i), on: d, grad: false), grad: try input(shape, 140 + UInt64(i), on: d, grad: false),
                                 m: try input(shape, 150 + UInt64(i), on: d, scale: 0.1, grad: false),
                                 v: try input(shape, 160 + UInt64(i), on: d, grad: false).square())
                }
                let norm = try Tensor.gradientNorm(groups.map(\.grad))
                let h = AdamWStep(learningRate: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 4)
                let hyper = try Tensor(h.deviceLayout, shape: [9], device: d), scale = try Tensor([0.25], shape: [1], device: d)
                try Tensor.adamWUpdate(groups, hyper: hyper, gradScale: scale)
                return [norm] + groups.flatMap { [$0.param, $0.grad, $0.m, $0.v] }
            },
        ]
    }
}
