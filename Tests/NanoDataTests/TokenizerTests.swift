import Foundation
@testable import NanoData
import Testing

/// Shakespeare from the shared data folder (`<repo>/../shared/data/tinyshakespeare.txt`), or, where
/// that file is absent, a short stand-in so the round trips still run on real prose.
private let shakespeare: String = {
    let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let url = root.appendingPathComponent("../shared/data/tinyshakespeare.txt").standardizedFileURL
    if let text = try? String(contentsOf: url, encoding: .utf8) { return text }
    return trainingProse + "\n\n" + trainingProse.uppercased()
}()

/// An original text for the tiktoken fixture: it must never change, or the ids below go stale.
private let trainingProse = """
The keeper climbed the stairs at dusk, as she had every evening for thirty-one years. There were \
112 steps; she'd counted them on her first night and never since. The lamp wasn't large, but it \
was bright, and the ships that passed the point at night steered by it.

"We'll have weather," said the fisherman at the foot of the rocks. "You'll see. The gulls know it \
before we do." She'd heard him say it a thousand times, and he'd been right perhaps half of them.

Winter came in early that year. The wind rose on the 3rd of November and didn't drop for nine days. \
Waves broke over the lower rocks, then over the path, then over the low wall by the door. She kept \
the lamp lit. She trimmed the wick at 10 and at 2 and at 6, she wound the clockwork that turned the \
lens, and she wrote in the log: wind north-east, force 9; sea very high; visibility poor; light \
showing.

On the tenth morning the sea was flat and grey and the sky was the colour of pewter. The fisherman \
came up the path with a basket of bread and a jar of soup. "You're still here, then," he said. \
"I'm still here," she said. "Where else would I be?"

They sat on the step and watched the water. Far out, a ship was making for the harbour, its \
sails patched, its hull low. "They'll have steered by you," he said. "They've been out there all \
week." She didn't answer. She was counting the steps again, for the first time in thirty-one years: \
one, two, three, four, five...

Tides: 04:45, 10:58, 17:20, 23:31. Heights: 4.2 m, 0.9 m, 4.4 m, 0.7 m. Café open 9–5.
"""

@Suite struct CharTokenizerTests {
    @Test func roundTripsShakespeare() throws {
        let tokenizer = CharTokenizer(training: shakespeare)
        let tokens = try tokenizer.encode(shakespeare)
        #expect(tokens.count == shakespeare.unicodeScalars.count)
        #expect(tokens.allSatisfy { (0..<tokenizer.vocabularySize).contains($0) })
        #expect(try tokenizer.decode(tokens) == shakespeare)
    }

    @Test func vocabularyIsTheSortedDistinctScalars() throws {
        let tokenizer = CharTokenizer(training: "hello\r\nworld 😀é")
        #expect(tokenizer.vocabulary == ["\n", "\r", " ", "d", "e", "h", "l", "o", "r", "w", "é", "😀"])
        #expect(tokenizer.endOfText == nil)
        #expect(try tokenizer.encode("\r\n") == [1, 0])   // scalars, not grapheme clusters
        #expect(try tokenizer.encode("😀é") == [11, 10])
        #expect(try tokenizer.decode([11, 10, 2, 5]) == "😀é h")
    }

    @Test func unknownCharacterErrorNamesTheCharacterAndPosition() throws {
        let tokenizer = CharTokenizer(training: "abc")
        #expect(throws: TokenizerError.unknownCharacter("z", position: 3)) { try tokenizer.encode("abcz") }
        do {
            _ = try tokenizer.encode("ab🦊")
            Issue.record("expected an unknown-character error")
        } catch let error as TokenizerError {
            #expect(error == .unknownCharacter("🦊", position: 2))
            #expect(error.description.contains("\"🦊\""))
            #expect(error.description.contains("U+1F98A"))
            #expect(error.description.contains("outside the character-level vocabulary"))
        }
    }

    @Test func decodeRejectsIdsOutsideTheVocabulary() {
        let tokenizer = CharTokenizer(training: "abc")
        #expect(throws: TokenizerError.unknownToken(3, vocabularySize: 3)) { try tokenizer.decode([0, 3]) }
        #expect(throws: TokenizerError.unknownToken(-1, vocabularySize: 3)) { try tokenizer.decode([-1]) }
    }

    @Test func explicitVocabularyKeepsItsOrder() throws {
        let tokenizer = try CharTokenizer(vocabulary: ["b", "a", "\n", "🙂"])
        #expect(try tokenizer.encode("ab\n🙂") == [1, 0, 2, 3])
        #expect(try tokenizer.decode([3, 0]) == "🙂b")
    }

    @Test func explicitVocabularyRejectsMultiScalarAndRepeatedEntries() {
        #expect(throws: TokenizerError.self) { try CharTokenizer(vocabulary: ["a", "\r\n"]) }
        #expect(throws: TokenizerError.self) { try CharTokenizer(vocabulary: ["a", ""]) }
        #expect(throws: TokenizerError.self) { try CharTokenizer(vocabulary: ["a", "b", "a"]) }
    }

    @Test func codableRoundTripKeepsTheVocabulary() throws {
        let tokenizer = CharTokenizer(training: "to be, or not to be 😀")
        let json = try JSONEncoder().encode(tokenizer)
        let decoded = try JSONDecoder().decode(CharTokenizer.self, from: json)
        #expect(decoded.vocabulary == tokenizer.vocabulary)
        #expect(try decoded.encode("not to be 😀") == tokenizer.encode("not to be 😀"))
        let corrupt = Data(#"{"vocabulary": ["a", "bc"]}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(CharTokenizer.self, from: corrupt) }
    }
}

@Suite struct BPETokenizerTests {
    /// The tokenizer a tiktoken fixture was made from: retrained on every run.
    static func fixtureTokenizer(pattern: PreTokenization = .gpt2) throws -> BPETokenizer {
        try BPETokenizer.train(text: trainingProse, vocabularySize: 512, pattern: pattern)
    }

    // Produced by scripts/make_tokenizer_fixtures.py (tiktoken 0.14.0) from
    // the GPT-2-pattern vocabulary's .tiktoken file; do not edit by hand.
    static let tiktokenExpectations: [(text: String, ids: [Int])] = [
        ("The keeper's lamp won't fail; we'll see it, they've said, and I'm sure you'd agree.",
         [273, 324, 304, 488, 39, 115, 413, 261, 111, 110, 328, 265, 97, 358, 59, 376, 329, 259, 304, 293, 44,
          258, 121, 432, 322, 44, 271, 422, 430, 259, 117, 278, 315, 268, 327, 260, 103, 278, 101, 46]),
        ("Hello world's  3 apples!!\n\n",
         [72, 101, 277, 111, 261, 270, 471, 39, 115, 32, 417, 260, 112, 112, 108, 357, 33, 33, 10, 10]),
        ("Tides at 04:45 and 17:20 -- 2 metres, maybe 3.5?",
         [440, 357, 297, 323, 52, 58, 436, 271, 313, 55, 58, 434, 32, 45, 45, 346, 292, 101, 116, 278, 115,
          44, 292, 447, 98, 101, 417, 46, 53, 63]),
        ("   leading spaces, trailing spaces   ",
         [32, 32, 272, 356, 100, 309, 259, 112, 97, 354, 115, 44, 257, 114, 97, 358, 309, 259, 112, 97, 354,
          115, 32, 32, 32]),
        ("tabs\tand\r\nwindows line ends\n\n\nthree blank",
         [116, 97, 98, 115, 9, 449, 13, 10, 119, 264, 100, 307, 115, 272, 264, 101, 314, 266, 115, 10, 10, 10,
          369, 278, 101, 267, 108, 353, 107]),
        ("first document<|endoftext|>second document",
         [102, 344, 116, 283, 111, 99, 117, 109, 330, 116, 511, 368, 99, 111, 266, 283, 111, 99, 117, 109,
          330, 116]),
        ("Caf\u{E9} cr\u{E8}me, \u{4E2D}\u{6587}, \u{395}\u{3BB}\u{3BB}\u{3B7}\u{3BD}\u{3B9}\u{3BA}\u{3AC} and an emoji \u{1F600}!",
         [67, 445, 503, 282, 114, 195, 168, 109, 101, 44, 32, 228, 184, 173, 230, 150, 135, 44, 32, 206, 149,
          206, 187, 206, 187, 206, 183, 206, 189, 206, 185, 206, 186, 206, 172, 271, 260, 110, 314, 109, 111,
          106, 105, 32, 240, 159, 152, 128, 33]),
        ("thekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairs",
         [116, 256, 107, 304, 488, 99, 108, 305, 455, 116, 256, 115, 116, 453, 116, 256, 107, 304, 488, 99,
          108, 305, 455, 116, 256, 115, 116, 453, 116, 256, 107, 304, 488, 99, 108, 305, 455, 116, 256, 115,
          116, 453, 116, 256, 107, 304, 488, 99, 108, 305, 455, 116, 256, 115, 116, 453, 116, 256, 107, 304,
          488, 99, 108, 305, 455, 116, 256, 115, 116, 453, 116, 256, 107, 304, 488, 99, 108, 305, 455, 116,
          256, 115, 116, 453, 116, 256, 107, 304, 488, 99, 108, 305, 455, 116, 256, 115, 116, 453, 116, 256,
          107, 304, 488, 99, 108, 305, 455, 116, 256, 115, 116, 453]),
        ("'S 'RE shouldn't split like 're; ''quoted'' and it's",
         [39, 83, 32, 39, 82, 69, 336, 268, 471, 110, 328, 259, 112, 108, 276, 272, 105, 360, 32, 39, 278, 59,
          32, 39, 39, 113, 117, 111, 116, 285, 39, 39, 271, 293, 39, 115]),
    ]

    // Produced by scripts/make_tokenizer_fixtures.py (tiktoken 0.14.0) from
    // the cl100k-pattern vocabulary's .tiktoken file; do not edit by hand.
    static let cl100kTiktokenExpectations: [(text: String, ids: [Int])] = [
        ("The keeper's lamp won't fail; we'll see it, they've said, and I'm sure you'd agree.",
         [273, 324, 305, 488, 39, 115, 410, 261, 111, 110, 328, 265, 97, 356, 59, 373, 329, 259, 305, 293, 44,
          258, 121, 429, 323, 44, 271, 417, 427, 259, 117, 278, 315, 268, 327, 260, 103, 278, 101, 46]),
        ("Hello world's  3 apples!!\n\n",
         [72, 101, 277, 111, 261, 270, 471, 39, 115, 32, 32, 51, 260, 112, 112, 108, 355, 33, 33, 301]),
        ("Tides at 04:45 and 17:20 -- 2 metres, maybe 3.5?",
         [442, 355, 297, 32, 432, 58, 438, 271, 32, 434, 58, 435, 32, 45, 45, 32, 50, 292, 101, 116, 278, 115,
          44, 292, 448, 98, 101, 32, 51, 46, 53, 63]),
        ("   leading spaces, trailing spaces   ",
         [32, 32, 272, 354, 100, 310, 259, 112, 97, 352, 115, 44, 257, 114, 97, 356, 310, 259, 112, 97, 352,
          115, 32, 32, 32]),
        ("tabs\tand\r\nwindows line ends\n\n\nthree blank",
         [116, 97, 98, 115, 9, 450, 13, 10, 119, 264, 100, 308, 115, 272, 264, 101, 314, 266, 115, 301, 10,
          366, 278, 101, 267, 108, 351, 107]),
        ("first document<|endoftext|>second document",
         [102, 344, 116, 283, 111, 99, 117, 109, 330, 116, 511, 365, 99, 111, 266, 283, 111, 99, 117, 109,
          330, 116]),
        ("Caf\u{E9} cr\u{E8}me, \u{4E2D}\u{6587}, \u{395}\u{3BB}\u{3BB}\u{3B7}\u{3BD}\u{3B9}\u{3BA}\u{3AC} and an emoji \u{1F600}!",
         [67, 446, 503, 282, 114, 195, 168, 109, 101, 44, 32, 228, 184, 173, 230, 150, 135, 44, 32, 206, 149,
          206, 187, 206, 187, 206, 183, 206, 189, 206, 185, 206, 186, 206, 172, 271, 260, 110, 314, 109, 111,
          106, 105, 32, 240, 159, 152, 128, 33]),
        ("thekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairsthekeeperclimbedthestairs",
         [116, 256, 107, 305, 488, 99, 108, 306, 456, 116, 256, 115, 116, 454, 116, 256, 107, 305, 488, 99,
          108, 306, 456, 116, 256, 115, 116, 454, 116, 256, 107, 305, 488, 99, 108, 306, 456, 116, 256, 115,
          116, 454, 116, 256, 107, 305, 488, 99, 108, 306, 456, 116, 256, 115, 116, 454, 116, 256, 107, 305,
          488, 99, 108, 306, 456, 116, 256, 115, 116, 454, 116, 256, 107, 305, 488, 99, 108, 306, 456, 116,
          256, 115, 116, 454, 116, 256, 107, 305, 488, 99, 108, 306, 456, 116, 256, 115, 116, 454, 116, 256,
          107, 305, 488, 99, 108, 306, 456, 116, 256, 115, 116, 454]),
        ("'S 'RE shouldn't split like 're; ''quoted'' and it's",
         [39, 83, 32, 39, 82, 69, 336, 268, 471, 110, 328, 259, 112, 108, 276, 272, 105, 358, 32, 39, 278, 59,
          32, 39, 39, 113, 117, 111, 116, 285, 39, 39, 271, 293, 39, 115]),
        ("SHE'D SAY \"DON'T\"; THEY'LL NOD. (Quietly.)\r\n\r\n  Then: 1234567 steps, 2024 lights.",
         [83, 72, 69, 39, 68, 302, 65, 89, 291, 68, 79, 78, 39, 84, 34, 59, 32, 84, 72, 69, 89, 39, 76, 76,
          418, 79, 68, 46, 32, 40, 81, 117, 105, 101, 116, 473, 46, 41, 13, 10, 13, 10, 32, 304, 110, 58, 32,
          49, 436, 438, 54, 55, 395, 44, 32, 435, 50, 52, 272, 300, 115, 46]),
        ("a  \n\n  b\t\n c   <|endoftext|>  \n  end   ",
         [97, 32, 32, 301, 32, 267, 9, 10, 282, 32, 32, 32, 511, 32, 32, 10, 32, 314, 266, 32, 32, 32]),
    ]

    @Test func byteToUnicodeTableMatchesGPT2() {
        let table = BPETokenizer.byteToScalar
        #expect(Set(table).count == 256)
        #expect(table[Int(UInt8(ascii: "A"))] == "A")
        #expect(table[Int(UInt8(ascii: "!"))] == "!")
        #expect(table[0xE9] == "é")
        #expect(table[0x00] == "\u{100}")
        #expect(table[0x20] == "Ġ")      // U+0120
        #expect(table[0x0A] == "Ċ")      // U+010A
        #expect(table[0x7F] == "\u{121}")
        #expect(table[0xAD] == "\u{143}")   // the soft hyphen is the last substitute
        #expect(BPETokenizer.byteLevelString(Array(" hello\n".utf8)) == "ĠhelloĊ")
        #expect(BPETokenizer.bytes(fromByteLevelString: "ĠhelloĊ") == Array(" hello\n".utf8))
        #expect(BPETokenizer.bytes(fromByteLevelString: "a b") == nil)   // a raw space is not in the alphabet
    }

    // Expected pieces from Python: regex.findall(GPT2_PATTERN, text) with the `regex` module.
    @Test(arguments: [
        ("Hello world's  3 apples!!\n\n", ["Hello", " world", "'s", " ", " 3", " apples", "!!", "\n\n"]),
        ("I'm sure they'll say it's 2024's best\u{2014}don't you?",
         ["I", "'m", " sure", " they", "'ll", " say", " it", "'s", " 2024", "'s", " best", "\u{2014}", "don", "'t",
          " you", "?"]),
        ("a   b", ["a", "  ", " b"]),
        ("  leading\tand trailing  ", [" ", " leading", "\t", "and", " trailing", "  "]),
        ("line one\n\nline two\r\n", ["line", " one", "\n", "\n", "line", " two", "\r\n"]),
        ("x \n y", ["x", " \n", " y"]),
        ("'S'd ''s 're", ["'", "S", "'d", " ''", "s", " '", "re"]),
        ("Café 中文 ١٢٣ ½ 😀😀", ["Café", " 中文", " ١٢٣", " ½", " 😀😀"]),
        ("", []),
    ])
    func preTokenizationMatchesGPT2Pattern(text: String, pieces: [String]) {
        #expect(PreTokenization.gpt2.pieces(of: text) == pieces)
    }

    @Test func roundTripsShakespeare() throws {
        let tokenizer = try BPETokenizer.train(text: String(shakespeare.prefix(20_000)), vocabularySize: 400)
        let tokens = try tokenizer.encode(shakespeare)
        #expect(tokens.count < shakespeare.utf8.count)
        #expect(tokens.allSatisfy { (0..<tokenizer.vocabularySize).contains($0) })
        #expect(try tokenizer.decode(tokens) == shakespeare)
    }

    @Test func roundTripsTextNeverSeenInTraining() throws {
        let tokenizer = try Self.fixtureTokenizer()
        let text = "Ünïcödé — 中文, Ελληνικά, 😀🇫🇷\r\n\t\u{0}\u{7F} zero-width\u{200B}joiner  \n"
        #expect(try tokenizer.decode(tokenizer.encode(text)) == text)
    }

    @Test func trainingMergesTheMostFrequentPairAndBreaksTiesByLowestIDs() throws {
        // Pre-tokens "ab" ×1, " ab" ×2, " cd" ×1: (a,b) occurs 3 times and merges first; then
        // (space, ab) twice; then (space, c) and (c, d) tie at once and (32, 99) < (99, 100).
        let tokenizer = try BPETokenizer.train(text: "ab ab ab cd", vocabularySize: 261)
        #expect(tokenizer.tokenBytes[256...].map { String(decoding: $0, as: UTF8.self) } == ["ab", " ab", " c", " cd"])
        #expect(tokenizer.endOfText == 260)
        #expect(tokenizer.vocabularySize == 261)
    }

    @Test func trainingReachesTheRequestedSizeWithEndOfTextLast() throws {
        var reported: [Int] = []
        let tokenizer = try BPETokenizer.train(text: trainingProse, vocabularySize: 300) { done, total in
            #expect(total == 300)
            reported.append(done)
        }
        #expect(tokenizer.vocabularySize == 300)
        #expect(tokenizer.endOfText == 299)
        #expect(reported == Array(258...300))
        #expect(tokenizer.tokenBytes[..<256].elementsEqual((0...255 as ClosedRange<UInt8>).map { [$0] }))
    }

    @Test func incrementalTrainingMatchesRecountingEveryStep() throws {
        let text = String(shakespeare.prefix(5_000))
        let tokenizer = try BPETokenizer.train(text: text, vocabularySize: 360)
        #expect(tokenizer.tokenBytes == naiveTraining(text: text, vocabularySize: 360))
    }

    @Test func trainingIsDeterministic() throws {
        let first = try BPETokenizer.train(text: String(shakespeare.prefix(50_000)), vocabularySize: 500)
        let second = try BPETokenizer.train(text: String(shakespeare.prefix(50_000)), vocabularySize: 500)
        #expect(first.tokenBytes == second.tokenBytes)
    }

    @Test func trainingStopsEarlyWhenNothingIsLeftToMerge() throws {
        let tokenizer = try BPETokenizer.train(text: "abab", vocabularySize: 1_000)
        #expect(tokenizer.tokenBytes[256...].map { String(decoding: $0, as: UTF8.self) } == ["ab", "abab"])
        #expect(tokenizer.vocabularySize == 259)
        #expect(try tokenizer.encode("abab ab") == [257, 32, 256])
    }

    @Test func trainingRejectsVocabulariesWithoutRoomForMerges() {
        #expect(throws: TokenizerError.vocabularySizeTooSmall(256, minimum: 257)) {
            try BPETokenizer.train(text: "abc", vocabularySize: 256)
        }
        #expect(throws: Never.self) { try BPETokenizer.train(text: "abc", vocabularySize: 257) }
    }

    @Test func trainingNeverMergesAcrossEndOfText() throws {
        let tokenizer = try BPETokenizer.train(text: "xy<|endoftext|>xy<|endoftext|>xy", vocabularySize: 300)
        #expect(tokenizer.tokenBytes[256...].map { String(decoding: $0, as: UTF8.self) } == ["xy"])
    }

    @Test func endOfTextInTheTextBecomesTheSeparatorToken() throws {
        let tokenizer = try Self.fixtureTokenizer()
        let endOfText = try #require(tokenizer.endOfText)
        let tokens = try tokenizer.encode("the end<|endoftext|>The start<|endoftext|>")
        #expect(tokens.filter { $0 == endOfText }.count == 2)
        #expect(tokens.last == endOfText)
        #expect(try tokenizer.decode(tokens) == "the end<|endoftext|>The start<|endoftext|>")
        // A broken marker is ordinary text.
        #expect(!(try tokenizer.encode("<|endoftext|").contains(endOfText)))
    }

    @Test(arguments: PreTokenization.allCases)
    func trainedTokenizerMatchesTiktokenFixture(pattern: PreTokenization) throws {
        let tokenizer = try Self.fixtureTokenizer(pattern: pattern)
        if let folder = ProcessInfo.processInfo.environment["NANODATA_TIKTOKEN_FIXTURE_DIR"] {
            // Input for scripts/make_tokenizer_fixtures.py.
            try tokenizer.save(tiktokenFile: folder + "/\(pattern.rawValue).tiktoken")
        }
        let expectations = pattern == .gpt2 ? Self.tiktokenExpectations : Self.cl100kTiktokenExpectations
        #expect(!expectations.isEmpty)
        for (text, ids) in expectations {
            #expect(try tokenizer.encode(text) == ids, "\(String(reflecting: text))")
            #expect(try tokenizer.decode(ids) == text)
        }
    }

    @Test func savedTiktokenFileReloadsAndEncodesIdentically() throws {
        let tokenizer = try BPETokenizer.train(text: String(shakespeare.prefix(100_000)), vocabularySize: 600)
        let path = temporaryPath("trained.tiktoken")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try tokenizer.save(tiktokenFile: path)
        let reloaded = try BPETokenizer(tiktokenFile: path)
        #expect(reloaded.vocabularySize == tokenizer.vocabularySize)
        #expect(reloaded.endOfText == tokenizer.endOfText)
        #expect(reloaded.mergeableRanks == tokenizer.mergeableRanks)
        let sample = String(shakespeare.suffix(30_000)) + "<|endoftext|>" + trainingProse
        #expect(try reloaded.encode(sample) == tokenizer.encode(sample))
    }

    @Test func gpt2EncoderAndMergeFilesLoadAndEncodeIdentically() throws {
        let tokenizer = try BPETokenizer.train(text: trainingProse, vocabularySize: 350)
        let (encoderPath, mergesPath) = try writeGPT2Files(tokenizer)
        defer { try? FileManager.default.removeItem(atPath: encoderPath); try? FileManager.default.removeItem(atPath: mergesPath) }
        let loaded = try BPETokenizer(encoderJSON: encoderPath, vocabBPE: mergesPath)
        #expect(loaded.endOfText == tokenizer.endOfText)
        #expect(loaded.vocabularySize == tokenizer.vocabularySize)
        let sample = String(shakespeare.prefix(10_000)) + "<|endoftext|>" + trainingProse
        #expect(try loaded.encode(sample) == tokenizer.encode(sample))
    }

    @Test func mergesOutOfIDOrderAreRejected() throws {
        let tokenizer = try BPETokenizer.train(text: trainingProse, vocabularySize: 270)
        let (encoderPath, mergesPath) = try writeGPT2Files(tokenizer)
        defer { try? FileManager.default.removeItem(atPath: encoderPath); try? FileManager.default.removeItem(atPath: mergesPath) }
        var lines = try String(contentsOfFile: mergesPath, encoding: .utf8).split(separator: "\n")
        lines.swapAt(1, 2)
        try (lines.joined(separator: "\n") + "\n").write(toFile: mergesPath, atomically: true, encoding: .utf8)
        let error = try #require(throws: TokenizerError.self) {
            try BPETokenizer(encoderJSON: encoderPath, vocabBPE: mergesPath)
        }
        #expect(error.description.contains(mergesPath))
        #expect(error.description.contains("line 3"))
        #expect(error.description.contains("merge order"))
    }

    @Test func missingFilesAreReportedWithTheirPath() throws {
        let path = temporaryPath("absent.tiktoken")
        #expect(throws: TokenizerError.invalidFile(path: path, reason: "cannot read the file (missing or unreadable)")) {
            try BPETokenizer(tiktokenFile: path)
        }
        let error = try #require(throws: TokenizerError.self) {
            try BPETokenizer(encoderJSON: path + ".json", vocabBPE: path + ".bpe")
        }
        #expect(error.description.contains(path + ".json"))
    }

    @Test func malformedTiktokenFilesNameTheLineAndProblem() throws {
        let path = temporaryPath("bad.tiktoken")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes = (0...255 as ClosedRange<UInt8>).map { "\(Data([$0]).base64EncodedString()) \($0)" }

        try (bytes[..<2].joined(separator: "\n") + "\nnot-base64! 2\n").write(toFile: path, atomically: true, encoding: .utf8)
        var error = try #require(throws: TokenizerError.self) { try BPETokenizer(tiktokenFile: path) }
        #expect(error.description.contains(path) && error.description.contains("line 3"))

        try bytes[..<255].joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        error = try #require(throws: TokenizerError.self) { try BPETokenizer(tiktokenFile: path) }
        #expect(error.description.contains("0xFF"))

        try (bytes + ["\(Data("a".utf8).base64EncodedString()) 256"]).joined(separator: "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        error = try #require(throws: TokenizerError.self) { try BPETokenizer(tiktokenFile: path) }
        #expect(error.description.contains("same token"))

        try "".write(toFile: path, atomically: true, encoding: .utf8)
        error = try #require(throws: TokenizerError.self) { try BPETokenizer(tiktokenFile: path) }
        #expect(error.description.contains("no tokens"))
    }

    @Test func heapMergeAgreesWithScanningMerge() throws {
        let tokenizer = try BPETokenizer.train(text: String(shakespeare.prefix(50_000)), vocabularySize: 700)
        var generator = SplitMix64(seed: 7)
        for length in [2, 3, 65, 200, 1_000] {
            for alphabet in [Array("etaoinshr".utf8), Array("a".utf8), Array("ab".utf8)] {
                let piece = (0..<length).map { _ in Int32(alphabet[Int(generator.next() % UInt64(alphabet.count))]) }
                #expect(tokenizer.mergeBytePairsWithHeap(piece) == tokenizer.mergeBytePairsByScanning(piece))
            }
        }
    }

    @Test func decodeIsLossyForSplitCharactersAndRejectsUnknownIDs() throws {
        let tokenizer = try Self.fixtureTokenizer()
        let tokens = try tokenizer.encode("中")   // three bytes, three tokens: never seen in training
        #expect(tokens.count == 3)
        #expect(try tokenizer.decode([tokens[0]]) == "\u{FFFD}")
        #expect(try tokenizer.decode(tokens) == "中")
        #expect(throws: TokenizerError.unknownToken(512, vocabularySize: 512)) { try tokenizer.decode([512]) }
    }

    @Test func mergeableRanksMustCoverEveryByte() throws {
        var ranks = try Self.fixtureTokenizer().mergeableRanks
        #expect(throws: Never.self) { try BPETokenizer(mergeableRanks: ranks, endOfText: nil) }
        ranks[[0x41]] = nil
        #expect(throws: TokenizerError.self) { try BPETokenizer(mergeableRanks: ranks, endOfText: nil) }
    }
}

@Suite struct PreTokenizationTests {
    // Produced by scripts/make_tokenizer_fixtures.py: regex.findall(cl100k pattern, text).
    static let cl100kPieceExpectations: [(text: String, pieces: [String])] = [
        ("Hello world's  3 apples!!\n\n", ["Hello", " world", "'s", " ", " ", "3", " apples", "!!\n\n"]),
        ("DON'T I'LL we'Re '\u{17F}t ''s", ["DON", "'T", " I", "'LL", " we", "'Re", " '", "\u{17F}t", " ''", "s"]),
        ("1234567 12.5 \u{661}\u{662}\u{663}\u{664} \u{BD}\u{2153}", ["123", "456", "7", " ", "12", ".", "5", " ", "\u{661}\u{662}\u{663}", "\u{664}", " ", "\u{BD}\u{2153}"]),
        ("(hello) [world] \"quoted\"", ["(hello", ")", " [", "world", "]", " \"", "quoted", "\""]),
        ("a   b\tc \t d", ["a", "  ", " b", "\tc", " \t", " d"]),
        ("line one\n\nline two\r\n", ["line", " one", "\n\n", "line", " two", "\r\n"]),
        ("x  \n\n  y", ["x", "  \n\n", " ", " y"]),
        ("end.\n  \n", ["end", ".\n", "  \n"]),
        ("trailing   ", ["trailing", "   "]),
        ("Caf\u{E9} \u{4E2D}\u{6587} \u{1F600}\u{1F600}!", ["Caf\u{E9}", " \u{4E2D}\u{6587}", " \u{1F600}\u{1F600}!"]),
        ("", []),
    ]

    // Produced by scripts/make_tokenizer_fixtures.py: the bytes, ſ (256) and ſt (257) under cl100k's pattern.
    static let longSExpectations: [(text: String, ids: [Int])] = [
        ("'\u{17F}t", [39, 256, 116]),
        ("x\u{17F}t", [120, 257]),
        ("'St", [39, 83, 116]),
    ]

    @Test func cl100kPiecesMatchTiktokensPattern() {
        for (text, pieces) in Self.cl100kPieceExpectations {
            #expect(PreTokenization.cl100k.pieces(of: text) == pieces, "\(String(reflecting: text))")
        }
    }

    @Test func cl100kContractionsFoldCaseLikeTiktoken() throws {
        var ranks = Dictionary(uniqueKeysWithValues: (0...255 as ClosedRange<UInt8>).map { ([$0], Int($0)) })
        ranks[Array("ſ".utf8)] = 256
        ranks[Array("ſt".utf8)] = 257
        let tokenizer = try BPETokenizer(mergeableRanks: ranks, specialTokens: [:], pattern: .cl100k)
        for (text, ids) in Self.longSExpectations {
            #expect(try tokenizer.encode(text) == ids, "\(String(reflecting: text))")
        }
    }

    @Test(arguments: PreTokenization.allCases)
    func piecesConcatenateToTheText(pattern: PreTokenization) {
        var generator = SplitMix64(seed: 11)
        for _ in 0..<500 {
            let text = randomUnicode(length: Int(generator.next() % 80), using: &generator)
            let pieces = pattern.pieces(of: text)
            #expect(pieces.joined() == text)
            #expect(!pieces.contains(""))
        }
    }

    @Test func patternsNameTheirRegularExpression() {
        #expect(PreTokenization.gpt2.pattern.hasPrefix("'(?:[sdmt]|ll|ve|re)"))
        #expect(PreTokenization.cl100k.pattern.hasPrefix("'(?i:[sdmt]|ll|ve|re)"))
        #expect(PreTokenization(rawValue: "cl100k") == .cl100k)
    }
}

@Suite struct SpecialTokenTests {
    static func tokenizer(_ specialTokens: [String: Int]) throws -> BPETokenizer {
        let trained = try BPETokenizer.train(text: trainingProse, vocabularySize: 300, pattern: .cl100k)
        return try BPETokenizer(mergeableRanks: trained.mergeableRanks, specialTokens: specialTokens, pattern: .cl100k)
    }

    @Test func everySpecialTokenIsRecognizedAndDecoded() throws {
        let tokenizer = try Self.tokenizer(["<|endoftext|>": 300, "<|fim_prefix|>": 301, "<|fim_suffix|>": 310])
        #expect(tokenizer.vocabularySize == 311)
        #expect(tokenizer.endOfText == 300)
        #expect(tokenizer.preTokenization == .cl100k)
        let text = "<|fim_prefix|>def f():<|fim_suffix|>\n<|endoftext|><|endoftext|>tail"
        let tokens = try tokenizer.encode(text)
        #expect(tokens.first == 301)
        #expect(tokens.filter { $0 >= 300 } == [301, 310, 300, 300])
        #expect(try tokenizer.decode(tokens) == text)
        // Broken markers and unknown ids in the gap are ordinary text and unknown tokens.
        #expect(try tokenizer.encode("<|fim_prefix|").allSatisfy { $0 < 300 })
        #expect(throws: TokenizerError.unknownToken(305, vocabularySize: 311)) { try tokenizer.decode([305]) }
    }

    @Test func theLongestSpecialTokenWinsWhereTwoStartTogether() throws {
        let tokenizer = try Self.tokenizer(["<|a|>": 300, "<|a|>b": 301])
        #expect(try tokenizer.encode("x<|a|>b<|a|>") == [Int(UInt8(ascii: "x")), 301, 300])
    }

    @Test func tokenizersWithoutSpecialTokensEncodeMarkersAsText() throws {
        let tokenizer = try Self.tokenizer([:])
        #expect(tokenizer.endOfText == nil)
        #expect(tokenizer.vocabularySize == 299)
        let tokens = try tokenizer.encode("a<|endoftext|>b")
        #expect(tokens.allSatisfy { $0 < 299 })
        #expect(try tokenizer.decode(tokens) == "a<|endoftext|>b")
    }

    @Test func specialTokenIDsMustBeFreeAndDistinct() throws {
        #expect(throws: TokenizerError.self) { try Self.tokenizer(["<|a|>": 65]) }            // the token "A"
        #expect(throws: TokenizerError.self) { try Self.tokenizer(["<|a|>": 300, "<|b|>": 300]) }
        #expect(throws: TokenizerError.self) { try Self.tokenizer(["": 300]) }
        #expect(throws: TokenizerError.self) { try Self.tokenizer(["<|a|>": -1]) }
    }

    @Test func tiktokenFilesTakeThePatternAndSpecialTokensGiven() throws {
        let trained = try BPETokenizer.train(text: trainingProse, vocabularySize: 400, pattern: .cl100k)
        let path = temporaryPath("cl100k-style.tiktoken")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try trained.save(tiktokenFile: path)
        let plain = try BPETokenizer(tiktokenFile: path)
        #expect(plain.preTokenization == .gpt2 && plain.specialTokens == ["<|endoftext|>": 399])
        let loaded = try BPETokenizer(tiktokenFile: path, pattern: .cl100k,
                                      specialTokens: ["<|endoftext|>": 399, "<|endofprompt|>": 420])
        #expect(loaded.vocabularySize == 421)
        let sample = "DON'T stop 1234567\r\n\r\n  x<|endofprompt|>" + trainingProse
        var expected = try trained.encode("DON'T stop 1234567\r\n\r\n  x")
        expected.append(420)
        expected += try trained.encode(trainingProse)
        #expect(try loaded.encode(sample) == expected)
    }
}

@Suite struct ParallelEncodingTests {
    @Test(arguments: PreTokenization.allCases)
    func documentsEncodeAsTheyWouldOneByOne(pattern: PreTokenization) throws {
        let tokenizer = try BPETokenizer.train(text: String(shakespeare.prefix(50_000)), vocabularySize: 600,
                                               pattern: pattern)
        let documents = shakespeare.components(separatedBy: "\n\n") + ["", "<|endoftext|>", trainingProse]
        let parallel = try tokenizer.encode(documents: documents)
        #expect(parallel.count == documents.count)
        #expect(try parallel == documents.map { try tokenizer.encode($0) })
    }

    @Test func emptyAndSingleDocumentListsWork() throws {
        let tokenizer = try BPETokenizer.train(text: trainingProse, vocabularySize: 300)
        #expect(try tokenizer.encode(documents: []) == [])
        #expect(try tokenizer.encode(documents: [""]) == [[]])
        #expect(try tokenizer.encode(documents: ["the keeper"]) == [tokenizer.encode("the keeper")])
    }

    @Test func chunksCoverEveryDocumentOnceInOrder() {
        var generator = SplitMix64(seed: 5)
        for count in [0, 1, 2, 7, 100, 1_000] {
            let sizes = (0..<count).map { _ in Int(generator.next() % 1_000) }
            for chunkCount in [1, 3, 8, 64] {
                let chunks = BPETokenizer.balancedChunks(sizes, count: chunkCount)
                #expect(chunks.flatMap { Array($0) } == Array(0..<count))
                #expect(chunks.allSatisfy { !$0.isEmpty })
                #expect(chunks.count <= max(chunkCount, 1) + 1)
            }
        }
    }
}

@Suite struct RoundTripTests {
    @Test(arguments: PreTokenization.allCases)
    func randomUnicodeRoundTripsByteForByte(pattern: PreTokenization) throws {
        let tokenizer = try BPETokenizer.train(text: shakespeare.prefix(20_000) + trainingProse, vocabularySize: 500,
                                               pattern: pattern)
        var generator = SplitMix64(seed: pattern == .gpt2 ? 21 : 22)
        for _ in 0..<1_000 {
            let text = randomUnicode(length: Int(generator.next() % 64), using: &generator)
            let decoded = try tokenizer.decode(tokenizer.encode(text))
            // Bytes, not String ==, which would accept a canonically equivalent normalisation.
            #expect(Array(decoded.utf8) == Array(text.utf8), "\(String(reflecting: text))")
        }
    }
}

@Suite struct HuggingFaceLoadingTests {
    @Test(arguments: PreTokenization.allCases, [false, true])
    func tokenizerJSONLoadsAndEncodesIdentically(pattern: PreTokenization, mergesAsPairs: Bool) throws {
        let tokenizer = try BPETokenizer.train(text: String(shakespeare.prefix(30_000)), vocabularySize: 450,
                                               pattern: pattern)
        let path = try writeTokenizerJSON(tokenizer, mergesAsPairs: mergesAsPairs)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loaded = try BPETokenizer(huggingFaceTokenizerJSON: path)
        #expect(loaded.preTokenization == pattern)
        #expect(loaded.specialTokens == tokenizer.specialTokens)
        #expect(loaded.vocabularySize == tokenizer.vocabularySize)
        let sample = String(shakespeare.suffix(20_000)) + "<|endoftext|>DON'T 1234567\r\n\r\n  " + trainingProse
        #expect(try loaded.encode(sample) == tokenizer.encode(sample))
    }

    @Test func vocabJSONAndMergesTXTReadLikeGPT2sFiles() throws {
        let tokenizer = try BPETokenizer.train(text: trainingProse, vocabularySize: 350, pattern: .cl100k)
        let (vocab, merges) = try writeGPT2Files(tokenizer)
        defer { try? FileManager.default.removeItem(atPath: vocab); try? FileManager.default.removeItem(atPath: merges) }
        let loaded = try BPETokenizer(vocabJSON: vocab, mergesTXT: merges, pattern: .cl100k)
        #expect(loaded.preTokenization == .cl100k)
        #expect(loaded.mergeableRanks == tokenizer.mergeableRanks)
        #expect(try loaded.encode(trainingProse) == tokenizer.encode(trainingProse))
    }

    @Test func unsupportedOrMalformedFilesNameTheFieldAndProblem() throws {
        let tokenizer = try BPETokenizer.train(text: trainingProse, vocabularySize: 300)
        let good = try tokenizerJSONObject(tokenizer, mergesAsPairs: false)
        func problem(_ edit: (inout [String: Any]) -> Void, pattern: PreTokenization? = nil) throws -> String {
            var object = good
            edit(&object)
            let path = temporaryPath("tokenizer.json")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: TokenizerError.self) {
                try BPETokenizer(huggingFaceTokenizerJSON: path, pattern: pattern)
            }
            #expect(error.description.contains(path))
            return error.description
        }
        func editModel(_ object: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
            var model = object["model"] as! [String: Any]
            edit(&model)
            object["model"] = model
        }
        #expect(try problem { editModel(&$0) { $0["type"] = "WordPiece" } }.contains("model.type is \"WordPiece\""))
        #expect(try problem { editModel(&$0) { $0["merges"] = nil } }.contains("missing field model.merges"))
        #expect(try problem { editModel(&$0) { $0["merges"] = ["a b", "ab"] } }.contains("model.merges[1]"))
        #expect(try problem { editModel(&$0) { $0["merges"] = ["Ġ zzz"] } }
            .contains("model.merges[0]: token \"zzz\" is not in model.vocab"))
        #expect(try problem { editModel(&$0) { $0["vocab"] = ["a b": 1] } }.contains("model.vocab entry \"a b\""))
        #expect(try problem { editModel(&$0) { $0["continuing_subword_prefix"] = "##" } }
            .contains("continuing_subword_prefix"))
        #expect(try problem { $0["normalizer"] = ["type": "NFC"] }.contains("normalizer \"NFC\""))
        #expect(try problem { $0["pre_tokenizer"] = ["type": "Metaspace"] }.contains("init(huggingFaceTokenizerJSON:pattern:)"))
        #expect(try problem { $0["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": true] }
            .contains("pre_tokenizer ByteLevel"))
        #expect(try problem { $0["added_tokens"] = [["id": 5, "content": "<|endoftext|>"]] }
            .contains("added_tokens[0]"))
    }

    @Test func anExplicitPatternOverridesAnUnknownPreTokenizer() throws {
        let tokenizer = try BPETokenizer.train(text: trainingProse, vocabularySize: 300, pattern: .cl100k)
        var object = try tokenizerJSONObject(tokenizer, mergesAsPairs: true)
        object["pre_tokenizer"] = ["type": "Whitespace"]
        let path = temporaryPath("tokenizer.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        let loaded = try BPETokenizer(huggingFaceTokenizerJSON: path, pattern: .cl100k)
        #expect(try loaded.encode(trainingProse) == tokenizer.encode(trainingProse))
    }

    @Test func unreadableFilesAreReportedWithTheirPath() throws {
        let path = temporaryPath("tokenizer.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: TokenizerError.invalidFile(path: path, reason: "cannot read the file (missing or unreadable)")) {
            try BPETokenizer(huggingFaceTokenizerJSON: path)
        }
        try "{ not json".write(toFile: path, atomically: true, encoding: .utf8)
        let error = try #require(throws: TokenizerError.self) { try BPETokenizer(huggingFaceTokenizerJSON: path) }
        #expect(error.description.contains(path) && error.description.contains("not valid JSON"))
    }
}

@Suite struct EncoderTableTests {
    @Test func byteStringTableFindsWhatItHoldsThroughGrowthAndClearing() {
        var table = ByteStringTable()
        var generator = SplitMix64(seed: 9)
        var keys: [[UInt8]] = []
        for i in 0..<5_000 {
            let key = (0..<(1 + Int(generator.next() % 20))).map { _ in UInt8(generator.next() % 4) }
            let existing = key.withUnsafeBufferPointer { table.insert($0, value: Int32(i)) }
            if let existing {
                #expect(keys.firstIndex(of: key) == Int(existing))
                keys.append([])          // keep indices aligned with values
            } else {
                keys.append(key)
            }
        }
        for (i, key) in keys.enumerated() where !key.isEmpty {
            #expect(key.withUnsafeBufferPointer { table.value(for: $0) } == Int32(i))
        }
        #expect(table.count == keys.filter { !$0.isEmpty }.count)
        #expect([UInt8](repeating: 9, count: 30).withUnsafeBufferPointer { table.value(for: $0) } == nil)
        table.removeAll()
        #expect(table.count == 0)
        #expect(keys.first!.withUnsafeBufferPointer { table.value(for: $0) } == nil)
    }

    @Test func pairTableAgreesWithADictionary() {
        var generator = SplitMix64(seed: 10)
        var reference: [UInt64: Int32] = [:]
        for i in 0..<20_000 {
            reference[pairKey(Int32(generator.next() % 3_000), Int32(generator.next() % 3_000))] = Int32(i)
        }
        let table = PairTable(reference.map { (key: $0.key, value: $0.value) }, count: reference.count)
        for (key, value) in reference { #expect(table[key] == value) }
        #expect(table[pairKey(5_000, 5_000)] == nil)
        #expect(Dictionary(uniqueKeysWithValues: table.entries) == reference)
    }
}

/// A fresh path in the temporary directory.
private func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)").path
}

/// Each merged token of `tokenizer` as a pair of tokens that merges into it, in id order, written
/// in GPT-2's byte-to-unicode alphabet: the merge list of GPT-2's and Hugging Face's files.
private func byteLevelMerges(_ tokenizer: BPETokenizer) -> [(String, String)] {
    var splits: [Int32: (Int32, Int32)] = [:]
    for (pair, merged) in tokenizer.merges {
        let split = (Int32(truncatingIfNeeded: pair >> 32), Int32(truncatingIfNeeded: pair))
        if let existing = splits[merged], max(existing.0, existing.1) <= max(split.0, split.1) { continue }
        splits[merged] = split
    }
    return splits.keys.sorted().map { merged in
        let (left, right) = splits[merged]!
        return (BPETokenizer.byteLevelString(tokenizer.tokenBytes[Int(left)]),
                BPETokenizer.byteLevelString(tokenizer.tokenBytes[Int(right)]))
    }
}

/// Token (byte-to-unicode form) → id, `<|endoftext|>` included, as in `encoder.json` and `vocab.json`.
private func byteLevelVocabulary(_ tokenizer: BPETokenizer) -> [String: Int] {
    var vocabulary: [String: Int] = [:]
    for (id, bytes) in tokenizer.tokenBytes.enumerated() { vocabulary[BPETokenizer.byteLevelString(bytes)] = id }
    if let endOfText = tokenizer.endOfText { vocabulary[BPETokenizer.endOfTextMarker] = endOfText }
    return vocabulary
}

/// Writes `tokenizer` as GPT-2's `encoder.json` and `vocab.bpe`. Returns the two paths.
private func writeGPT2Files(_ tokenizer: BPETokenizer) throws -> (encoder: String, merges: String) {
    let merges = "#version: 0.2\n" + byteLevelMerges(tokenizer).map { "\($0) \($1)\n" }.joined()
    let encoderPath = temporaryPath("encoder.json"), mergesPath = temporaryPath("vocab.bpe")
    try JSONEncoder().encode(byteLevelVocabulary(tokenizer)).write(to: URL(fileURLWithPath: encoderPath))
    try merges.write(toFile: mergesPath, atomically: true, encoding: .utf8)
    return (encoderPath, mergesPath)
}

/// `tokenizer` as the JSON object of a Hugging Face `tokenizer.json`, laid out as the `tokenizers`
/// library writes GPT-2's (GPT-2 pattern) or Llama 3's (cl100k pattern).
private func tokenizerJSONObject(_ tokenizer: BPETokenizer, mergesAsPairs: Bool) throws -> [String: Any] {
    let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                                    "use_regex": tokenizer.preTokenization == .gpt2]
    let preTokenizer: [String: Any] = tokenizer.preTokenization == .gpt2 ? byteLevel : [
        "type": "Sequence",
        "pretokenizers": [
            ["type": "Split", "behavior": "Isolated", "invert": false, "pattern": [
                "Regex": #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
            ]],
            byteLevel,
        ],
    ]
    let merges: [Any] = byteLevelMerges(tokenizer).map { left, right -> Any in
        mergesAsPairs ? [left, right] : "\(left) \(right)"
    }
    return [
        "version": "1.0",
        "truncation": NSNull(), "padding": NSNull(), "normalizer": NSNull(),
        "added_tokens": tokenizer.specialTokens.map { ["id": $0.value, "content": $0.key, "special": true] },
        "pre_tokenizer": preTokenizer,
        "post_processor": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
        "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
        "model": [
            "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
            "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false,
            "vocab": byteLevelVocabulary(tokenizer), "merges": merges,
        ] as [String: Any],
    ]
}

/// Writes `tokenizer` as a Hugging Face `tokenizer.json`; returns its path.
private func writeTokenizerJSON(_ tokenizer: BPETokenizer, mergesAsPairs: Bool) throws -> String {
    let path = temporaryPath("tokenizer.json")
    let object = try tokenizerJSONObject(tokenizer, mergesAsPairs: mergesAsPairs)
    try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
    return path
}

/// BPE training the slow, obvious way: recount every pair of every pre-token before each merge.
/// Returns the token bytes in id order (without `<|endoftext|>`).
private func naiveTraining(text: String, vocabularySize: Int) -> [[UInt8]] {
    var words = PreTokenization.gpt2.pieces(of: text).map { Array($0.utf8).map { [$0] } }
    var tokens = (0...255 as ClosedRange<UInt8>).map { [$0] }
    var ids = Dictionary(uniqueKeysWithValues: tokens.enumerated().map { ($0.element, $0.offset) })
    while tokens.count < vocabularySize - 1 {
        var counts: [[[UInt8]]: Int] = [:]
        for word in words where word.count > 1 {
            for i in 0..<word.count - 1 { counts[[word[i], word[i + 1]], default: 0] += 1 }
        }
        guard let best = counts.max(by: { a, b in
            a.value != b.value ? a.value < b.value
                : (ids[a.key[0]]!, ids[a.key[1]]!) > (ids[b.key[0]]!, ids[b.key[1]]!)
        }) else { break }
        let merged = best.key[0] + best.key[1]
        if ids[merged] == nil {
            ids[merged] = tokens.count
            tokens.append(merged)
        }
        for w in words.indices {
            var result: [[UInt8]] = []
            var i = 0
            while i < words[w].count {
                if i + 1 < words[w].count && [words[w][i], words[w][i + 1]] == best.key {
                    result.append(merged)
                    i += 2
                } else {
                    result.append(words[w][i])
                    i += 1
                }
            }
            words[w] = result
        }
    }
    return tokens
}

/// Random valid Unicode: every plane, weighted towards ASCII, controls, whitespace and emoji.
func randomUnicode(length: Int, using generator: inout SplitMix64) -> String {
    var scalars = String.UnicodeScalarView()
    while scalars.count < length {
        let value: UInt32
        switch generator.next() % 6 {
        case 0: value = UInt32(generator.next() % 0x80)                      // ASCII, controls included
        case 1: value = [0x09, 0x0A, 0x0D, 0x20, 0x85, 0xA0, 0x2028, 0x3000][Int(generator.next() % 8)]
        case 2: value = 0x1F300 + UInt32(generator.next() % 0x700)           // emoji and pictographs
        case 3: value = 0x80 + UInt32(generator.next() % 0x2F80)             // Latin to Devanagari and beyond
        case 4: value = 0x4E00 + UInt32(generator.next() % 0x5200)           // CJK
        default: value = UInt32(generator.next() % 0x110000)                // anything
        }
        if let scalar = Unicode.Scalar(value) { scalars.append(scalar) }    // skips surrogates
    }
    return String(scalars)
}

/// A tiny deterministic generator (SplitMix64) for test inputs.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
