import Foundation

/// Turns a text file into a dataset folder: `train.bin` and `val.bin` (90/10 split, uint16
/// tokens as nanoGPT writes them, uint32 when the vocabulary needs it) and `meta.json`.
public enum Prepare {
    public enum TokenizerKind: String, Sendable { case char, bpe }

    /// Prepares `text` into `folder`. BPE either trains on the text (`vocabularySize`) or loads a
    /// `.tiktoken` file. Returns the metadata written.
    @discardableResult
    public static func run(text: String, source: String, folder: String, tokenizer kind: TokenizerKind,
                           vocabularySize: Int = 512, tokenizerFile: String? = nil,
                           log: (String) -> Void = { print($0) }) throws -> DatasetMeta {
        guard !text.isEmpty else { throw DataError.invalid(path: source, reason: "the text is empty") }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let start = Date()
        let tokens: [Int]
        let meta: DatasetMeta
        switch kind {
        case .char:
            let tok = CharTokenizer(training: text)
            tokens = try tok.encode(text)
            meta = DatasetMeta(tokenizer: "char", vocabSize: tok.vocabularySize, dtype: "uint16", vocabulary: tok.vocabulary,
                               tokenizerFile: nil, trainTokens: 0, valTokens: 0, source: source)
        case .bpe:
            let tok: BPETokenizer
            if let tokenizerFile {
                tok = try BPETokenizer(tiktokenFile: tokenizerFile)
            } else {
                log("training a byte-level BPE tokenizer to \(vocabularySize) tokens…")
                tok = try BPETokenizer.train(text: text, vocabularySize: vocabularySize)
            }
            try tok.save(tiktokenFile: folder + "/tokenizer.tiktoken")
            tokens = try tok.encode(text)
            meta = DatasetMeta(tokenizer: "bpe", vocabSize: tok.vocabularySize, dtype: tok.vocabularySize <= 65536 ? "uint16" : "uint32",
                               vocabulary: nil, tokenizerFile: "tokenizer.tiktoken", trainTokens: 0, valTokens: 0, source: source)
        }
        let split = tokens.count * 9 / 10
        var final = meta
        final.trainTokens = split
        final.valTokens = tokens.count - split
        try write(tokens[..<split], wide: final.dtype == "uint32", to: folder + "/train.bin")
        try write(tokens[split...], wide: final.dtype == "uint32", to: folder + "/val.bin")
        try final.save(folder: folder)
        log(String(format: "prepared %@: %d characters → %d tokens (vocab %d, %@), %d train / %d val, in %.2f s",
                   folder, text.count, tokens.count, final.vocabSize, final.dtype, final.trainTokens, final.valTokens,
                   Date().timeIntervalSince(start)))
        return final
    }

    static func write(_ tokens: ArraySlice<Int>, wide: Bool, to path: String) throws {
        let data: Data = wide
            ? tokens.map { UInt32($0).littleEndian }.withUnsafeBufferPointer { Data(buffer: $0) }
            : tokens.map { UInt16($0).littleEndian }.withUnsafeBufferPointer { Data(buffer: $0) }
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The tokenizer a dataset was prepared with.
    public static func tokenizer(for meta: DatasetMeta, folder: String) throws -> any Tokenizer {
        switch meta.tokenizer {
        case "char":
            guard let vocabulary = meta.vocabulary else {
                throw DataError.invalid(path: folder + "/meta.json", reason: "a char dataset needs its vocabulary")
            }
            return try CharTokenizer(vocabulary: vocabulary)
        case "bpe":
            return try BPETokenizer(tiktokenFile: folder + "/" + (meta.tokenizerFile ?? "tokenizer.tiktoken"))
        default:
            throw DataError.invalid(path: folder + "/meta.json", reason: "unknown tokenizer '\(meta.tokenizer)' (expected char or bpe)")
        }
    }
}
