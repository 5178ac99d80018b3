import NanoEngine
import NanoNN

/// What a training step needs from a forward pass: the total loss to differentiate and its parts.
public struct ModelLoss {
    /// LM loss + weighted auxiliary losses.
    public var total: Tensor
    /// Next-token cross-entropy.
    public var lm: Tensor
    /// Sums over MoE layers (unweighted); nil for dense models.
    public var aux: Tensor?, z: Tensor?
    /// One report per MoE layer.
    public var reports: [MoEReport] = []

    public init(total: Tensor, lm: Tensor, aux: Tensor? = nil, z: Tensor? = nil, reports: [MoEReport] = []) {
        self.total = total; self.lm = lm; self.aux = aux; self.z = z; self.reports = reports
    }
}

/// A decoder-only language model: the dense GPT or the MoE GPT.
public protocol LanguageModel: Module {
    var config: GPTConfig { get }
    var tokenEmbedding: Embedding { get }
    var positionEmbedding: Embedding { get }
    /// Logits [B, T, vocab] for tokens [B, T]; with a cache, tokens are the positions after the cached ones.
    func callAsFunction(_ tokens: Tensor, cache: KVCache?, training: Bool) throws -> Tensor
    /// Final-LayerNorm outputs [B, T, C], before the LM head.
    func hiddenStates(_ tokens: Tensor, cache: KVCache?, training: Bool) throws -> Tensor
    /// Loss of tokens [B, T] against next-token targets [B, T] (targets of -1 are ignored).
    func loss(_ tokens: Tensor, targets: Tensor, training: Bool) throws -> ModelLoss
    /// Parameters that one token uses (all, for a dense model).
    var activeParameterCount: Int { get }
}

extension LanguageModel {
    /// Parameter count, and the count without position embeddings (the usual way GPT sizes are quoted).
    public var parameterCounts: (total: Int, withoutPositions: Int) {
        let total = parameterCount
        return (total, total - positionEmbedding.weight.count)
    }

    /// Parameters that get weight decay: matrices and embeddings (rank ≥ 2), not biases or norms.
    public func decayedParameterNames() -> Set<String> {
        Set(namedParameters().filter { $0.tensor.rank >= 2 }.map(\.name))
    }
}

/// The model a config describes, freshly initialised.
public func makeLanguageModel(_ config: GPTConfig, seed: UInt64 = 1337) throws -> any LanguageModel {
    config.moe == nil ? try DenseGPT(config, seed: seed) : try MoEGPT(config, seed: seed)
}
