import NanoCPU
import NanoTestSupport
@testable import NanoEngine
import Testing

/// Finite-difference checks for every differentiable op. Tolerances: atol 2e-3, rtol 1e-2 in
/// float32 with eps 1e-2 unless a test states otherwise.
@Suite struct GradientTests {
    @Test func activationGradientsMatchFiniteDifferences() throws {
        let x = try randomTensor([3, 37], seed: 1)
        try gradCheck("gelu", [x]) { try $0[0].gelu() }
        try gradCheck("silu", [x]) { try $0[0].silu() }
        try gradCheck("softplus", [x]) { try $0[0].softplus() }
        try gradCheck("tanh", [x]) { try $0[0].tanh() }
        try gradCheck("sigmoid", [x]) { try $0[0].sigmoid() }
        try gradCheck("exp", [x]) { try $0[0].exp() }
        try gradCheck("square", [x]) { try $0[0].square() }
        try gradCheck("affine", [x]) { try $0[0].affine(scale: -1.5, shift: 0.25) }
        // relu has a kink at 0: keep inputs away from it.
        let away = try Tensor(try x.toArray().map { $0 >= 0 ? $0 + 0.1 : $0 - 0.1 }, shape: x.shape)
        try gradCheck("relu", [away]) { try $0[0].relu() }
        let positive = try Tensor(try x.toArray().map { abs($0) + 0.5 }, shape: x.shape)
        try gradCheck("log", [positive]) { try $0[0].log() }
        try gradCheck("sqrt", [positive]) { try $0[0].sqrt() }
    }

    @Test func broadcastingArithmeticGradientsMatchFiniteDifferences() throws {
        let a = try randomTensor([2, 3, 5], seed: 2)
        let row = try randomTensor([5], seed: 3)
        let col = try randomTensor([3, 1], seed: 4)
        let den = try randomTensor([2, 1, 5], seed: 5, scale: 0.2, shift: 2)
        try gradCheck("add", [a, row]) { try $0[0] + $0[1] }
        try gradCheck("sub", [a, col]) { try $0[0] - $0[1] }
        try gradCheck("mul", [a, col]) { try $0[0] * $0[1] }
        try gradCheck("div", [a, den]) { try $0[0] / $0[1] }
        try gradCheck("scalar", [a]) { try ($0[0] * 3 - 1) / 2 }
        try gradCheck("expand", [col]) { try $0[0].expanded(to: [2, 3, 4]) }
    }

    @Test func reductionGradientsMatchFiniteDifferences() throws {
        let x = try randomTensor([2, 3, 4], seed: 6)
        try gradCheck("sum all", [x]) { try $0[0].sum() }
        try gradCheck("sum axes", [x]) { try $0[0].sum(axes: [0, 2]) }
        try gradCheck("mean keepDims", [x]) { try $0[0].mean(axes: [1], keepDims: true) }
        try gradCheck("cumsum", [x]) { try $0[0].cumsum(axis: 1) }
        try gradCheck("cumsum reverse", [x]) { try $0[0].cumsum(axis: -1, reverse: true) }
    }

    @Test func matmulGradientsMatchFiniteDifferencesForEveryLayout() throws {
        let a = try randomTensor([2, 3, 4], seed: 7), aT = try randomTensor([2, 4, 3], seed: 8)
        let b = try randomTensor([4, 5], seed: 9), bT = try randomTensor([5, 4], seed: 10)
        let bb = try randomTensor([2, 4, 5], seed: 11), bbT = try randomTensor([2, 5, 4], seed: 12)
        try gradCheck("A·B shared", [a, b]) { try $0[0].matmul($0[1]) }
        try gradCheck("A·Bᵀ shared", [a, bT]) { try $0[0].matmul($0[1], transposeOther: true) }
        try gradCheck("Aᵀ·B shared", [aT, b]) { try $0[0].matmul($0[1], transposeSelf: true) }
        try gradCheck("A·B batched", [a, bb]) { try $0[0].matmul($0[1]) }
        try gradCheck("Aᵀ·Bᵀ batched", [aT, bbT]) { try $0[0].matmul($0[1], transposeSelf: true, transposeOther: true) }
        let rows = try randomTensor([7, 4], seed: 30), experts = try randomTensor([3, 4, 5], seed: 31)
        try gradCheck("groupedMatmul (one empty group)", [rows, experts]) { try $0[0].groupedMatmul($0[1], groupSizes: [3, 0, 4]) }
        let w = try randomTensor([6, 4], seed: 13), bias = try randomTensor([6], seed: 14)
        try gradCheck("linear", [a, w, bias]) { try $0[0].linear(weight: $0[1], bias: $0[2]) }
        try gradCheck("activatedLinear gelu", [a, w, bias]) { try $0[0].activatedLinear(.gelu, weight: $0[1], bias: $0[2]) }
        try gradCheck("activatedLinear silu", [a, w]) { try $0[0].activatedLinear(.silu, weight: $0[1]) }
    }

    @Test func normalizationGradientsMatchFiniteDifferences() throws {
        let x = try randomTensor([4, 19], seed: 15, scale: 1.5, shift: 0.3)
        let w = try randomTensor([19], seed: 16, shift: 1), b = try randomTensor([19], seed: 17)
        try gradCheck("layerNorm", [x, w, b]) { try $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
        try gradCheck("layerNorm no bias", [x, w]) { try $0[0].layerNorm(weight: $0[1], bias: nil) }
        try gradCheck("rmsNorm", [x, w]) { try $0[0].rmsNorm(weight: $0[1]) }
        try gradCheck("rmsNorm no weight", [x]) { try $0[0].rmsNorm(weight: nil) }
    }

    @Test func softmaxAndCrossEntropyGradientsMatchFiniteDifferences() throws {
        let x = try randomTensor([3, 4, 21], seed: 18)
        try gradCheck("softmax", [x]) { try $0[0].softmax() }
        try gradCheck("logSoftmax", [x]) { try $0[0].logSoftmax() }
        let targets = try Tensor(indices: [3, -1, 20, 0, 7, 7, -1, 1, 2, 19, 5, 11], shape: [3, 4])
        try gradCheck("crossEntropy", [x]) { try $0[0].crossEntropy(targets: targets, ignoreIndex: -1) }
    }

    /// The fused LM head + cross-entropy, in chunks that do not divide the rows, with ignored rows.
    @Test func linearCrossEntropyGradientsMatchFiniteDifferences() throws {
        let hidden = try randomTensor([2, 5, 6], seed: 23), weight = try randomTensor([9, 6], seed: 24, scale: 0.5)
        let targets = try Tensor(indices: [3, -1, 8, 0, 7, 7, -1, 1, 2, 4], shape: [2, 5])
        try gradCheck("linearCrossEntropy", [hidden, weight]) {
            try Tensor.linearCrossEntropy(hidden: $0[0], weight: $0[1], targets: targets, chunkRows: 3)
        }
    }

    @Test func attentionGradientsMatchFiniteDifferences() throws {
        let q = try randomTensor([2, 2, 7, 20], seed: 19), k = try randomTensor([2, 2, 7, 20], seed: 20)
        let v = try randomTensor([2, 2, 7, 20], seed: 21)
        try gradCheck("attention causal", [q, k, v]) { try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2]) }
        try gradCheck("attention full", [q, k, v]) { try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: false) }
        // Dropout: the mask is a function of the generator's state, so each evaluation reuses it.
        try gradCheck("attention dropout", [q, k, v]) {
            try Tensor.scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], dropout: 0.3, generator: Generator(seed: 5))
        }
    }

    @Test func shapeOpGradientsMatchFiniteDifferences() throws {
        let x = try randomTensor([2, 3, 4], seed: 22), y = try randomTensor([2, 2, 4], seed: 23)
        try gradCheck("reshape", [x]) { try $0[0].reshaped([6, -1]) }
        try gradCheck("permute", [x]) { try $0[0].permuted([2, 0, 1]) }
        try gradCheck("transpose", [x]) { try $0[0].transposed(0, 2) }
        try gradCheck("concat", [x, y]) { try Tensor.concat([$0[0], $0[1]], axis: 1) }
        try gradCheck("split", [x]) { try $0[0].split([1, 2], axis: 1)[1] }
        try gradCheck("slice", [x]) { try $0[0].slice(axis: 2, start: 1, length: 2) }
    }

    /// Rounding to bfloat16 is a step function, so no finite difference applies: the gradient
    /// must pass straight through, rounded to bfloat16 on the way back.
    @Test func castPassesGradientsThroughRoundedToTheStorageType() throws {
        let x = try randomTensor([2, 3, 4], seed: 22)
        x.requiresGrad = true
        let g = try randomTensor([2, 3, 4], seed: 23)
        try x.cast(to: .bfloat16).cast(to: .float32).backward(gradient: g)
        let expected = try g.toArray().map { BFloat16.toFloat(BFloat16.fromFloat($0)) }
        #expect(try x.grad!.toArray() == expected)
    }

    @Test func indexOpGradientsMatchFiniteDifferences() throws {
        let table = try randomTensor([6, 5], seed: 24)
        let tokens = try Tensor(indices: [0, 5, 2, 2, 1, 5], shape: [2, 3])
        try gradCheck("embedding", [table]) { try $0[0].embedding(tokens) }
        try gradCheck("indexSelect", [table]) { try $0[0].indexSelect(axis: 1, index: Tensor(indices: [4, 0, 4], shape: [3])) }
        let x = try randomTensor([3, 4], seed: 25)
        let index = try Tensor(indices: [0, 3, 3, 1, 2, 2, 0, 0, 1], shape: [3, 3])
        try gradCheck("gather", [x]) { try $0[0].gather(axis: 1, index: index) }
        let src = try randomTensor([3, 3], seed: 26)
        try gradCheck("scatterAdd", [x, src]) { try $0[0].scatterAdding(axis: 1, index: index, source: $0[1]) }
        let rowsSrc = try randomTensor([5, 4], seed: 28)
        try gradCheck("indexAdd", [x, rowsSrc]) { try $0[0].indexAdding(axis: 0, index: Tensor(indices: [2, 0, 2, 1, 0], shape: [5]), source: $0[1]) }
        let spread = try Tensor((0..<24).map { Float(($0 * 7) % 24) * 0.5 }, shape: [3, 8])
        try gradCheck("topK", [spread]) { try $0[0].topK(3).values }
        let mask = try Tensor([1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1], shape: [3, 4])
        let other = try randomTensor([4], seed: 27)
        try gradCheck("where", [x, other]) { try Tensor.where(mask, $0[0], $0[1]) }
        try gradCheck("maskedFill", [x]) { try $0[0].maskedFill(mask, value: -3) }
        try gradCheck("dropout", [x]) { try $0[0].dropout(0.4, generator: Generator(seed: 3)) }
    }
}
