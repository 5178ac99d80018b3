import ArgumentParser
import Foundation
import NanoData
import NanoEngine
import NanoTraining

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a checkpoint, streamed as it is produced.")

    @Option(help: "Checkpoint folder (e.g. runs/NAME/checkpoint or runs/NAME/best).") var checkpoint: String
    @Option(help: "Prompt text.") var prompt: String = "\n"
    @Option(help: "File with one prompt per line (instead of --prompt).") var promptsFile: String?
    @Option(help: "Tokens to generate per prompt.") var maxNewTokens: Int = 500
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0.8
    @Option(help: "Keep the k most likely tokens (0: all).") var topK: Int = 200
    @Option(help: "Nucleus sampling threshold (1: off).") var topP: Float = 1
    @Option(help: "Random seed.") var seed: UInt64 = 1337
    @Flag(help: "Recompute every position instead of using the KV cache.") var noKVCache = false
    @Option(help: "cpu, cuda or cuda:N: where the model runs.") var device = "cpu"

    func run() throws {
        let target = try CUDACommand.device(device)
        try Nanodecoder.reporting {
            if case .cuda(let ordinal) = target { try CUDACommand.registerBackend(ordinal: ordinal, tf32: false) }
            try Device.run(target) { try generate() }
        }
    }

    /// Loads the checkpoint on the current device and streams each prompt's continuation.
    private func generate() throws {
        let model = try Checkpoint.loadModel(from: checkpoint)
        let tokenizer = try loadTokenizer()
        var options = SamplingOptions()
        options.maxNewTokens = maxNewTokens; options.temperature = temperature; options.topK = topK
        options.topP = topP; options.seed = seed; options.useKVCache = !noKVCache
        options.stopToken = tokenizer.endOfText
        let prompts: [String]
        if let promptsFile {
            prompts = try readText(promptsFile, what: "prompts file").split(separator: "\n").map(String.init)
        } else {
            prompts = [prompt.replacingOccurrences(of: "\\n", with: "\n")]
        }
        for p in prompts {
            let encoded = try tokenizer.encode(p)
            emit(p, terminator: "")
            _ = try Sampler(model: model).generate(prompt: encoded, options: options) { token in
                emit((try? tokenizer.decode([token])) ?? "", terminator: "")
            }
            emit("\n---")
        }
    }

    func loadTokenizer() throws -> any Tokenizer { try Self.tokenizer(near: checkpoint) }

    /// The tokenizer described by meta.json in the checkpoint folder or the run folder above it.
    static func tokenizer(near checkpoint: String) throws -> any Tokenizer { try Checkpoint.tokenizer(near: checkpoint).tokenizer }
}
