/// How text is cut into pieces before byte-pair merging. Merges never cross a piece boundary, so
/// the pattern is as much a part of a tokenizer as its vocabulary: a vocabulary must be used with
/// the pattern it was trained with.
///
/// Each case is one of OpenAI's regular expressions, scanned by hand over UTF-8 (a regex engine is
/// several times slower here) and checked against tiktoken's output.
public enum PreTokenization: String, Sendable, CaseIterable, Codable {
    /// GPT-2's pattern, also used by r50k_base and p50k_base: words with their leading space, digit
    /// runs, punctuation runs, whitespace.
    case gpt2
    /// cl100k_base's pattern (GPT-3.5 and GPT-4; Llama 3 uses it too): contractions in any case,
    /// words that may start with one punctuation or space character, digits in groups of up to
    /// three, punctuation with its trailing line breaks, and whitespace ending at a line break.
    case cl100k

    /// The regular expression this case implements, as tiktoken writes it.
    ///
    /// For cl100k this is tiktoken's current form, which adds `\s++$` (trailing whitespace is one
    /// piece). The original form, `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, splits `"x\n  "` at the end of a text as
    /// `"\n"`, `"  "` rather than `"\n  "`; cl100k_base's ids are the same either way.
    public var pattern: String {
        switch self {
        case .gpt2:
            return #"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"#
        case .cl100k:
            return #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"#
        }
    }

    /// The pieces of `text`, in order; they concatenate to `text`. Special tokens are not recognized.
    public func pieces(of text: String) -> [String] {
        var text = text
        return text.withUTF8 { buffer in
            var pieces: [String] = []
            var i = 0
            while i < buffer.count {
                let end = pieceEnd(buffer, from: i, to: buffer.count)
                pieces.append(String(decoding: buffer[i..<end], as: UTF8.self))
                i = end
            }
            return pieces
        }
    }

    /// The end of the piece that starts at `start` in `buffer[..<end]`, which is well-formed UTF-8
    /// ending on a scalar boundary. `end` acts as the end of the text (tiktoken matches the pattern
    /// separately between special tokens).
    @inline(__always)
    func pieceEnd(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int {
        switch self {
        case .gpt2: return gpt2PieceEnd(buffer, from: start, to: end)
        case .cl100k: return cl100kPieceEnd(buffer, from: start, to: end)
        }
    }
}

/// What the patterns distinguish about a scalar: `\p{L}`, `\p{N}`, `\s` (Unicode White_Space, as
/// in Rust's and Python's regex engines), or anything else.
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
        self = ScalarClass(nonASCII: value)
    }

    private init(nonASCII value: UInt32) {
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

/// The class of the scalar at `i` and its length in bytes.
@inline(__always)
private func scalarClass(_ buffer: UnsafeBufferPointer<UInt8>, at i: Int) -> (ScalarClass, length: Int) {
    let (value, length) = decodeUTF8Scalar(buffer, at: i)
    return (ScalarClass(value), length)
}

/// The end of the run of `runClass` scalars that starts at `start`.
@inline(__always)
private func runEnd(_ buffer: UnsafeBufferPointer<UInt8>, of runClass: ScalarClass, from start: Int, to end: Int) -> Int {
    var i = start
    while i < end {
        let (scalarClass, length) = scalarClass(buffer, at: i)
        guard scalarClass == runClass else { break }
        i += length
    }
    return i
}

@inline(__always)
private func isLineBreak(_ byte: UInt8) -> Bool { byte == 0x0A || byte == 0x0D }

// MARK: - GPT-2

/// The end of the GPT-2 piece that starts at `start`, for
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
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
        let nextClass = scalarClass(buffer, at: start + 1).0
        if nextClass != .whitespace {
            runStart = start + 1
            runClass = nextClass
        }
    }
    if runClass != .whitespace { return runEnd(buffer, of: runClass, from: runStart, to: end) }
    // `\s+(?!\S)` then `\s+`.
    var i = start + firstLength, lastStart = start
    while i < end {
        let (scalarClass, length) = scalarClass(buffer, at: i)
        guard scalarClass == .whitespace else { break }
        lastStart = i
        i += length
    }
    return i == end || lastStart == start ? i : lastStart
}

// MARK: - cl100k

/// The end of the cl100k piece that starts at `start`, for tiktoken's
///
///     '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+
///     |\s++$|\s*[\r\n]|\s+(?!\S)|\s
///
/// Differences from GPT-2: contractions match in any case (`'LL`, and `'ſ`, whose long s folds to
/// s); any one non-letter, non-digit scalar except a line break may lead a word (`"(hello"`,
/// `"\tword"`); digits go in groups of at most three, with no leading space; punctuation keeps the
/// line breaks after it; and a whitespace run that holds a line break ends just after its last one
/// (`"  \n\n  x"` → `"  \n\n"`, `" "`, `" x"`).
func cl100kPieceEnd(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int {
    // '(?i:[sdmt]|ll|ve|re)
    if buffer[start] == UInt8(ascii: "'") && start + 1 < end {
        let second = buffer[start + 1]
        switch second | 0x20 {                     // ASCII letters to lower case
        case UInt8(ascii: "s"), UInt8(ascii: "d"), UInt8(ascii: "m"), UInt8(ascii: "t"):
            return start + 2
        case UInt8(ascii: "l"):
            if start + 2 < end && buffer[start + 2] | 0x20 == UInt8(ascii: "l") { return start + 3 }
        case UInt8(ascii: "v"), UInt8(ascii: "r"):
            if start + 2 < end && buffer[start + 2] | 0x20 == UInt8(ascii: "e") { return start + 3 }
        default:
            if second == 0xC5 && start + 2 < end && buffer[start + 2] == 0xBF { return start + 3 }   // U+017F ſ
        }
    }
    let (first, firstLength) = decodeUTF8Scalar(buffer, at: start)
    let firstClass = ScalarClass(first)
    let afterFirst = start + firstLength
    switch firstClass {
    case .letter:
        return runEnd(buffer, of: .letter, from: afterFirst, to: end)
    case .number:
        // \p{N}{1,3}
        var i = afterFirst
        for _ in 0..<2 where i < end {
            let (scalarClass, length) = scalarClass(buffer, at: i)
            guard scalarClass == .number else { break }
            i += length
        }
        return i
    case .other, .whitespace:
        let secondClass = afterFirst < end ? scalarClass(buffer, at: afterFirst).0 : nil
        // [^\r\n\p{L}\p{N}]?+\p{L}++ with the optional scalar present.
        if secondClass == .letter && !(first == 0x0A || first == 0x0D) {
            return runEnd(buffer, of: .letter, from: afterFirst, to: end)
        }
        //  ?[^\s\p{L}\p{N}]++[\r\n]*+
        var punctuationStart: Int?
        if firstClass == .other {
            punctuationStart = start
        } else if first == 0x20 && secondClass == .other {
            punctuationStart = afterFirst
        }
        if let punctuationStart {
            var i = runEnd(buffer, of: .other, from: punctuationStart, to: end)
            while i < end && isLineBreak(buffer[i]) { i += 1 }
            return i
        }
    }
    // Whitespace: \s++$ | \s*[\r\n] | \s+(?!\S) | \s
    var i = afterFirst, lastStart = start
    var afterLastLineBreak = isLineBreak(buffer[start]) ? afterFirst : -1
    while i < end {
        let (scalarClass, length) = scalarClass(buffer, at: i)
        guard scalarClass == .whitespace else { break }
        if isLineBreak(buffer[i]) { afterLastLineBreak = i + 1 }
        lastStart = i
        i += length
    }
    if i == end { return end }
    if afterLastLineBreak >= 0 { return afterLastLineBreak }
    return lastStart == start ? afterFirst : lastStart
}
