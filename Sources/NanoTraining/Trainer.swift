import Foundation
import NanoCPU
import NanoData
import NanoEngine
import NanoModels
import NanoNN

/// One training run: a task (model + data), optimizer, schedule, evaluation, checkpoints and
/// metrics, in the run folder `out_dir/name`.
public final class Trainer {
    public let config: TrainConfig
    public let task: any TrainingTask
    public let optimizer: AdamW
    public let runDir: String
    public let schedule: LRSchedule
    public var log: (String) -> Void = { print($0) }
    public let stop = StopSignal()
    /// Called after every optimizer step with the step number (1-based) and its loss.
    public var onStep: ((Int, Float) -> Void)? = nil
    /// Training loss of every step, by step (for tests and plots).
    public private(set) var losses: [Int: Float] = [:]
    public private(set) var state: TrainingState
    let dataGenerator: Generator
    var evalGenerator: Generator

    /// Pre-training run: the language model and token dataset the config describes.
    public convenience init(config: TrainConfig, runDir: String) throws {
        try self.init(config: config, runDir: runDir, task: LanguageModelTask(config: config))
    }

    public init(config: TrainConfig, runDir: String, task: any TrainingTask) throws {
        self.config = config
        self.runDir = runDir
        self.task = task
        let trainable = task.module.trainableParameters()
        guard !trainable.isEmpty else {
            throw ConfigError(file: runDir, key: "parameters", message: "nothing to train: every parameter is frozen")
        }
        optimizer = try AdamW(trainable, decayed: Set(trainable.filter { $0.tensor.rank >= 2 }.map(\.name)), beta1: config.beta1,
                              beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay)
        schedule = LRSchedule(config)
        let seed = UInt64(config.seed)
        dataGenerator = Generator(seed: seed &+ 1)
        evalGenerator = Generator(seed: seed &+ 2)
        Generator.manualSeed(seed &+ 3)   // dropout
        state = TrainingState(step: 0, bestValLoss: nil, lastEvalStep: nil, dataOffset: 0, evalOffset: 0, dropoutOffset: 0,
                              seed: config.seed, tokensSeen: 0)
    }

    /// The model of a pre-training run (nil for other tasks).
    public var model: (any LanguageModel)? { (task as? LanguageModelTask)?.model }

    var checkpointDir: String { runDir + "/checkpoint" }
    var bestDir: String { runDir + "/best" }

    /// Continues from the run folder's last checkpoint.
    public func resume() throws {
        state = try Checkpoint.resume(module: task.module, metadata: task.checkpointMetadata, optimizer: optimizer, from: checkpointDir)
        let seed = UInt64(state.seed)
        dataGenerator.restore(offset: state.dataOffset)
        evalGenerator = Generator(seed: seed &+ 2, offset: state.evalOffset)
        Generator.manualSeed(seed &+ 3, offset: state.dropoutOffset)
        log("resumed from \(checkpointDir) at step \(state.step)")
    }

    func saveCheckpoint(to dir: String) throws {
        state.dataOffset = dataGenerator.offset
        state.evalOffset = evalGenerator.offset
        state.dropoutOffset = Generator.default.offset
        try Checkpoint.save(to: dir, module: task.module, metadata: task.checkpointMetadata, optimizer: optimizer, state: state,
                            config: config, extras: task.writeCheckpointExtras)
    }

    /// Trains until max_iters (or a stop request). Returns the best validation loss.
    @discardableResult
    public func train() throws -> Float? {
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        try writeAtomically(Data(config.yaml().utf8), to: runDir + "/config.yaml")
        try task.prepareRunFolder(runDir)
        let tracker = try RunTracker(runDir: runDir, config: config)
        defer { tracker.finish() }
        log(task.summary)
        let flopsPerToken = task.flopsPerToken
        let peak = try measuredPeakFLOPS()
        log(String(format: "backend: %@; MFU is against the measured GEMM rate %.0f GFLOP/s", CPUBackend.shared.name, peak / 1e9))
        var stepTimes: [Double] = [], stepTokens: [Int] = []
        let runStart = Date()

        while state.step <= config.maxIters {
            let it = state.step
            if (it % config.evalInterval == 0 || it == config.maxIters) && state.lastEvalStep != it {
                let result = try task.evaluate(step: it, generator: evalGenerator)
                state.lastEvalStep = it
                if let trainLoss = result.trainLoss {
                    log(String(format: "step %d: train loss %.4f, val loss %.4f", it, trainLoss, result.valLoss))
                } else {
                    log(String(format: "step %d: val loss %.4f", it, result.valLoss))
                }
                for line in result.lines { log(line) }
                var fields: [String: Any] = ["step": it, "val_loss": result.valLoss, "tokens": state.tokensSeen]
                if let trainLoss = result.trainLoss { fields["eval_train_loss"] = trainLoss }
                fields.merge(result.metrics) { a, _ in a }
                try tracker.record(fields)
                if let text = try? task.sample(seed: UInt64(config.seed)) { tracker.sample(text, step: it) }
                tracker.flush()
                if result.valLoss < (state.bestValLoss ?? .infinity) {
                    state.bestValLoss = result.valLoss
                    if it > 0 { try saveCheckpoint(to: bestDir) }
                }
                try saveCheckpoint(to: checkpointDir)
            }
            if it == config.maxIters || stop.isRequested { break }

            let t0 = DispatchTime.now().uptimeNanoseconds
            let lr = schedule(it)
            task.module.zeroGrad()
            var lossSum: Float = 0, tokens = 0
            var parts = MoEStepStats()
            for micro in 0..<config.gradientAccumulationSteps {
                let (loss, n) = try task.trainingLoss(step: it, micro: micro, generator: dataGenerator, shard: .whole)
                lossSum += try loss.lm.item()
                tokens += n
                try parts.add(loss, steps: config.gradientAccumulationSteps)
                try loss.total.backward(gradient: Tensor.full([], value: 1 / Float(config.gradientAccumulationSteps)))
            }
            let gradNorm = try optimizer.clipGradients(maxNorm: config.gradClip)
            try optimizer.update(learningRate: lr)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            let loss = lossSum / Float(config.gradientAccumulationSteps)
            losses[it] = loss
            state.step += 1
            state.tokensSeen += tokens
            stepTimes.append(seconds)
            stepTokens.append(tokens)
            onStep?(state.step, loss)

            let tokensPerSecond = Double(tokens) / seconds
            var fields: [String: Any] = ["step": it + 1, "train_loss": loss, "lr": lr, "grad_norm": gradNorm,
                                         "tokens_per_s": tokensPerSecond, "ms_per_iter": seconds * 1000, "tokens": state.tokensSeen]
            if let flopsPerToken { fields["mfu"] = flopsPerToken * tokensPerSecond / peak }
            fields.merge(parts.metrics) { a, _ in a }
            if let mb = residentMemoryMB() { fields["memory_mb"] = mb }
            try tracker.record(fields)
            if it % config.logInterval == 0 || stop.isRequested {
                let recent = Array(stepTimes.suffix(20)).sorted()
                let median = recent[recent.count / 2]
                let eta = median * Double(config.maxIters - state.step)
                let recentTokens = stepTokens.suffix(20), recentSeconds = stepTimes.suffix(20).reduce(0, +)
                let tokensPerSecond = Double(recentTokens.reduce(0, +)) / recentSeconds
                let mfu = flopsPerToken.map { String(format: ", MFU %.1f%%", 100 * $0 * tokensPerSecond / peak) } ?? ""
                log(String(format: "iter %d: loss %.4f%@, lr %.2e, %.0f tok/s, %.1f ms/iter%@, ETA %@",
                           it, loss, parts.summary, lr, tokensPerSecond, median * 1000, mfu, formatDuration(eta)))
                for line in parts.layerLines { log(line) }
            }
        }
        if stop.isRequested {
            try saveCheckpoint(to: checkpointDir)
            log("stopped at step \(state.step); resume with --resume (checkpoint: \(checkpointDir))")
        } else {
            for line in try task.finish(runDir: runDir) { log(line) }
        }
        if config.plots, let files = try? tracker.writePlots(name: config.name.isEmpty ? runDir : config.name) {
            log("plots: \(files.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")) in \(runDir)/plots")
        }
        if !config.wandbProject.isEmpty {
            log("to upload this run to Weights & Biases: " + wandbSyncCommand(runDirectory: runDir, project: config.wandbProject,
                                                                          entity: config.wandbEntity, name: config.wandbName.isEmpty ? config.name : config.wandbName))
        }
        let sorted = stepTimes.sorted()
        if !sorted.isEmpty {
            let median = sorted[sorted.count / 2]
            log(String(format: "done: %d steps in %@, median %.1f ms/iter, %.0f tokens/s; best val loss %.4f",
                       stepTimes.count, formatDuration(Date().timeIntervalSince(runStart)), median * 1000,
                       Double(stepTokens.reduce(0, +)) / stepTimes.reduce(0, +), state.bestValLoss ?? .nan))
        }
        return state.bestValLoss
    }

    /// Best GEMM rate of a 1024³ product, the yardstick for MFU on this machine.
    func measuredPeakFLOPS() throws -> Double {
        try withNoGrad {
            let g = Generator(seed: 0)   // not the dropout stream: resuming must not shift it
            let a = try Tensor.randn([1024, 1024], generator: g), b = try Tensor.randn([1024, 1024], generator: g)
            var best = Double.infinity
            for _ in 0..<4 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try a.matmul(b)
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            return 2 * 1024 * 1024 * 1024 / best
        }
    }
}

/// MoE losses and routing statistics of one step (averaged over micro-steps).
struct MoEStepStats {
    var aux: Float = 0, z: Float = 0
    var hasAux = false, hasZ = false
    var layers: [(tokensPerExpert: [Int], dropped: Float, entropy: Float)] = []

    mutating func add(_ loss: ModelLoss, steps: Int) throws {
        if let a = loss.aux { aux += try a.item() / Float(steps); hasAux = true }
        if let z = loss.z { self.z += try z.item() / Float(steps); hasZ = true }
        layers = loss.reports.map { ($0.tokensPerExpert, $0.droppedFraction, $0.routerEntropy) }
    }

    /// ", aux 1.02, z 3.1, dropped 2.1%" for the console; empty for dense models.
    var summary: String {
        guard !layers.isEmpty else { return "" }
        let dropped = layers.map(\.dropped).reduce(0, +) / Float(layers.count)
        return String(format: " (aux %.3f, z %.3f, dropped %.1f%%)", aux, z, 100 * dropped)
    }

    /// One console line per MoE layer: load per expert, dropped fraction, router entropy.
    var layerLines: [String] {
        layers.enumerated().map { i, l in
            String(format: "  moe layer %d: tokens/expert %@, dropped %.1f%%, router entropy %.3f",
                   i, l.tokensPerExpert.map(String.init).joined(separator: " "), 100 * l.dropped, l.entropy)
        }
    }

    var metrics: [String: Any] {
        var m: [String: Any] = [:]
        if hasAux { m["aux_loss"] = aux }
        if hasZ { m["z_loss"] = z }
        for (i, l) in layers.enumerated() {
            m["moe\(i).tokens_per_expert"] = l.tokensPerExpert
            m["moe\(i).dropped_fraction"] = l.dropped
            m["moe\(i).router_entropy"] = l.entropy
        }
        return m
    }
}

func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
}

