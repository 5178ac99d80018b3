import Foundation
import NanoEngine
@testable import NanoTraining
import Testing

/// `training.mixed_precision: bf16` on whole training runs.
@Suite(.serialized) struct MixedPrecisionTrainingTests {
    private func smallConfig() throws -> (TrainConfig, String) {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.nLayer = 2; config.nEmbd = 32; config.blockSize = 16
        config.maxIters = 30; config.evalInterval = 10; config.warmupIters = 5; config.lrDecayIters = 30
        return (config, runs)
    }

    /// The bf16 loss curve follows the float32 one (here within 2% at every step) while being a
    /// different computation (not bitwise equal).
    @Test func bf16LossesTrackFloat32() throws {
        var (config, runs) = try smallConfig()
        let fp32 = try trainLogged(config, runs: runs, name: "fp32")
        config.mixedPrecision = "bf16"
        let bf16 = try trainLogged(config, runs: runs, name: "bf16")
        #expect(bf16.log.contains { $0.contains("mixed precision: bf16") }, "\(bf16.log)")
        var differs = false
        for step in 0..<config.maxIters {
            let a = fp32.trainer.losses[step]!, b = bf16.trainer.losses[step]!
            #expect(abs(a - b) <= 0.02 * a, "step \(step): fp32 \(a), bf16 \(b)")
            differs = differs || a != b
        }
        #expect(differs, "bf16 gave the float32 losses bitwise: the mixed precision scope had no effect")
        #expect(fp32.trainer.losses[config.maxIters - 1]! < fp32.trainer.losses[0]! * 0.8)
        #expect(bf16.trainer.losses[config.maxIters - 1]! < bf16.trainer.losses[0]! * 0.8)
        // The checkpoint keeps float32 master weights.
        let weights = try SafeTensors.read(runs + "/bf16/checkpoint/model.safetensors").tensors
        #expect(!weights.isEmpty && weights.values.allSatisfy { $0.dtype == .float32 })
    }

    /// A compiled bf16 step replays the casts too: the same losses as eager bf16.
    @Test func compiledBF16GivesTheEagerBF16Losses() throws {
        var (config, runs) = try smallConfig()
        config.maxIters = 12
        config.mixedPrecision = "bf16"
        let eager = try trainLogged(config, runs: runs, name: "eager")
        config.compile = true
        let compiled = try trainLogged(config, runs: runs, name: "compiled")
        #expect(compiled.log.contains { $0.contains("compile: recorded") }, "\(compiled.log)")
        for step in 0..<config.maxIters {
            let a = eager.trainer.losses[step]!, b = compiled.trainer.losses[step]!
            #expect(abs(a - b) <= 1e-6 * abs(a), "step \(step): eager \(a), compiled \(b)")
        }
    }

    @Test func unsupportedPrecisionsAreConfigErrorsNamingTheKey() throws {
        for (value, expected) in [("fp16", "CUDA"), ("float8", "expected none, bf16 or fp16")] {
            do {
                _ = try TrainConfig.load(file: nil, overrides: ["training.mixed_precision=\(value)"])
                Issue.record("mixed_precision \(value) was accepted")
            } catch let e as ConfigError {
                #expect(e.description.contains("training.mixed_precision") && e.description.contains(expected), "\(e)")
            }
        }
        #expect(try TrainConfig.load(file: nil, overrides: ["training.mixed_precision=bf16"]).computeType == .bfloat16)
    }
}
