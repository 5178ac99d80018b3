import ArgumentParser
import Foundation
import NanoData
import NanoEngine
import NanoModels
import NanoNN
import NanoTraining

struct FineTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune", abstract: "Fine-tune a pre-trained checkpoint: text classification or instruction following.",
        subcommands: [FineTuneClassify.self, FineTuneInstruct.self])
}

/// Options both recipes share: the base model, the trainer's settings, LoRA and the run folder.
struct FineTuneOptions: ParsableArguments {
    @Option(help: "Base checkpoint folder (e.g. runs/NAME/checkpoint); its tokenizer comes from meta.json beside it.") var base: String
    @Option(help: "Training data file.") var data: String
    @Option(help: "Passes over the training split.") var epochs: Int?
    @Option(help: "Examples per batch.") var batchSize: Int = 8
    @Option(help: "Peak learning rate (default: 1e-4 when training whole blocks, 1e-3 for LoRA or the head alone).") var learningRate: Float?
    @Option(help: "Train/val/test fractions.") var split: String?
    @Option(help: "LoRA rank (0: no LoRA, train weights directly).") var loraRank: Int = 0
    @Option(help: "LoRA scale numerator: the update is (alpha/rank)·B·A.") var loraAlpha: Float = 16
    @Option(help: "Layers that get adapters: attn, mlp, head or a name substring (comma-separated).") var loraTargets: String = "attn,mlp"
    @Option(help: "Run name (folder under --out-dir).") var name: String?
    @Option(help: "Folder for runs.") var outDir: String = "runs"
    @Option(help: "YAML config for trainer settings (training, lr_schedule, optimizer, tracking sections).") var config: String?
    @Option(name: .customLong("set"), help: "Override a trainer key: section.key=value (repeatable).") var overrides: [String] = []
    @Option(help: "Random seed (split, order, head initialisation).") var seed: Int = 1337
    @Flag(help: "Continue from the run folder's last checkpoint.") var resume = false
    @Flag(help: "Start over in a run folder that already holds a checkpoint.") var overwrite = false
    @Option(help: "Data-parallel processes on this machine (runs mpirun itself).") var nproc: Int?

    var lora: LoRASettings? {
        get throws {
            guard loraRank > 0 else { return nil }
            let targets = loraTargets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !targets.isEmpty else { throw ValidationError("--lora-targets: expected attn, mlp, head or layer-name substrings") }
            return LoRASettings(rank: loraRank, alpha: loraAlpha, targets: targets)
        }
    }

    /// Trainer settings: fine-tuning defaults, then --config and --set.
    func trainConfig(kind: String, defaultLearningRate: Float) throws -> TrainConfig {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be ≥ 1") }
        var base = TrainConfig()
        base.batchSize = batchSize
        base.learningRate = learningRate ?? defaultLearningRate
        base.minLr = base.learningRate / 10
        base.weightDecay = 0.1
        base.gradClip = 1
        base.sampleTokens = 0
        base.outDir = outDir
        base.seed = seed
        base.dataset = data
        if let name { base.name = name } else {
            let f = DateFormatter()
            f.dateFormat = "yyyyMMdd-HHmmss"
            base.name = "\(kind)-" + f.string(from: Date())
        }
        return try TrainConfig.load(file: config, overrides: overrides, base: base)
    }

    /// Sets the schedule from the epoch length: evaluate once per epoch, warm up over a tenth of an epoch.
    func schedule(_ cfg: inout TrainConfig, stepsPerEpoch: Int, defaultEpochs: Int) throws {
        let epochs = epochs ?? defaultEpochs
        guard epochs >= 1 else { throw ValidationError("--epochs must be ≥ 1") }
        let perStep = max(1, stepsPerEpoch / cfg.gradientAccumulationSteps)
        cfg.maxIters = epochs * perStep
        cfg.evalInterval = perStep
        cfg.lrDecayIters = cfg.maxIters
        cfg.warmupIters = max(1, perStep / 10)
        cfg.logInterval = max(1, min(cfg.logInterval, perStep / 5))
    }

    func loadBase() throws -> (model: any LanguageModel, tokenizer: any Tokenizer, files: [String]) {
        let model = try Checkpoint.loadModel(from: base)
        let (tokenizer, files) = try Checkpoint.tokenizer(near: base)
        return (model, tokenizer, files)
    }
}

struct FineTuneClassify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify", abstract: "Train a classification head (and optionally blocks or LoRA adapters) on labelled texts.")

    @OptionGroup var options: FineTuneOptions
    @Option(help: "Column (CSV/TSV header or JSONL key) holding the text.") var textColumn: String = "text"
    @Option(help: "Column holding the label.") var labelColumn: String = "label"
    @Option(help: "Separate validation file (instead of splitting --data).") var valData: String?
    @Option(help: "Separate test file.") var testData: String?
    @Option(help: "What to train without LoRA: head, last:N (last N blocks + final norm + head) or all.") var train: String = "all"
    @Flag(help: "Downsample every class in the training split to the smallest class's count.") var balance = false
    @Option(help: "Longest text in tokens (default: the model's block size).") var maxLength: Int?

    func trainable() throws -> GPTClassifier.Trainable {
        switch train {
        case "head": return .head
        case "all": return .all
        case let s where s.hasPrefix("last:"):
            guard let n = Int(s.dropFirst(5)), n >= 0 else { throw ValidationError("--train last:N needs a block count, got '\(s)'") }
            return .lastBlocks(n)
        default: throw ValidationError("--train: expected head, last:N or all, got '\(train)'")
        }
    }

    func run() throws {
        try DistributedLaunch.relaunchIfNeeded(nproc: options.nproc)
        try Nanodecoder.reporting {
            let trainable = try trainable()
            let lora = try options.lora
            let read = { (path: String) throws -> [LabeledText] in
                let (rows, skipped) = try FineTuneData.labeledTexts(path, textColumn: textColumn, labelColumn: labelColumn)
                if skipped > 0 { emit("\(path): skipped \(skipped) rows with empty text") }
                return rows
            }
            let rows = try read(options.data)
            var splits: [[LabeledText]]
            if valData != nil || testData != nil {
                splits = [rows, try valData.map(read) ?? [], try testData.map(read) ?? []]
            } else {
                let fractions = try FineTuneData.parseSplit(options.split ?? "0.7,0.1,0.2")
                splits = FineTuneData.split(count: rows.count, fractions: fractions, seed: UInt64(options.seed), strata: rows.map(\.label))
                    .map { $0.map { rows[$0] } }
            }
            if balance {
                let groups = Dictionary(grouping: splits[0], by: \.label)
                let smallest = groups.values.map(\.count).min() ?? 0
                splits[0] = FineTuneData.shuffle(groups.keys.sorted().flatMap { groups[$0]!.prefix(smallest) }, seed: UInt64(options.seed))
            }
            let defaultRate: Float = (lora != nil || trainable == .head) ? 1e-3 : 1e-4
            var cfg = try options.trainConfig(kind: "classify", defaultLearningRate: defaultRate)
            let runDir = try Train.prepareRunFolder(cfg, resume: options.resume, overwrite: options.overwrite)
            let (model, tokenizer, files) = try options.loadBase()
            let task = try ClassificationTask(base: model, tokenizer: tokenizer, tokenizerFiles: files, splits: splits, file: options.data,
                                              trainable: trainable, lora: lora, maxLength: maxLength, batchSize: cfg.batchSize,
                                              seed: UInt64(cfg.seed))
            task.accumulation = cfg.gradientAccumulationSteps
            try options.schedule(&cfg, stepsPerEpoch: task.stepsPerEpoch, defaultEpochs: 5)
            try DistributedLaunch.run { communicator in
                try Train.drive(Trainer(config: cfg, runDir: runDir, task: task, communicator: communicator), resume: options.resume)
            }
        }
    }
}

struct FineTuneInstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instruct", abstract: "Instruction-tune on Alpaca-format data (instruction, input, output); loss on responses only.")

    @OptionGroup var options: FineTuneOptions
    @Option(help: "Tokens per generated test response.") var maxResponseTokens: Int = 128
    @Option(help: "Answer only the first N test examples at the end (default: all).") var testLimit: Int?

    func run() throws {
        try DistributedLaunch.relaunchIfNeeded(nproc: options.nproc)
        try Nanodecoder.reporting {
            let lora = try options.lora
            let examples = try FineTuneData.instructionExamples(options.data)
            let fractions = try FineTuneData.parseSplit(options.split ?? "0.85,0.05,0.1")
            var cfg = try options.trainConfig(kind: "instruct", defaultLearningRate: lora != nil ? 1e-3 : 1e-4)
            let runDir = try Train.prepareRunFolder(cfg, resume: options.resume, overwrite: options.overwrite)
            let (model, tokenizer, files) = try options.loadBase()
            let task = try InstructionTask(base: model, tokenizer: tokenizer, tokenizerFiles: files, examples: examples, split: fractions,
                                           file: options.data, lora: lora, batchSize: cfg.batchSize, seed: UInt64(cfg.seed))
            task.accumulation = cfg.gradientAccumulationSteps
            task.maxResponseTokens = maxResponseTokens
            task.testLimit = testLimit
            try options.schedule(&cfg, stepsPerEpoch: task.stepsPerEpoch, defaultEpochs: 2)
            try DistributedLaunch.run { communicator in
                try Train.drive(Trainer(config: cfg, runDir: runDir, task: task, communicator: communicator), resume: options.resume)
            }
        }
    }
}

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Label texts with a fine-tuned classifier checkpoint.")

    @Option(help: "Classifier checkpoint folder (runs/NAME/best or runs/NAME/checkpoint).") var checkpoint: String
    @Option(help: "Text to classify (repeatable).") var text: [String] = []
    @Option(help: "File with one text per line.") var file: String?

    func run() throws {
        try Nanodecoder.reporting {
            let (model, spec) = try Checkpoint.loadClassifier(from: checkpoint)
            let tokenizer = try Checkpoint.tokenizer(near: checkpoint).tokenizer
            var texts = text
            if let file { texts += try readText(file, what: "texts file").split(separator: "\n").map(String.init) }
            guard !texts.isEmpty else { throw ValidationError("give --text or --file") }
            for t in texts {
                let p = try ClassificationTask.probabilities(model: model, tokenizer: tokenizer, maxLength: spec.maxLength, text: t)
                let best = p.indices.max { p[$0] < p[$1] }!
                emit("\(spec.labels[best])\t" + zip(spec.labels, p).map { String(format: "%@ %.3f", $0.0, $0.1) }.joined(separator: ", ") + "\t\(t)")
            }
        }
    }
}

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Talk to an instruction-tuned checkpoint: each line you type is an instruction.")

    @Option(help: "Checkpoint folder of an instruction fine-tune.") var checkpoint: String
    @Option(help: "Tokens per response.") var maxNewTokens: Int = 128
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0
    @Option(help: "Random seed.") var seed: UInt64 = 1337

    func run() throws {
        try Nanodecoder.reporting {
            let model = try Checkpoint.loadModel(from: checkpoint)
            let tokenizer = try Checkpoint.tokenizer(near: checkpoint).tokenizer
            let interactive = isatty(STDIN_FILENO) == 1
            if interactive { emit("instruction-tuned model loaded; type an instruction (empty line or Ctrl-D to quit)") }
            while true {
                if interactive { emit("> ", terminator: "") }
                guard let line = readLine(), !line.trimmingCharacters(in: .whitespaces).isEmpty else { break }
                let prompt = InstructionExample(instruction: line, output: "").prompt
                _ = try InstructionTask.respond(model: model, tokenizer: tokenizer, prompt: prompt, maxNewTokens: maxNewTokens,
                                                temperature: temperature, seed: seed) { emit($0, terminator: "") }
                emit("")
            }
        }
    }
}

struct LoRACommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lora", abstract: "Work with LoRA adapters.", subcommands: [LoRAMerge.self])
}

struct LoRAMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge", abstract: "Fold LoRA adapters into the base weights, giving a plain checkpoint.")

    @Option(help: "Fine-tuned checkpoint folder with adapters (its model.safetensors holds base and adapters).") var checkpoint: String?
    @Option(help: "Base checkpoint, with --adapter.") var base: String?
    @Option(help: "An adapter.safetensors file to apply to --base.") var adapter: String?
    @Option(help: "Output folder for the merged checkpoint.") var out: String

    func run() throws {
        try Nanodecoder.reporting {
            let metadata: [String: String], module: any Module, tokenizerFrom: String
            if let checkpoint {
                metadata = try Checkpoint.metadata(at: checkpoint)
                tokenizerFrom = checkpoint
                module = try FineTunedModel.load(metadata: metadata, at: checkpoint) { m in
                    try Checkpoint.loadParameters(into: m, from: try Checkpoint.existingFolder(checkpoint) + "/model.safetensors")
                }
            } else if let base, let adapter {
                let adapterData = try SafeTensors.read(adapter)
                metadata = adapterData.metadata
                tokenizerFrom = base
                module = try FineTunedModel.load(metadata: metadata, at: adapter) { m in
                    let baseTensors = try SafeTensors.read(try Checkpoint.existingFolder(base) + "/model.safetensors").tensors
                    for (name, p) in m.namedParameters() {
                        let stripped = name.hasPrefix("base.") ? String(name.dropFirst(5)) : name
                        guard let t = adapterData.tensors[name] ?? baseTensors[stripped], t.shape == p.shape else {
                            throw FileFormatError.invalid(path: adapter, reason: "weight '\(name)' is in neither the adapter nor \(base), or has the wrong shape")
                        }
                        try p.assign(t)
                    }
                }
            } else {
                throw ValidationError("give --checkpoint DIR, or --base DIR with --adapter FILE")
            }
            guard metadata[Checkpoint.loraKey] != nil else { throw ValidationError("\(checkpoint ?? adapter!) has no LoRA adapters to merge") }
            let merged = try module.mergeLoRA()
            var newMetadata = metadata
            newMetadata[Checkpoint.loraKey] = nil
            if let json = metadata[Checkpoint.classifierKey], var spec = try? JSONDecoder().decode(ClassifierSpec.self, from: Data(json.utf8)) {
                spec.lora = nil
                newMetadata[Checkpoint.classifierKey] = Checkpoint.json(spec)
            }
            try Checkpoint.save(to: out, module: module, metadata: newMetadata)
            let files = (try? Checkpoint.tokenizer(near: tokenizerFrom).files) ?? []
            try copyTokenizerFiles(files, to: out)
            emit("merged \(merged) adapters into \(out)/model.safetensors" + (files.isEmpty ? " (no tokenizer files found to copy)" : ""))
        }
    }
}

/// Rebuilds a fine-tuned module (classifier or language model, with adapters) from checkpoint metadata.
enum FineTunedModel {
    static func load(metadata: [String: String], at path: String, weights: (any Module) throws -> Void) throws -> any Module {
        guard let json = metadata["gpt_config"], let config = try? JSONDecoder().decode(GPTConfig.self, from: Data(json.utf8)) else {
            throw FileFormatError.invalid(path: path, reason: "no model config in the metadata (not a Nanodecoder checkpoint or adapter)")
        }
        let lora = try metadata[Checkpoint.loraKey].map { try JSONDecoder().decode(LoRASettings.self, from: Data($0.utf8)) }
        let module: any Module
        if let specJSON = metadata[Checkpoint.classifierKey] {
            module = try ClassificationTask.model(for: try JSONDecoder().decode(ClassifierSpec.self, from: Data(specJSON.utf8)), config: config)
        } else {
            let model = try makeLanguageModel(config)
            if let lora { try model.attachLoRA(lora) }
            module = model
        }
        try weights(module)
        return module
    }
}
