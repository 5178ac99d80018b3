import ArgumentParser
import Foundation
import NanoCPU
import NanoCUDA
import NanoData
import NanoEngine
import NanoModels
import NanoTraining

/// `nanodecoder cuda train-check`: the same dense GPT, the same initial weights and the same
/// batches trained on the CPU backend and on the GPU (`CUDAGPT`), step by step; prints both
/// losses and fails when they part by more than the tolerance (the acceptance is 2% relative over
/// 50 steps of the Shakespeare config). Also prints the GPU's tokens/s.
struct CUDATrainCheck: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-check",
                                                    abstract: "Train the dense GPT on the GPU and on the CPU side by side and compare losses (needs an NVIDIA GPU).")

    @Option(help: "Config file (default: the built-in Shakespeare char config).") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key, e.g. model.n_layer=6 (repeatable).") var overrides: [String] = []
    @Option(help: "Text file (char-level tokens).") var data: String = "../shared/data/tinyshakespeare.txt"
    @Option(help: "Steps.") var steps = 50
    @Option(help: "Largest allowed relative loss difference.") var tolerance: Float = 0.02
    @Option(help: "GPU ordinal.") var device = 0

    func run() throws {
        try Nanodecoder.reporting {
            guard steps >= 1 else { throw ValidationError("--steps must be ≥ 1") }
            var cfg = try TrainConfig.load(file: config, overrides: overrides)
            guard cfg.useMoE == false, cfg.bias, cfg.tieWeights, cfg.mlpRatio == 4, cfg.dropout == 0, cfg.mixedPrecision == "none" else {
                throw CommandFailure(description: "cuda train-check: the GPU model is the fp32 dense GPT with biases, tied weights, "
                                     + "mlp_ratio 4 and dropout 0 (mixed_precision: none)")
            }
            let driver: CUDADriver
            do { driver = try CUDADriver() } catch let error as CUDALibraryError {
                throw CommandFailure(description: "cuda train-check: no NVIDIA driver on this machine: \(error)")
            }
            let dataset = try TemporaryCharDataset(text: data, tag: "train-check")
            defer { dataset.remove() }
            cfg.dataset = dataset.folder
            let task = try LanguageModelTask(config: cfg)
            let model = task.model
            let optimizer = try AdamW(model.trainableParameters(), config: cfg)
            let decayed = AdamW.decayedNames(model.trainableParameters())

            let gpu = try CUDAContext(driver: driver, ordinal: device)
            let modules = try gpu.loadKernels(try NVRTC())
            let shape = CUDAGPT.Shape(vocab: model.config.vocabSize, layers: cfg.nLayer, heads: cfg.nHead, width: cfg.nEmbd, block: cfg.blockSize)
            var values: [String: [Float]] = [:]
            for (name, tensor) in model.namedParameters() { values[name] = try tensor.toArray() }
            let gpt = try CUDAGPT(context: gpu, blas: try CUBLASLt(context: gpu), modules: modules, shape: shape, values: values,
                                  decayed: decayed, weightDecay: cfg.weightDecay)
            print("\(gpu.device); model: \(cfg.nLayer) layers, \(cfg.nHead) heads, \(cfg.nEmbd) wide, block \(cfg.blockSize), batch \(cfg.batchSize), vocab \(shape.vocab)")

            let generator = Generator(seed: UInt64(cfg.seed))
            var worst: Float = 0, gpuSeconds: [Double] = []
            for step in 0..<steps {
                let (x, y) = try task.trainingBatch(generator: generator, shard: .whole)
                model.zeroGrad()
                let loss = try model.loss(x, targets: y, training: true)
                try loss.total.backward()
                let cpuLoss = try loss.lm.item()
                try optimizer.clipGradients(maxNorm: cfg.gradClip)
                try optimizer.update(learningRate: cfg.learningRate)
                let t0 = DispatchTime.now().uptimeNanoseconds
                let (gpuLoss, norm) = try gpt.trainStep(tokens: try x.toInt32Array(), targets: try y.toInt32Array(), batch: x.shape[0],
                                                        learningRate: cfg.learningRate, maxNorm: cfg.gradClip,
                                                        beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps)
                gpuSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                let difference = abs(gpuLoss - cpuLoss) / abs(cpuLoss)
                worst = max(worst, difference)
                print(String(format: "step %3d: cpu %.4f  gpu %.4f  (%.3f%%), gpu grad norm %.3f", step, cpuLoss, gpuLoss, 100 * difference, norm))
            }
            let median = gpuSeconds.sorted()[gpuSeconds.count / 2]
            print(String(format: "GPU median %.2f ms/step, %.0f tokens/s (fp32, unfused baseline kernels)", median * 1000,
                         Double(cfg.batchSize * cfg.blockSize) / median))
            guard worst <= tolerance else {
                throw CommandFailure(description: String(format: "cuda train-check: GPU and CPU losses part by up to %.2f%% (tolerance %.2f%%)",
                                                         100 * worst, 100 * tolerance))
            }
            print(String(format: "GPU losses track the CPU's within %.3f%% over %d steps", 100 * worst, steps))
        }
    }
}
