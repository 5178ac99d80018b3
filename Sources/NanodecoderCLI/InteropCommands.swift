import ArgumentParser
import Foundation
import NanoData
import NanoModels
import NanoTracking
import NanoTraining

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Import weights from other tools.",
                                                    subcommands: [ImportHF.self])
}

struct ImportHF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hf", abstract: "Convert a Hugging Face GPT-2 folder (config.json, model.safetensors, vocab.json + merges.txt) into a checkpoint.")
    @Argument(help: "The Hugging Face model folder.") var folder: String
    @Option(help: "Checkpoint folder to write.") var out: String = "runs/imported/checkpoint"

    func run() throws {
        try Nanodecoder.reporting {
            let model = try HuggingFaceGPT2.importModel(folder: folder)
            try Checkpoint.save(to: out, model: model)
            let vocab = folder + "/vocab.json", merges = folder + "/merges.txt", json = folder + "/tokenizer.json"
            let fm = FileManager.default
            let tokenizer: BPETokenizer?
            if fm.fileExists(atPath: vocab) && fm.fileExists(atPath: merges) {
                tokenizer = try BPETokenizer(vocabJSON: vocab, mergesTXT: merges)
            } else if fm.fileExists(atPath: json) {
                tokenizer = try BPETokenizer(huggingFaceTokenizerJSON: json)
            } else {
                tokenizer = nil
            }
            if let tokenizer {
                guard tokenizer.preTokenization == .gpt2 else {
                    throw ValidationError("\(folder): the tokenizer uses \(tokenizer.preTokenization) pre-tokenisation; checkpoints store GPT-2's only")
                }
                try tokenizer.save(tiktokenFile: out + "/tokenizer.tiktoken")
                try DatasetMeta(tokenizer: "bpe", vocabSize: model.config.vocabSize, dtype: model.config.vocabSize <= 65536 ? "uint16" : "uint32",
                                vocabulary: nil, tokenizerFile: "tokenizer.tiktoken", trainTokens: 0, valTokens: 0, source: folder)
                    .save(folder: out)
            } else {
                emit("note: no vocab.json + merges.txt or tokenizer.json in \(folder); the checkpoint has no tokenizer")
            }
            let counts = model.parameterCounts
            emit(String(format: "imported %@ → %@: %d layers, %d heads, %d wide, block %d, vocab %d, %.2fM parameters",
                        folder, out, model.config.nLayer, model.config.nHead, model.config.nEmbd, model.config.blockSize,
                        model.config.vocabSize, Double(counts.total) / 1e6))
        }
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Export weights for other tools.",
                                                    subcommands: [ExportHF.self])
}

struct ExportHF: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hf", abstract: "Write a dense checkpoint in the Hugging Face GPT-2 layout.")
    @Option(help: "Checkpoint folder.") var checkpoint: String
    @Option(help: "Folder to write (config.json, model.safetensors).") var out: String

    func run() throws {
        try Nanodecoder.reporting {
            guard let model = try Checkpoint.loadModel(from: checkpoint) as? DenseGPT else {
                throw ValidationError("\(checkpoint): only dense GPT checkpoints have a GPT-2 layout (this one has MoE layers)")
            }
            let eot = (try? Sample.tokenizer(near: checkpoint))?.endOfText
            try HuggingFaceGPT2.export(model, to: out, endOfText: eot)
            emit("wrote \(out)/config.json and \(out)/model.safetensors (load with transformers.GPT2LMHeadModel.from_pretrained)")
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Evaluate a checkpoint.", subcommands: [EvalHellaSwag.self, EvalPerplexity.self])
}

struct EvalHellaSwag: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hellaswag", abstract: "HellaSwag accuracy (hellaswag_val.jsonl format).")
    @Option(help: "Checkpoint folder.") var checkpoint: String
    @Option(help: "A .jsonl file of {ctx, endings, label}.") var data: String
    @Option(help: "Evaluate only the first N items.") var limit: Int?
    @Option(help: "Items per forward pass.") var batchSize: Int = 8

    func run() throws {
        try Nanodecoder.reporting {
            let model = try Checkpoint.loadModel(from: checkpoint)
            let tokenizer = try Sample.tokenizer(near: checkpoint)
            let items = try Evaluation.loadHellaSwag(data, limit: limit)
            let start = Date()
            let bar = ProgressBar("hellaswag", total: items.count, unit: "items")
            let r = try Evaluation.hellaSwag(model, tokenizer: tokenizer, items: items, batchSize: batchSize) { done, _ in bar.update(done) }
            bar.finish()
            emit(String(format: "HellaSwag: %d items, acc_norm %.4f (mean token loss), acc %.4f (summed loss), %.1f s",
                        r.count, r.accuracyNormalized, r.accuracySum, Date().timeIntervalSince(start)))
        }
    }
}

struct EvalPerplexity: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "perplexity", abstract: "Perplexity of a text file with a sliding window.")
    @Option(help: "Checkpoint folder.") var checkpoint: String
    @Option(help: "Text file.") var text: String
    @Option(help: "Window stride in tokens (default: half the block size).") var stride: Int?

    func run() throws {
        try Nanodecoder.reporting {
            let model = try Checkpoint.loadModel(from: checkpoint)
            let tokenizer = try Sample.tokenizer(near: checkpoint)
            let content = try readText(text)
            let tokens = try tokenizer.encode(content)
            let bar = ProgressBar("perplexity", total: tokens.count - 1, unit: "tokens")
            let r = try Evaluation.perplexity(model, tokens: tokens, stride: stride ?? max(model.config.blockSize / 2, 1)) { done, _ in bar.update(done) }
            bar.finish()
            emit(String(format: "perplexity %.4f (mean NLL %.4f nats over %d tokens)", r.perplexity, r.meanNLL, r.tokens))
        }
    }
}
