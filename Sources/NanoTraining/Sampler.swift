import Foundation
import NanoEngine
import NanoModels

/// How to pick each next token.
public struct SamplingOptions: Sendable {
    public var maxNewTokens = 200
    /// 0 picks the most likely token.
    public var temperature: Float = 0.8
    /// Keep only the k most likely tokens (0: all).
    public var topK = 200
    /// Keep the smallest set of tokens whose probability reaches p (1: all).
    public var topP: Float = 1
    public var seed: UInt64 = 1337
    /// Generation stops after this token (e.g. end-of-text).
    public var stopToken: Int? = nil
    /// Reuse keys and values of past positions instead of recomputing them.
    public var useKVCache = true
    public init() {}
}

/// Autoregressive generation from a dense GPT.
public struct Sampler {
    public let model: any LanguageModel
    public init(model: any LanguageModel) { self.model = model }

    /// Continues `prompt`; calls `onToken` with each new token as it is produced. Returns the new tokens.
    public func generate(prompt: [Int], options: SamplingOptions, onToken: (Int) -> Void = { _ in }) throws -> [Int] {
        guard !prompt.isEmpty else { throw TensorError.invalidArgument(op: "sample", message: "the prompt is empty") }
        let block = model.config.blockSize
        let rng = Generator(seed: options.seed)
        var tokens = prompt, generated: [Int] = []
        var cache: KVCache? = nil
        try withNoGrad {
            for _ in 0..<options.maxNewTokens {
                let logits: Tensor
                if options.useKVCache {
                    if let c = cache, c.length < block {
                        logits = try model(Tensor(indices: [Int32(tokens.last!)], shape: [1, 1]), cache: c, training: false)
                    } else {
                        // Empty or full cache: (re)fill it from the last block_size tokens, as the
                        // uncached path sees them.
                        let window = Array(tokens.suffix(block))
                        let fresh = KVCache(layers: model.config.nLayer)
                        logits = try model(Tensor(indices: window.map(Int32.init), shape: [1, window.count]), cache: fresh, training: false)
                        cache = fresh
                    }
                } else {
                    let window = Array(tokens.suffix(block))
                    logits = try model(Tensor(indices: window.map(Int32.init), shape: [1, window.count]), cache: nil, training: false)
                }
                let vocab = model.config.vocabSize
                let all = try logits.toArray()
                let last = Array(all[(all.count - vocab)...])
                let next = pick(last, options: options, rng: rng)
                tokens.append(next)
                generated.append(next)
                onToken(next)
                if next == options.stopToken { break }
            }
        }
        return generated
    }

    func pick(_ logits: [Float], options: SamplingOptions, rng: Generator) -> Int {
        let u = Philox.sample(.uniform(low: 0, high: 1), seed: rng.seed, offset: rng.reserve(count: 1), index: 0)
        if options.temperature <= 0 { return logits.indices.max { logits[$0] < logits[$1] }! }
        var order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if options.topK > 0 { order = Array(order.prefix(options.topK)) }
        let top = logits[order[0]]
        var probs = order.map { Foundation.exp(Double((logits[$0] - top) / options.temperature)) }
        var total = probs.reduce(0, +)
        if options.topP < 1 {
            var cumulative = 0.0, keep = 0
            for p in probs { cumulative += p / total; keep += 1; if cumulative >= Double(options.topP) { break } }
            order = Array(order.prefix(keep)); probs = Array(probs.prefix(keep)); total = probs.reduce(0, +)
        }
        var target = Double(u) * total
        for (i, p) in zip(order, probs) { target -= p; if target <= 0 { return i } }
        return order.last!
    }
}
