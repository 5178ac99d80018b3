import Foundation
import NanoData
import NanoEngine
import NanoModels
import NanoNN

/// Progress of a run that a checkpoint carries besides weights and optimizer moments.
public struct TrainingState: Codable, Equatable, Sendable {
    public var step: Int
    public var bestValLoss: Float?
    /// Step at which the last evaluation ran (so a resumed run does not evaluate it twice).
    public var lastEvalStep: Int?
    /// Offsets of the data-sampling, evaluation and dropout generators.
    public var dataOffset: UInt64, evalOffset: UInt64, dropoutOffset: UInt64
    public var seed: Int
    public var tokensSeen: Int
    /// fp16 training: the loss scale and its counters (absent otherwise).
    public var lossScaler: LossScaler?
}

/// A checkpoint folder: `model.safetensors` (weights; model config in the metadata),
/// `optimizer.safetensors`, `state.json`, `config.yaml`. Written into a temporary folder, fsynced,
/// then swapped into place, so an interruption leaves the previous checkpoint intact.
public enum Checkpoint {
    static let configKey = "gpt_config"
    /// Metadata keys of fine-tuned checkpoints: LoRA settings (JSON), classifier spec (JSON), instruction template.
    public static let loraKey = "lora", classifierKey = "classifier", instructKey = "instruct"

    /// Metadata that describes a language model (its config as JSON).
    public static func metadata(for config: GPTConfig) -> [String: String] {
        [configKey: json(config), "format": "nanodecoder"]
    }

    /// A metadata value: `value` as JSON with sorted keys.
    public static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    public static func save(to dir: String, model: any LanguageModel, optimizer: AdamW? = nil, state: TrainingState? = nil,
                            config: TrainConfig? = nil) throws {
        try save(to: dir, module: model, metadata: metadata(for: model.config), optimizerState: try optimizer?.stateTensors(), state: state, config: config)
    }

    /// Writes every parameter of `module` (frozen ones too) with `metadata`, and the optional parts;
    /// `extras` may add files to the folder before it is swapped into place.
    public static func save(to dir: String, module: any Module, metadata: [String: String], optimizerState: [(String, Tensor)]? = nil,
                            state: TrainingState? = nil, config: TrainConfig? = nil,
                            extras: ((String) throws -> Void)? = nil) throws {
        let fm = FileManager.default
        let tmp = dir + ".tmp", old = dir + ".old"
        try? fm.removeItem(atPath: tmp)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let weights = module.namedParameters().map { ($0.name, $0.tensor) }
        try writeAtomically(try SafeTensors.encode(weights, metadata: metadata), to: tmp + "/model.safetensors")
        if let optimizerState {
            try writeAtomically(try SafeTensors.encode(optimizerState), to: tmp + "/optimizer.safetensors")
        }
        if let state {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try writeAtomically(try encoder.encode(state), to: tmp + "/state.json")
        }
        if let config { try writeAtomically(Data(config.yaml().utf8), to: tmp + "/config.yaml") }
        try extras?(tmp)
        try? fm.removeItem(atPath: old)
        if fm.fileExists(atPath: dir) { try fm.moveItem(atPath: dir, toPath: old) }
        try fm.moveItem(atPath: tmp, toPath: dir)
        try? fm.removeItem(atPath: old)
    }

    /// The folder to read: `dir`, or the previous checkpoint if a swap was interrupted.
    static func existing(_ dir: String) throws -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/model.safetensors") { return dir }
        if fm.fileExists(atPath: dir + ".old/model.safetensors") { return dir + ".old" }
        throw FileFormatError.invalid(path: dir, reason: "no checkpoint here (expected model.safetensors)")
    }

    /// The checkpoint folder to read for `dir` (the previous one if a swap was interrupted).
    public static func existingFolder(_ dir: String) throws -> String { try existing(dir) }

    /// The model config stored with the weights.
    public static func modelConfig(at dir: String) throws -> GPTConfig {
        let path = try existing(dir) + "/model.safetensors"
        let (_, metadata) = try SafeTensors.read(path)
        guard let json = metadata[configKey], let config = try? JSONDecoder().decode(GPTConfig.self, from: Data(json.utf8)) else {
            throw FileFormatError.invalid(path: path, reason: "metadata has no valid '\(configKey)' (not a Nanodecoder checkpoint?)")
        }
        return config
    }

    /// A model built from the checkpoint's config with its weights (and LoRA adapters, when it has them).
    public static func loadModel(from dir: String) throws -> any LanguageModel {
        let metadata = try self.metadata(at: dir)
        guard metadata[classifierKey] == nil else {
            throw FileFormatError.invalid(path: dir, reason: "this is a classifier checkpoint: use `nanodecoder classify --checkpoint \(dir)`")
        }
        let model = try makeLanguageModel(try modelConfig(at: dir))
        if let lora = try loraSettings(metadata, path: dir) { try model.attachLoRA(lora) }
        try loadWeights(into: model, from: dir)
        return model
    }

    static func loraSettings(_ metadata: [String: String], path: String) throws -> LoRASettings? {
        guard let json = metadata[loraKey] else { return nil }
        guard let settings = try? JSONDecoder().decode(LoRASettings.self, from: Data(json.utf8)) else {
            throw FileFormatError.invalid(path: path, reason: "metadata '\(loraKey)' is not valid LoRA settings")
        }
        return settings
    }

    /// A classifier checkpoint's model (base, adapters, head) and its spec.
    public static func loadClassifier(from dir: String) throws -> (model: GPTClassifier, spec: ClassifierSpec) {
        let metadata = try self.metadata(at: dir)
        guard let json = metadata[classifierKey], let spec = try? JSONDecoder().decode(ClassifierSpec.self, from: Data(json.utf8)) else {
            throw FileFormatError.invalid(path: dir, reason: "not a classifier checkpoint (no '\(classifierKey)' metadata): fine-tune one with `nanodecoder finetune classify`")
        }
        let model = try ClassificationTask.model(for: spec, config: try modelConfig(at: dir))
        try loadParameters(into: model, from: try existing(dir) + "/model.safetensors")
        return (model, spec)
    }

    /// The tokenizer described by meta.json in the checkpoint folder or the run folder above it,
    /// and the files that describe it (to copy into a new run folder).
    public static func tokenizer(near checkpoint: String) throws -> (tokenizer: any Tokenizer, files: [String]) {
        let candidates = [checkpoint, (checkpoint as NSString).deletingLastPathComponent]
        for folder in candidates where FileManager.default.fileExists(atPath: folder + "/meta.json") {
            let meta = try DatasetMeta.load(folder: folder)
            let files = ["meta.json", meta.tokenizerFile].compactMap { $0 }.map { folder + "/" + $0 }
            return (try Prepare.tokenizer(for: meta, folder: folder), files)
        }
        throw DataError.invalid(path: checkpoint, reason: "no meta.json in this folder or the one above it, so its tokenizer cannot be rebuilt")
    }

    /// Copies weights into `model`, which must have the checkpoint's config.
    public static func loadWeights(into model: any LanguageModel, from dir: String) throws {
        let path = try existing(dir) + "/model.safetensors"
        let saved = try modelConfig(at: dir)
        guard saved == model.config else {
            throw FileFormatError.invalid(path: path, reason: "checkpoint is for another model config: saved \(saved), expected \(model.config)")
        }
        try loadParameters(into: model, from: path)
    }

    /// Copies every parameter of `module` from `path` (a safetensors file), checking names, shapes and dtypes.
    public static func loadParameters(into module: any Module, from path: String) throws {
        let (tensors, _) = try SafeTensors.read(path)
        for (name, p) in module.namedParameters() {
            guard let t = tensors[name], t.shape == p.shape, t.dtype == p.dtype else {
                throw FileFormatError.invalid(path: path, reason: "weight '\(name)' is missing or not \(p.dtype) \(p.shape)")
            }
            try p.assign(t)
        }
    }

    /// Equal strings, or equal JSON values (key order does not matter).
    static func sameMetadataValue(_ saved: String?, _ expected: String) -> Bool {
        guard let saved else { return false }
        if saved == expected { return true }
        guard let a = try? JSONSerialization.jsonObject(with: Data(saved.utf8), options: .fragmentsAllowed) as? NSObject,
              let b = try? JSONSerialization.jsonObject(with: Data(expected.utf8), options: .fragmentsAllowed) as? NSObject else { return false }
        return a.isEqual(b)
    }

    /// The metadata of a checkpoint folder's model.safetensors.
    public static func metadata(at dir: String) throws -> [String: String] {
        try SafeTensors.read(try existing(dir) + "/model.safetensors").metadata
    }

    public static func resume(model: any LanguageModel, optimizer: AdamW, from dir: String) throws -> TrainingState {
        try resume(module: model, metadata: metadata(for: model.config), optimizer: optimizer, from: dir)
    }

    /// Restores weights, optimizer moments and training state. The saved metadata must equal
    /// `metadata` (same model config and task), so a run resumes only into the model it saved.
    public static func resume(module: any Module, metadata: [String: String], optimizer: any Optimizer, from dir: String) throws -> TrainingState {
        let folder = try existing(dir)
        let path = folder + "/model.safetensors"
        let saved = try self.metadata(at: folder)
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) where !sameMetadataValue(saved[key], value) {
            throw FileFormatError.invalid(path: path, reason: "checkpoint is for another model or task: '\(key)' is \(saved[key] ?? "missing"), expected \(value)")
        }
        try loadParameters(into: module, from: path)
        guard let data = FileManager.default.contents(atPath: folder + "/state.json"),
              let state = try? JSONDecoder().decode(TrainingState.self, from: data) else {
            throw FileFormatError.invalid(path: folder + "/state.json", reason: "missing or unreadable training state")
        }
        let optimizerPath = folder + "/optimizer.safetensors"
        try optimizer.load(state: try SafeTensors.read(optimizerPath).tensors, step: state.step, path: optimizerPath)
        return state
    }
}
