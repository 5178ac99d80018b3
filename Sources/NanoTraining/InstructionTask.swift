import Foundation
import NanoData
import NanoEngine
import NanoModels
import NanoNN

/// One tokenised instruction example: prompt + response + end-of-text, and how many of the
/// tokens are prompt (their predictions are not trained).
struct EncodedExample {
    var tokens: [Int32]
    var promptLength: Int
    var index: Int
}

/// Instruction tuning (Alpaca format): next-token loss on response tokens only, batches of
/// similar lengths, validation loss over the response tokens of the whole validation split,
/// and generated responses for the test split at the end.
public final class InstructionTask: TrainingTask {
    public let model: any LanguageModel
    public let tokenizer: any Tokenizer
    public let lora: LoRASettings?
    public let batchSize: Int
    public let seed: UInt64
    public var accumulation = 1
    /// Tokens generated per test response.
    public var maxResponseTokens = 128
    /// Test examples to answer at the end (nil: all).
    public var testLimit: Int? = nil
    let examples: [InstructionExample]
    let train: [EncodedExample], val: [EncodedExample], test: [Int]
    let endOfText: Int32
    public private(set) var truncated = 0, skipped = 0
    let tokenizerFiles: [String]

    public init(base: any LanguageModel, tokenizer: any Tokenizer, tokenizerFiles: [String], examples: [InstructionExample],
                split: [Double], file: String, lora: LoRASettings?, batchSize: Int, seed: UInt64) throws {
        guard tokenizer.vocabularySize <= base.config.vocabSize else {
            throw FineTuneDataError(file: file, message: "the tokenizer has \(tokenizer.vocabularySize) tokens but the base model only \(base.config.vocabSize): they do not belong together")
        }
        guard let eot = tokenizer.endOfText else {
            throw FineTuneDataError(file: file, message: "instruction tuning appends <|endoftext|> to each response, and the base model's tokenizer has none (use a BPE tokenizer, e.g. `nanodecoder tokenizer train`)")
        }
        endOfText = Int32(eot)
        self.model = base
        self.tokenizer = tokenizer
        self.tokenizerFiles = tokenizerFiles
        self.lora = lora
        self.batchSize = batchSize
        self.seed = seed
        self.examples = examples
        let parts = FineTuneData.split(count: examples.count, fractions: split, seed: seed)
        let limit = base.config.blockSize + 1   // inputs and targets are the sequence shifted by one
        var truncated = 0, skipped = 0
        func encode(_ indices: [Int]) throws -> [EncodedExample] {
            try indices.compactMap { i in
                let prompt = try tokenizer.encode(examples[i].prompt).map(Int32.init)
                let response = try tokenizer.encode(examples[i].output).map(Int32.init) + [Int32(eot)]
                guard prompt.count < limit - 1 else { skipped += 1; return nil }
                var tokens = prompt + response
                if tokens.count > limit { tokens = Array(tokens.prefix(limit)); truncated += 1 }
                return EncodedExample(tokens: tokens, promptLength: prompt.count, index: i)
            }
        }
        train = try encode(parts[0])
        val = try encode(parts[1])
        test = parts[2]
        self.truncated = truncated
        self.skipped = skipped
        guard !train.isEmpty else { throw FineTuneDataError(file: file, message: "no training example fits the context of \(base.config.blockSize) tokens") }
        guard train.count >= batchSize else {
            throw FineTuneDataError(file: file, message: "the batch size \(batchSize) exceeds the \(train.count) training examples: use a smaller --batch-size")
        }
        if let lora { try base.attachLoRA(lora, generator: Generator(seed: seed &+ 11)) }
    }

    public var module: any Module { model }
    public var checkpointMetadata: [String: String] {
        var m = Checkpoint.metadata(for: model.config)
        m[Checkpoint.instructKey] = "alpaca"
        if let lora { m[Checkpoint.loraKey] = Checkpoint.json(lora) }
        return m
    }

    public var stepsPerEpoch: Int { max(1, train.count / batchSize) }

    public var summary: String {
        let trainable = model.trainableParameters().reduce(0) { $0 + $1.tensor.count }
        return "instruction tuning: \(train.count) train / \(val.count) val / \(test.count) test examples; \(truncated) truncated to \(model.config.blockSize) tokens, \(skipped) skipped (prompt alone fills the context); "
            + String(format: "%.2fM of %.2fM parameters trainable", Double(trainable) / 1e6, Double(model.parameterCount) / 1e6)
            + (lora.map { "; LoRA rank \($0.rank), alpha \($0.alpha), targets \($0.targets.joined(separator: ","))" } ?? "")
    }

    /// Inputs [B, T] and targets [B, T] padded to the longest example; targets are -1 (ignored)
    /// where the next token is part of the prompt or padding.
    static func batch(_ rows: [EncodedExample], pad: Int32) throws -> (inputs: Tensor, targets: Tensor, responseTokens: Int) {
        let t = max(1, (rows.map(\.tokens.count).max() ?? 2) - 1)
        var x = [Int32](repeating: pad, count: rows.count * t), y = [Int32](repeating: -1, count: rows.count * t)
        var counted = 0
        for (b, row) in rows.enumerated() {
            for i in 0..<(row.tokens.count - 1) {
                x[b * t + i] = row.tokens[i]
                // Position i predicts token i+1; train it only when token i+1 belongs to the response.
                if i + 1 >= row.promptLength { y[b * t + i] = row.tokens[i + 1]; counted += 1 }
            }
        }
        return (try Tensor(indices: x, shape: [rows.count, t]), try Tensor(indices: y, shape: [rows.count, t]), counted)
    }

    /// The batch for a step: an epoch's examples in seeded order, grouped into chunks of similar
    /// length (so padding stays small), then the batches shuffled.
    func rows(step: Int, micro: Int, shard: DataShard) -> [EncodedExample] {
        let global = batchSize
        let perEpoch = max(1, train.count / global)
        let index = step * accumulation + micro
        let epoch = index / perEpoch, position = index % perEpoch
        let order = FineTuneData.shuffle(Array(train.indices), seed: seed &+ 0x5eed &+ UInt64(epoch))
        let chunk = global * 16
        var batches: [[Int]] = []
        for start in stride(from: 0, to: perEpoch * global, by: chunk) {
            let sorted = order[start..<min(start + chunk, perEpoch * global)].sorted { train[$0].tokens.count < train[$1].tokens.count }
            for b in stride(from: 0, to: sorted.count - global + 1, by: global) { batches.append(Array(sorted[sorted.startIndex + b..<sorted.startIndex + b + global])) }
        }
        batches = FineTuneData.shuffle(batches, seed: seed &+ 0xba7c &+ UInt64(epoch))
        let mine = batches[position % batches.count]
        return shard.rows(of: batchSize).map { train[mine[$0]] }
    }

    public func trainingLoss(step: Int, micro: Int, generator: Generator, shard: DataShard) throws -> (loss: ModelLoss, tokens: Int) {
        let (x, y, _) = try Self.batch(rows(step: step, micro: micro, shard: shard), pad: endOfText)
        return (try model.loss(x, targets: y, training: true), x.count)
    }

    /// Mean loss per response token over a split.
    func responseLoss(_ rows: [EncodedExample]) throws -> Float {
        try withNoGrad {
            var total: Double = 0, count = 0
            for start in stride(from: 0, to: rows.count, by: batchSize) {
                let (x, y, n) = try Self.batch(Array(rows[start..<min(rows.count, start + batchSize)]), pad: endOfText)
                guard n > 0 else { continue }
                total += Double(try model.loss(x, targets: y, training: false).lm.item()) * Double(n)
                count += n
            }
            return count == 0 ? .nan : Float(total / Double(count))
        }
    }

    public func evaluate(step: Int, generator: Generator) throws -> TaskEvaluation {
        let v = try responseLoss(val)
        let t = try responseLoss(Array(train.prefix(max(val.count, 50))))
        return TaskEvaluation(trainLoss: t, valLoss: v, metrics: ["epoch": Double(step) / Double(stepsPerEpoch)])
    }

    /// Greedy response to an example's prompt, cut at end-of-text.
    public func respond(to example: InstructionExample) throws -> String {
        try InstructionTask.respond(model: model, tokenizer: tokenizer, prompt: example.prompt, maxNewTokens: maxResponseTokens)
    }

    public static func respond(model: any LanguageModel, tokenizer: any Tokenizer, prompt: String, maxNewTokens: Int,
                               temperature: Float = 0, seed: UInt64 = 1337, onText: (String) -> Void = { _ in }) throws -> String {
        var ids = try tokenizer.encode(prompt)
        let room = model.config.blockSize - 1
        if ids.count > room { ids = Array(ids.suffix(room)) }
        var options = SamplingOptions()
        options.maxNewTokens = min(maxNewTokens, model.config.blockSize - ids.count)
        options.temperature = temperature
        options.seed = seed
        options.stopToken = tokenizer.endOfText
        var out: [Int] = []
        _ = try Sampler(model: model).generate(prompt: ids, options: options) { token in
            guard token != tokenizer.endOfText else { return }
            out.append(token)
            onText((try? tokenizer.decode([token])) ?? "")
        }
        return try tokenizer.decode(out).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Answers the test split and writes test_responses.json (instruction, input, reference, response).
    public func finish(runDir: String) throws -> [String] {
        let chosen = testLimit.map { Array(test.prefix($0)) } ?? test
        guard !chosen.isEmpty else { return [] }
        var entries: [[String: String]] = []
        for i in chosen {
            let e = examples[i]
            entries.append(["instruction": e.instruction, "input": e.input, "output": e.output, "model_response": try respond(to: e)])
        }
        let data = try JSONSerialization.data(withJSONObject: entries, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(data, to: runDir + "/test_responses.json")
        var lines = ["test responses (\(entries.count)): \(runDir)/test_responses.json"]
        for entry in entries.prefix(3) {
            lines.append("  instruction: \(entry["instruction"]!)" + (entry["input"]!.isEmpty ? "" : " | input: \(entry["input"]!)"))
            lines.append("  reference:   \(entry["output"]!)")
            lines.append("  model:       \(entry["model_response"]!)")
        }
        return lines
    }

    public func prepareRunFolder(_ runDir: String) throws { try copyTokenizerFiles(tokenizerFiles, to: runDir) }

    public func writeCheckpointExtras(to dir: String) throws {
        guard lora != nil else { return }
        try writeAtomically(try SafeTensors.encode(model.loraParameters().map { ($0.name, $0.tensor) }, metadata: checkpointMetadata),
                            to: dir + "/adapter.safetensors")
    }
}
