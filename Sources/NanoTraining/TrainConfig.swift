import Foundation
import NanoEngine
import NanoModels
import Yams

/// Everything a training run needs, with nanoGPT's key names. Defaults are the small
/// character-level Shakespeare model (configs/shakespeare-char.yaml).
public struct TrainConfig: Equatable, Sendable {
    // model
    public var nLayer = 4, nHead = 4, nEmbd = 128, blockSize = 64
    public var dropout: Float = 0
    public var bias = true, tieWeights = true
    public var mlpRatio = 4
    /// Rows of the token embedding: 0 takes the dataset's vocabulary; more pads it (nanoGPT's 50304
    /// for GPT-2's 50257 tokens: a multiple of 64 makes the output GEMM faster on GPUs).
    public var vocabSize = 0
    // training
    public var batchSize = 12, maxIters = 2000, evalInterval = 250, evalIters = 20
    public var gradientAccumulationSteps = 1, logInterval = 10, seed = 1337
    public var gradClip: Float = 1
    /// ZeRO stage under data parallelism: 0 (off) or 1 (optimizer state sharded across ranks).
    public var zero = 0
    /// Record the first step's kernels and replay them afterwards (see `CompiledStep`).
    public var compile = false
    /// Matrix products in bf16 ("bf16"), fp16 ("fp16", with dynamic loss scaling) or float32 ("none").
    public var mixedPrecision = "none"
    /// fp16 only: the loss scale training starts from, and the good steps in a row before it doubles.
    public var lossScale: Float = 65536, lossScaleWindow = 2000
    // lr_schedule
    public var learningRate: Float = 1e-3, minLr: Float = 1e-4
    public var warmupIters = 100, lrDecayIters = 2000
    public var decayLr = true
    // optimizer
    public var weightDecay: Float = 0.1, beta1: Float = 0.9, beta2: Float = 0.99, eps: Float = 1e-8
    // moe: any key of the section turns the model into an MoE GPT
    public var useMoE = false
    public var moe = MoEConfig()
    // eval: periodic HellaSwag (0: off)
    public var hellaswagInterval = 0, hellaswagLimit = 0
    public var hellaswagData = ""
    // tracking
    public var tensorboard = true, plots = true
    public var sampleTokens = 200
    public var wandbProject = "", wandbEntity = "", wandbName = ""
    // device: where the model trains ("cpu", "cuda", "cuda:N"); tf32: fp32 GEMMs in TF32 on NVIDIA GPUs
    public var device = "cpu"
    public var tf32 = false
    // collective: how data-parallel ranks on GPUs reduce gradients: auto (NCCL when every rank finds
    // it, else host memory + MPI), nccl (required), host (always host memory + MPI)
    public var collective = "auto"
    // data
    public var dataset = "data/shakespeare_char"
    // output
    public var outDir = "runs", name = ""

    public init() {}

    /// The model shape for a vocabulary size.
    public func modelConfig(vocabSize: Int) -> GPTConfig {
        var config = GPTConfig(vocabSize: vocabSize, blockSize: blockSize, nLayer: nLayer, nHead: nHead, nEmbd: nEmbd,
                  dropout: dropout, bias: bias, tieWeights: tieWeights, moe: useMoE ? moe : nil)
        config.mlpRatio = mlpRatio == 4 ? nil : mlpRatio
        return config
    }
}

/// A config problem, naming the file, the key and what was expected.
public struct ConfigError: Error, CustomStringConvertible {
    public var file: String, key: String, message: String
    public var description: String { "\(file): \(key): \(message)" }
    public init(file: String, key: String, message: String) { self.file = file; self.key = key; self.message = message }
}

extension TrainConfig {
    enum Field: Sendable {
        case int(WritableKeyPath<TrainConfig, Int> & Sendable, minimum: Int)
        case float(WritableKeyPath<TrainConfig, Float> & Sendable, minimum: Float)
        case bool(WritableKeyPath<TrainConfig, Bool> & Sendable)
        case string(WritableKeyPath<TrainConfig, String> & Sendable)
    }

    /// One source of truth for the config file's sections, keys, types and lower bounds.
    static let schema: [(section: String, key: String, field: Field)] = [
        ("model", "n_layer", .int(\.nLayer, minimum: 1)),
        ("model", "n_head", .int(\.nHead, minimum: 1)),
        ("model", "n_embd", .int(\.nEmbd, minimum: 1)),
        ("model", "block_size", .int(\.blockSize, minimum: 1)),
        ("model", "dropout", .float(\.dropout, minimum: 0)),
        ("model", "bias", .bool(\.bias)),
        ("model", "tie_weights", .bool(\.tieWeights)),
        ("model", "mlp_ratio", .int(\.mlpRatio, minimum: 1)),
        ("model", "vocab_size", .int(\.vocabSize, minimum: 0)),
        ("training", "batch_size", .int(\.batchSize, minimum: 1)),
        ("training", "max_iters", .int(\.maxIters, minimum: 0)),
        ("training", "eval_interval", .int(\.evalInterval, minimum: 1)),
        ("training", "eval_iters", .int(\.evalIters, minimum: 1)),
        ("training", "gradient_accumulation_steps", .int(\.gradientAccumulationSteps, minimum: 1)),
        ("training", "log_interval", .int(\.logInterval, minimum: 1)),
        ("training", "seed", .int(\.seed, minimum: 0)),
        ("training", "grad_clip", .float(\.gradClip, minimum: 0)),
        ("training", "zero", .int(\.zero, minimum: 0)),
        ("training", "compile", .bool(\.compile)),
        ("training", "mixed_precision", .string(\.mixedPrecision)),
        ("training", "loss_scale", .float(\.lossScale, minimum: 0)),
        ("training", "loss_scale_window", .int(\.lossScaleWindow, minimum: 1)),
        ("device", "type", .string(\.device)),
        ("device", "tf32", .bool(\.tf32)),
        ("device", "collective", .string(\.collective)),
        ("lr_schedule", "learning_rate", .float(\.learningRate, minimum: 0)),
        ("lr_schedule", "min_lr", .float(\.minLr, minimum: 0)),
        ("lr_schedule", "warmup_iters", .int(\.warmupIters, minimum: 0)),
        ("lr_schedule", "lr_decay_iters", .int(\.lrDecayIters, minimum: 1)),
        ("lr_schedule", "decay_lr", .bool(\.decayLr)),
        ("optimizer", "weight_decay", .float(\.weightDecay, minimum: 0)),
        ("optimizer", "beta1", .float(\.beta1, minimum: 0)),
        ("optimizer", "beta2", .float(\.beta2, minimum: 0)),
        ("optimizer", "eps", .float(\.eps, minimum: 0)),
        ("moe", "n_exp", .int(\.moe.nExp, minimum: 1)),
        ("moe", "top_k", .int(\.moe.topK, minimum: 1)),
        ("moe", "stride", .int(\.moe.stride, minimum: 1)),
        ("moe", "use_noisy_top_k", .bool(\.moe.useNoisyTopK)),
        ("moe", "train_capacity", .float(\.moe.trainCapacity, minimum: 0)),
        ("moe", "eval_capacity", .float(\.moe.evalCapacity, minimum: 0)),
        ("moe", "min_capacity", .int(\.moe.minCapacity, minimum: 0)),
        ("moe", "dropless", .bool(\.moe.dropless)),
        ("moe", "use_aux_loss", .bool(\.moe.useAuxLoss)),
        ("moe", "aux_loss_weight", .float(\.moe.auxLossWeight, minimum: 0)),
        ("moe", "use_router_z_loss", .bool(\.moe.useRouterZLoss)),
        ("moe", "router_z_loss_weight", .float(\.moe.routerZLossWeight, minimum: 0)),
        ("moe", "router_use_full_prec", .bool(\.moe.routerUseFullPrec)),
        ("moe", "renormalize_gates", .bool(\.moe.renormalizeGates)),
        ("moe", "use_swiglu", .bool(\.moe.useSwiGLU)),
        ("moe", "shared_expert", .bool(\.moe.sharedExpert)),
        ("moe", "use_switch_tfm_init", .bool(\.moe.useSwitchTfmInit)),
        ("moe", "switch_tfm_init_scale", .float(\.moe.switchTfmInitScale, minimum: 0)),
        ("eval", "hellaswag_interval", .int(\.hellaswagInterval, minimum: 0)),
        ("eval", "hellaswag_data", .string(\.hellaswagData)),
        ("eval", "hellaswag_limit", .int(\.hellaswagLimit, minimum: 0)),
        ("tracking", "tensorboard", .bool(\.tensorboard)),
        ("tracking", "plots", .bool(\.plots)),
        ("tracking", "sample_tokens", .int(\.sampleTokens, minimum: 0)),
        ("tracking", "wandb.project", .string(\.wandbProject)),
        ("tracking", "wandb.entity", .string(\.wandbEntity)),
        ("tracking", "wandb.name", .string(\.wandbName)),
        ("data", "dataset", .string(\.dataset)),
        ("output", "out_dir", .string(\.outDir)),
        ("output", "name", .string(\.name)),
    ]

    /// Loads a YAML file (nil: defaults) and applies `section.key=value` overrides.
    public static func load(file: String?, overrides: [String] = [], base: TrainConfig = TrainConfig()) throws -> TrainConfig {
        var config = base
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigError(file: file, key: "-", message: "cannot read the file")
            }
            let root: Any?
            do { root = try Yams.load(yaml: text) } catch {
                throw ConfigError(file: file, key: "-", message: "not valid YAML: \(error)")
            }
            if let root {
                guard let sections = root as? [String: Any] else {
                    throw ConfigError(file: file, key: "-", message: "expected a mapping of sections (model, moe, training, lr_schedule, optimizer, eval, tracking, data, output)")
                }
                for (section, body) in sections.sorted(by: { $0.key < $1.key }) {
                    guard schema.contains(where: { $0.section == section }) else {
                        throw ConfigError(file: file, key: section, message: "unknown section" + suggestion(section, among: Set(schema.map(\.section))))
                    }
                    guard let entries = body as? [String: Any] else {
                        throw ConfigError(file: file, key: section, message: "expected a mapping of keys")
                    }
                    for (key, value) in entries.sorted(by: { $0.key < $1.key }) {
                        if let nested = value as? [String: Any] {
                            for (inner, v) in nested.sorted(by: { $0.key < $1.key }) {
                                try config.set(section: section, key: key + "." + inner, value: v, file: file)
                            }
                        } else {
                            try config.set(section: section, key: key, value: value, file: file)
                        }
                    }
                }
            }
        }
        for override in overrides {
            let parts = override.split(separator: "=", maxSplits: 1).map(String.init)
            let path = parts[0].split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2, path.count == 2 else {
                throw ConfigError(file: "--set", key: override, message: "expected section.key=value, e.g. training.max_iters=100")
            }
            let value = (try? Yams.load(yaml: parts[1])) ?? parts[1]
            try config.set(section: path[0], key: path[1], value: value as Any, file: "--set")
        }
        try config.validate(file: file ?? "defaults")
        return config
    }

    mutating func set(section: String, key: String, value: Any, file: String) throws {
        let name = "\(section).\(key)"
        if section == "moe" { useMoE = true }
        guard let entry = Self.schema.first(where: { $0.section == section && $0.key == key }) else {
            let all = Set(Self.schema.map { "\($0.section).\($0.key)" })
            throw ConfigError(file: file, key: name, message: "unknown key" + Self.suggestion(name, among: all))
        }
        switch entry.field {
        case let .int(path, minimum):
            guard let v = value as? Int else { throw ConfigError(file: file, key: name, message: "expected an integer, got \(value)") }
            guard v >= minimum else { throw ConfigError(file: file, key: name, message: "expected an integer ≥ \(minimum), got \(v)") }
            self[keyPath: path] = v
        case let .float(path, minimum):
            guard let v = (value as? Double).map(Float.init) ?? (value as? Int).map(Float.init) else {
                throw ConfigError(file: file, key: name, message: "expected a number, got \(value)")
            }
            guard v >= minimum else { throw ConfigError(file: file, key: name, message: "expected a number ≥ \(minimum), got \(v)") }
            self[keyPath: path] = v
        case let .bool(path):
            guard let v = value as? Bool else { throw ConfigError(file: file, key: name, message: "expected true or false, got \(value)") }
            self[keyPath: path] = v
        case let .string(path):
            guard let v = value as? String else { throw ConfigError(file: file, key: name, message: "expected a string, got \(value)") }
            self[keyPath: path] = v
        }
    }

    /// The element type matrix products compute in (`MixedPrecision`).
    public var computeType: DType {
        switch mixedPrecision { case "bf16": .bfloat16; case "fp16": .float16; default: .float32 }
    }

    /// The device `device.type` names (validated by `load`).
    public var trainingDevice: Device { Device(parsing: device) ?? .cpu }

    func validate(file: String) throws {
        guard Device(parsing: device) != nil else {
            throw ConfigError(file: file, key: "device.type", message: "expected cpu, cuda or cuda:N, got \"\(device)\"")
        }
        guard nEmbd % nHead == 0 else {
            throw ConfigError(file: file, key: "model.n_embd", message: "n_embd \(nEmbd) must be divisible by n_head \(nHead)")
        }
        guard dropout < 1 else { throw ConfigError(file: file, key: "model.dropout", message: "expected a value in [0, 1), got \(dropout)") }
        guard beta1 < 1, beta2 < 1 else { throw ConfigError(file: file, key: "optimizer.beta1/beta2", message: "betas must be < 1") }
        if useMoE {
            guard moe.topK <= moe.nExp else {
                throw ConfigError(file: file, key: "moe.top_k", message: "top_k \(moe.topK) exceeds n_exp \(moe.nExp)")
            }
            guard moe.trainCapacity > 0, moe.evalCapacity > 0 else {
                throw ConfigError(file: file, key: moe.trainCapacity > 0 ? "moe.eval_capacity" : "moe.train_capacity",
                                  message: "capacity factors must be > 0 (use dropless: true for unbounded capacity)")
            }
        }
        if hellaswagInterval > 0 && hellaswagData.isEmpty {
            throw ConfigError(file: file, key: "eval.hellaswag_data", message: "hellaswag_interval is set, so a .jsonl file is needed")
        }
        switch mixedPrecision {
        case "none", "bf16", "fp16": break
        default:
            throw ConfigError(file: file, key: "training.mixed_precision", message: "expected none, bf16 or fp16, got \"\(mixedPrecision)\"")
        }
        guard lossScale >= LossScaler.smallest, lossScale <= LossScaler.largest else {
            throw ConfigError(file: file, key: "training.loss_scale", message: "expected a value in [2^-24, 2^24], got \(lossScale)")
        }
        guard ["auto", "nccl", "host"].contains(collective) else {
            throw ConfigError(file: file, key: "device.collective", message: "expected auto, nccl or host, got \"\(collective)\"")
        }
        guard zero <= 1 else { throw ConfigError(file: file, key: "training.zero", message: "expected 0 (off) or 1 (shard optimizer state), got \(zero)") }
        guard minLr <= learningRate else {
            throw ConfigError(file: file, key: "lr_schedule.min_lr", message: "min_lr \(minLr) exceeds learning_rate \(learningRate)")
        }
    }

    static func suggestion(_ word: String, among options: Set<String>) -> String {
        var best: (word: String, distance: Int)? = nil
        for option in options.sorted() {
            let d = editDistance(word, option)
            if best == nil || d < best!.distance { best = (option, d) }
        }
        guard let best, best.distance <= max(2, word.count / 3) else { return "" }
        return " (did you mean '\(best.word)'?)"
    }

    /// Levenshtein distance.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }

    /// The effective config as YAML, in schema order.
    public func yaml() -> String {
        var out = "", section = ""
        var group = ""
        for entry in Self.schema where entry.section != "moe" || useMoE {
            if entry.section != section { section = entry.section; group = ""; out += "\(section):\n" }
            let value: String
            switch entry.field {
            case let .int(p, _): value = String(self[keyPath: p])
            case let .float(p, _): value = "\(self[keyPath: p])"
            case let .bool(p): value = String(self[keyPath: p])
            case let .string(p): value = "\"\(self[keyPath: p])\""
            }
            let parts = entry.key.split(separator: ".", maxSplits: 1).map(String.init)
            if parts.count == 2 {
                if parts[0] != group { group = parts[0]; out += "  \(group):\n" }
                out += "    \(parts[1]): \(value)\n"
            } else {
                out += "  \(entry.key): \(value)\n"
            }
        }
        return out
    }
}
