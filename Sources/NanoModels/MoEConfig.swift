/// Mixture-of-Experts settings (the config keys of the `moe` section).
public struct MoEConfig: Codable, Equatable, Sendable {
    /// Number of experts per MoE layer.
    public var nExp = 8
    /// Experts chosen per token.
    public var topK = 2
    /// Every stride-th block (0, stride, 2·stride, …) gets an MoE layer instead of its MLP.
    public var stride = 2
    /// Noisy top-k routing (Shazeer et al. 2017): softplus(W_noise·x)·N(0, 1) added while training.
    public var useNoisyTopK = false
    /// Capacity factors while training and evaluating.
    public var trainCapacity: Float = 1.25
    public var evalCapacity: Float = 2.0
    /// Lower bound on tokens per expert.
    public var minCapacity = 4
    /// Unbounded capacity: no token is ever dropped.
    public var dropless = false
    public var useAuxLoss = true
    public var auxLossWeight: Float = 0.01
    public var useRouterZLoss = true
    public var routerZLossWeight: Float = 0.001
    /// Keep the router (and the noise projection) in float32 under bf16 mixed precision.
    public var routerUseFullPrec = true
    /// Gates: softmax over all experts renormalised over the chosen k (instead of softmax over the k logits).
    public var renormalizeGates = false
    /// Experts as SwiGLU MLPs (Shazeer 2020): (SiLU(x·W_fc) ⊙ x·W_gate)·W_proj, instead of GELU MLPs.
    public var useSwiGLU = false
    /// One extra dense MLP that every token also uses (DeepSeek-style).
    public var sharedExpert = false
    /// Switch-Transformer initialisation: truncated normal, std √(scale/fan_in), cut at ±2σ.
    public var useSwitchTfmInit = false
    public var switchTfmInitScale: Float = 1.0

    public init() {}

    /// Tokens each expert may take for `tokens` tokens (Switch Transformer, §2.2).
    public func capacity(tokens: Int, training: Bool) -> Int {
        if dropless { return Int.max }
        let factor = training ? trainCapacity : evalCapacity
        let raw = (Float(topK) * factor * Float(tokens) / Float(nExp)).rounded(.up)
        return max(minCapacity, Int(raw))
    }

    /// Whether block i holds an MoE layer.
    public func isMoE(block i: Int) -> Bool { i % stride == 0 }
}
