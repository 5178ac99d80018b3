import ArgumentParser
import Foundation
import NanoData
import NanoTracking

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize a text file (or URL) into train.bin / val.bin / meta.json (90/10 split).")

    static let shakespeareURL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"

    @Option(help: "Text file to prepare.") var input: String?
    @Option(help: "URL to download when --input is not given.") var url: String = Prepare.shakespeareURL
    @Option(help: "Tokenizer: char or bpe.") var tokenizer: String = "char"
    @Option(help: "BPE vocabulary size when training a tokenizer.") var vocabSize: Int = 512
    @Option(help: "Existing .tiktoken file for BPE (instead of training one).") var tokenizerFile: String?
    @Option(help: "Output folder.") var out: String = "data/shakespeare_char"

    func run() throws {
        try Nanodecoder.reporting {
            guard let kind = NanoData.Prepare.TokenizerKind(rawValue: tokenizer) else {
                throw ValidationError("--tokenizer '\(tokenizer)': expected char or bpe")
            }
            let (text, source) = try loadText()
            try NanoData.Prepare.run(text: text, source: source, folder: out, tokenizer: kind, vocabularySize: vocabSize,
                                     tokenizerFile: tokenizerFile)
        }
    }

    func loadText() throws -> (String, String) {
        if let input {
            return (try readText(input), input)
        }
        print("downloading \(url)…")
        guard let u = URL(string: url), let data = try? Data(contentsOf: u), let text = String(data: data, encoding: .utf8) else {
            throw DataError.invalid(path: url, reason: "download failed (offline? pass --input FILE)")
        }
        return (text, url)
    }
}

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenizer", abstract: "Tokenizer tools.",
                                                    subcommands: [TrainTokenizer.self])
}

struct TrainTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train a byte-level BPE tokenizer on a text file.")
    @Option(help: "Text file.") var input: String
    @Option(help: "Vocabulary size (≥ 257: 256 bytes + merges + <|endoftext|>).") var vocabSize: Int
    @Option(help: "Output .tiktoken file.") var out: String = "tokenizer.tiktoken"

    func run() throws {
        try Nanodecoder.reporting {
            let text = try readText(input)
            let start = Date()
            let bar = ProgressBar("tokenizer", total: vocabSize, unit: "tokens")
            let tok = try BPETokenizer.train(text: text, vocabularySize: vocabSize) { done, _ in bar.update(done) }
            bar.finish()
            try tok.save(tiktokenFile: out)
            print(String(format: "wrote %@ (%d tokens) in %.1f s", out, tok.vocabularySize, Date().timeIntervalSince(start)))
        }
    }
}
