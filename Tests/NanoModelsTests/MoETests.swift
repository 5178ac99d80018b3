import Foundation
import NanoCPU
import NanoEngine
@testable import NanoModels
import NanoNN
import NanoTestSupport
import Testing

@Suite struct MoETests {
    let gpt = GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 8)

    func layer(experts: Int, k: Int, dropless: Bool = true, capacity: Float = 1, minCapacity: Int = 1,
               routerStd: Float = 1, seed: UInt64 = 1, swiGLU: Bool = false) throws -> MoELayer {
        var moe = MoEConfig()
        moe.useSwiGLU = swiGLU
        moe.nExp = experts; moe.topK = k; moe.dropless = dropless
        moe.trainCapacity = capacity; moe.evalCapacity = capacity; moe.minCapacity = minCapacity
        let l = try MoELayer(gpt, moe, generator: Generator(seed: seed))
        // A wide router gives clear margins, so finite differences never flip a routing decision.
        try l.router.weight.assign(try Tensor.randn(l.router.weight.shape, std: routerStd, generator: Generator(seed: seed + 100)))
        for p in [l.experts.fc, l.experts.proj] { try p.assign(try Tensor.randn(p.shape, std: 0.3, generator: Generator(seed: seed + 200))) }
        for b in [l.experts.fcBias!, l.experts.projBias!] { try b.assign(try Tensor.randn(b.shape, std: 0.1, generator: Generator(seed: seed + 300))) }
        return l
    }

    /// Expert e applied to one token row by hand: gelu(x·fc[e] + b)·proj[e] + b.
    func expert(_ l: MoELayer, _ e: Int, _ x: Tensor) throws -> Tensor {
        let fc = try l.experts.fc.slice(axis: 0, start: e, length: 1).reshaped([8, 32])
        let proj = try l.experts.proj.slice(axis: 0, start: e, length: 1).reshaped([32, 8])
        let b1 = try l.experts.fcBias!.slice(axis: 0, start: e, length: 1)
        let b2 = try l.experts.projBias!.slice(axis: 0, start: e, length: 1)
        return try (x.matmul(fc) + b1).gelu().matmul(proj) + b2
    }

    @Test func oneExpertTopOneUnboundedEqualsTheDenseMLP() throws {
        let l = try layer(experts: 1, k: 1)
        let mlp = try MLP(gpt, generator: Generator(seed: 9))
        try mlp.fc.weight.assign(try l.experts.fc.reshaped([8, 32]).transposed())
        try mlp.fc.bias!.assign(try l.experts.fcBias!.reshaped([32]))
        try mlp.proj.weight.assign(try l.experts.proj.reshaped([32, 8]).transposed())
        try mlp.proj.bias!.assign(try l.experts.projBias!.reshaped([8]))
        let x = try randomTensor([2, 5, 8], seed: 3)
        let (moe, report) = try l(x, training: true)
        let dense = try mlp(x, training: true)
        let diff = zip(try moe.toArray(), try dense.toArray()).map { abs($0 - $1) }.max()!
        #expect(diff < 1e-6)
        #expect(report.tokensPerExpert == [10] && report.droppedFraction == 0)
    }

    /// 8 tokens, 2 experts, top-2, capacity ceil(2·0.5·8/2) = 4. Expert 0 is the first choice of
    /// tokens 0…4, expert 1 of tokens 5…7. First choices go first: expert 0 keeps tokens 0–3 (token
    /// 4's first choice is dropped), expert 1 keeps 5–7; then second choices in position order:
    /// expert 1 has one slot left, for token 0; expert 0 is full. Token 4 gets nothing at all.
    @Test func capacityDropsLowestPriorityAssignmentsFirst() throws {
        let l = try layer(experts: 2, k: 2, dropless: false, capacity: 0.5)
        var w = [Float](repeating: 0, count: 16)
        w[0] = 1; w[8 + 1] = 1                                   // logit e = feature e
        try l.router.weight.assign(try Tensor(w, shape: [2, 8]))
        var xs = [Float](repeating: 0, count: 64)
        for t in 0..<8 {
            xs[t * 8 + 0] = t < 5 ? 1.0 : 0.0
            xs[t * 8 + 1] = t < 5 ? 0.0 : 1.0
            for f in 2..<8 { xs[t * 8 + f] = Float((t * 7 + f * 3) % 5) * 0.2 - 0.4 }
        }
        let x = try Tensor(xs, shape: [1, 8, 8])
        let (out, report) = try l(x, training: true)
        #expect(report.tokensPerExpert == [4, 4])
        #expect(report.droppedFraction == 0.5)
        let rows = try out.reshaped([8, 8])
        let flat = try x.reshaped([8, 8])
        let gates = try (try l.router(flat)).softmax()       // k = 2 of 2: gates = softmax of both logits
        for t in 0..<8 {
            let xt = try flat.slice(axis: 0, start: t, length: 1)
            let g = try gates.slice(axis: 0, start: t, length: 1).toArray()
            var expected = try Tensor.zeros([1, 8])
            let first = t < 5 ? 0 : 1
            if t < 4 || t >= 5 { expected = try expected + expert(l, first, xt) * g[first] }
            if t == 0 { expected = try expected + expert(l, 1, xt) * g[1] }
            let got = try rows.slice(axis: 0, start: t, length: 1)
            let diff = zip(try got.toArray(), try expected.toArray()).map { abs($0 - $1) }.max()!
            #expect(diff < 1e-5, "token \(t): max difference \(diff)")
        }
    }

    @Test func droplessAndCapacityModesAgreeWhenNothingIsDropped() throws {
        let x = try randomTensor([2, 6, 8], seed: 4)
        let dropless = try layer(experts: 4, k: 2, dropless: true, seed: 7)
        let roomy = try layer(experts: 4, k: 2, dropless: false, capacity: 4, seed: 7)
        let (a, ra) = try dropless(x, training: true)
        let (b, rb) = try roomy(x, training: true)
        #expect(try a.toArray() == b.toArray())
        #expect(ra.tokensPerExpert == rb.tokensPerExpert && rb.droppedFraction == 0)
    }

    @Test(arguments: [1, 2])
    func gradientsReachRouterExpertsAndInput(k: Int) throws {
        let l = try layer(experts: 3, k: k, routerStd: 2, seed: UInt64(10 + k))
        let x = try randomTensor([1, 5, 8], seed: 5)
        let inputs = [x, l.router.weight, l.experts.fc, l.experts.proj, l.experts.fcBias!]
        try gradCheck("moe k=\(k)", inputs, eps: 1e-3, atol: 3e-3, rtol: 2e-2) { _ in try l(x, training: true).0 }
        // The router's gradient must not vanish, k = 1 included (the gate is a real probability).
        let routerGrad = try l.router.weight.grad!.toArray()
        #expect(routerGrad.contains { abs($0) > 1e-4 })
        let swi = try layer(experts: 3, k: k, routerStd: 2, seed: UInt64(20 + k), swiGLU: true)
        try gradCheck("swiglu moe k=\(k)", [x, swi.router.weight, swi.experts.fc, swi.experts.gate!, swi.experts.proj], eps: 1e-3,
                      atol: 3e-3, rtol: 2e-2) { _ in try swi(x, training: true).0 }
        try gradCheck("aux loss k=\(k)", [x, l.router.weight], eps: 1e-3) { _ in try l(x, training: true).1.auxLoss! }
        try gradCheck("z loss k=\(k)", [x, l.router.weight], eps: 1e-3) { _ in try l(x, training: true).1.zLoss! }
    }

    /// 4 tokens, 2 experts, top-1, router = identity on the first two features.
    @Test func auxAndZLossesMatchHandComputedValues() throws {
        let l = try layer(experts: 2, k: 1)
        var w = [Float](repeating: 0, count: 16)
        w[0] = 1; w[8 + 1] = 1
        try l.router.weight.assign(try Tensor(w, shape: [2, 8]))
        let logits: [(Double, Double)] = [(2, 0), (1, 0.5), (0, 1), (-1, 0)]
        var xs = [Float](repeating: 0, count: 32)
        for (t, (a, b)) in logits.enumerated() { xs[t * 8] = Float(a); xs[t * 8 + 1] = Float(b) }
        let (_, report) = try l(try Tensor(xs, shape: [1, 4, 8]), training: false)
        // Hand computation: p = softmax per token; first choices: e0, e0, e1, e1 → f = (0.5, 0.5).
        let p = logits.map { (a, b) -> (Double, Double) in let z = Foundation.exp(a) + Foundation.exp(b); return (Foundation.exp(a) / z, Foundation.exp(b) / z) }
        let meanP = (p.map(\.0).reduce(0, +) / 4, p.map(\.1).reduce(0, +) / 4)
        let aux = 2 * (0.5 * meanP.0 + 0.5 * meanP.1)
        let z = logits.map { (a, b) in Foundation.pow(Foundation.log(Foundation.exp(a) + Foundation.exp(b)), 2) }.reduce(0, +) / 4
        #expect(abs(Double(try report.auxLoss!.item()) - aux) < 1e-5)
        #expect(abs(Double(try report.zLoss!.item()) - z) < 1e-5)
        #expect(report.tokensPerExpert == [2, 2])
    }
}
