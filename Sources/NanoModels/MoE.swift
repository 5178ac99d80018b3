import NanoEngine
import NanoNN

// Mixture-of-Experts feed-forward layer (Shazeer et al. 2017; Switch Transformer, Fedus et al.
// 2021; ST-MoE, Zoph et al. 2022). A router picks top-k experts per token; tokens are sorted by
// expert and each expert's rows run as one matmul (no per-token loop, no one-hot dispatch matmul).

/// Auxiliary losses and routing statistics of one MoE layer's forward pass.
public struct MoEReport {
    /// Load-balancing loss, Switch Transformer eq. (4): n_exp · Σᵢ fᵢ·Pᵢ (unweighted).
    public var auxLoss: Tensor?
    /// Router z-loss, ST-MoE eq. (5): mean over tokens of logsumexp(logits)² (unweighted).
    public var zLoss: Tensor?
    /// Assignments each expert processed (after dropping).
    public var tokensPerExpert: [Int]
    /// Fraction of the N·k assignments dropped for lack of capacity.
    public var droppedFraction: Float
    /// Mean entropy of the router's distribution over experts (nats).
    public var routerEntropy: Float
}

/// n_exp MLPs stored as stacked weights: fc [n_exp, d, h] and proj [n_exp, h, d] (GELU), plus
/// gate [n_exp, d, h] for SwiGLU experts.
public final class Experts: Module {
    public var fc: Tensor
    public var fcBias: Tensor?
    public var gate: Tensor?
    public var proj: Tensor
    public var projBias: Tensor?

    init(count: Int, width d: Int, hidden h: Int, bias: Bool, swiGLU: Bool, projStd: Float, switchInit: Float?,
         generator: Generator) throws {
        func weights(_ shape: [Int], fanIn: Int, std: Float) throws -> Tensor {
            if let scale = switchInit {
                let s = (scale / Float(fanIn)).squareRoot()
                return parameter(try Tensor.random(shape, .truncatedNormal(mean: 0, std: s, low: -2 * s, high: 2 * s), generator: generator))
            }
            return parameter(try Tensor.randn(shape, std: std, generator: generator))
        }
        fc = try weights([count, d, h], fanIn: d, std: 0.02)
        proj = try weights([count, h, d], fanIn: h, std: projStd)
        gate = swiGLU ? try weights([count, d, h], fanIn: d, std: 0.02) : nil
        fcBias = bias ? parameter(try Tensor.zeros([count, h])) : nil
        projBias = bias ? parameter(try Tensor.zeros([count, d])) : nil
    }

    /// Rows x [M, d] sorted by expert, `sizes` rows per expert, `experts` the expert of each row.
    func callAsFunction(_ x: Tensor, sizes: [Int], experts: Tensor) throws -> Tensor {
        var h = try x.groupedMatmul(fc, groupSizes: sizes)
        if let fcBias { h = try h + fcBias.indexSelect(axis: 0, index: experts) }
        if let gate {
            h = try h.silu() * x.groupedMatmul(gate, groupSizes: sizes)
        } else {
            h = try h.gelu()
        }
        var y = try h.groupedMatmul(proj, groupSizes: sizes)
        if let projBias { y = try y + projBias.indexSelect(axis: 0, index: experts) }
        return y
    }
}

/// The router and the experts of one MoE layer.
public final class MoELayer: Module {
    public let config: MoEConfig
    /// Gate: logits = x·Wᵀ, no bias.
    public var router: Linear
    /// Noise scale for noisy top-k.
    public var noise: Linear?
    public var experts: Experts
    public var shared: MLP?

    public init(_ c: GPTConfig, _ moe: MoEConfig, generator: Generator) throws {
        config = moe
        let switchInit = moe.useSwitchTfmInit ? moe.switchTfmInitScale : nil
        router = try Linear(c.nEmbd, moe.nExp, bias: false, generator: generator)
        noise = moe.useNoisyTopK ? try Linear(c.nEmbd, moe.nExp, bias: false, generator: generator) : nil
        experts = try Experts(count: moe.nExp, width: c.nEmbd, hidden: c.mlpHidden, bias: c.bias, swiGLU: moe.useSwiGLU,
                              projStd: 0.02 / Float(2 * c.nLayer).squareRoot(), switchInit: switchInit, generator: generator)
        shared = moe.sharedExpert ? try MLP(c, generator: generator) : nil
    }

    /// x [B, T, C] → ([B, T, C], report).
    public func callAsFunction(_ x: Tensor, training: Bool) throws -> (Tensor, MoEReport) {
        let c = x.shape[x.rank - 1]
        let flat = try x.reshaped([-1, c])
        let n = flat.shape[0], e = config.nExp, k = config.topK

        // Route (in float32 under bf16 mixed precision unless router_use_full_prec is off: rounding
        // the logits can flip which experts win).
        let routerType = config.routerUseFullPrec ? DType.float32 : MixedPrecision.compute
        let clean = try MixedPrecision.run(routerType) { try router(flat) }    // [N, E]
        var logits = clean
        if let noise, training {
            logits = try clean + MixedPrecision.run(routerType) { try noise(flat) }.softplus() * Tensor.randn([n, e])
        }
        let (topLogits, topExperts) = try logits.topK(k)               // [N, k]
        let probs = try logits.softmax()                               // [N, E]
        var gates: Tensor                                              // [N, k]
        if k == 1 || config.renormalizeGates {
            // With k = 1 a softmax over the one chosen logit would be the constant 1: take the
            // probability among all experts instead, so the router still gets a gradient.
            gates = try probs.gather(axis: 1, index: topExperts)
            if k > 1 { gates = try gates / gates.sum(axes: [1], keepDims: true) }
        } else {
            gates = try topLogits.softmax()
        }

        // Assignments in priority order: all first choices (by position), then all second choices…
        let choice = try topExperts.toInt32Array()                    // row n: k experts
        let capacity = config.capacity(tokens: n, training: training)
        var filled = [Int](repeating: 0, count: e)
        var kept = [[Int32]](repeating: [], count: e)                  // assignment ids a = j·N + n
        for j in 0..<k {
            for t in 0..<n {
                let expert = Int(choice[t * k + j])
                if filled[expert] < capacity {
                    filled[expert] += 1
                    kept[expert].append(Int32(j * n + t))
                }
            }
        }
        let order = kept.flatMap { $0 }                                // sorted by expert, then priority
        let sizes = kept.map(\.count)
        var output: Tensor
        if order.isEmpty {
            output = try flat.affine(scale: 0)
        } else {
            let orderTensor = try Tensor(indices: order, shape: [order.count])
            let tokens = try Tensor(indices: order.map { $0 % Int32(n) }, shape: [order.count])
            let expertOfRow = try Tensor(indices: kept.enumerated().flatMap { i, list in list.map { _ in Int32(i) } }, shape: [order.count])
            let rows = try flat.indexSelect(axis: 0, index: tokens)                          // [M, C]
            let y = try experts(rows, sizes: sizes, experts: expertOfRow)                  // [M, C]
            let gateOfRow = try gates.transposed().reshaped([-1, 1]).indexSelect(axis: 0, index: orderTensor) // [M, 1]
            output = try Tensor.zeros([n, c]).indexAdding(axis: 0, index: tokens, source: y * gateOfRow)
        }
        if let shared { output = try output + shared(flat, training: training) }

        // Losses and statistics.
        var counts = [Float](repeating: 0, count: e)
        for expert in choice { counts[Int(expert)] += 1 }
        var report = MoEReport(auxLoss: nil, zLoss: nil, tokensPerExpert: sizes,
                               droppedFraction: 1 - Float(order.count) / Float(n * k), routerEntropy: 0)
        if config.useAuxLoss {
            let f = try Tensor(counts.map { $0 / Float(n * k) }, shape: [e])   // fraction of assignments (no gradient)
            report.auxLoss = try (probs.mean(axes: [0]) * f).sum().scaled(by: Float(e))
        }
        if config.useRouterZLoss {
            let m = try clean.max(axis: 1, keepDims: true)                 // constant shift for stability
            let lse = try (clean - m).exp().sum(axes: [1]).log() + m.reshaped([n])
            report.zLoss = try lse.square().mean()
        }
        report.routerEntropy = try withNoGrad {
            let p = try clean.softmax()
            return try (p * (p + 1e-9).log()).sum().item() / -Float(n)
        }
        return (try output.reshaped(x.shape), report)
    }
}
