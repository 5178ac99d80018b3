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

    public init(vocabSize: Int, blockSize: Int, nLayer: Int, nHead: Int, nEmbd: Int, dropout: Float = 0,
                bias: Bool = true, tieWeights: Bool = true) {
        self.vocabSize = vocabSize; self.blockSize = blockSize; self.nLayer = nLayer; self.nHead = nHead
        self.nEmbd = nEmbd; self.dropout = dropout; self.bias = bias; self.tieWeights = tieWeights
    }

    public var headDim: Int { nEmbd / nHead }
}
