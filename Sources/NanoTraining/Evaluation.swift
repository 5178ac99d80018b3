import Foundation
import NanoData
import NanoEngine
import NanoModels

/// Standard evaluations: perplexity with a sliding window, and HellaSwag multiple choice.
public enum Evaluation {
    /// Negative log-likelihood of each target under the model: tokens, targets [B, T] → [B·T].
    /// Targets < 0 are padding and get loss 0.
    public static func tokenLosses(_ model: any LanguageModel, tokens: [[Int32]], targets: [[Int32]]) throws -> [[Float]] {
        let b = tokens.count, t = tokens.first?.count ?? 0
        let x = try Tensor(indices: tokens.flatMap { $0 }, shape: [b, t])
        let safeTargets = targets.flatMap { $0.map { max($0, 0) } }
        return try withNoGrad {
            let logp = try model(x, cache: nil, training: false).logSoftmax()
            let picked = try logp.gather(axis: 2, index: Tensor(indices: safeTargets, shape: [b, t, 1])).toArray()
            return (0..<b).map { row in (0..<t).map { i in targets[row][i] < 0 ? 0 : -picked[row * t + i] } }
        }
    }

    public struct Perplexity: Sendable {
        public var perplexity: Double, meanNLL: Double, tokens: Int
    }

    /// Perplexity of a token sequence with a sliding window of block_size that advances by `stride`;
    /// every target is scored once, with as much context as the window allows.
    public static func perplexity(_ model: any LanguageModel, tokens: [Int], stride: Int,
                                  progress: (Int, Int) -> Void = { _, _ in }) throws -> Perplexity {
        let block = model.config.blockSize
        guard tokens.count >= 2 else { throw TensorError.invalidArgument(op: "perplexity", message: "need at least 2 tokens, got \(tokens.count)") }
        guard (1...block).contains(stride) else {
            throw TensorError.invalidArgument(op: "perplexity", message: "stride \(stride) must be in 1...block_size (\(block))")
        }
        var nll = 0.0, scored = 0, scoredUpTo = 0, begin = 0
        while true {
            let end = min(begin + block, tokens.count - 1)          // inputs [begin, end), targets [begin+1, end]
            let inputs = tokens[begin..<end].map(Int32.init)
            var targets = tokens[(begin + 1)...end].map(Int32.init)
            let fresh = end - scoredUpTo
            for i in 0..<(targets.count - fresh) { targets[i] = -1 }   // already scored with more context
            let losses = try tokenLosses(model, tokens: [inputs], targets: [targets])[0]
            nll += losses.reduce(0.0) { $0 + Double($1) }
            scored += fresh
            scoredUpTo = end
            progress(scoredUpTo, tokens.count - 1)
            if end == tokens.count - 1 { break }
            begin += stride
        }
        return Perplexity(perplexity: Foundation.exp(nll / Double(scored)), meanNLL: nll / Double(scored), tokens: scored)
    }

    /// One HellaSwag item: a context, candidate endings and the index of the right one.
    public struct HellaSwagItem: Decodable, Sendable {
        public var ctx: String
        public var endings: [String]
        public var label: Int
        public init(ctx: String, endings: [String], label: Int) { self.ctx = ctx; self.endings = endings; self.label = label }
    }

    public struct HellaSwagResult: Sendable {
        /// Accuracy picking the ending with the lowest mean token loss (llm.c's "acc_norm").
        public var accuracyNormalized: Double
        /// Accuracy picking the ending with the lowest summed loss.
        public var accuracySum: Double
        public var count: Int
        /// Chosen ending per item (normalized rule).
        public var predictions: [Int]
    }

    /// Reads a HellaSwag .jsonl file (one {"ctx", "endings", "label"} object per line).
    public static func loadHellaSwag(_ path: String, limit: Int? = nil) throws -> [HellaSwagItem] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw FileFormatError.invalid(path: path, reason: "cannot read the file")
        }
        var items: [HellaSwagItem] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            if let limit, items.count >= limit { break }
            guard let item = try? JSONDecoder().decode(HellaSwagItem.self, from: Data(line.utf8)) else {
                throw FileFormatError.invalid(path: path, reason: "line \(n + 1) is not a {ctx, endings, label} object")
            }
            guard !item.endings.isEmpty, item.endings.indices.contains(item.label) else {
                throw FileFormatError.invalid(path: path, reason: "line \(n + 1): label \(item.label) does not index its \(item.endings.count) endings")
            }
            items.append(item)
        }
        return items
    }

    /// Scores every ending by the loss of its tokens given the context (" " + ending, as llm.c),
    /// `batchSize` items per forward pass (rows padded to the longest).
    public static func hellaSwag(_ model: any LanguageModel, tokenizer: any Tokenizer, items: [HellaSwagItem], batchSize: Int = 8,
                                 progress: (Int, Int) -> Void = { _, _ in }) throws -> HellaSwagResult {
        let block = model.config.blockSize
        var correctNorm = 0, correctSum = 0, predictions: [Int] = []
        var start = 0
        while start < items.count {
            let batch = Array(items[start..<min(start + max(batchSize, 1), items.count)])
            var rows: [[Int32]] = [], targets: [[Int32]] = []
            for item in batch {
                let context = try tokenizer.encode(item.ctx)
                for ending in item.endings {
                    let tail = try tokenizer.encode(" " + ending)
                    var all = context + tail
                    var contextLength = context.count
                    if all.count > block + 1 { contextLength -= all.count - (block + 1); all = Array(all.suffix(block + 1)) }
                    rows.append(all.dropLast().map(Int32.init))
                    // Only the ending's tokens are scored.
                    targets.append(all.dropFirst().enumerated().map { i, tok in i + 1 >= max(contextLength, 1) ? Int32(tok) : -1 })
                }
            }
            let width = rows.map(\.count).max() ?? 1
            rows = rows.map { $0 + [Int32](repeating: 0, count: width - $0.count) }
            targets = targets.map { $0 + [Int32](repeating: -1, count: width - $0.count) }
            let losses = try tokenLosses(model, tokens: rows, targets: targets)
            var row = 0
            for item in batch {
                var sums: [Double] = [], means: [Double] = []
                for _ in item.endings {
                    let scored = targets[row].filter { $0 >= 0 }.count
                    let total = losses[row].reduce(0.0) { $0 + Double($1) }
                    sums.append(total)
                    means.append(total / Double(max(scored, 1)))
                    row += 1
                }
                let byMean = means.indices.min { means[$0] < means[$1] }!
                let bySum = sums.indices.min { sums[$0] < sums[$1] }!
                predictions.append(byMean)
                if byMean == item.label { correctNorm += 1 }
                if bySum == item.label { correctSum += 1 }
            }
            start += batch.count
            progress(start, items.count)
        }
        let n = Double(max(items.count, 1))
        return HellaSwagResult(accuracyNormalized: Double(correctNorm) / n, accuracySum: Double(correctSum) / n,
                               count: items.count, predictions: predictions)
    }
}
