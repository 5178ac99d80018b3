import NanoEngine
import NanoNN

/// A sequence classifier on top of a GPT: a Linear head reads the hidden state of each
/// sequence's last real token. With causal attention that token has seen the whole text, and
/// right-padding after it cannot change it.
public final class GPTClassifier: Module {
    public var base: any LanguageModel
    public var classifier: Linear
    public let classes: Int

    public init(base: any LanguageModel, classes: Int, generator: Generator? = nil) throws {
        guard classes >= 2 else {
            throw TensorError.invalidArgument(op: "GPTClassifier", message: "a classifier needs at least 2 classes, got \(classes)")
        }
        self.base = base
        self.classes = classes
        classifier = try Linear(base.config.nEmbd, classes, bias: true, generator: generator)
    }

    /// Class logits [B, classes] for right-padded tokens [B, T] whose real lengths are `lengths`.
    public func callAsFunction(_ tokens: Tensor, lengths: [Int], training: Bool = false) throws -> Tensor {
        let (b, t) = (tokens.shape[0], tokens.shape[1])
        guard lengths.count == b, lengths.allSatisfy({ $0 >= 1 && $0 <= t }) else {
            throw TensorError.invalidArgument(op: "GPTClassifier", message: "lengths \(lengths) must be \(b) values in 1...\(t)")
        }
        let hidden = try base.hiddenStates(tokens, cache: nil, training: training)   // [B, T, C]
        let rows = try hidden.reshaped([b * t, base.config.nEmbd])
        let last = try Tensor(indices: lengths.enumerated().map { Int32($0.offset * t + $0.element - 1) }, shape: [b])
        return try classifier(rows.indexSelect(axis: 0, index: last))
    }

    /// What to train: only the head, the head plus the last `n` blocks and the final norm, or everything.
    public enum Trainable: Equatable, Sendable {
        case head
        case lastBlocks(Int)
        case all
    }

    /// Freezes the base model except what `trainable` names; the head always trains.
    public func setTrainable(_ trainable: Trainable) throws {
        let blockCount = base.config.nLayer
        base.setTrainable(false)
        classifier.setTrainable(true)
        switch trainable {
        case .head: break
        case .all: base.setTrainable(true)
        case let .lastBlocks(n):
            guard n >= 0 && n <= blockCount else {
                throw TensorError.invalidArgument(op: "GPTClassifier", message: "last \(n) blocks: the model has \(blockCount)")
            }
            let names = Set((blockCount - n..<blockCount).map { "blocks.\($0)." } + ["finalNorm."])
            for (name, p) in base.namedParameters() where names.contains(where: { name.hasPrefix($0) }) {
                p.requiresGrad = true
            }
        }
    }
}
