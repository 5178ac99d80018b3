/// A character-level tokenizer: one token per Unicode scalar, as in nanoGPT's Shakespeare example.
///
/// Tokens are Unicode scalars rather than grapheme clusters, so `"\r\n"` is two tokens and every
/// string splits the same way whatever the Unicode version's grapheme rules.
public struct CharTokenizer: Tokenizer, Codable {
    /// The token strings in id order; each holds exactly one Unicode scalar.
    public let vocabulary: [String]
    private let scalars: [Unicode.Scalar]
    /// Token id of every scalar value below `denseIDs.count` (-1 when absent): the hot path.
    private let denseIDs: [Int32]
    /// Token ids of the scalars at or above `denseIDs.count`.
    private let sparseIDs: [UInt32: Int32]

    /// The number of distinct scalars.
    public var vocabularySize: Int { scalars.count }

    /// Character-level vocabularies have no document separator.
    public var endOfText: Int? { nil }

    /// Builds the vocabulary from the distinct scalars of `text`, sorted by code point.
    public init(training text: String) {
        var seenBMP = [Bool](repeating: false, count: 0x1_0000)
        var seenAstral = Set<UInt32>()
        for scalar in text.unicodeScalars {
            if scalar.value < 0x1_0000 { seenBMP[Int(scalar.value)] = true } else { seenAstral.insert(scalar.value) }
        }
        let values = seenBMP.indices.filter { seenBMP[$0] }.map(UInt32.init) + seenAstral.sorted()
        self.init(scalars: values.compactMap(Unicode.Scalar.init))
    }

    /// Uses `vocabulary` as given: token id `i` is `vocabulary[i]`.
    /// - Throws: `TokenizerError.invalidVocabulary` when an entry is not exactly one Unicode scalar
    ///   or appears twice.
    public init(vocabulary: [String]) throws {
        var scalars: [Unicode.Scalar] = []
        var seen = Set<UInt32>()
        for (id, entry) in vocabulary.enumerated() {
            let entryScalars = entry.unicodeScalars
            guard entryScalars.count == 1, let scalar = entryScalars.first else {
                throw TokenizerError.invalidVocabulary(
                    reason: "entry \(id) \(String(reflecting: entry)) has \(entryScalars.count) Unicode scalars, "
                        + "expected 1")
            }
            guard seen.insert(scalar.value).inserted else {
                throw TokenizerError.invalidVocabulary(
                    reason: "entry \(id) \(String(reflecting: entry)) (\(scalar.codePoint)) appears more than once")
            }
            scalars.append(scalar)
        }
        self.init(scalars: scalars)
    }

    private init(scalars: [Unicode.Scalar]) {
        self.scalars = scalars
        vocabulary = scalars.map { String($0) }
        let denseLimit = Int(scalars.lazy.map(\.value).filter { $0 < 0x1_0000 }.max() ?? 0) + 1
        var dense = [Int32](repeating: -1, count: denseLimit)
        var sparse: [UInt32: Int32] = [:]
        for (id, scalar) in scalars.enumerated() {
            if Int(scalar.value) < denseLimit {
                dense[Int(scalar.value)] = Int32(id)
            } else {
                sparse[scalar.value] = Int32(id)
            }
        }
        denseIDs = dense
        sparseIDs = sparse
    }

    /// One token per Unicode scalar.
    /// - Throws: `TokenizerError.unknownCharacter` for a scalar outside the vocabulary.
    public func encode(_ text: String) throws -> [Int] {
        var text = text
        return try text.withUTF8 { bytes in
            try denseIDs.withUnsafeBufferPointer { dense in
                var tokens: [Int] = []
                tokens.reserveCapacity(bytes.count)
                var i = 0, position = 0
                while i < bytes.count {
                    let (value, length) = decodeUTF8Scalar(bytes, at: i)
                    let id = Int(value) < dense.count ? dense[Int(value)] : sparseIDs[value] ?? -1
                    guard id >= 0 else {
                        let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
                        throw TokenizerError.unknownCharacter(Character(scalar), position: position)
                    }
                    tokens.append(Int(id))
                    i += length
                    position += 1
                }
                return tokens
            }
        }
    }

    /// The scalars of `tokens`, concatenated.
    /// - Throws: `TokenizerError.unknownToken` for an id outside `0..<vocabularySize`.
    public func decode(_ tokens: [Int]) throws -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens.count)
        for token in tokens {
            guard scalars.indices.contains(token) else {
                throw TokenizerError.unknownToken(token, vocabularySize: vocabularySize)
            }
            UTF8.encode(scalars[token]) { bytes.append($0) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private enum CodingKeys: String, CodingKey { case vocabulary }

    /// Reads `{"vocabulary": [...]}`, validating it as `init(vocabulary:)` does.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let vocabulary = try container.decode([String].self, forKey: .vocabulary)
        do {
            try self.init(vocabulary: vocabulary)
        } catch let error as TokenizerError {
            throw DecodingError.dataCorruptedError(forKey: .vocabulary, in: container,
                                                   debugDescription: error.description)
        }
    }

    /// Writes `{"vocabulary": [...]}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(vocabulary, forKey: .vocabulary)
    }
}
