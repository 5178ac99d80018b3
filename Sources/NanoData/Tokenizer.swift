import Foundation

/// Turns text into token ids and back.
///
/// Every id that `encode` returns lies in `0..<vocabularySize`, and `decode(encode(text)) == text`
/// for any text the tokenizer can represent.
public protocol Tokenizer: Sendable {
    /// The number of token ids, special tokens included.
    var vocabularySize: Int { get }

    /// The token ids of `text`.
    func encode(_ text: String) throws -> [Int]

    /// The text that `tokens` stand for.
    func decode(_ tokens: [Int]) throws -> String

    /// The id of the `<|endoftext|>` document separator, or `nil` when the vocabulary has none.
    var endOfText: Int? { get }
}

/// Errors thrown by tokenizers. Each says what was wrong and where.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// `encode` met a character the character-level vocabulary lacks; `position` counts Unicode scalars.
    case unknownCharacter(Character, position: Int)
    /// `decode` met an id that is not in the vocabulary.
    case unknownToken(Int, vocabularySize: Int)
    /// A tokenizer file is missing, unreadable or malformed.
    case invalidFile(path: String, reason: String)
    /// A tokenizer file could not be written.
    case unwritableFile(path: String, reason: String)
    /// A vocabulary given in code is unusable.
    case invalidVocabulary(reason: String)
    /// BPE training was asked for fewer tokens than the 256 bytes plus `<|endoftext|>`.
    case vocabularySizeTooSmall(Int, minimum: Int)

    /// A one-line message naming the offending value and what to do about it.
    public var description: String {
        switch self {
        case let .unknownCharacter(character, position):
            let codes = character.unicodeScalars.map(\.codePoint).joined(separator: " ")
            return "character \(String(reflecting: character)) (\(codes)) at position \(position) is outside "
                + "the character-level vocabulary; build the vocabulary from text that contains it"
        case let .unknownToken(token, vocabularySize):
            return "token id \(token) is outside the vocabulary (ids 0..<\(vocabularySize))"
        case let .invalidFile(path, reason):
            return "tokenizer file \(path): \(reason)"
        case let .unwritableFile(path, reason):
            return "cannot write tokenizer file \(path): \(reason)"
        case let .invalidVocabulary(reason):
            return "invalid vocabulary: \(reason)"
        case let .vocabularySizeTooSmall(size, minimum):
            return "vocabulary size \(size) is too small: BPE needs at least \(minimum) tokens "
                + "(256 bytes and <|endoftext|>)"
        }
    }
}

extension Unicode.Scalar {
    /// `U+00E9` style name, used in error messages.
    var codePoint: String {
        let hex = String(value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}

/// Decodes the scalar that starts at `i` in well-formed UTF-8 (Swift strings always are).
@inline(__always)
func decodeUTF8Scalar(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> (value: UInt32, length: Int) {
    let b0 = UInt32(bytes[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F), 2) }
    if b0 < 0xF0 {
        return ((b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F), 3)
    }
    return ((b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12 | UInt32(bytes[i + 2] & 0x3F) << 6
                | UInt32(bytes[i + 3] & 0x3F), 4)
}

/// A binary min-heap; `pop` returns the smallest element.
struct MinHeap<Element: Comparable> {
    private var elements: [Element]

    init(_ elements: [Element] = []) {
        self.elements = elements
        for i in stride(from: elements.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
    }

    var isEmpty: Bool { elements.isEmpty }

    mutating func push(_ element: Element) {
        elements.append(element)
        var child = elements.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard elements[child] < elements[parent] else { break }
            elements.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard let last = elements.popLast() else { return nil }
        guard !elements.isEmpty else { return last }
        let top = elements[0]
        elements[0] = last
        siftDown(0)
        return top
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < elements.count && elements[left] < elements[smallest] { smallest = left }
            if right < elements.count && elements[right] < elements[smallest] { smallest = right }
            if smallest == parent { return }
            elements.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

// MARK: - Hash tables for the encoder's hot path

/// An open-addressing hash table from byte strings to `Int32`, looked up by pointer and length so
/// that a piece of the text being encoded needs no array of its own. Keys are stored back to back
/// in one buffer; the table is at most half full and never shrinks.
struct ByteStringTable: Sendable {
    private struct Slot {
        var start: UInt32       // offset of the key in `keyBytes`
        var length: UInt32      // 0: empty (keys are never empty)
        var hash: UInt32        // low bits of the key's hash, checked before the bytes
        var value: Int32
    }

    private var keyBytes: [UInt8] = []
    private var slots: [Slot]
    private var mask: Int
    private(set) var count = 0

    init(minimumCapacity: Int = 16) {
        var size = 16
        while size < 2 * minimumCapacity { size *= 2 }
        slots = Array(repeating: Slot(start: 0, length: 0, hash: 0, value: 0), count: size)
        mask = size - 1
    }

    /// The value stored for `key`, or `nil`.
    @inline(__always)
    func value(for key: UnsafeBufferPointer<UInt8>) -> Int32? {
        let hash = Self.hash(key)
        return slots.withUnsafeBufferPointer { slots in
            keyBytes.withUnsafeBufferPointer { keyBytes in
                var i = Int(truncatingIfNeeded: hash) & mask
                while slots[i].length != 0 {
                    let slot = slots[i]
                    if slot.hash == UInt32(truncatingIfNeeded: hash) && Int(slot.length) == key.count
                        && memcmp(keyBytes.baseAddress! + Int(slot.start), key.baseAddress!, key.count) == 0 {
                        return slot.value
                    }
                    i = (i + 1) & mask
                }
                return nil
            }
        }
    }

    /// Stores `value` for a non-empty `key` unless the key is present; returns the existing value if so.
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, value: Int32) -> Int32? {
        precondition(!key.isEmpty && keyBytes.count + key.count <= Int(UInt32.max), "unsupported key")
        if let existing = self.value(for: key) { return existing }
        if 2 * (count + 1) > slots.count { grow() }
        let hash = Self.hash(key)
        let start = UInt32(keyBytes.count)
        keyBytes.append(contentsOf: key)
        place(Slot(start: start, length: UInt32(key.count), hash: UInt32(truncatingIfNeeded: hash), value: value),
              at: Int(truncatingIfNeeded: hash))
        count += 1
        return nil
    }

    /// Empties the table, keeping its memory.
    mutating func removeAll() {
        keyBytes.removeAll(keepingCapacity: true)
        for i in slots.indices { slots[i].length = 0 }
        count = 0
    }

    private mutating func place(_ slot: Slot, at hash: Int) {
        var i = hash & mask
        while slots[i].length != 0 { i = (i + 1) & mask }
        slots[i] = slot
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Slot(start: 0, length: 0, hash: 0, value: 0), count: old.count * 2)
        mask = slots.count - 1
        for slot in old where slot.length != 0 {
            let key = keyBytes.withUnsafeBufferPointer {
                UnsafeBufferPointer(rebasing: $0[Int(slot.start)..<Int(slot.start + slot.length)])
            }
            place(slot, at: Int(truncatingIfNeeded: Self.hash(key)))
        }
    }

    /// A multiply-xorshift hash over 8-byte words: short keys (most tokens) cost one or two rounds.
    @inline(__always)
    static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15
        var h = UInt64(key.count) &* multiplier
        let raw = UnsafeRawBufferPointer(key)
        var i = 0
        while i + 8 <= key.count {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* multiplier
            h ^= h >> 29
            i += 8
        }
        if i < key.count {
            var tail: UInt64 = 0
            for j in i..<key.count { tail |= UInt64(key[j]) << (8 * UInt64(j - i)) }
            h = (h ^ tail) &* multiplier
        }
        h ^= h >> 32
        return h &* 0xD6E8_FEB8_6659_FD93 ^ (h >> 29)
    }
}

/// An open-addressing hash table from token pairs (`pairKey`) to the merged token: one multiply to
/// hash, where `Dictionary` would run SipHash.
struct PairTable: Sendable {
    private static let empty = UInt64.max          // pairKey(-1, -1): never a real pair
    private var keys: [UInt64]
    private var values: [Int32]
    private let shift: UInt64

    /// A table holding `pairs`; a later duplicate key replaces an earlier one.
    init<Pairs: Sequence<(key: UInt64, value: Int32)>>(_ pairs: Pairs, count: Int) {
        var bits: UInt64 = 4
        while 1 << bits < 2 * count { bits += 1 }
        keys = Array(repeating: Self.empty, count: 1 << bits)
        values = Array(repeating: 0, count: 1 << bits)
        shift = 64 - bits
        let mask = keys.count - 1
        for (key, value) in pairs {
            var i = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
            while keys[i] != Self.empty && keys[i] != key { i = (i + 1) & mask }
            keys[i] = key
            values[i] = value
        }
    }

    /// Every stored (pair, merged token), in no particular order.
    var entries: [(UInt64, Int32)] {
        zip(keys, values).filter { $0.0 != Self.empty }
    }

    /// The token that `key`'s pair merges into, or `nil`.
    @inline(__always)
    subscript(key: UInt64) -> Int32? {
        keys.withUnsafeBufferPointer { keys in
            let mask = keys.count - 1
            var i = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
            while true {
                let stored = keys[i]
                if stored == key { return values[i] }
                if stored == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }
}
