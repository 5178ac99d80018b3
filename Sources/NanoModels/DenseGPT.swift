import NanoEngine
import NanoNN

// GPT-2 (Radford et al. 2019): token + position embeddings, pre-LayerNorm transformer blocks of
// causal self-attention and a 4× GELU MLP, a final LayerNorm and an LM head tied to the token
// embedding. Read it top to bottom; the engine's ops do the arithmetic.

/// Multi-head causal self-attention: one Linear makes queries, keys and values for all heads.
public final class CausalSelfAttention: Module {
    public var qkv: Linear
    public var proj: Linear
    public let nHead: Int
    public let dropout: Float

    public init(_ c: GPTConfig, generator: Generator) throws {
        qkv = try Linear(c.nEmbd, 3 * c.nEmbd, bias: c.bias, generator: generator)
        // GPT-2 scales residual projections by 1/√(2·n_layer): two residual adds per block.
        proj = try Linear(c.nEmbd, c.nEmbd, bias: c.bias, std: 0.02 / Float(2 * c.nLayer).squareRoot(), generator: generator)
        nHead = c.nHead
        dropout = c.dropout
    }

    /// x: [B, T, C] → [B, T, C]. With a cache, x holds only the new positions.
    public func callAsFunction(_ x: Tensor, cache: KVCache.Layer? = nil, training: Bool) throws -> Tensor {
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        let d = c / nHead
        func heads(_ y: Tensor) throws -> Tensor {   // [B, T, C] → [B, H, T, D]
            try y.reshaped([b, t, nHead, d]).permuted([0, 2, 1, 3])
        }
        if cache == nil {   // training and prompt-free scoring: the fused kernel reads the heads in place
            let y = try Tensor.packedCausalAttention(qkv: qkv(x), heads: nHead, dropout: training ? dropout : 0)
            return try proj(y).dropout(dropout, training: training)
        }
        let parts = try qkv(x).split([c, c, c], axis: 2)
        let q = try heads(parts[0])
        var k = try heads(parts[1]), v = try heads(parts[2])
        if let cache {
            (k, v) = try cache.append(keys: k, values: v)
        }
        let y = try Tensor.scaledDotProductAttention(q: q, k: k, v: v, causal: true, dropout: training ? dropout : 0)
        let merged = try y.permuted([0, 2, 1, 3]).reshaped([b, t, c])
        return try proj(merged).dropout(dropout, training: training)
    }
}

/// The feed-forward network: Linear → GELU → Linear, 4× wide by default.
public final class MLP: Module {
    public var fc: Linear
    public var proj: Linear
    public let dropout: Float

    public init(_ c: GPTConfig, generator: Generator) throws {
        fc = try Linear(c.nEmbd, c.mlpHidden, bias: c.bias, generator: generator)
        proj = try Linear(c.mlpHidden, c.nEmbd, bias: c.bias, std: 0.02 / Float(2 * c.nLayer).squareRoot(), generator: generator)
        dropout = c.dropout
    }

    public func callAsFunction(_ x: Tensor, training: Bool) throws -> Tensor {
        let h = try fc(x)
        // GELU fused into the projection: its output is not kept for backward (made again there).
        let y = try proj.lora == nil ? h.activatedLinear(.gelu, weight: proj.weight, bias: proj.bias) : proj(h.gelu())
        return try y.dropout(dropout, training: training)
    }
}

/// One pre-norm transformer block: attention then MLP, each with a residual connection.
public final class Block: Module {
    public var norm1: LayerNorm
    public var attention: CausalSelfAttention
    public var norm2: LayerNorm
    public var mlp: MLP

    public init(_ c: GPTConfig, generator: Generator) throws {
        norm1 = try LayerNorm(c.nEmbd, bias: c.bias)
        attention = try CausalSelfAttention(c, generator: generator)
        norm2 = try LayerNorm(c.nEmbd, bias: c.bias)
        mlp = try MLP(c, generator: generator)
    }

    public func callAsFunction(_ x: Tensor, cache: KVCache.Layer? = nil, training: Bool) throws -> Tensor {
        let x = try x + attention(norm1(x), cache: cache, training: training)
        return try x + mlp(norm2(x), training: training)
    }
}

/// The dense GPT language model.
public final class DenseGPT: LanguageModel {
    public let config: GPTConfig
    public var tokenEmbedding: Embedding
    public var positionEmbedding: Embedding
    public var blocks: [Block]
    public var finalNorm: LayerNorm
    /// Separate LM head; nil when tied to the token embedding.
    public var head: Linear?

    /// A freshly initialised model (GPT-2 initialisation: N(0, 0.02), residual projections scaled).
    public init(_ config: GPTConfig, seed: UInt64 = 1337) throws {
        guard config.moe == nil else {
            throw TensorError.invalidArgument(op: "DenseGPT", message: "the config has MoE layers: build it with makeLanguageModel or MoEGPT")
        }
        guard config.nEmbd % config.nHead == 0 else {
            throw TensorError.invalidArgument(op: "DenseGPT", message: "n_embd \(config.nEmbd) is not divisible by n_head \(config.nHead)")
        }
        let g = Generator(seed: seed)
        self.config = config
        tokenEmbedding = try Embedding(config.vocabSize, config.nEmbd, generator: g)
        positionEmbedding = try Embedding(config.blockSize, config.nEmbd, generator: g)
        blocks = try (0..<config.nLayer).map { _ in try Block(config, generator: g) }
        finalNorm = try LayerNorm(config.nEmbd, bias: config.bias)
        head = config.tieWeights ? nil : try Linear(config.nEmbd, config.vocabSize, bias: false, generator: g)
    }

    /// Logits [B, T, vocab] for tokens [B, T] (int32). With a cache, tokens are the new positions
    /// that follow the cached ones.
    public func callAsFunction(_ tokens: Tensor, cache: KVCache? = nil, training: Bool = false) throws -> Tensor {
        try hiddenStates(tokens, cache: cache, training: training).linear(weight: head?.weight ?? tokenEmbedding.weight)
    }

    /// The final-LayerNorm outputs [B, T, C] that the LM head reads (classifiers read them too).
    public func hiddenStates(_ tokens: Tensor, cache: KVCache? = nil, training: Bool = false) throws -> Tensor {
        let t = tokens.shape[1], start = cache?.length ?? 0
        guard start + t <= config.blockSize else {
            throw TensorError.invalidArgument(op: "DenseGPT", message: "sequence of \(start + t) tokens exceeds block_size \(config.blockSize)")
        }
        let positions = try Tensor(indices: (start..<(start + t)).map(Int32.init), shape: [t])
        var x = try (tokenEmbedding(tokens) + positionEmbedding(positions)).dropout(config.dropout, training: training)
        for (i, block) in blocks.enumerated() {
            x = try block(x, cache: cache?.layers[i], training: training)
        }
        return try finalNorm(x)
    }

    /// Mean next-token cross-entropy of tokens [B, T] against targets [B, T]. The head and the
    /// loss are fused over chunks of rows, so the [B·T, vocab] logits never exist whole.
    public func loss(_ tokens: Tensor, targets: Tensor, training: Bool = false) throws -> ModelLoss {
        let lm = try Tensor.linearCrossEntropy(hidden: hiddenStates(tokens, training: training),
                                               weight: head?.weight ?? tokenEmbedding.weight, targets: targets)
        return ModelLoss(total: lm, lm: lm)
    }

    public var activeParameterCount: Int { parameterCount }
}

/// Keys and values of past positions, per layer, for incremental decoding.
public final class KVCache {
    public final class Layer {
        var keys: Tensor?
        var values: Tensor?

        /// Appends new keys/values [B, H, t, D] along time; returns the whole history.
        func append(keys k: Tensor, values v: Tensor) throws -> (Tensor, Tensor) {
            let all = (try keys.map { try Tensor.concat([$0, k], axis: 2) } ?? k,
                       try values.map { try Tensor.concat([$0, v], axis: 2) } ?? v)
            keys = all.0
            values = all.1
            return all
        }
    }

    public let layers: [Layer]
    public init(layers: Int) { self.layers = (0..<layers).map { _ in Layer() } }
    /// Number of cached positions.
    public var length: Int { layers.first?.keys?.shape[2] ?? 0 }
}
