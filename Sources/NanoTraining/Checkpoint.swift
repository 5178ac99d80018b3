import Foundation
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
}

/// A checkpoint folder: `model.safetensors` (weights; model config in the metadata),
/// `optimizer.safetensors`, `state.json`, `config.yaml`. Written into a temporary folder, fsynced,
/// then swapped into place, so an interruption leaves the previous checkpoint intact.
public enum Checkpoint {
    static let configKey = "gpt_config"

    public static func save(to dir: String, model: any LanguageModel, optimizer: AdamW? = nil, state: TrainingState? = nil,
                            config: TrainConfig? = nil) throws {
        let fm = FileManager.default
        let tmp = dir + ".tmp", old = dir + ".old"
        try? fm.removeItem(atPath: tmp)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let configJSON = String(decoding: try JSONEncoder().encode(model.config), as: UTF8.self)
        let weights = model.namedParameters().map { ($0.name, $0.tensor) }
        try writeAtomically(try SafeTensors.encode(weights, metadata: [configKey: configJSON, "format": "nanodecoder"]),
                            to: tmp + "/model.safetensors")
        if let optimizer {
            try writeAtomically(try SafeTensors.encode(optimizer.stateTensors()), to: tmp + "/optimizer.safetensors")
        }
        if let state {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try writeAtomically(try encoder.encode(state), to: tmp + "/state.json")
        }
        if let config { try writeAtomically(Data(config.yaml().utf8), to: tmp + "/config.yaml") }
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

    /// The model config stored with the weights.
    public static func modelConfig(at dir: String) throws -> GPTConfig {
        let path = try existing(dir) + "/model.safetensors"
        let (_, metadata) = try SafeTensors.read(path)
        guard let json = metadata[configKey], let config = try? JSONDecoder().decode(GPTConfig.self, from: Data(json.utf8)) else {
            throw FileFormatError.invalid(path: path, reason: "metadata has no valid '\(configKey)' (not a Nanodecoder checkpoint?)")
        }
        return config
    }

    /// A model built from the checkpoint's config with its weights.
    public static func loadModel(from dir: String) throws -> any LanguageModel {
        let model = try makeLanguageModel(try modelConfig(at: dir))
        try loadWeights(into: model, from: dir)
        return model
    }

    /// Copies weights into `model`, which must have the checkpoint's config.
    public static func loadWeights(into model: any LanguageModel, from dir: String) throws {
        let path = try existing(dir) + "/model.safetensors"
        let saved = try modelConfig(at: dir)
        guard saved == model.config else {
            throw FileFormatError.invalid(path: path, reason: "checkpoint is for another model config: saved \(saved), expected \(model.config)")
        }
        let (tensors, _) = try SafeTensors.read(path)
        for (name, p) in model.namedParameters() {
            guard let t = tensors[name], t.shape == p.shape, t.dtype == p.dtype else {
                throw FileFormatError.invalid(path: path, reason: "weight '\(name)' is missing or not \(p.dtype) \(p.shape)")
            }
            try p.assign(t)
        }
    }

    /// Restores weights, optimizer moments and training state.
    public static func resume(model: any LanguageModel, optimizer: AdamW, from dir: String) throws -> TrainingState {
        let folder = try existing(dir)
        try loadWeights(into: model, from: folder)
        guard let data = FileManager.default.contents(atPath: folder + "/state.json"),
              let state = try? JSONDecoder().decode(TrainingState.self, from: data) else {
            throw FileFormatError.invalid(path: folder + "/state.json", reason: "missing or unreadable training state")
        }
        let optimizerPath = folder + "/optimizer.safetensors"
        try optimizer.load(state: try SafeTensors.read(optimizerPath).tensors, step: state.step, path: optimizerPath)
        return state
    }
}
