import Dispatch
import Foundation

/// Byte-level byte-pair encoding, compatible with OpenAI's `tiktoken` (GPT-2's r50k_base and
/// GPT-4's cl100k_base) and with Hugging Face's byte-level BPE files.
///
/// Text is cut into pieces by a `PreTokenization` pattern (words with their leading space, digit
/// runs, punctuation runs, whitespace), each piece's UTF-8 bytes start as one token per byte, and
/// adjacent tokens merge, lowest rank first, while their concatenation is itself a token. A token's
/// rank is its id, so the 256 byte tokens plus the learned merges fully describe the tokenizer.
///
/// Special tokens such as `<|endoftext|>` are recognized anywhere in encoded text and never split.
public struct BPETokenizer: Tokenizer {
    /// The text of the document separator token.
    public static let endOfTextMarker = "<|endoftext|>"

    /// cl100k_base's special tokens and their ids, as tiktoken defines them.
    public static let cl100kSpecialTokens: [String: Int] = [
        "<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276,
    ]

    /// The pattern that cuts text into pieces before merging.
    public let preTokenization: PreTokenization
    /// Special token text → id. Their ids are outside the merged tokens' ranks.
    public let specialTokens: [String: Int]
    /// The id of `<|endoftext|>` when it is among `specialTokens`: the id after the last token for
    /// trained and tiktoken-loaded tokenizers (50256 for GPT-2, 100257 for cl100k_base).
    public let endOfText: Int?
    /// The number of ids: merged tokens, special tokens, and any unused ids between them.
    public let vocabularySize: Int

    /// The bytes of each token id; empty for ids that no token uses (gaps in a loaded rank file).
    let tokenBytes: [[UInt8]]
    /// Token id of each byte value.
    private let byteTokens: [Int32]
    /// Token id of each token's bytes, looked up in place in the text being encoded.
    private let tokenIDs: ByteStringTable
    /// `pairKey(left, right)` → the token whose bytes are left's followed by right's. Its id is also
    /// the pair's merge rank: the lowest id merges first.
    private let pairs: PairTable
    /// Finds special tokens in text and gives their bytes back for decoding.
    private let specials: SpecialTokenMatcher

    /// Every token's bytes and rank (id), the tiktoken "mergeable ranks"; special tokens excluded.
    public var mergeableRanks: [[UInt8]: Int] {
        var ranks: [[UInt8]: Int] = [:]
        for (id, bytes) in tokenBytes.enumerated() where !bytes.isEmpty { ranks[bytes] = id }
        return ranks
    }

    /// Builds a GPT-2-pattern tokenizer from tiktoken-style ranks, e.g. ones learned elsewhere.
    /// - Parameters:
    ///   - mergeableRanks: token bytes → id; all 256 single bytes must be present.
    ///   - endOfText: the id for `<|endoftext|>` (not among the ranks), or `nil` for none.
    /// - Throws: `TokenizerError.invalidVocabulary` when the ranks cannot form a tokenizer.
    public init(mergeableRanks: [[UInt8]: Int], endOfText: Int?) throws {
        try self.init(mergeableRanks: mergeableRanks, specialTokens: endOfText.map { [Self.endOfTextMarker: $0] } ?? [:])
    }

    /// Builds a tokenizer from tiktoken-style ranks, special tokens and pattern, as tiktoken's
    /// `Encoding(pat_str:mergeable_ranks:special_tokens:)` does.
    /// - Parameters:
    ///   - mergeableRanks: token bytes → id; all 256 single bytes must be present.
    ///   - specialTokens: special token text → id; ids distinct and not among the ranks.
    ///   - pattern: the pre-tokenization the ranks were trained with.
    /// - Throws: `TokenizerError.invalidVocabulary` when these cannot form a tokenizer.
    public init(mergeableRanks: [[UInt8]: Int], specialTokens: [String: Int],
                pattern: PreTokenization = .gpt2) throws {
        do {
            let ranked = mergeableRanks.map { (bytes: $0.key, rank: $0.value, line: 0) }
            self = try BPETokenizer(tokenBytes: Self.tokenBytes(fromRanks: ranked), specialTokens: specialTokens,
                                    pattern: pattern)
        } catch let problem {
            throw TokenizerError.invalidVocabulary(reason: problem.reason)
        }
    }

    /// The shared initialiser: validates the vocabulary and derives the lookup tables.
    init(tokenBytes: [[UInt8]], specialTokens: [String: Int], pattern: PreTokenization) throws(VocabularyProblem) {
        guard tokenBytes.count < Self.maximumRank else { throw VocabularyProblem("more than \(Self.maximumRank) token ids") }
        var tokenIDs = ByteStringTable(minimumCapacity: tokenBytes.count)
        for (id, bytes) in tokenBytes.enumerated() where !bytes.isEmpty {
            if let other = bytes.withUnsafeBufferPointer({ tokenIDs.insert($0, value: Int32(id)) }) {
                throw VocabularyProblem("ids \(other) and \(id) are the same token \(Self.byteLevelString(bytes))")
            }
        }
        var byteTokens: [Int32] = []
        for byte in 0...255 as ClosedRange<UInt8> {
            guard let id = [byte].withUnsafeBufferPointer({ tokenIDs.value(for: $0) }) else {
                throw VocabularyProblem(
                    String(format: "no token for the single byte 0x%02X; byte-level BPE needs all 256", byte))
            }
            byteTokens.append(id)
        }
        var specialIDs: [Int: String] = [:]
        for (text, id) in specialTokens.sorted(by: { $0.value < $1.value }) {
            guard !text.isEmpty else { throw VocabularyProblem("special token id \(id) has no text") }
            guard (0..<Self.maximumRank).contains(id) else {
                throw VocabularyProblem(
                    "special token \(String(reflecting: text)) id \(id) is outside 0..<\(Self.maximumRank)")
            }
            guard id >= tokenBytes.count || tokenBytes[id].isEmpty else {
                throw VocabularyProblem("special token \(String(reflecting: text)) id \(id) is already the token "
                                        + Self.byteLevelString(tokenBytes[id]))
            }
            if let other = specialIDs.updateValue(text, forKey: id) {
                throw VocabularyProblem(
                    "special tokens \(String(reflecting: other)) and \(String(reflecting: text)) share id \(id)")
            }
        }
        // A pair merges when its concatenation is a token, whichever way that token was first built:
        // this is tiktoken's rule, and it makes every split of every token a candidate pair.
        // Each pair occurs once: a pair's bytes are the one token it merges into.
        var merges: [(key: UInt64, value: Int32)] = []
        merges.reserveCapacity(tokenBytes.count * 2)
        for (id, bytes) in tokenBytes.enumerated() where bytes.count > 1 {
            bytes.withUnsafeBufferPointer { bytes in
                for split in 1..<bytes.count {
                    if let left = tokenIDs.value(for: UnsafeBufferPointer(rebasing: bytes[..<split])),
                       let right = tokenIDs.value(for: UnsafeBufferPointer(rebasing: bytes[split...])) {
                        merges.append((pairKey(left, right), Int32(id)))
                    }
                }
            }
        }
        self.tokenBytes = tokenBytes
        self.byteTokens = byteTokens
        self.tokenIDs = tokenIDs
        self.pairs = PairTable(merges, count: merges.count)
        self.specials = SpecialTokenMatcher(specialTokens)
        self.specialTokens = specialTokens
        self.preTokenization = pattern
        endOfText = specialTokens[Self.endOfTextMarker]
        vocabularySize = max(tokenBytes.count, (specialTokens.values.max() ?? -1) + 1)
    }

    /// Ranks (ids) at or above this are refused: ids index dense tables.
    static let maximumRank = 1 << 24

    // MARK: Encoding

    /// The token ids of `text`. Special tokens become their ids; the text between them is cut by
    /// `preTokenization` and each piece is merged.
    public func encode(_ text: String) throws -> [Int] {
        var cache = PieceCache()
        return encode(text, cache: &cache)
    }

    /// The token ids of each document, encoded in parallel: the documents are cut into contiguous
    /// chunks of about equal size (a few per core) and each chunk is encoded on one thread with its
    /// own piece cache. The result is the same as `documents.map(encode)`.
    public func encode(documents: [String]) throws -> [[Int]] {
        guard !documents.isEmpty else { return [] }
        let chunks = Self.balancedChunks(documents.map(\.utf8.count),
                                         count: ProcessInfo.processInfo.activeProcessorCount * 4)
        var results = [[Int]](repeating: [], count: documents.count)
        results.withUnsafeMutableBufferPointer { buffer in
            // Each chunk writes only its own documents' slots.
            nonisolated(unsafe) let slots = buffer.baseAddress!
            DispatchQueue.concurrentPerform(iterations: chunks.count) { chunk in
                var cache = PieceCache()
                for document in chunks[chunk] { slots[document] = encode(documents[document], cache: &cache) }
            }
        }
        return results
    }

    /// Cuts `sizes.indices` into at most `count` contiguous ranges of roughly equal total size.
    static func balancedChunks(_ sizes: [Int], count: Int) -> [Range<Int>] {
        let total = sizes.reduce(0, +)
        let target = max(1, (total + count - 1) / max(count, 1))
        var chunks: [Range<Int>] = []
        var start = 0, size = 0
        for (index, documentSize) in sizes.enumerated() {
            size += documentSize
            if size >= target {
                chunks.append(start..<index + 1)
                start = index + 1
                size = 0
            }
        }
        if start < sizes.count { chunks.append(start..<sizes.count) }
        return chunks
    }

    private func encode(_ text: String, cache: inout PieceCache) -> [Int] {
        var text = text
        return text.withUTF8 { buffer in
            var tokens: [Int] = []
            tokens.reserveCapacity(buffer.count / 3)
            var start = 0
            while start < buffer.count {
                let special = specials.nextMatch(in: buffer, from: start)
                let stop = special?.start ?? buffer.count
                var i = start
                while i < stop {
                    let end = preTokenization.pieceEnd(buffer, from: i, to: stop)
                    let piece = UnsafeBufferPointer(rebasing: buffer[i..<end])
                    if piece.count == 1 {
                        tokens.append(Int(byteTokens[Int(piece[0])]))
                    } else if let id = tokenIDs.value(for: piece) {
                        tokens.append(Int(id))
                    } else if !cache.append(piece, to: &tokens) {
                        let ids = mergeBytePairs(piece.map { byteTokens[Int($0)] })
                        cache.insert(piece, ids: ids)
                        tokens.append(contentsOf: ids.lazy.map(Int.init))
                    }
                    i = end
                }
                guard let special else { break }
                tokens.append(special.id)
                start = special.end
            }
            return tokens
        }
    }

    /// `pairKey(left, right)` → merged token, for tests and inspection.
    var merges: [UInt64: Int32] { Dictionary(uniqueKeysWithValues: pairs.entries) }

    /// The merge rank of the adjacent pair, `Int32.max` when it does not merge.
    @inline(__always)
    private func rank(_ left: Int32, _ right: Int32) -> Int32 {
        pairs[pairKey(left, right)] ?? .max
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
            if tokenBytes.indices.contains(token) && !tokenBytes[token].isEmpty {
                bytes.append(contentsOf: tokenBytes[token])
            } else if let special = specials.bytes(of: token) {
                bytes.append(contentsOf: special)
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

/// Ids of pieces that are not single tokens, kept across the documents one thread encodes:
/// pieces repeat a lot in real text. It copies the pieces, so no document is kept alive, and
/// empties itself at `limit` pieces to bound its memory on large corpora.
struct PieceCache {
    /// Piece → offset in `ids` of its token count, which its tokens follow.
    private var offsets = ByteStringTable()
    private var ids: [Int32] = []
    private let limit = 1 << 16

    /// Appends the cached tokens of `piece` to `tokens`; `false` when it is not cached.
    @inline(__always)
    func append(_ piece: UnsafeBufferPointer<UInt8>, to tokens: inout [Int]) -> Bool {
        guard let offset = offsets.value(for: piece) else { return false }
        let start = Int(offset) + 1, count = Int(ids[Int(offset)])
        tokens.append(contentsOf: ids[start..<start + count].lazy.map(Int.init))
        return true
    }

    mutating func insert(_ piece: UnsafeBufferPointer<UInt8>, ids pieceIDs: [Int32]) {
        if offsets.count >= limit || ids.count > Int(Int32.max) - pieceIDs.count - 1 {
            offsets.removeAll()
            ids.removeAll(keepingCapacity: true)
        }
        offsets.insert(piece, value: Int32(ids.count))
        ids.append(Int32(pieceIDs.count))
        ids.append(contentsOf: pieceIDs)
    }
}

/// Finds special tokens in UTF-8 text: the leftmost occurrence, and the longest one starting there.
struct SpecialTokenMatcher: Sendable {
    private struct Candidate: Sendable {
        let bytes: [UInt8]
        let id: Int
    }

    /// Candidates by first byte, longest first; most bytes start none, so most positions cost one load.
    private let candidates: [[Candidate]]
    private let bytesByID: [Int: [UInt8]]

    init(_ specialTokens: [String: Int]) {
        var candidates = [[Candidate]](repeating: [], count: 256)
        for (text, id) in specialTokens {
            let bytes = Array(text.utf8)
            if let first = bytes.first { candidates[Int(first)].append(Candidate(bytes: bytes, id: id)) }
        }
        for i in candidates.indices { candidates[i].sort { $0.bytes.count > $1.bytes.count } }
        self.candidates = candidates
        bytesByID = Dictionary(uniqueKeysWithValues: specialTokens.map { ($0.value, Array($0.key.utf8)) })
    }

    /// The bytes of special token `id`, or `nil` when `id` is not a special token.
    func bytes(of id: Int) -> [UInt8]? { bytesByID[id] }

    /// The first special token at or after `start`.
    func nextMatch(in buffer: UnsafeBufferPointer<UInt8>, from start: Int) -> (start: Int, end: Int, id: Int)? {
        guard !bytesByID.isEmpty else { return nil }
        return candidates.withUnsafeBufferPointer { candidates in
            for i in start..<buffer.count where !candidates[Int(buffer[i])].isEmpty {
                for candidate in candidates[Int(buffer[i])] where candidate.bytes.count <= buffer.count - i {
                    if candidate.bytes.indices.allSatisfy({ buffer[i + $0] == candidate.bytes[$0] }) {
                        return (i, i + candidate.bytes.count, candidate.id)
                    }
                }
            }
            return nil
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
    /// OpenAI's `r50k_base.tiktoken` and `cl100k_base.tiktoken` or a file written by
    /// `save(tiktokenFile:)`. The file holds neither the pattern nor the special tokens.
    /// - Parameters:
    ///   - pattern: the pre-tokenization the ranks were trained with (`.cl100k` for cl100k_base).
    ///   - specialTokens: special token text → id; `nil` gives `<|endoftext|>` the id after the
    ///     highest rank (50256 for GPT-2's r50k_base). cl100k_base's are `cl100kSpecialTokens`.
    /// - Throws: `TokenizerError.invalidFile` naming the path and the first problem found.
    public init(tiktokenFile path: String, pattern: PreTokenization = .gpt2, specialTokens: [String: Int]? = nil) throws {
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
            self = try BPETokenizer(tokenBytes: Self.tokenBytes(fromRanks: ranked),
                                    specialTokens: specialTokens ?? [Self.endOfTextMarker: highest + 1], pattern: pattern)
        } catch let problem {
            throw TokenizerError.invalidFile(path: path, reason: problem.reason)
        }
    }

    /// Loads OpenAI's cl100k_base (GPT-3.5, GPT-4) from its `cl100k_base.tiktoken` rank file, with
    /// the cl100k pattern and special tokens: the same ids as `tiktoken.get_encoding("cl100k_base")`.
    public static func cl100kBase(tiktokenFile path: String) throws -> BPETokenizer {
        try BPETokenizer(tiktokenFile: path, pattern: .cl100k, specialTokens: cl100kSpecialTokens)
    }

    /// Places each token at its rank; gaps stay empty.
    static func tokenBytes(
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
    /// `tiktoken.load.load_tiktoken_bpe`) reads back. Special tokens and the pattern are not part
    /// of the format: pass them again when loading.
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
    ///   - pattern: the pre-tokenization the merges were trained with.
    /// - Throws: `TokenizerError.invalidFile` naming the file and the first problem found.
    public init(encoderJSON: String, vocabBPE: String, pattern: PreTokenization = .gpt2) throws {
        guard let json = FileManager.default.contents(atPath: encoderJSON) else {
            throw TokenizerError.invalidFile(path: encoderJSON, reason: "cannot read the file (missing or unreadable)")
        }
        var encoder: [String: Int]
        do {
            encoder = try JSONDecoder().decode([String: Int].self, from: json)
        } catch {
            throw TokenizerError.invalidFile(path: encoderJSON, reason: "expected a JSON object of token → id: \(error)")
        }
        let specialTokens = encoder.removeValue(forKey: Self.endOfTextMarker).map { [Self.endOfTextMarker: $0] } ?? [:]

        guard let mergeData = FileManager.default.contents(atPath: vocabBPE) else {
            throw TokenizerError.invalidFile(path: vocabBPE, reason: "cannot read the file (missing or unreadable)")
        }
        var merges: [ByteLevelMerge] = []
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
            merges.append(ByteLevelMerge(left: String(parts[0]), right: String(parts[1]), location: index + 1))
        }
        self = try BPETokenizer(byteLevelVocabulary: encoder, merges: merges, specialTokens: specialTokens,
                                pattern: pattern, vocabularyFile: encoderJSON, mergesFile: vocabBPE,
                                describeMerge: { "line \($0)" })
    }

    /// Loads Hugging Face's copy of GPT-2's files, `vocab.json` and `merges.txt`: the same formats
    /// as OpenAI's `encoder.json` and `vocab.bpe` (see `init(encoderJSON:vocabBPE:pattern:)`).
    public init(vocabJSON: String, mergesTXT: String, pattern: PreTokenization = .gpt2) throws {
        try self.init(encoderJSON: vocabJSON, vocabBPE: mergesTXT, pattern: pattern)
    }

    /// One merge of a GPT-2 or Hugging Face merge list: two tokens in byte-to-unicode form, and
    /// where the merge was (a line, or an index) for error messages.
    struct ByteLevelMerge {
        let left: String
        let right: String
        let location: Int
    }

    /// Builds a tokenizer from tokens in GPT-2's byte-to-unicode alphabet and their merges, after
    /// checking that every merge joins two tokens into a third and that ids follow merge order.
    private init(byteLevelVocabulary vocabulary: [String: Int], merges: [ByteLevelMerge], specialTokens: [String: Int],
                 pattern: PreTokenization, vocabularyFile: String, vocabularyName: String? = nil, mergesFile: String,
                 describeMerge: (Int) -> String) throws {
        var ranked: [(bytes: [UInt8], rank: Int, line: Int)] = []
        ranked.reserveCapacity(vocabulary.count)
        for (token, id) in vocabulary {
            guard let bytes = Self.bytes(fromByteLevelString: token), !bytes.isEmpty,
                  (0..<Self.maximumRank).contains(id) else {
                throw TokenizerError.invalidFile(
                    path: vocabularyFile,
                    reason: "\(vocabularyName.map { $0 + " " } ?? "")entry \(String(reflecting: token)): \(id) is not "
                        + "a token of GPT-2's byte-to-unicode alphabet with an id in 0..<\(Self.maximumRank)")
            }
            ranked.append((bytes, id, 0))
        }
        let vocabularyName = vocabularyName ?? vocabularyFile
        var previousID = -1
        for merge in merges {
            for part in [merge.left, merge.right, merge.left + merge.right] where vocabulary[part] == nil {
                throw TokenizerError.invalidFile(
                    path: mergesFile,
                    reason: "\(describeMerge(merge.location)): token \(String(reflecting: part)) is not in \(vocabularyName)")
            }
            let id = vocabulary[merge.left + merge.right]!
            guard id > previousID else {
                throw TokenizerError.invalidFile(
                    path: mergesFile,
                    reason: "\(describeMerge(merge.location)): merge \(String(reflecting: merge.left + " " + merge.right)) "
                        + "makes id \(id), not above the previous merge's \(previousID); ids in \(vocabularyName) must "
                        + "follow merge order")
            }
            previousID = id
        }
        do {
            self = try BPETokenizer(tokenBytes: Self.tokenBytes(fromRanks: ranked), specialTokens: specialTokens,
                                    pattern: pattern)
        } catch let problem {
            throw TokenizerError.invalidFile(path: vocabularyFile, reason: problem.reason)
        }
    }
}

// MARK: - Hugging Face tokenizer.json

extension BPETokenizer {
    /// Loads a Hugging Face `tokenizer.json` holding a byte-level BPE model, such as GPT-2's or
    /// Llama 3's: `model.vocab` (byte-to-unicode token → id), `model.merges` (`"a b"` strings or
    /// `["a", "b"]` pairs, in rank order) and `added_tokens`, which become the special tokens.
    ///
    /// The pre-tokenizer is read from the file: a `ByteLevel` pre-tokenizer with its regex is GPT-2's
    /// pattern; a `Split` by the cl100k regex followed by `ByteLevel` is cl100k's. A normalizer,
    /// a prefix space or a word suffix would change the text before merging, so they are refused.
    /// Post-processing (e.g. a BOS token) is not applied: `encode` returns the text's own tokens.
    /// - Parameters:
    ///   - pattern: the pre-tokenization to use instead of the one the file describes, for files
    ///     whose pre-tokenizer is written some other way.
    /// - Throws: `TokenizerError.invalidFile` naming the path, the JSON field and the problem.
    public init(huggingFaceTokenizerJSON path: String, pattern: PreTokenization? = nil) throws {
        func invalid(_ reason: String) -> TokenizerError { .invalidFile(path: path, reason: reason) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw invalid("cannot read the file (missing or unreadable)")
        }
        let file: HuggingFaceTokenizerFile
        do {
            file = try JSONDecoder().decode(HuggingFaceTokenizerFile.self, from: data)
        } catch let error as DecodingError {
            throw invalid(error.summary)
        }
        let model = file.model
        guard model.type == nil || model.type == "BPE" else {
            throw invalid("model.type is \(String(reflecting: model.type!)); only BPE models load")
        }
        for (field, value) in [("continuing_subword_prefix", model.continuingSubwordPrefix),
                               ("end_of_word_suffix", model.endOfWordSuffix)] where !(value ?? "").isEmpty {
            throw invalid("model.\(field) is \(String(reflecting: value!)); byte-level BPE has none")
        }
        if let normalizer = file.normalizer {
            throw invalid("normalizer \(String(reflecting: normalizer.type)) is not supported: byte-level BPE "
                          + "encodes the text unchanged")
        }
        let detected = HuggingFaceTokenizerFile.preTokenization(of: file.preTokenizer)
        if let prefix = detected.problem, pattern == nil {
            throw invalid("\(prefix); choose one with init(huggingFaceTokenizerJSON:pattern:)")
        }

        var vocabulary = model.vocab
        var specialTokens: [String: Int] = [:]
        for (index, added) in (file.addedTokens ?? []).enumerated() {
            if let id = vocabulary.removeValue(forKey: added.content), id != added.id {
                throw invalid("added_tokens[\(index)] \(String(reflecting: added.content)) has id \(added.id) but "
                              + "model.vocab gives it \(id)")
            }
            if let other = specialTokens.updateValue(added.id, forKey: added.content), other != added.id {
                throw invalid("added_tokens[\(index)] \(String(reflecting: added.content)) is listed with ids "
                              + "\(other) and \(added.id)")
            }
        }
        let merges = model.merges.enumerated().map { ByteLevelMerge(left: $1.left, right: $1.right, location: $0) }
        self = try BPETokenizer(byteLevelVocabulary: vocabulary, merges: merges, specialTokens: specialTokens,
                                pattern: pattern ?? detected.pattern ?? .gpt2, vocabularyFile: path,
                                vocabularyName: "model.vocab", mergesFile: path, describeMerge: { "model.merges[\($0)]" })
    }
}

/// The parts of a Hugging Face `tokenizer.json` that a byte-level BPE tokenizer needs.
private struct HuggingFaceTokenizerFile: Decodable {
    struct Model: Decodable {
        let type: String?
        let vocab: [String: Int]
        let merges: [Merge]
        let continuingSubwordPrefix: String?
        let endOfWordSuffix: String?

        enum CodingKeys: String, CodingKey {
            case type, vocab, merges
            case continuingSubwordPrefix = "continuing_subword_prefix"
            case endOfWordSuffix = "end_of_word_suffix"
        }
    }

    /// `"left right"` (tokenizers before 0.20) or `["left", "right"]`.
    struct Merge: Decodable {
        let left: String
        let right: String

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            let parts: [String]
            if let pair = try? container.decode([String].self) {
                parts = pair
            } else {
                parts = try container.decode(String.self)
                    .split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "expected \"left right\" or [\"left\", \"right\"], found \(parts)")
            }
            (left, right) = (parts[0], parts[1])
        }
    }

    struct AddedToken: Decodable {
        let id: Int
        let content: String
    }

    struct Normalizer: Decodable {
        let type: String
    }

    struct PreTokenizer: Decodable {
        let type: String
        let pretokenizers: [PreTokenizer]?
        let pattern: Pattern?
        let addPrefixSpace: Bool?
        let useRegex: Bool?
        let behavior: String?
        let invert: Bool?

        enum CodingKeys: String, CodingKey {
            case type, pretokenizers, pattern, behavior, invert
            case addPrefixSpace = "add_prefix_space"
            case useRegex = "use_regex"
        }

        struct Pattern: Decodable {
            let regex: String?

            enum CodingKeys: String, CodingKey { case regex = "Regex" }
        }

        /// `Sequence[Split, ByteLevel]` style, for messages.
        var summary: String {
            guard let pretokenizers else { return type }
            return type + "[" + pretokenizers.map(\.summary).joined(separator: ", ") + "]"
        }
    }

    let model: Model
    let addedTokens: [AddedToken]?
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?

    enum CodingKeys: String, CodingKey {
        case model, normalizer
        case addedTokens = "added_tokens"
        case preTokenizer = "pre_tokenizer"
    }

    /// The regexes Hugging Face files write for each pattern: tiktoken's and the original form.
    static let knownRegexes: [String: PreTokenization] = [
        PreTokenization.gpt2.pattern: .gpt2,
        #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#: .gpt2,
        PreTokenization.cl100k.pattern: .cl100k,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .cl100k,
    ]

    /// The pattern `preTokenizer` amounts to, or why it matches none of ours.
    static func preTokenization(of preTokenizer: PreTokenizer?) -> (pattern: PreTokenization?, problem: String?) {
        guard let preTokenizer else { return (nil, "the file has no pre_tokenizer") }
        func isPlainByteLevel(_ p: PreTokenizer, regex: Bool) -> Bool {
            p.type == "ByteLevel" && (p.useRegex ?? true) == regex && !(p.addPrefixSpace ?? false)
        }
        if isPlainByteLevel(preTokenizer, regex: true) { return (.gpt2, nil) }
        if preTokenizer.type == "Sequence", let steps = preTokenizer.pretokenizers, steps.count == 2,
           steps[0].type == "Split", steps[0].behavior == "Isolated", !(steps[0].invert ?? false),
           let regex = steps[0].pattern?.regex, let pattern = knownRegexes[regex],
           isPlainByteLevel(steps[1], regex: false) {
            return (pattern, nil)
        }
        return (nil, "pre_tokenizer \(preTokenizer.summary) is not GPT-2's ByteLevel (without a prefix space) or a "
                     + "Split by the GPT-2 or cl100k regex followed by ByteLevel")
    }
}

extension DecodingError {
    /// `model.vocab: expected Int, found a string`-style text for error messages.
    var summary: String {
        func path(_ context: Context) -> String {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
            return path.hasPrefix(".") ? String(path.dropFirst()) : path
        }
        switch self {
        case let .keyNotFound(key, context):
            let parent = path(context)
            return "missing field \(parent.isEmpty ? "" : parent + ".")\(key.stringValue)"
        case let .typeMismatch(type, context):
            return "\(path(context)): expected \(type): \(context.debugDescription)"
        case let .valueNotFound(type, context):
            return "\(path(context)): expected \(type), found null"
        case let .dataCorrupted(context):
            let where_ = path(context)
            return (where_.isEmpty ? "not valid JSON: " : where_ + ": ") + context.debugDescription
        @unknown default:
            return "\(self)"
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
    ///   - pattern: the pre-tokenization; the tokenizer keeps it.
    ///   - progress: called after each new token with (tokens so far, `vocabularySize`).
    /// - Throws: `TokenizerError.vocabularySizeTooSmall` below 257.
    public static func train(text: String, vocabularySize: Int, pattern: PreTokenization = .gpt2,
                             progress: ((Int, Int) -> Void)? = nil) throws -> BPETokenizer {
        guard vocabularySize >= 257 else { throw TokenizerError.vocabularySizeTooSmall(vocabularySize, minimum: 257) }

        // Distinct pre-tokens and how often each occurs.
        let bytes = Array(text.utf8)
        var frequencies: [ArraySlice<UInt8>: Int] = [:]
        let separator = SpecialTokenMatcher([endOfTextMarker: 0])
        bytes.withUnsafeBufferPointer { buffer in
            var start = 0
            while start < buffer.count {
                let match = separator.nextMatch(in: buffer, from: start)
                let stop = match?.start ?? buffer.count
                var i = start
                while i < stop {
                    let end = pattern.pieceEnd(buffer, from: i, to: stop)
                    if end - i > 1 { frequencies[bytes[i..<end], default: 0] += 1 }
                    i = end
                }
                start = match?.end ?? buffer.count
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
            return try BPETokenizer(tokenBytes: tokenBytes, specialTokens: [endOfTextMarker: tokenBytes.count],
                                    pattern: pattern)
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
