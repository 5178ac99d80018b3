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
    /// The tokenizer the tiktoken fixture was made from: retrained on every run.
    static func fixtureTokenizer() throws -> BPETokenizer {
        try BPETokenizer.train(text: trainingProse, vocabularySize: 512)
    }

    // Produced by scripts/make_tokenizer_fixtures.py (tiktoken 0.14.0) from the trained tokenizer's
    // .tiktoken file; do not edit by hand.
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
        #expect(BPETokenizer.preTokenize(text) == pieces)
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

    @Test func trainedTokenizerMatchesTiktoken() throws {
        let tokenizer = try Self.fixtureTokenizer()
        if let path = ProcessInfo.processInfo.environment["NANODATA_TIKTOKEN_FIXTURE_OUT"] {
            try tokenizer.save(tiktokenFile: path)   // input for scripts/make_tokenizer_fixtures.py
        }
        #expect(!Self.tiktokenExpectations.isEmpty)
        for (text, ids) in Self.tiktokenExpectations {
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

/// A fresh path in the temporary directory.
private func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)").path
}

/// Writes `tokenizer` as GPT-2's `encoder.json` and `vocab.bpe`, splitting each merged token at a
/// pair of tokens that merges into it. Returns the two paths.
private func writeGPT2Files(_ tokenizer: BPETokenizer) throws -> (encoder: String, merges: String) {
    var encoder: [String: Int] = [:]
    for (id, bytes) in tokenizer.tokenBytes.enumerated() { encoder[BPETokenizer.byteLevelString(bytes)] = id }
    if let endOfText = tokenizer.endOfText { encoder[BPETokenizer.endOfTextMarker] = endOfText }
    var splits: [Int32: (Int32, Int32)] = [:]
    for (pair, merged) in tokenizer.merges {
        let split = (Int32(truncatingIfNeeded: pair >> 32), Int32(truncatingIfNeeded: pair))
        if let existing = splits[merged], max(existing.0, existing.1) <= max(split.0, split.1) { continue }
        splits[merged] = split
    }
    var merges = "#version: 0.2\n"
    for merged in splits.keys.sorted() {
        let (left, right) = splits[merged]!
        merges += BPETokenizer.byteLevelString(tokenizer.tokenBytes[Int(left)]) + " "
            + BPETokenizer.byteLevelString(tokenizer.tokenBytes[Int(right)]) + "\n"
    }
    let encoderPath = temporaryPath("encoder.json"), mergesPath = temporaryPath("vocab.bpe")
    try JSONEncoder().encode(encoder).write(to: URL(fileURLWithPath: encoderPath))
    try merges.write(toFile: mergesPath, atomically: true, encoding: .utf8)
    return (encoderPath, mergesPath)
}

/// BPE training the slow, obvious way: recount every pair of every pre-token before each merge.
/// Returns the token bytes in id order (without `<|endoftext|>`).
private func naiveTraining(text: String, vocabularySize: Int) -> [[UInt8]] {
    var words = BPETokenizer.preTokenize(text).map { Array($0.utf8).map { [$0] } }
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

/// A tiny deterministic generator for test inputs.
private struct SplitMix64 {
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
