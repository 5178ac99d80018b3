/// Shape of a GPT: the values nanoGPT's `GPTConfig` holds.
public struct GPTConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var blockSize: Int
    public var nLayer: Int
    public var nHead: Int
    public var nEmbd: Int
    public var dropout: Float
    /// Biases in Linear layers and LayerNorms.
    public var bias: Bool
    /// LM head shares the token embedding matrix.
    public var tieWeights: Bool
    /// Mixture-of-Experts layers; nil for the dense GPT.
    public var moe: MoEConfig?
    /// MLP hidden width as a multiple of n_embd (nil: 4, GPT-2's).
    public var mlpRatio: Int?

    public init(vocabSize: Int, blockSize: Int, nLayer: Int, nHead: Int, nEmbd: Int, dropout: Float = 0,
                bias: Bool = true, tieWeights: Bool = true, moe: MoEConfig? = nil) {
        self.vocabSize = vocabSize; self.blockSize = blockSize; self.nLayer = nLayer; self.nHead = nHead
        self.nEmbd = nEmbd; self.dropout = dropout; self.bias = bias; self.tieWeights = tieWeights
        self.moe = moe
    }

    public var headDim: Int { nEmbd / nHead }
    /// Hidden width of MLPs and experts.
    public var mlpHidden: Int { (mlpRatio ?? 4) * nEmbd }
}
