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
