import Foundation

/// `meta.json` beside `train.bin`/`val.bin`: how the tokens were made and how they are stored.
public struct DatasetMeta: Codable, Equatable, Sendable {
    /// "char" or "bpe".
    public var tokenizer: String
    public var vocabSize: Int
    /// "uint16" (nanoGPT's format) or "uint32" when the vocabulary needs it.
    public var dtype: String
    /// Character-level vocabulary, in id order.
    public var vocabulary: [String]?
    /// BPE tokenizer file (tiktoken format), relative to the dataset folder.
    public var tokenizerFile: String?
    public var trainTokens: Int
    public var valTokens: Int
    public var source: String

    enum CodingKeys: String, CodingKey {
        case tokenizer, dtype, vocabulary, source
        case vocabSize = "vocab_size", tokenizerFile = "tokenizer_file", trainTokens = "train_tokens", valTokens = "val_tokens"
    }

    public init(tokenizer: String, vocabSize: Int, dtype: String, vocabulary: [String]?, tokenizerFile: String?,
                trainTokens: Int, valTokens: Int, source: String) {
        self.tokenizer = tokenizer; self.vocabSize = vocabSize; self.dtype = dtype; self.vocabulary = vocabulary
        self.tokenizerFile = tokenizerFile; self.trainTokens = trainTokens; self.valTokens = valTokens; self.source = source
    }

    public var bytesPerToken: Int { dtype == "uint32" ? 4 : 2 }

    public static func load(folder: String) throws -> DatasetMeta {
        let path = folder + "/meta.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError.invalid(path: path, reason: "missing: run `nanodecoder prepare` to create the dataset")
        }
        let meta: DatasetMeta
        do { meta = try JSONDecoder().decode(DatasetMeta.self, from: data) } catch {
            throw DataError.invalid(path: path, reason: "not a valid dataset description: \(error)")
        }
        guard meta.dtype == "uint16" || meta.dtype == "uint32" else {
            throw DataError.invalid(path: path, reason: "dtype '\(meta.dtype)' is not uint16 or uint32")
        }
        guard meta.vocabSize > 0, meta.dtype == "uint32" || meta.vocabSize <= 65536 else {
            throw DataError.invalid(path: path, reason: "vocab_size \(meta.vocabSize) does not fit dtype \(meta.dtype)")
        }
        return meta
    }

    public func save(folder: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: folder + "/meta.json"), options: .atomic)
    }
}

/// Problems with data files, naming the file.
public enum DataError: Error, CustomStringConvertible {
    case invalid(path: String, reason: String)
    public var description: String {
        switch self { case let .invalid(path, reason): "\(path): \(reason)" }
    }
}
