import Foundation

/// GPT-2 style byte-level byte-pair encoding, compatible with OpenAI's `tiktoken`.
///
/// Text is cut into pre-tokens by GPT-2's pattern (words with their leading space, digit runs,
/// punctuation runs, whitespace), each pre-token's UTF-8 bytes start as one token per byte, and
/// adjacent tokens merge, lowest rank first, while their concatenation is itself a token. A token's
/// rank is its id, so the 256 byte tokens plus the learned merges fully describe the tokenizer.
///
/// `<|endoftext|>` in the text is the document separator `endOfText`, never split into pieces.
public struct BPETokenizer: Tokenizer {
    /// The text of the document separator token.
    public static let endOfTextMarker = "<|endoftext|>"

    /// The bytes of each token id; empty for ids that no token uses (gaps in a loaded rank file).
    let tokenBytes: [[UInt8]]
    /// Token id of each byte value.
    private let byteTokens: [Int32]
    /// Token id of each token's bytes. Keys are slices so that a pre-token is looked up in place.
    private let tokenIDs: [ArraySlice<UInt8>: Int32]
    /// `pairKey(left, right)` → the token whose bytes are left's followed by right's. Its id is also
    /// the pair's merge rank: the lowest id merges first.
    let merges: [UInt64: Int32]

    /// The id of `<|endoftext|>`: the id after the last token for trained and tiktoken-loaded
    /// tokenizers (50256 for GPT-2).
    public let endOfText: Int?
    /// The number of ids, `<|endoftext|>` and any unused ids included.
    public let vocabularySize: Int

    /// Every token's bytes and rank (id), the tiktoken "mergeable ranks"; `<|endoftext|>` excluded.
    public var mergeableRanks: [[UInt8]: Int] {
        var ranks: [[UInt8]: Int] = [:]
        for (id, bytes) in tokenBytes.enumerated() where !bytes.isEmpty { ranks[bytes] = id }
        return ranks
    }

    /// Builds a tokenizer from tiktoken-style ranks, e.g. ones learned elsewhere.
    /// - Parameters:
    ///   - mergeableRanks: token bytes → id; all 256 single bytes must be present.
    ///   - endOfText: the id for `<|endoftext|>` (not among the ranks), or `nil` for none.
    /// - Throws: `TokenizerError.invalidVocabulary` when the ranks cannot form a tokenizer.
    public init(mergeableRanks: [[UInt8]: Int], endOfText: Int?) throws {
        do {
            let ranked = mergeableRanks.map { (bytes: $0.key, rank: $0.value, line: 0) }
            self = try BPETokenizer(tokenBytes: Self.tokenBytes(fromRanks: ranked), endOfText: endOfText)
        } catch let problem {
            throw TokenizerError.invalidVocabulary(reason: problem.reason)
        }
    }

    /// The shared initialiser: validates the vocabulary and derives the lookup tables.
    private init(tokenBytes: [[UInt8]], endOfText: Int?) throws(VocabularyProblem) {
        guard tokenBytes.count < Int(Int32.max) else { throw VocabularyProblem("more than \(Int32.max) token ids") }
        var tokenIDs: [ArraySlice<UInt8>: Int32] = [:]
        tokenIDs.reserveCapacity(tokenBytes.count)
        for (id, bytes) in tokenBytes.enumerated() where !bytes.isEmpty {
            if let other = tokenIDs.updateValue(Int32(id), forKey: bytes[...]) {
                throw VocabularyProblem("ids \(other) and \(id) are the same token \(Self.byteLevelString(bytes))")
            }
        }
        var byteTokens: [Int32] = []
        for byte in 0...255 as ClosedRange<UInt8> {
            guard let id = tokenIDs[[byte][...]] else {
                throw VocabularyProblem(
                    String(format: "no token for the single byte 0x%02X; byte-level BPE needs all 256", byte))
            }
            byteTokens.append(id)
        }
        if let endOfText {
            guard endOfText >= 0, endOfText < Int(Int32.max) else {
                throw VocabularyProblem("\(Self.endOfTextMarker) id \(endOfText) is out of range")
            }
            guard endOfText >= tokenBytes.count || tokenBytes[endOfText].isEmpty else {
                throw VocabularyProblem("\(Self.endOfTextMarker) id \(endOfText) is already the token "
                                        + Self.byteLevelString(tokenBytes[endOfText]))
            }
        }
        // A pair merges when its concatenation is a token, whichever way that token was first built:
        // this is tiktoken's rule, and it makes every split of every token a candidate pair.
        var merges: [UInt64: Int32] = [:]
        merges.reserveCapacity(tokenBytes.count * 2)
        for (id, bytes) in tokenBytes.enumerated() where bytes.count > 1 {
            for split in 1..<bytes.count {
                if let left = tokenIDs[bytes[..<split]], let right = tokenIDs[bytes[split...]] {
                    merges[pairKey(left, right)] = Int32(id)
                }
            }
        }
        self.tokenBytes = tokenBytes
        self.byteTokens = byteTokens
        self.tokenIDs = tokenIDs
        self.merges = merges
        self.endOfText = endOfText
        vocabularySize = max(tokenBytes.count, (endOfText ?? -1) + 1)
    }

    // MARK: Encoding

    /// The token ids of `text`. `<|endoftext|>` becomes `endOfText`; the rest is split by GPT-2's
    /// pattern and each piece is merged. Pieces repeat a lot in real text, so each call caches the
    /// ids of the pieces it has merged.
    public func encode(_ text: String) throws -> [Int] {
        let bytes = Array(text.utf8)
        var tokens: [Int] = []
        tokens.reserveCapacity(bytes.count / 3)
        var cache: [ArraySlice<UInt8>: [Int32]] = [:]
        bytes.withUnsafeBufferPointer { buffer in
            var start = 0
            while true {
                let stop = endOfText == nil ? buffer.count : Self.findEndOfText(in: buffer, from: start)
                var i = start
                while i < stop {
                    let end = gpt2PieceEnd(buffer, from: i, to: stop)
                    if end - i == 1 {
                        tokens.append(Int(byteTokens[Int(buffer[i])]))
                    } else if let id = tokenIDs[bytes[i..<end]] {
                        tokens.append(Int(id))
                    } else if let ids = cache[bytes[i..<end]] {
                        tokens.append(contentsOf: ids.lazy.map(Int.init))
                    } else {
                        let ids = mergeBytePairs(bytes[i..<end].map { byteTokens[Int($0)] })
                        cache[bytes[i..<end]] = ids
                        tokens.append(contentsOf: ids.lazy.map(Int.init))
                    }
                    i = end
                }
                guard stop < buffer.count, let endOfText else { break }
                tokens.append(endOfText)
                start = stop + Self.endOfTextBytes.count
            }
        }
        return tokens
    }

    private static let endOfTextBytes = Array(endOfTextMarker.utf8)

    /// Offset of the next `<|endoftext|>` at or after `start`, or `buffer.count`.
    private static func findEndOfText(in buffer: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let marker = endOfTextBytes
        var i = start
        while i + marker.count <= buffer.count {
            if buffer[i] == marker[0] && buffer[i + 1] == marker[1]
                && marker.indices.allSatisfy({ buffer[i + $0] == marker[$0] }) {
                return i
            }
            i += 1
        }
        return buffer.count
    }

    /// The merge rank of the adjacent pair, `Int32.max` when it does not merge.
    @inline(__always)
    private func rank(_ left: Int32, _ right: Int32) -> Int32 {
        merges[pairKey(left, right)] ?? .max
    }

    /// Merges `parts` (one pre-token's tokens) until no adjacent pair is a token, always taking the
    /// lowest-rank pair and, among equal ranks, the leftmost.
    func mergeBytePairs(_ parts: [Int32]) -> [Int32] {
        parts.count <= 64 ? mergeBytePairsByScanning(parts) : mergeBytePairsWithHeap(parts)
    }

    /// Short pieces: rescan the pair ranks after each merge (quadratic, but tiny and cache-friendly).
    func mergeBytePairsByScanning(_ parts: [Int32]) -> [Int32] {
        guard parts.count > 1 else { return parts }
        var parts = parts
        // ranks[i] is the rank of (parts[i], parts[i + 1]).
        var ranks = (0..<parts.count - 1).map { rank(parts[$0], parts[$0 + 1]) }
        while true {
            var best = Int32.max, at = -1
            for i in ranks.indices where ranks[i] < best {
                best = ranks[i]
                at = i
            }
            guard at >= 0 else { return parts }
            parts[at] = best
            parts.remove(at: at + 1)
            ranks.remove(at: at)
            if at > 0 { ranks[at - 1] = rank(parts[at - 1], parts[at]) }
            if at < ranks.count { ranks[at] = rank(parts[at], parts[at + 1]) }
        }
    }

    /// Long pieces: a linked list of parts and a heap of candidate merges keyed by (rank, position),
    /// so each merge costs O(log n). Entries whose pair has since changed are skipped when popped.
    func mergeBytePairsWithHeap(_ parts: [Int32]) -> [Int32] {
        guard parts.count > 1 else { return parts }
        var token = parts                                   // -1 once merged into its left neighbour
        var next = (0..<parts.count).map { $0 + 1 }         // parts.count marks the end
        var previous = (0..<parts.count).map { $0 - 1 }     // -1 marks the start
        var heap = MinHeap<UInt64>()
        func push(_ rank: Int32, at position: Int) {
            if rank != .max { heap.push(UInt64(rank) << 32 | UInt64(position)) }
        }
        for i in 0..<parts.count - 1 { push(rank(token[i], token[i + 1]), at: i) }
        while let entry = heap.pop() {
            let merged = Int32(entry >> 32), position = Int(entry & 0xFFFF_FFFF)
            let right = next[position]
            guard token[position] >= 0, right < parts.count, rank(token[position], token[right]) == merged else { continue }
            token[position] = merged
            token[right] = -1
            next[position] = next[right]
            if next[right] < parts.count { previous[next[right]] = position }
            if previous[position] >= 0 { push(rank(token[previous[position]], merged), at: previous[position]) }
            if next[position] < parts.count { push(rank(merged, token[next[position]]), at: position) }
        }
        var result: [Int32] = []
        var i = 0
        while i < parts.count {
            result.append(token[i])
            i = next[i]
        }
        return result
    }

    // MARK: Decoding

    /// The text of `tokens`: their bytes concatenated and read as UTF-8. Ids that end mid-character
    /// (possible when decoding a slice of a sequence) decode to U+FFFD rather than failing.
    /// - Throws: `TokenizerError.unknownToken` for an id outside the vocabulary.
    public func decode(_ tokens: [Int]) throws -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens.count * 4)
        for token in tokens {
            if token == endOfText {
                bytes.append(contentsOf: Self.endOfTextBytes)
            } else if tokenBytes.indices.contains(token) && !tokenBytes[token].isEmpty {
                bytes.append(contentsOf: tokenBytes[token])
            } else {
                throw TokenizerError.unknownToken(token, vocabularySize: vocabularySize)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The key of an adjacent token pair in merge and count tables.
@inline(__always)
func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
    UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
}

/// Why a set of token byte strings cannot form a tokenizer; wrapped into a `TokenizerError` that
/// names its source.
struct VocabularyProblem: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

// MARK: - GPT-2 pre-tokenisation

/// What GPT-2's pattern distinguishes about a scalar: `\p{L}`, `\p{N}`, `\s`, or anything else.
enum ScalarClass {
    case letter, number, whitespace, other

    @inline(__always)
    init(_ value: UInt32) {
        if value < 0x80 {
            if (value | 0x20) &- 0x61 < 26 { self = .letter }             // A-Z, a-z
            else if value &- 0x30 < 10 { self = .number }                // 0-9
            else if value == 0x20 || value &- 0x09 < 5 { self = .whitespace }   // space, \t \n \v \f \r
            else { self = .other }
            return
        }
        guard let scalar = Unicode.Scalar(value) else { self = .other; return }
        let properties = scalar.properties
        if properties.isWhitespace { self = .whitespace; return }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: self = .letter
        case .decimalNumber, .letterNumber, .otherNumber: self = .number
        default: self = .other
        }
    }
}

/// The end of the pre-token that starts at `start`, for GPT-2's pattern
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// scanned by hand over the UTF-8 of `buffer[start..<end]` (a regex engine is far slower here).
/// The alternatives are tried in order, as a regex would. The subtle one is `\s+(?!\S)`: a run of
/// whitespace followed by more text gives back its last scalar, so that a final space can start the
/// next word (`"a   b"` → `"a"`, `"  "`, `" b"`); a single whitespace scalar before text, or a run that
/// reaches the end, is taken whole by `\s+`.
func gpt2PieceEnd(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int {
    let apostrophe: UInt8 = 0x27, space: UInt32 = 0x20
    // 's 't 're 've 'm 'll 'd (case-sensitive, as in GPT-2).
    if buffer[start] == apostrophe && start + 1 < end {
        switch buffer[start + 1] {
        case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"):
            return start + 2
        case UInt8(ascii: "r"), UInt8(ascii: "v"):
            if start + 2 < end && buffer[start + 2] == UInt8(ascii: "e") { return start + 3 }
        case UInt8(ascii: "l"):
            if start + 2 < end && buffer[start + 2] == UInt8(ascii: "l") { return start + 3 }
        default:
            break
        }
    }
    let (first, firstLength) = decodeUTF8Scalar(buffer, at: start)
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
    var runStart = start, runClass = ScalarClass(first)
    if first == space && start + 1 < end {
        let nextClass = ScalarClass(decodeUTF8Scalar(buffer, at: start + 1).value)
        if nextClass != .whitespace {
            runStart = start + 1
            runClass = nextClass
        }
    }
    if runClass != .whitespace {
        var i = runStart
        while i < end {
            let (value, length) = decodeUTF8Scalar(buffer, at: i)
            guard ScalarClass(value) == runClass else { break }
            i += length
        }
        return i
    }
    // `\s+(?!\S)` then `\s+`.
    var i = start + firstLength, lastStart = start
    while i < end {
        let (value, length) = decodeUTF8Scalar(buffer, at: i)
        guard ScalarClass(value) == .whitespace else { break }
        lastStart = i
        i += length
    }
    return i == end || lastStart == start ? i : lastStart
}

extension BPETokenizer {
    /// GPT-2's pre-tokenisation of `text` (without special-token handling), for tests and inspection.
    static func preTokenize(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buffer in
            var pieces: [String] = []
            var i = 0
            while i < buffer.count {
                let end = gpt2PieceEnd(buffer, from: i, to: buffer.count)
                pieces.append(String(decoding: buffer[i..<end], as: UTF8.self))
                i = end
            }
            return pieces
        }
    }
}

// MARK: - GPT-2's byte-to-unicode alphabet

extension BPETokenizer {
    /// GPT-2's byte-to-unicode table, used to write token bytes as text in `encoder.json` and
    /// `vocab.bpe`: the printable Latin-1 bytes (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stand for themselves and
    /// the other 68 take U+0100, U+0101, … in byte order, so a space is `Ġ` and a newline `Ċ`.
    static let byteToScalar: [Unicode.Scalar] = {
        var table: [Unicode.Scalar] = []
        var nextSubstitute: UInt32 = 0x100
        for byte in 0...255 as ClosedRange<UInt32> {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table.append(Unicode.Scalar(UInt8(byte)))
            } else {
                table.append(Unicode.Scalar(nextSubstitute)!)   // U+0100…U+0143, always valid
                nextSubstitute += 1
            }
        }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = Dictionary(
        uniqueKeysWithValues: byteToScalar.enumerated().map { ($0.element.value, UInt8($0.offset)) })

    /// `bytes` in GPT-2's byte-to-unicode alphabet.
    static func byteLevelString<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        var view = String.UnicodeScalarView()
        for byte in bytes { view.append(byteToScalar[Int(byte)]) }
        return String(view)
    }

    /// The bytes that a byte-to-unicode string stands for, or `nil` if it has a scalar outside the alphabet.
    static func bytes(fromByteLevelString string: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        for scalar in string.unicodeScalars {
            guard let byte = scalarToByte[scalar.value] else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

// MARK: - Files

extension BPETokenizer {
    /// Loads a tiktoken rank file: one token a line, `<base64 of the token's bytes> <rank>`, as in
    /// OpenAI's `r50k_base.tiktoken` or a file written by `save(tiktokenFile:)`. `<|endoftext|>`
    /// gets the id after the highest rank (50256 for GPT-2's `r50k_base`).
    /// - Throws: `TokenizerError.invalidFile` naming the path and the first problem found.
    public init(tiktokenFile path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.invalidFile(path: path, reason: "cannot read the file (missing or unreadable)")
        }
        var ranked: [(bytes: [UInt8], rank: Int, line: Int)] = []
        for (index, rawLine) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine
            if line.isEmpty { continue }
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count == 2, let bytes = Data(base64Encoded: Data(fields[0])), !bytes.isEmpty,
                  let rank = Int(String(decoding: fields[1], as: UTF8.self)), (0..<Self.maximumRank).contains(rank)
            else {
                let shown = String(decoding: line.prefix(60), as: UTF8.self)
                throw TokenizerError.invalidFile(
                    path: path,
                    reason: "line \(index + 1): expected \"<base64 token bytes> <rank below \(Self.maximumRank)>\", "
                        + "found \(String(reflecting: shown))")
            }
            ranked.append((Array(bytes), rank, index + 1))
        }
        guard let highest = ranked.map(\.rank).max() else {
            throw TokenizerError.invalidFile(path: path, reason: "the file holds no tokens")
        }
        do {
            self = try BPETokenizer(tokenBytes: Self.tokenBytes(fromRanks: ranked), endOfText: highest + 1)
        } catch let problem {
            throw TokenizerError.invalidFile(path: path, reason: problem.reason)
        }
    }

    /// Ranks (ids) above this are refused in files: ids index dense tables.
    static let maximumRank = 1 << 24

    /// Places each token at its rank; gaps stay empty.
    private static func tokenBytes(
        fromRanks ranked: [(bytes: [UInt8], rank: Int, line: Int)]
    ) throws(VocabularyProblem) -> [[UInt8]] {
        for (bytes, rank, _) in ranked where !(0..<maximumRank).contains(rank) || bytes.isEmpty {
            throw VocabularyProblem(bytes.isEmpty ? "a token has no bytes" : "rank \(rank) is outside 0..<\(maximumRank)")
        }
        var tokenBytes = [[UInt8]](repeating: [], count: (ranked.map(\.rank).max() ?? -1) + 1)
        for (bytes, rank, line) in ranked {
            guard tokenBytes[rank].isEmpty else {
                throw VocabularyProblem("\(line > 0 ? "line \(line): " : "")rank \(rank) is given to both "
                                        + "\(byteLevelString(tokenBytes[rank])) and \(byteLevelString(bytes))")
            }
            tokenBytes[rank] = bytes
        }
        return tokenBytes
    }

    /// Writes the tokenizer as a tiktoken rank file that `init(tiktokenFile:)` (or Python's
    /// `tiktoken.load.load_tiktoken_bpe`) reads back; `<|endoftext|>` is implied, not written.
    /// - Throws: `TokenizerError.unwritableFile` when the file cannot be written.
    public func save(tiktokenFile path: String) throws {
        var text = ""
        text.reserveCapacity(tokenBytes.count * 16)
        for (id, bytes) in tokenBytes.enumerated() where !bytes.isEmpty {
            text += Data(bytes).base64EncodedString() + " " + String(id) + "\n"
        }
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw TokenizerError.unwritableFile(path: path, reason: error.localizedDescription)
        }
    }

    /// Loads GPT-2's original files: `encoder.json` (token in byte-to-unicode form → id, with
    /// `<|endoftext|>` as the separator) and `vocab.bpe` (a `#version` line, then one `left right`
    /// merge a line in rank order). The merges must agree with the ids: each produces a token
    /// whose id is higher than the previous merge's, so "lowest id first" is GPT-2's merge order.
    /// - Parameters:
    ///   - encoderJSON: path of `encoder.json`.
    ///   - vocabBPE: path of `vocab.bpe`.
    /// - Throws: `TokenizerError.invalidFile` naming the file and the first problem found.
    public init(encoderJSON: String, vocabBPE: String) throws {
        guard let json = FileManager.default.contents(atPath: encoderJSON) else {
            throw TokenizerError.invalidFile(path: encoderJSON, reason: "cannot read the file (missing or unreadable)")
        }
        let encoder: [String: Int]
        do {
            encoder = try JSONDecoder().decode([String: Int].self, from: json)
        } catch {
            throw TokenizerError.invalidFile(path: encoderJSON, reason: "expected a JSON object of token → id: \(error)")
        }
        var ranked: [(bytes: [UInt8], rank: Int, line: Int)] = []
        var endOfText: Int?
        var idsByToken: [String: Int] = [:]
        for (token, id) in encoder {
            if token == Self.endOfTextMarker {
                endOfText = id
                continue
            }
            guard let bytes = Self.bytes(fromByteLevelString: token), !bytes.isEmpty,
                  (0..<Self.maximumRank).contains(id) else {
                throw TokenizerError.invalidFile(
                    path: encoderJSON,
                    reason: "entry \(String(reflecting: token)): \(id) is not a token of GPT-2's byte-to-unicode "
                        + "alphabet with an id in 0..<\(Self.maximumRank)")
            }
            ranked.append((bytes, id, 0))
            idsByToken[token] = id
        }

        guard let mergeData = FileManager.default.contents(atPath: vocabBPE) else {
            throw TokenizerError.invalidFile(path: vocabBPE, reason: "cannot read the file (missing or unreadable)")
        }
        var previousID = -1
        for (index, line) in String(decoding: mergeData, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = line.hasSuffix("\r") ? line.dropLast() : line
            if line.isEmpty || (index == 0 && line.hasPrefix("#")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.invalidFile(
                    path: vocabBPE,
                    reason: "line \(index + 1): expected two tokens separated by one space, "
                        + "found \(String(reflecting: String(line)))")
            }
            for part in [String(parts[0]), String(parts[1]), String(parts[0] + parts[1])] where idsByToken[part] == nil {
                throw TokenizerError.invalidFile(
                    path: vocabBPE,
                    reason: "line \(index + 1): token \(String(reflecting: part)) is not in \(encoderJSON)")
            }
            let id = idsByToken[String(parts[0] + parts[1])]!
            guard id > previousID else {
                throw TokenizerError.invalidFile(
                    path: vocabBPE,
                    reason: "line \(index + 1): merge \(String(reflecting: String(line))) makes id \(id), not above the "
                        + "previous merge's \(previousID); ids in \(encoderJSON) must follow merge order")
            }
            previousID = id
        }
        do {
            self = try BPETokenizer(tokenBytes: Self.tokenBytes(fromRanks: ranked), endOfText: endOfText)
        } catch let problem {
            throw TokenizerError.invalidFile(path: encoderJSON, reason: problem.reason)
        }
    }
}

// MARK: - Training

extension BPETokenizer {
    /// Learns a byte-level BPE vocabulary from `text`.
    ///
    /// Starts from the 256 byte tokens (id = byte value) and repeatedly merges the most frequent
    /// adjacent pair within pre-tokens, ties going to the pair with the lowest (left, right) ids, so
    /// the result is the same on every machine. Pairs are counted over the distinct pre-tokens
    /// weighted by frequency and updated only where a merge changes them. `<|endoftext|>` takes the
    /// last id; in the text it separates documents and is never merged across.
    ///
    /// A merge whose bytes already form a token (the same string built by a different split) reuses
    /// that token. Training stops early, with a smaller vocabulary, if no pair is left to merge.
    /// - Parameters:
    ///   - vocabularySize: the number of ids wanted, `<|endoftext|>` included; at least 257.
    ///   - progress: called after each new token with (tokens so far, `vocabularySize`).
    /// - Throws: `TokenizerError.vocabularySizeTooSmall` below 257.
    public static func train(text: String, vocabularySize: Int,
                             progress: ((Int, Int) -> Void)? = nil) throws -> BPETokenizer {
        guard vocabularySize >= 257 else { throw TokenizerError.vocabularySizeTooSmall(vocabularySize, minimum: 257) }

        // Distinct pre-tokens and how often each occurs.
        let bytes = Array(text.utf8)
        var frequencies: [ArraySlice<UInt8>: Int] = [:]
        bytes.withUnsafeBufferPointer { buffer in
            var start = 0
            while start < buffer.count {
                let stop = findEndOfText(in: buffer, from: start)
                var i = start
                while i < stop {
                    let end = gpt2PieceEnd(buffer, from: i, to: stop)
                    if end - i > 1 { frequencies[bytes[i..<end], default: 0] += 1 }
                    i = end
                }
                start = stop + endOfTextBytes.count
            }
        }
        var words = frequencies.keys.map { $0.map(Int32.init) }
        let counts = Array(frequencies.values)

        var tokenBytes = (0...255 as ClosedRange<UInt8>).map { [$0] }
        var idsByBytes = Dictionary(uniqueKeysWithValues: tokenBytes.enumerated().map { ($0.element, Int32($0.offset)) })

        // Pair counts, the words each pair occurs in (a superset: stale entries are harmless), and a
        // heap of (count, pair) whose stale entries are skipped when their count no longer matches.
        var pairCounts: [UInt64: Int] = [:]
        var pairWords: [UInt64: [Int32]] = [:]
        for (w, word) in words.enumerated() {
            for i in 0..<word.count - 1 {
                let key = pairKey(word[i], word[i + 1])
                pairCounts[key, default: 0] += counts[w]
                pairWords[key, default: []].append(Int32(w))
            }
        }
        var heap = MinHeap(pairCounts.map { PairCandidate(count: $0.value, pair: $0.key) })
        var lastVisit = [Int](repeating: -1, count: words.count)
        var deltas: [UInt64: Int] = [:]
        var step = 0

        while tokenBytes.count < vocabularySize - 1, let best = heap.pop() {
            guard pairCounts[best.pair] == best.count, best.count > 0 else { continue }
            let left = Int32(truncatingIfNeeded: best.pair >> 32), right = Int32(truncatingIfNeeded: best.pair)
            let mergedBytes = tokenBytes[Int(left)] + tokenBytes[Int(right)]
            let merged: Int32
            if let existing = idsByBytes[mergedBytes] {
                merged = existing
            } else {
                merged = Int32(tokenBytes.count)
                tokenBytes.append(mergedBytes)
                idsByBytes[mergedBytes] = merged
                progress?(tokenBytes.count + 1, vocabularySize)
            }

            // Replace each occurrence, left to right, in one compacting pass over the word, and adjust
            // the counts of the pairs on either side: (previous, left) becomes (previous, merged),
            // (right, next) becomes (merged, next). `previous` may itself be a fresh merge.
            for w in pairWords.removeValue(forKey: best.pair) ?? [] where lastVisit[Int(w)] != step {
                lastVisit[Int(w)] = step
                let count = counts[Int(w)]
                var word = words[Int(w)]
                words[Int(w)] = []
                var read = 0, write = 0
                while read < word.count {
                    guard read + 1 < word.count && word[read] == left && word[read + 1] == right else {
                        word[write] = word[read]
                        read += 1
                        write += 1
                        continue
                    }
                    if write > 0 {
                        let previous = word[write - 1]
                        deltas[pairKey(previous, left), default: 0] -= count
                        deltas[pairKey(previous, merged), default: 0] += count
                        pairWords[pairKey(previous, merged), default: []].append(w)
                    }
                    if read + 2 < word.count {
                        let next = word[read + 2]
                        deltas[pairKey(right, next), default: 0] -= count
                        deltas[pairKey(merged, next), default: 0] += count
                        pairWords[pairKey(merged, next), default: []].append(w)
                    }
                    word[write] = merged
                    read += 2
                    write += 1
                }
                word.removeLast(word.count - write)
                words[Int(w)] = word
            }
            pairCounts[best.pair] = nil
            for (pair, delta) in deltas where delta != 0 && pair != best.pair {
                let count = pairCounts[pair, default: 0] + delta
                pairCounts[pair] = count > 0 ? count : nil
                if count > 0 { heap.push(PairCandidate(count: count, pair: pair)) }
            }
            deltas.removeAll(keepingCapacity: true)
            step += 1
        }
        do {
            return try BPETokenizer(tokenBytes: tokenBytes, endOfText: tokenBytes.count)
        } catch let problem {
            // Unreachable: training keeps the tokens distinct and all 256 bytes present.
            throw TokenizerError.invalidVocabulary(reason: problem.reason)
        }
    }
}

/// A training heap entry; `<` means "merge first": higher count, then lower (left, right) ids.
private struct PairCandidate: Comparable {
    let count: Int
    let pair: UInt64

    static func < (a: Self, b: Self) -> Bool {
        a.count != b.count ? a.count > b.count : a.pair < b.pair
    }
}
