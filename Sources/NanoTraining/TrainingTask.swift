import Foundation
import NanoData
import NanoEngine
import NanoModels
import NanoNN

/// What the trainer trains. Pre-training, classification and instruction tuning are tasks; the
/// trainer owns everything they share: the loop, accumulation, schedule, optimizer, evaluation
/// cadence, checkpoints, resume, Ctrl-C and tracking.
public protocol TrainingTask: AnyObject {
    /// The trained module. All its parameters are checkpointed; those with `requiresGrad` are optimised.
    var module: any Module { get }
    /// Entries for `model.safetensors`'s metadata that let a loader rebuild the module.
    var checkpointMetadata: [String: String] { get }
    /// One line about the model and data, logged at the start.
    var summary: String { get }
    /// Training FLOPs per token (6N + attention), for MFU; nil when not meaningful.
    var flopsPerToken: Double? { get }
    /// Loss of micro-batch `micro` of optimizer step `step`, and its token count. `generator` is
    /// the run's data stream (tasks that draw random windows use it; epoch-based tasks derive
    /// batches from the step instead). `shard` picks this process's part under data parallelism.
    func trainingLoss(step: Int, micro: Int, generator: Generator, shard: DataShard) throws -> (loss: ModelLoss, tokens: Int)
    /// Held-out evaluation at `step`.
    func evaluate(step: Int, generator: Generator) throws -> TaskEvaluation
    /// A text sample for samples.txt at evaluations (nil: none).
    func sample(seed: UInt64) throws -> String?
    /// Copies what a reader of the run needs (tokenizer description, task files) into the run folder.
    func prepareRunFolder(_ runDir: String) throws
    /// Extra files for a checkpoint folder (e.g. LoRA adapters alone), written before the swap.
    func writeCheckpointExtras(to dir: String) throws
    /// Work after the last step (e.g. test-split metrics, generated responses); returns log lines.
    func finish(runDir: String) throws -> [String]
}

extension TrainingTask {
    public var flopsPerToken: Double? { nil }
    public func sample(seed: UInt64) throws -> String? { nil }
    public func writeCheckpointExtras(to dir: String) throws {}
    public func finish(runDir: String) throws -> [String] { [] }
}

/// Which part of each global batch this process computes (rank `index` of `count`): rows
/// `index·b ..< (index+1)·b` of a global batch of `count·b` rows.
public struct DataShard: Equatable, Sendable {
    public var index: Int, count: Int
    public init(index: Int = 0, count: Int = 1) { self.index = index; self.count = count }
    public static let whole = DataShard()

    /// This rank's rows of a global batch of `batchSize` rows (which the rank count divides).
    public func rows(of batchSize: Int) -> Range<Int> {
        let local = batchSize / count
        return (index * local)..<((index + 1) * local)
    }
}

/// The result of one evaluation: losses for the console and metrics, plus task-specific values.
public struct TaskEvaluation {
    public var trainLoss: Float?
    public var valLoss: Float
    /// Extra metrics for metrics.jsonl (e.g. "val_accuracy").
    public var metrics: [String: Any] = [:]
    /// Extra console lines (e.g. a confusion matrix).
    public var lines: [String] = []

    public init(trainLoss: Float?, valLoss: Float, metrics: [String: Any] = [:], lines: [String] = []) {
        self.trainLoss = trainLoss; self.valLoss = valLoss; self.metrics = metrics; self.lines = lines
    }
}

/// Next-token pre-training on a token dataset: random windows of block_size tokens.
public final class LanguageModelTask: TrainingTask {
    public let config: TrainConfig
    public let dataset: TokenDataset
    public let model: any LanguageModel
    private var hellaswagItems: [Evaluation.HellaSwagItem]? = nil
    private var prefetcher: BatchPrefetcher? = nil

    public init(config: TrainConfig) throws {
        self.config = config
        dataset = try TokenDataset(folder: config.dataset)
        guard dataset.val.count > config.blockSize else {
            throw ConfigError(file: config.dataset + "/val.bin", key: "model.block_size",
                              message: "block_size \(config.blockSize) is larger than the validation data (\(dataset.val.count) tokens)")
        }
        guard config.vocabSize == 0 || config.vocabSize >= dataset.meta.vocabSize else {
            throw ConfigError(file: config.dataset + "/meta.json", key: "model.vocab_size",
                              message: "vocab_size \(config.vocabSize) is smaller than the dataset's vocabulary (\(dataset.meta.vocabSize) tokens); use 0 to take the dataset's")
        }
        model = try makeLanguageModel(config.modelConfig(vocabSize: max(config.vocabSize, dataset.meta.vocabSize)), seed: UInt64(config.seed))
    }

    public var module: any Module { model }
    public var checkpointMetadata: [String: String] { Checkpoint.metadata(for: model.config) }

    public var summary: String {
        let counts = model.parameterCounts
        return String(format: "model: %.2fM parameters (%.2fM without position embeddings; %.2fM active per token); vocab %d; data %@ (%d train / %d val tokens)",
                      Double(counts.total) / 1e6, Double(counts.withoutPositions) / 1e6, Double(model.activeParameterCount) / 1e6,
                      model.config.vocabSize, dataset.folder, dataset.train.count, dataset.val.count)
    }

    public var flopsPerToken: Double? {
        let nonEmbedding = model.activeParameterCount - model.tokenEmbedding.weight.count - model.positionEmbedding.weight.count
        return Double(6 * nonEmbedding + 12 * config.nLayer * config.nEmbd * config.blockSize)
    }

    public func trainingLoss(step: Int, micro: Int, generator: Generator, shard: DataShard) throws -> (loss: ModelLoss, tokens: Int) {
        let (x, y) = try trainingBatch(generator: generator, shard: shard)
        return (try model.loss(x, targets: y, training: true), x.count)
    }

    /// This rank's rows of the next training batch: tokens and next-token targets [rows, block_size].
    public func trainingBatch(generator: Generator, shard: DataShard) throws -> (x: Tensor, y: Tensor) {
        // Every rank draws the whole global batch's window positions from the shared stream and
        // keeps its own rows, so N ranks see exactly the windows one process would. The next
        // batch is assembled on a background thread while this one trains.
        let rows = shard.rows(of: config.batchSize)
        if prefetcher?.rows != rows {
            prefetcher = BatchPrefetcher(file: dataset.train, batchSize: config.batchSize, blockSize: config.blockSize, rows: rows)
        }
        return try prefetcher!.next(generator: generator)
    }

    /// Mean loss over eval_iters batches of a split, without dropout or graph.
    func estimateLoss(_ file: TokenFile, generator: Generator) throws -> Float {
        try withNoGrad {
            var total: Float = 0
            for _ in 0..<config.evalIters {
                let (x, y) = try file.randomBatch(batchSize: config.batchSize, blockSize: config.blockSize, generator: generator)
                total += try model.loss(x, targets: y, training: false).lm.item()
            }
            return total / Float(config.evalIters)
        }
    }

    public func evaluate(step: Int, generator: Generator) throws -> TaskEvaluation {
        var result = TaskEvaluation(trainLoss: try estimateLoss(dataset.train, generator: generator),
                                    valLoss: try estimateLoss(dataset.val, generator: generator))
        if config.hellaswagInterval > 0 && step % config.hellaswagInterval == 0 {
            let r = try runHellaSwag()
            result.lines.append(String(format: "step %d: HellaSwag acc_norm %.4f, acc %.4f (%d items)", step, r.accuracyNormalized, r.accuracySum, r.count))
            result.metrics["hellaswag_acc_norm"] = r.accuracyNormalized
            result.metrics["hellaswag_acc"] = r.accuracySum
        }
        return result
    }

    /// HellaSwag on eval.hellaswag_data with the dataset's tokenizer (items loaded once).
    func runHellaSwag() throws -> Evaluation.HellaSwagResult {
        if hellaswagItems == nil {
            hellaswagItems = try Evaluation.loadHellaSwag(config.hellaswagData, limit: config.hellaswagLimit > 0 ? config.hellaswagLimit : nil)
        }
        let tokenizer = try Prepare.tokenizer(for: dataset.meta, folder: dataset.folder)
        return try Evaluation.hellaSwag(model, tokenizer: tokenizer, items: hellaswagItems!, batchSize: config.batchSize)
    }

    /// A short continuation of a newline, decoded with the dataset's tokenizer.
    public func sample(seed: UInt64) throws -> String? {
        guard config.sampleTokens > 0 else { return nil }
        let tokenizer = try Prepare.tokenizer(for: dataset.meta, folder: dataset.folder)
        var options = SamplingOptions()
        options.maxNewTokens = config.sampleTokens
        options.seed = seed
        options.stopToken = tokenizer.endOfText
        let prompt = (try? tokenizer.encode("\n")) ?? [0]
        let tokens = try Sampler(model: model).generate(prompt: prompt.isEmpty ? [0] : prompt, options: options)
        return try tokenizer.decode(tokens)
    }

    /// The tokenizer description travels with the run, so `sample` can decode.
    public func prepareRunFolder(_ runDir: String) throws {
        try copyTokenizerFiles(["meta.json", dataset.meta.tokenizerFile].compactMap { $0 }.map { dataset.folder + "/" + $0 }, to: runDir)
    }
}
