import Foundation
import NanoCPU
import NanoEngine
import NanoModels
import NanoNN
@testable import NanoTraining
import Testing

/// Checks the dense GPT and AdamW against a PyTorch reference (scripts/make_gpt_fixtures.py,
/// float64, stored as float32 in Fixtures/gpt_tiny.safetensors).
@Suite struct GPTReferenceTests {
    static func fixture() throws -> [String: Tensor] {
        let url = try #require(Bundle.module.url(forResource: "gpt_tiny", withExtension: "safetensors", subdirectory: "Fixtures"))
        return try SafeTensors.read(url.path).tensors
    }

    static func model(_ f: [String: Tensor]) throws -> DenseGPT {
        let model = try DenseGPT(GPTConfig(vocabSize: 13, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16))
        for (name, p) in model.namedParameters() { try p.assign(try #require(f[name], "fixture lacks \(name)")) }
        return model
    }

    static func maxError(_ a: Tensor, _ b: Tensor) throws -> Float {
        zip(try a.toArray(), try b.toArray()).map { abs($0 - $1) }.max() ?? 0
    }

    @Test func lossLogitsAndGradientsMatchPyTorch() throws {
        let f = try Self.fixture()
        let model = try Self.model(f)
        let tokens = try #require(f["input.tokens"]), targets = try #require(f["input.targets"])
        let logits = try model(tokens)
        #expect(try Self.maxError(logits, #require(f["expected.logits"])) < 1e-5)
        let loss = try logits.crossEntropy(targets: targets)
        #expect(abs(try loss.item() - f["expected.loss"]!.item()) < 1e-5)
        try loss.backward()
        for (name, p) in model.namedParameters() {
            let err = try Self.maxError(try #require(p.grad, "\(name) has no gradient"), #require(f["grad." + name]))
            #expect(err < 1e-5, "gradient of \(name) differs from PyTorch by \(err)")
        }
    }

    /// One AdamW step from PyTorch's own gradients (decay only on matrices and embeddings).
    @Test func oneAdamWStepMatchesPyTorch() throws {
        let f = try Self.fixture()
        let model = try Self.model(f)
        for (name, p) in model.namedParameters() { p.grad = try #require(f["grad." + name]) }
        let opt = try AdamW(model.namedParameters(), decayed: model.decayedParameterNames(), beta1: 0.9, beta2: 0.99,
                            eps: 1e-8, weightDecay: 0.1)
        try opt.update(learningRate: 1e-3)
        for (name, p) in model.namedParameters() {
            let err = try Self.maxError(p, #require(f["adamw." + name]))
            #expect(err < 1e-6, "AdamW update of \(name) differs from PyTorch by \(err)")
        }
    }

    @Test func sizesAreCountedLikeGPT2() throws {
        let model = try DenseGPT(GPTConfig(vocabSize: 13, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16))
        // per block: 2 LayerNorms (2·2·16) + qkv (16·48+48) + proj (16·16+16) + fc (16·64+64) + proj (64·16+16)
        let block = 4 * 16 + (16 * 48 + 48) + (16 * 16 + 16) + (16 * 64 + 64) + (64 * 16 + 16)
        let total = 13 * 16 + 8 * 16 + 2 * block + 2 * 16
        #expect(model.parameterCounts.total == total)
        #expect(model.parameterCounts.withoutPositions == total - 8 * 16)
        #expect(model.decayedParameterNames().contains("tokenEmbedding.weight"))
        #expect(!model.decayedParameterNames().contains("blocks.0.norm1.weight"))
    }
}
