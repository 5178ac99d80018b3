import Foundation
import NanoData
import NanoEngine
import NanoModels
@testable import NanoTraining
import NanoTestSupport
import Testing

/// A Python with transformers (the venv scripts/make_hf_fixtures.py builds); the export check is skipped without it.
let pythonWithTransformers = python(importing: "transformers")

@Suite struct HuggingFaceTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static var folder: String { fixtures.appendingPathComponent("hf_tiny_gpt2").path }

    static func expected() throws -> [String: Tensor] {
        try SafeTensors.read(fixtures.appendingPathComponent("hf_tiny_gpt2_expected.safetensors").path).tensors
    }

    static func maxLogitError(_ model: any LanguageModel) throws -> Float {
        let e = try expected()
        var worst: Float = 0
        for i in 0..<3 {
            let tokens = try #require(e["prompt\(i).tokens"])
            let logits = try model(tokens, cache: nil, training: false).toArray()
            let want = try #require(e["prompt\(i).logits"]).toArray()
            worst = max(worst, zip(logits, want).map { abs($0 - $1) }.max()!)
        }
        return worst
    }

    @Test func importedGPT2GivesTransformersLogits() throws {
        let model = try HuggingFaceGPT2.importModel(folder: Self.folder)
        #expect(model.config == GPTConfig(vocabSize: 297, blockSize: 32, nLayer: 2, nHead: 4, nEmbd: 32))
        #expect(try Self.maxLogitError(model) < 1e-4)
    }

    @Test func gpt2TokenizerFilesEncodeLikeTransformers() throws {
        let tokenizer = try BPETokenizer(encoderJSON: Self.folder + "/vocab.json", vocabBPE: Self.folder + "/merges.txt")
        let e = try Self.expected()
        for (i, prompt) in ["Hello world", "The quick brown fox", "To be, or not to be"].enumerated() {
            let want = try #require(e["prompt\(i).tokens"]).toInt32Array().map(Int.init)
            #expect(try tokenizer.encode(prompt) == want, "prompt \(i)")
        }
    }

    @Test func exportThenImportKeepsTheLogits() throws {
        let model = try HuggingFaceGPT2.importModel(folder: Self.folder)
        let out = NSTemporaryDirectory() + "hf-export-\(UUID().uuidString)"
        try HuggingFaceGPT2.export(model, to: out, endOfText: 296)
        #expect(try Self.maxLogitError(HuggingFaceGPT2.importModel(folder: out)) < 1e-4)
    }

    @Test(.enabled(if: pythonWithTransformers != nil, "needs .venv with transformers (python3 scripts/make_hf_fixtures.py creates it)"))
    func exportedFolderLoadsInTransformers() throws {
        let model = try HuggingFaceGPT2.importModel(folder: Self.folder)
        let out = NSTemporaryDirectory() + "hf-export-\(UUID().uuidString)"
        try HuggingFaceGPT2.export(model, to: out, endOfText: 296)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/make_hf_fixtures.py").path
        let text = try runPython(pythonWithTransformers!, arguments: [script, "--check-export", out])
        #expect(text.contains("\"ok\": true"), "transformers check: \(text)")
    }

    @Test func foreignOrBrokenConfigsAreClearErrors() throws {
        let dir = NSTemporaryDirectory() + "hf-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try #"{"model_type": "llama", "vocab_size": 10}"#.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        #expect(throws: FileFormatError.self) { try HuggingFaceGPT2.importModel(folder: dir) }
        try #"{"model_type": "gpt2", "n_layer": 1}"#.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        #expect(throws: FileFormatError.self) { try HuggingFaceGPT2.readConfig(folder: dir) }
    }
}
