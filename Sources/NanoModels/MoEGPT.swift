import NanoEngine
import NanoNN

/// A transformer block whose feed-forward network is an MLP or an MoE layer.
public final class MoEBlock: Module {
    public var norm1: LayerNorm
    public var attention: CausalSelfAttention
    public var norm2: LayerNorm
    public var mlp: MLP?
    public var moe: MoELayer?
    let dropout: Float

    init(_ c: GPTConfig, experts: Bool, generator: Generator) throws {
        dropout = c.dropout
        norm1 = try LayerNorm(c.nEmbd, bias: c.bias)
        attention = try CausalSelfAttention(c, generator: generator)
        norm2 = try LayerNorm(c.nEmbd, bias: c.bias)
        if experts, let moe = c.moe { self.moe = try MoELayer(c, moe, generator: generator) } else { mlp = try MLP(c, generator: generator) }
    }

    func callAsFunction(_ x: Tensor, cache: KVCache.Layer?, training: Bool, reports: inout [MoEReport]) throws -> Tensor {
        let x = try x + attention(norm1(x), cache: cache, training: training)
        if let moe {
            let (y, report) = try moe(norm2(x), training: training)
            reports.append(report)
            return try x + y.dropout(dropout, training: training)
        }
        return try x + mlp!(norm2(x), training: training)
    }
}

/// The Mixture-of-Experts GPT: the dense GPT with the MLP of every stride-th block replaced by an
/// MoE layer (Switch Transformer; blocks 0, stride, 2·stride, …).
public final class MoEGPT: LanguageModel {
    public let config: GPTConfig
    public var tokenEmbedding: Embedding
    public var positionEmbedding: Embedding
    public var blocks: [MoEBlock]
    public var finalNorm: LayerNorm
    public var head: Linear?

    public init(_ config: GPTConfig, seed: UInt64 = 1337) throws {
        guard let moe = config.moe else {
            throw TensorError.invalidArgument(op: "MoEGPT", message: "the config has no moe section")
        }
        guard config.nEmbd % config.nHead == 0, moe.nExp >= 1, (1...moe.nExp).contains(moe.topK), moe.stride >= 1 else {
            throw TensorError.invalidArgument(op: "MoEGPT", message: "invalid shape: n_embd \(config.nEmbd) / n_head \(config.nHead), n_exp \(moe.nExp), top_k \(moe.topK), stride \(moe.stride)")
        }
        let g = Generator(seed: seed)
        self.config = config
        tokenEmbedding = try Embedding(config.vocabSize, config.nEmbd, generator: g)
        positionEmbedding = try Embedding(config.blockSize, config.nEmbd, generator: g)
        blocks = try (0..<config.nLayer).map { try MoEBlock(config, experts: moe.isMoE(block: $0), generator: g) }
        finalNorm = try LayerNorm(config.nEmbd, bias: config.bias)
        head = config.tieWeights ? nil : try Linear(config.nEmbd, config.vocabSize, bias: false, generator: g)
        if moe.useSwitchTfmInit { try switchInitialize(scale: moe.switchTfmInitScale, generator: g) }
    }

    /// Switch Transformer initialisation for the dense matrices too: truncated normal, std √(scale/fan_in), ±2σ.
    func switchInitialize(scale: Float, generator: Generator) throws {
        for (name, p) in namedParameters() where p.rank == 2 && !name.contains("Embedding") {
            let s = (scale / Float(p.shape[1])).squareRoot()
            try p.assign(try Tensor.random(p.shape, .truncatedNormal(mean: 0, std: s, low: -2 * s, high: 2 * s), generator: generator))
        }
    }

    func forward(_ tokens: Tensor, cache: KVCache?, training: Bool) throws -> (Tensor, [MoEReport]) {
        let t = tokens.shape[1], start = cache?.length ?? 0
        guard start + t <= config.blockSize else {
            throw TensorError.invalidArgument(op: "MoEGPT", message: "sequence of \(start + t) tokens exceeds block_size \(config.blockSize)")
        }
        let positions = try Tensor(indices: (start..<(start + t)).map(Int32.init), shape: [t])
        var x = try (tokenEmbedding(tokens) + positionEmbedding(positions)).dropout(config.dropout, training: training)
        var reports: [MoEReport] = []
        for (i, block) in blocks.enumerated() {
            x = try block(x, cache: cache?.layers[i], training: training, reports: &reports)
        }
        return (try finalNorm(x), reports)
    }

    public func hiddenStates(_ tokens: Tensor, cache: KVCache? = nil, training: Bool = false) throws -> Tensor {
        try forward(tokens, cache: cache, training: training).0
    }

    public func callAsFunction(_ tokens: Tensor, cache: KVCache? = nil, training: Bool = false) throws -> Tensor {
        try forward(tokens, cache: cache, training: training).0.linear(weight: head?.weight ?? tokenEmbedding.weight)
    }

    /// LM loss plus the weighted load-balancing and z-losses summed over MoE layers.
    public func loss(_ tokens: Tensor, targets: Tensor, training: Bool = false) throws -> ModelLoss {
        let moe = config.moe!
        let (hidden, reports) = try forward(tokens, cache: nil, training: training)
        let lm = try Tensor.linearCrossEntropy(hidden: hidden, weight: head?.weight ?? tokenEmbedding.weight, targets: targets)
        var result = ModelLoss(total: lm, lm: lm, reports: reports)
        let aux = reports.compactMap(\.auxLoss), z = reports.compactMap(\.zLoss)
        if !aux.isEmpty {
            result.aux = try aux.dropFirst().reduce(aux[0]) { try $0 + $1 }
            result.total = try result.total + result.aux!.scaled(by: moe.auxLossWeight)
        }
        if !z.isEmpty {
            result.z = try z.dropFirst().reduce(z[0]) { try $0 + $1 }
            result.total = try result.total + result.z!.scaled(by: moe.routerZLossWeight)
        }
        return result
    }

    /// All parameters minus the experts a token does not use (n_exp − top_k of each MoE layer).
    public var activeParameterCount: Int {
        guard let moe = config.moe else { return parameterCount }
        let idle = blocks.compactMap(\.moe).reduce(0) { total, layer in
            let experts = layer.experts.fc.count + layer.experts.proj.count + (layer.experts.gate?.count ?? 0)
                + (layer.experts.fcBias?.count ?? 0) + (layer.experts.projBias?.count ?? 0)
            return total + experts * (moe.nExp - moe.topK) / moe.nExp
        }
        return parameterCount - idle
    }
}
