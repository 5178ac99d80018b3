import Foundation
import NanoData
import NanoEngine
import NanoModels
import NanoNN

/// How a classification fine-tune is set up; saved in checkpoint metadata so `classify` can
/// rebuild the model.
public struct ClassifierSpec: Codable, Equatable, Sendable {
    /// Class names; the index is the class id.
    public var labels: [String]
    public var lora: LoRASettings?
    /// Longest text in tokens (longer texts are truncated).
    public var maxLength: Int
}

/// Classification fine-tuning: texts padded per batch, a linear head on the last real token,
/// cross-entropy over classes; accuracy, per-class precision/recall/F1 and a confusion matrix
/// at every evaluation (once per epoch).
public final class ClassificationTask: TrainingTask {
    public let model: GPTClassifier
    public let tokenizer: any Tokenizer
    public let spec: ClassifierSpec
    public let batchSize: Int
    public let seed: UInt64
    /// Gradient-accumulation micro-steps per optimizer step (batches are numbered across them).
    public var accumulation = 1
    /// Token ids of each split's texts, and their class ids.
    let train: [(tokens: [Int32], label: Int)]
    let val: [(tokens: [Int32], label: Int)]
    let test: [(tokens: [Int32], label: Int)]
    let padToken: Int32
    public private(set) var truncated = 0
    let tokenizerFiles: [String]

    /// `splits`: train, val and test rows. Labels of val/test must occur in train.
    public init(base: any LanguageModel, tokenizer: any Tokenizer, tokenizerFiles: [String], splits: [[LabeledText]], file: String,
                trainable: GPTClassifier.Trainable, lora: LoRASettings?, maxLength: Int?, batchSize: Int, seed: UInt64) throws {
        guard tokenizer.vocabularySize <= base.config.vocabSize else {
            throw FineTuneDataError(file: file, message: "the tokenizer has \(tokenizer.vocabularySize) tokens but the base model only \(base.config.vocabSize): they do not belong together")
        }
        let labels = Array(Set(splits[0].map(\.label))).sorted()
        guard labels.count >= 2 else {
            throw FineTuneDataError(file: file, message: "the training split has \(labels.count) label value(s) (\(labels.joined(separator: ", "))); classification needs at least 2")
        }
        let index = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, $0.offset) })
        let limit = min(maxLength ?? base.config.blockSize, base.config.blockSize)
        var truncated = 0
        func encode(_ rows: [LabeledText], split: String) throws -> [(tokens: [Int32], label: Int)] {
            try rows.map { row in
                guard let label = index[row.label] else {
                    throw FineTuneDataError(file: file, line: row.line, message: "label '\(row.label)' in the \(split) split does not occur in the training split (labels: \(labels.joined(separator: ", ")))")
                }
                var ids = try tokenizer.encode(row.text).map(Int32.init)
                if ids.isEmpty { ids = [Int32(tokenizer.endOfText ?? 0)] }
                if ids.count > limit { ids = Array(ids.prefix(limit)); truncated += 1 }
                return (ids, label)
            }
        }
        train = try encode(splits[0], split: "training")
        val = try encode(splits[1], split: "validation")
        test = try encode(splits[2], split: "test")
        self.truncated = truncated
        self.tokenizer = tokenizer
        self.tokenizerFiles = tokenizerFiles
        padToken = Int32(tokenizer.endOfText ?? 0)
        self.batchSize = batchSize
        self.seed = seed
        spec = ClassifierSpec(labels: labels, lora: lora, maxLength: limit)
        if let lora { try base.attachLoRA(lora, generator: Generator(seed: seed &+ 11)) }
        model = try GPTClassifier(base: base, classes: labels.count, generator: Generator(seed: seed &+ 12))
        if lora == nil { try model.setTrainable(trainable) } else { model.classifier.setTrainable(true) }
    }

    /// A model for a saved classifier checkpoint: base config, adapters, head.
    public static func model(for spec: ClassifierSpec, config: GPTConfig) throws -> GPTClassifier {
        let base = try makeLanguageModel(config)
        if let lora = spec.lora { try base.attachLoRA(lora) }
        return try GPTClassifier(base: base, classes: spec.labels.count)
    }

    public var module: any Module { model }
    public var checkpointMetadata: [String: String] {
        var m = Checkpoint.metadata(for: model.base.config)
        m[Checkpoint.classifierKey] = Checkpoint.json(spec)
        if let lora = spec.lora { m[Checkpoint.loraKey] = Checkpoint.json(lora) }
        return m
    }

    public var stepsPerEpoch: Int { max(1, train.count / batchSize) }

    public var summary: String {
        let counts = Dictionary(grouping: train, by: \.label).mapValues(\.count)
        let trainable = model.trainableParameters().reduce(0) { $0 + $1.tensor.count }
        return "classification: \(spec.labels.count) classes (\(spec.labels.enumerated().map { "\($0.element): \(counts[$0.offset] ?? 0)" }.joined(separator: ", ")) in train); "
            + "\(train.count) train / \(val.count) val / \(test.count) test texts; \(truncated) truncated to \(spec.maxLength) tokens; "
            + String(format: "%.2fM of %.2fM parameters trainable", Double(trainable) / 1e6, Double(model.parameterCount) / 1e6)
            + (spec.lora.map { "; LoRA rank \($0.rank), alpha \($0.alpha), targets \($0.targets.joined(separator: ","))" } ?? "")
    }

    /// Right-padded tokens [B, T] and real lengths.
    func batch(_ rows: ArraySlice<(tokens: [Int32], label: Int)>) throws -> (tokens: Tensor, lengths: [Int], labels: Tensor) {
        let t = rows.map(\.tokens.count).max() ?? 1
        var ids = [Int32](repeating: padToken, count: rows.count * t)
        for (b, row) in rows.enumerated() { for (i, id) in row.tokens.enumerated() { ids[b * t + i] = id } }
        return (try Tensor(indices: ids, shape: [rows.count, t]), rows.map(\.tokens.count),
                try Tensor(indices: rows.map { Int32($0.label) }, shape: [rows.count]))
    }

    public func trainingLoss(step: Int, micro: Int, generator: Generator, shard: DataShard) throws -> (loss: ModelLoss, tokens: Int) {
        let rows = EpochBatches.rows(of: train, batchSize: batchSize, step: step, micro: micro, accumulation: accumulation, seed: seed, shard: shard)
        let (x, lengths, y) = try batch(rows[...])
        let loss = try model(x, lengths: lengths, training: true).crossEntropy(targets: y)
        return (ModelLoss(total: loss, lm: loss), lengths.reduce(0, +))
    }

    /// Loss, accuracy, per-class precision/recall/F1 and confusion matrix over a split.
    public func score(_ rows: [(tokens: [Int32], label: Int)]) throws -> ClassificationScores {
        try withNoGrad {
            var confusion = Array(repeating: Array(repeating: 0, count: spec.labels.count), count: spec.labels.count)
            var lossSum: Float = 0
            for start in stride(from: 0, to: rows.count, by: batchSize) {
                let chunk = rows[start..<min(rows.count, start + batchSize)]
                let (x, lengths, y) = try batch(chunk)
                let logits = try model(x, lengths: lengths, training: false)
                lossSum += try logits.crossEntropy(targets: y).item() * Float(chunk.count)
                let values = try logits.toArray()
                for (i, row) in chunk.enumerated() {
                    let scores = values[(i * spec.labels.count)..<((i + 1) * spec.labels.count)]
                    let predicted = scores.indices.max { scores[$0] < scores[$1] }! - i * spec.labels.count
                    confusion[row.label][predicted] += 1
                }
            }
            return ClassificationScores(labels: spec.labels, confusion: confusion, loss: rows.isEmpty ? .nan : lossSum / Float(rows.count))
        }
    }

    public func evaluate(step: Int, generator: Generator) throws -> TaskEvaluation {
        let v = try score(val)
        let t = try score(Array(train.prefix(max(val.count, 200))))
        var result = TaskEvaluation(trainLoss: t.loss, valLoss: v.loss,
                                    metrics: ["val_accuracy": v.accuracy, "train_accuracy": t.accuracy, "epoch": Double(step) / Double(stepsPerEpoch)])
        result.lines.append(String(format: "epoch %.1f: train accuracy %.2f%%, val accuracy %.2f%% (majority class %.2f%%)",
                                   Double(step) / Double(stepsPerEpoch), 100 * t.accuracy, 100 * v.accuracy, 100 * v.majorityBaseline))
        result.lines += v.report
        return result
    }

    /// Test-split scores, also written to test_metrics.json in the run folder.
    public func finish(runDir: String) throws -> [String] {
        guard !test.isEmpty else { return [] }
        let s = try score(test)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(s), to: runDir + "/test_metrics.json")
        return [String(format: "test: accuracy %.2f%% on %d texts (majority class %.2f%%); loss %.4f", 100 * s.accuracy, test.count, 100 * s.majorityBaseline, s.loss)]
            + s.report + ["test metrics: \(runDir)/test_metrics.json"]
    }

    public func prepareRunFolder(_ runDir: String) throws {
        try copyTokenizerFiles(tokenizerFiles, to: runDir)
    }

    /// Adapters (and the head, which is new) alone, a small file next to the full weights.
    public func writeCheckpointExtras(to dir: String) throws {
        guard spec.lora != nil else { return }
        let tensors = model.loraParameters() + model.classifier.namedParameters().map { ("classifier." + $0.name, $0.tensor) }
        try writeAtomically(try SafeTensors.encode(tensors.map { ($0.0, $0.1) }, metadata: checkpointMetadata), to: dir + "/adapter.safetensors")
    }

    /// Class probabilities for one text.
    public func probabilities(_ text: String) throws -> [Float] {
        try ClassificationTask.probabilities(model: model, tokenizer: tokenizer, maxLength: spec.maxLength, text: text)
    }

    public static func probabilities(model: GPTClassifier, tokenizer: any Tokenizer, maxLength: Int, text: String) throws -> [Float] {
        var ids = try tokenizer.encode(text).map(Int32.init)
        if ids.isEmpty { ids = [Int32(tokenizer.endOfText ?? 0)] }
        ids = Array(ids.prefix(maxLength))
        return try withNoGrad {
            try model(Tensor(indices: ids, shape: [1, ids.count]), lengths: [ids.count]).softmax().toArray()
        }
    }
}

/// Accuracy, per-class precision/recall/F1 and the confusion matrix (rows: true, columns: predicted).
public struct ClassificationScores: Codable, Equatable {
    public var labels: [String]
    public var confusion: [[Int]]
    public var loss: Float

    public var total: Int { confusion.joined().reduce(0, +) }
    public var accuracy: Double { total == 0 ? 0 : Double(confusion.indices.map { confusion[$0][$0] }.reduce(0, +)) / Double(total) }
    /// Accuracy of always answering the most frequent true class.
    public var majorityBaseline: Double { total == 0 ? 0 : Double(confusion.map { $0.reduce(0, +) }.max() ?? 0) / Double(total) }

    public func precision(_ c: Int) -> Double {
        let predicted = confusion.map { $0[c] }.reduce(0, +)
        return predicted == 0 ? 0 : Double(confusion[c][c]) / Double(predicted)
    }
    public func recall(_ c: Int) -> Double {
        let actual = confusion[c].reduce(0, +)
        return actual == 0 ? 0 : Double(confusion[c][c]) / Double(actual)
    }
    public func f1(_ c: Int) -> Double {
        let p = precision(c), r = recall(c)
        return p + r == 0 ? 0 : 2 * p * r / (p + r)
    }

    enum CodingKeys: String, CodingKey { case labels, confusion, loss, accuracy, perClass = "per_class" }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(labels, forKey: .labels); try c.encode(confusion, forKey: .confusion)
        try c.encode(loss, forKey: .loss); try c.encode(accuracy, forKey: .accuracy)
        try c.encode(labels.indices.map { ["precision": precision($0), "recall": recall($0), "f1": f1($0)] }, forKey: .perClass)
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        labels = try c.decode([String].self, forKey: .labels); confusion = try c.decode([[Int]].self, forKey: .confusion)
        loss = try c.decode(Float.self, forKey: .loss)
    }
    public init(labels: [String], confusion: [[Int]], loss: Float) { self.labels = labels; self.confusion = confusion; self.loss = loss }

    /// A per-class table and the confusion matrix, as console lines.
    public var report: [String] {
        let width = max(8, labels.map(\.count).max() ?? 0)
        func pad(_ s: String) -> String { s.padding(toLength: width, withPad: " ", startingAt: 0) }
        var lines = ["  " + pad("class") + "  precision  recall     f1  support"]
        for (c, label) in labels.enumerated() {
            lines.append("  " + pad(label) + String(format: "  %9.3f  %6.3f  %5.3f  %7d", precision(c), recall(c), f1(c), confusion[c].reduce(0, +)))
        }
        lines.append("  confusion (rows: true, columns: predicted): " + labels.joined(separator: " | "))
        for (c, label) in labels.enumerated() {
            lines.append("  " + pad(label) + " " + confusion[c].map { String(format: "%6d", $0) }.joined())
        }
        return lines
    }
}

/// Epoch-based batching: each epoch visits the rows in a fresh seeded order, so the batch of a
/// step is a function of the step (resume needs no data state) and ranks take disjoint parts.
enum EpochBatches {
    static func rows<T>(of items: [T], batchSize: Int, step: Int, micro: Int, accumulation: Int = 1, seed: UInt64, shard: DataShard) -> [T] {
        let perEpoch = max(1, items.count / batchSize)
        let index = step * max(accumulation, 1) + micro
        let epoch = index / perEpoch, position = index % perEpoch
        let order = FineTuneData.shuffle(Array(items.indices), seed: seed &+ 0x5eed &+ UInt64(epoch))
        return shard.rows(of: batchSize).map { items[order[(position * batchSize + $0) % order.count]] }
    }
}

/// Copies tokenizer description files (meta.json, tokenizer.*) into a run folder so readers can decode.
public func copyTokenizerFiles(_ files: [String], to runDir: String) throws {
    for file in files {
        let dst = runDir + "/" + (file as NSString).lastPathComponent
        try? FileManager.default.removeItem(atPath: dst)
        try? FileManager.default.copyItem(atPath: file, toPath: dst)
    }
}
