import Foundation
import NanoEngine
@testable import NanoTraining
import Testing

/// `training.mixed_precision: bf16 | fp16` on whole training runs.
@Suite(.serialized) struct MixedPrecisionTrainingTests {
    private func smallConfig() throws -> (TrainConfig, String) {
        let data = try makeDataset()
        let runs = NSTemporaryDirectory() + "runs-\(UUID().uuidString)"
        var config = tinyConfig(dataset: data, runs: runs)
        config.nLayer = 2; config.nEmbd = 32; config.blockSize = 16
        config.maxIters = 30; config.evalInterval = 10; config.warmupIters = 5; config.lrDecayIters = 30
        return (config, runs)
    }

    /// `mixed`'s losses stay within `within` (relative) of the float32 run's at every step, and are
    /// not bitwise the same (else the mixed precision scope had no effect).
    private func expectTracks(_ fp32: Trainer, _ mixed: Trainer, within tolerance: Float, steps: Int) {
        var differs = false
        for step in 0..<steps {
            let a = fp32.losses[step]!, b = mixed.losses[step]!
            #expect(abs(a - b) <= tolerance * a, "step \(step): fp32 \(a), \(mixed.config.mixedPrecision) \(b)")
            differs = differs || a != b
        }
        #expect(differs, "\(mixed.config.mixedPrecision) gave the float32 losses bitwise: the mixed precision scope had no effect")
    }

    /// The bf16 loss curve follows the float32 one (here within 2% at every step) while being a
    /// different computation (not bitwise equal).
    @Test func bf16LossesTrackFloat32() throws {
        var (config, runs) = try smallConfig()
        let fp32 = try trainLogged(config, runs: runs, name: "fp32")
        config.mixedPrecision = "bf16"
        let bf16 = try trainLogged(config, runs: runs, name: "bf16")
        #expect(bf16.log.contains { $0.contains("mixed precision: bf16") }, "\(bf16.log)")
        expectTracks(fp32.trainer, bf16.trainer, within: 0.02, steps: config.maxIters)
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

    /// fp16 with dynamic loss scaling follows the float32 curve (fp16 keeps more mantissa bits
    /// than bf16) without being it, and the checkpoint keeps the scaler.
    @Test func fp16LossesTrackFloat32() throws {
        var (config, runs) = try smallConfig()
        let fp32 = try trainLogged(config, runs: runs, name: "fp32")
        config.mixedPrecision = "fp16"
        let fp16 = try trainLogged(config, runs: runs, name: "fp16")
        #expect(fp16.log.contains { $0.contains("dynamic loss scaling from 65536") }, "\(fp16.log)")
        expectTracks(fp32.trainer, fp16.trainer, within: 0.01, steps: config.maxIters)
        #expect(fp16.trainer.state.lossScaler?.skippedSteps == 0)
        let saved = try JSONDecoder().decode(TrainingState.self, from: Data(contentsOf: URL(fileURLWithPath: runs + "/fp16/checkpoint/state.json")))
        #expect(saved.lossScaler == fp16.trainer.state.lossScaler && saved.lossScaler != nil)
        let fp32State = try JSONDecoder().decode(TrainingState.self, from: Data(contentsOf: URL(fileURLWithPath: runs + "/fp32/checkpoint/state.json")))
        #expect(fp32State.lossScaler == nil)
    }

    /// A loss scale too large for fp16 overflows the gradients: those steps are skipped (the
    /// weights do not move), the scale halves until the gradients fit, and training goes on.
    @Test func fp16OverflowSkipsStepsAndLowersTheScale() throws {
        var (config, runs) = try smallConfig()
        config.mixedPrecision = "fp16"
        config.lossScale = 0x1p24
        let run = try trainLogged(config, runs: runs, name: "overflow")
        let scaler = try #require(run.trainer.state.lossScaler)
        #expect(scaler.skippedSteps >= 1 && scaler.scale < 0x1p24, "\(scaler)")
        #expect(run.log.contains { $0.contains("fp16 gradients overflowed at loss scale 1.67772e+07: step skipped, scale now 8.38861e+06") },
                "\(run.log.filter { $0.contains("overflow") })")
        // A skipped step does not update the weights.
        #expect(run.trainer.optimizer.step == config.maxIters - scaler.skippedSteps)
        #expect(run.trainer.losses[config.maxIters - 1]! < run.trainer.losses[0]! * 0.8)
        let metrics = try String(contentsOfFile: runs + "/overflow/metrics.jsonl", encoding: .utf8)
        #expect(metrics.contains("\"loss_scale\":8388608") && metrics.contains("\"skipped_steps\":1"), "\(metrics.prefix(600))")
    }

    @Test func precisionAndLossScaleConfigErrorsNameTheKey() throws {
        for (override, key, expected) in [("training.mixed_precision=float8", "training.mixed_precision", "expected none, bf16 or fp16"),
                                          ("training.loss_scale=1e30", "training.loss_scale", "[2^-24, 2^24]")] {
            do {
                _ = try TrainConfig.load(file: nil, overrides: [override])
                Issue.record("\(override) was accepted")
            } catch let e as ConfigError {
                #expect(e.description.contains(key) && e.description.contains(expected), "\(e)")
            }
        }
        #expect(try TrainConfig.load(file: nil, overrides: ["training.mixed_precision=bf16"]).computeType == .bfloat16)
        #expect(try TrainConfig.load(file: nil, overrides: ["training.mixed_precision=fp16"]).computeType == .float16)
    }
}

@Suite struct LossScalerTests {
    @Test func growsAfterTheWindowAndHalvesOnOverflow() {
        var s = LossScaler(scale: 1024, growthInterval: 3)
        #expect(s.update(gradientsFinite: true) && s.update(gradientsFinite: true) && s.scale == 1024)
        #expect(s.update(gradientsFinite: true) && s.scale == 2048 && s.goodSteps == 0)
        #expect(!s.update(gradientsFinite: false) && s.scale == 1024 && s.skippedSteps == 1)
        // An overflow restarts the count of good steps.
        _ = s.update(gradientsFinite: true); _ = s.update(gradientsFinite: false)
        #expect(s.scale == 512 && s.goodSteps == 0)
        var low = LossScaler(scale: LossScaler.smallest)
        _ = low.update(gradientsFinite: false)
        #expect(low.scale == LossScaler.smallest)
        var high = LossScaler(scale: LossScaler.largest, growthInterval: 1)
        _ = high.update(gradientsFinite: true)
        #expect(high.scale == LossScaler.largest)
    }

    /// clipGradients divides the loss scale out (and clips the unscaled norm); an overflowed
    /// gradient is left alone and reported as a non-finite norm.
    @Test func clippingUnscalesAndReportsOverflow() throws {
        let p = try Tensor([3, 4], shape: [2]); p.requiresGrad = true
        p.grad = try Tensor([300, 400], shape: [2])
        let adam = try AdamW([("p", p)], decayed: [], beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0)
        #expect(try adam.clipGradients(maxNorm: 0, lossScale: 100) == 5)
        #expect(try p.grad!.toArray() == [3, 4])
        p.grad = try Tensor([300, 400], shape: [2])
        #expect(abs(try adam.clipGradients(maxNorm: 1, lossScale: 100) - 5) < 1e-6)
        #expect(try p.grad!.toArray().enumerated().allSatisfy { abs($1 - [0.6, 0.8][$0]) < 1e-5 })
        p.grad = try Tensor([.infinity, 1], shape: [2])
        #expect(!(try adam.clipGradients(maxNorm: 1, lossScale: 100)).isFinite)
        #expect(try p.grad!.toArray()[1] == 1)
    }
}
