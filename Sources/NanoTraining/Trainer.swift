import Foundation
import NanoCPU
import NanoData
import NanoDistributed
import NanoEngine
import NanoModels
import NanoNN

/// One training run: a task (model + data), optimizer, schedule, evaluation, checkpoints and
/// metrics, in the run folder `out_dir/name`.
public final class Trainer {
    public let config: TrainConfig
    public let task: any TrainingTask
    public let optimizer: any Optimizer
    /// The ranks of a data-parallel run (a single process when not launched by MPI).
    public let communicator: Communicator
    let shard: DataShard
    let bucketer: GradientBucketer?
    /// Rank 0 alone writes logs, metrics and checkpoints.
    public var isRoot: Bool { communicator.rank == 0 }
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
    /// A stop was requested (on any rank, under data parallelism) and all ranks agreed to stop here.
    var stopAgreed = false

    /// Pre-training run: the language model and token dataset the config describes.
    /// The model is built on the config's `device.type`.
    public convenience init(config: TrainConfig, runDir: String, communicator: Communicator = Communicator(),
                            deviceCollective: DeviceCollective? = nil) throws {
        let task = try Device.run(config.trainingDevice) { try LanguageModelTask(config: config) }
        try self.init(config: config, runDir: runDir, task: task, communicator: communicator, deviceCollective: deviceCollective)
    }

    /// Where the model, its batches and the optimizer state live (`device.type`).
    public var device: Device { config.trainingDevice }

    /// `deviceCollective` (NCCL on GPUs) reduces data-parallel gradients in device memory; without
    /// one, ranks on a device reduce them through host memory with MPI.
    public init(config: TrainConfig, runDir: String, task: any TrainingTask, communicator: Communicator = Communicator(),
                deviceCollective: DeviceCollective? = nil) throws {
        self.config = config
        self.runDir = runDir
        self.task = task
        self.communicator = communicator
        let trainable = task.module.trainableParameters()
        guard !trainable.isEmpty else {
            throw ConfigError(file: runDir, key: "parameters", message: "nothing to train: every parameter is frozen")
        }
        let onDevice = trainable.map(\.tensor.device).filter { $0 != config.trainingDevice }
        guard onDevice.isEmpty else {
            throw ConfigError(file: "config", key: "device.type",
                              message: "device.type is \(config.device) but the model's parameters are on \(onDevice[0]): build the task inside Device.run(\(config.trainingDevice))")
        }
        if config.trainingDevice != .cpu && communicator.isDistributed && config.zero == 1 && deviceCollective == nil {
            throw ConfigError(file: "config", key: "training.zero",
                              message: "ZeRO-1 on \(config.device) shards the optimizer in device memory and needs NCCL to reduce and gather there, "
                                + "but gradients go through host memory (device.collective: \(config.collective)); use device.collective: nccl, or training.zero: 0")
        }
        if let deviceCollective, deviceCollective.device != config.trainingDevice || deviceCollective.size != communicator.size {
            throw ConfigError(file: "config", key: "device.collective",
                              message: "the collective (\(deviceCollective.name)) spans \(deviceCollective.size) ranks on \(deviceCollective.device), but training runs \(communicator.size) ranks on \(config.trainingDevice)")
        }
        guard config.batchSize % communicator.size == 0 else {
            throw ConfigError(file: "config", key: "training.batch_size",
                              message: "batch_size \(config.batchSize) is the global batch and must split evenly across \(communicator.size) ranks")
        }
        shard = DataShard(index: communicator.rank, count: communicator.size)
        let decayed = AdamW.decayedNames(trainable)
        if config.zero == 1 && communicator.isDistributed {
            optimizer = try ZeroOneAdamW(trainable, decayed: decayed, beta1: config.beta1, beta2: config.beta2, eps: config.eps,
                                         weightDecay: config.weightDecay, communicator: communicator, collective: deviceCollective)
            bucketer = nil
        } else {
            optimizer = try AdamW(trainable, decayed: decayed, beta1: config.beta1, beta2: config.beta2, eps: config.eps,
                                  weightDecay: config.weightDecay)
            bucketer = communicator.isDistributed
                ? try GradientBucketer(parameters: trainable.map(\.tensor), communicator: communicator, collective: deviceCollective,
                                       overlap: ProcessInfo.processInfo.environment["NANODECODER_DP_OVERLAP"] != "0")
                : nil
        }
        try Self.checkRanksAgree(config: config, communicator: communicator)
        schedule = LRSchedule(config)
        let seed = UInt64(config.seed)
        dataGenerator = Generator(seed: seed &+ 1)
        evalGenerator = Generator(seed: seed &+ 2)
        Generator.manualSeed(seed &+ 3)   // dropout
        state = TrainingState(step: 0, bestValLoss: nil, lastEvalStep: nil, dataOffset: 0, evalOffset: 0, dropoutOffset: 0,
                              seed: config.seed, tokensSeen: 0,
                              lossScaler: config.computeType == .float16
                                ? LossScaler(scale: config.lossScale, growthInterval: config.lossScaleWindow) : nil)
    }

    /// Every rank must train the same thing: compares a hash of the effective config and of the
    /// data files across ranks, and names the ranks that differ.
    static func checkRanksAgree(config: TrainConfig, communicator: Communicator) throws {
        guard communicator.isDistributed else { return }
        var h = fnv1a(Array(config.yaml().utf8))
        for file in ["train.bin", "val.bin", "meta.json"] { h = fnv1a(Array(String(fileFingerprint(config.dataset + "/" + file)).utf8), seed: h) }
        if !FileManager.default.fileExists(atPath: config.dataset + "/train.bin") { h = fnv1a(Array(String(fileFingerprint(config.dataset)).utf8), seed: h) }
        let all = try communicator.allGather(h)
        let differing = all.indices.filter { all[$0] != all[0] }
        guard differing.isEmpty else {
            throw ConfigError(file: "ranks", key: "config/data",
                              message: "rank(s) \(differing.map(String.init).joined(separator: ", ")) have a different effective config or data files than rank 0 (hashes \(all.map { String($0, radix: 16) }.joined(separator: " "))); every rank must read the same config and dataset")
        }
    }

    /// The model of a pre-training run (nil for other tasks).
    public var model: (any LanguageModel)? { (task as? LanguageModelTask)?.model }

    var checkpointDir: String { runDir + "/checkpoint" }
    var stopFile: String { ProcessInfo.processInfo.environment["NANODECODER_STOP_FILE"] ?? runDir + "/STOP" }
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
        let optimizerState = try optimizer.stateTensors()   // collective under ZeRO
        guard isRoot else { return }
        try Checkpoint.save(to: dir, module: task.module, metadata: task.checkpointMetadata, optimizerState: optimizerState, state: state,
                            config: config, extras: task.writeCheckpointExtras)
    }

    /// Trains until max_iters (or a stop request). Returns the best validation loss.
    @discardableResult
    public func train() throws -> Float? {
        // training.mixed_precision: every forward (and the backward it records) of the run.
        try Device.run(device) { try MixedPrecision.run(config.computeType) { try trainLoop() } }
    }

    private func trainLoop() throws -> Float? {
        if !isRoot { log = { _ in } }
        let tracker: RunTracker? = isRoot ? try {
            try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
            try writeAtomically(Data(config.yaml().utf8), to: runDir + "/config.yaml")
            try task.prepareRunFolder(runDir)
            return try RunTracker(runDir: runDir, config: config)
        }() : nil
        defer { tracker?.finish() }
        log(task.summary)
        if communicator.isDistributed {
            let how: String
            if let bucketer {
                how = "gradients all-reduced in \(bucketer.bucketCount) buckets (\(String(format: "%.1f", Double(bucketer.elementCount) * 4 / 1e6)) MB) during backward"
                    + (bucketer.collective.map { " by \($0.name) in \($0.device) memory" } ?? (device == .cpu ? "" : ", staged through host memory (MPI)"))
            } else {
                let zero = optimizer as! ZeroOneAdamW
                how = "ZeRO-1: optimizer state sharded, \(String(format: "%.2f", Double(zero.stateBytes) / 1e6)) MB per rank"
                    + (zero.collective.map { ", reduced and gathered by \($0.name) in \($0.device) memory" } ?? "")
            }
            log("data parallel: \(communicator.size) ranks, \(config.batchSize / communicator.size) of \(config.batchSize) rows each per micro-step; " + how)
        }
        let flopsPerToken = task.flopsPerToken
        let peak = try Self.measuredPeakFLOPS()
        log(String(format: "backend: %@; MFU is against the measured GEMM rate %.0f GFLOP/s", try device.backend.name, peak / 1e9))
        if config.computeType == .bfloat16 && device == .cpu {
            let bf16 = CPUBackend.shared.gemm.bf16Support
            log(bf16.native ? "mixed precision: bf16 matmuls (oneDNN \(bf16.detail)), float32 weights, gradients and optimizer state"
                : "mixed precision: bf16 matmuls emulated: this CPU has no bf16 matmul (oneDNN: \(bf16.detail)), so bf16 operands "
                + "are widened to float32; same results as bf16 hardware, slower than mixed_precision: none")
        }
        if let scaler = state.lossScaler {
            log("mixed precision: fp16 matmuls" + (device == .cpu ? " emulated on the CPU (operands rounded to fp16, widened to float32 for the product)" : "") + ", "
                + "dynamic loss scaling from \(scaler.scale) (doubles after \(scaler.growthInterval) good steps, halves and skips the step on overflow)")
        }
        var stepTimes: [Double] = [], stepTokens: [Int] = []
        // compile: true records the first step's kernels and replays them (CompiledStep on the
        // CPU; on a device, a graph recorded after one eager warm-up step: GraphStep).
        var compiled: (any ReplayableStep)? = nil
        var warmedUp = device == .cpu
        var compiling = config.compile
        // A data-parallel step can be recorded when its device collective joins graphs (NCCL).
        let reducesOnHost = communicator.isDistributed && !(bucketer?.collective?.recordsInGraphs ?? false)
        if compiling, let reason = CompiledStep.unsupported(task: task, config: config, distributed: reducesOnHost) {
            log("compile: running eagerly: \(reason)")
            compiling = false
        }
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
                try tracker?.record(fields)
                if isRoot, let text = try? task.sample(seed: UInt64(config.seed)) { tracker?.sample(text, step: it) }
                tracker?.flush()
                if result.valLoss < (state.bestValLoss ?? .infinity) {
                    state.bestValLoss = result.valLoss
                    if it > 0 { try saveCheckpoint(to: bestDir) }
                }
                try saveCheckpoint(to: checkpointDir)
            }
            // A stop file (`runs/NAME/STOP`, or $NANODECODER_STOP_FILE, which `--nproc` creates on
            // Ctrl-C) asks for the same clean stop as Ctrl-C; under mpirun it is the way to ask.
            if isRoot && !stop.isRequested && FileManager.default.fileExists(atPath: stopFile) {
                try? FileManager.default.removeItem(atPath: stopFile)
                log("found \(stopFile): stopping after this step")
                stop.request()
            }
            // Under data parallelism a stop request (Ctrl-C reaches every rank, maybe at different
            // times) takes effect on all ranks at the same step.
            stopAgreed = communicator.isDistributed ? try communicator.allReduceMax(stop.isRequested ? 1 : 0) > 0 : stop.isRequested
            if it == config.maxIters || stopAgreed { break }

            let t0 = DispatchTime.now().uptimeNanoseconds
            let lr = schedule(it)
            var lossSum: Float = 0, tokens = 0
            var parts = MoEStepStats()
            var replayed = false
            do {
                if compiling, let lm = task as? LanguageModelTask {
                    if let step = compiled {
                        if let r = try step.run(task: lm, generator: dataGenerator, shard: shard, learningRate: lr) {
                            (lossSum, tokens, replayed) = (r.lossSum, r.tokens, true)
                        } else {
                            log("compile: the batch shape changed; running eagerly from here on")
                            (compiled, compiling) = (nil, false)
                        }
                    } else if device == .cpu {
                        let c = try CompiledStep.capture(task: lm, microSteps: config.gradientAccumulationSteps,
                                                         generator: dataGenerator, shard: shard)
                        (compiled, lossSum, tokens, replayed) = (c.step, c.lossSum, c.tokens, true)
                        log("compile: \(c.step.summary) at step \(it); later steps replay them")
                    } else if warmedUp {
                        // The optimizer joins the graph unless fp16 loss scaling decides on the host.
                        let c = try GraphStep.capture(task: lm, device: device, microSteps: config.gradientAccumulationSteps,
                                                      generator: dataGenerator, shard: shard, bucketer: bucketer,
                                                      optimizer: state.lossScaler == nil ? optimizer as? AdamW : nil,
                                                      maxNorm: config.gradClip, learningRate: lr)
                        (compiled, lossSum, tokens, replayed) = (c.step, c.lossSum, c.tokens, true)
                        log("compile: recorded a \(c.step.summary) at step \(it), after a warm-up step; later steps replay it")
                    } else {
                        warmedUp = true   // this step runs eagerly; the next one is recorded
                    }
                }
                if !replayed { task.module.zeroGrad() }
                for micro in 0..<(replayed ? 0 : config.gradientAccumulationSteps) {
                    let (loss, n) = try task.trainingLoss(step: it, micro: micro, generator: dataGenerator, shard: shard)
                    lossSum += try loss.lm.item()
                    tokens += n
                    try parts.add(loss, steps: config.gradientAccumulationSteps)
                    // fp16: backward starts from the loss scale; clipGradients divides it out again.
                    let seed = try Tensor.full([], value: (state.lossScaler?.scale ?? 1) / Float(config.gradientAccumulationSteps))
                    try GradientBucketer.backward(loss.total, seed: seed,
                                                  reducingWith: micro == config.gradientAccumulationSteps - 1 ? bucketer : nil)
                }
            } catch let error as TensorError where "\(error)".contains("out of memory") {
                // The step does not fit on the device: say which settings shrink it.
                throw ConfigError(file: "config", key: "training.batch_size", message: "\(error)\nbatch_size \(config.batchSize) × block_size "
                                  + "\(config.blockSize) does not fit on \(config.device): lower training.batch_size (raise gradient_accumulation_steps "
                                  + "to keep the global batch), or model.block_size")
            }
            if communicator.isDistributed {
                // The logged loss is the mean over ranks; tokens are counted over all ranks.
                let totals = try communicator.allReduce([Double(lossSum), Double(tokens)], op: .sum)
                lossSum = Float(totals[0] / Double(communicator.size))
                tokens = Int(totals[1])
            }
            let lossScale = state.lossScaler?.scale
            let recordedOptimizer = replayed && compiled?.includesOptimizer == true   // the replay clipped and updated
            let gradNorm = recordedOptimizer ? try compiled?.lastGradientNorm() ?? .nan
                                             : try optimizer.clipGradients(maxNorm: config.gradClip, lossScale: lossScale ?? 1)
            // Every rank sees the same all-reduced gradients, so all of them skip the same steps.
            if recordedOptimizer {
                // done by the graph
            } else if state.lossScaler?.update(gradientsFinite: gradNorm.isFinite) ?? true {
                try optimizer.update(learningRate: lr)
            } else {
                log(String(format: "iter %d: fp16 gradients overflowed at loss scale %g: step skipped, scale now %g", it, lossScale!, state.lossScaler!.scale))
            }
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
            if let flopsPerToken { fields["mfu"] = flopsPerToken * tokensPerSecond / peak / Double(communicator.size) }
            if let bucketer { fields["comm_wait_ms"] = bucketer.takeWaitTime() * 1000 }
            if let scaler = state.lossScaler { fields["loss_scale"] = scaler.scale; fields["skipped_steps"] = scaler.skippedSteps }
            fields.merge(parts.metrics) { a, _ in a }
            if let mb = residentMemoryMB() { fields["memory_mb"] = mb }
            try tracker?.record(fields)
            if it % config.logInterval == 0 || stop.isRequested {
                let recent = Array(stepTimes.suffix(20)).sorted()
                let median = recent[recent.count / 2]
                let eta = median * Double(config.maxIters - state.step)
                let recentTokens = stepTokens.suffix(20), recentSeconds = stepTimes.suffix(20).reduce(0, +)
                let tokensPerSecond = Double(recentTokens.reduce(0, +)) / recentSeconds
                let mfu = flopsPerToken.map { String(format: ", MFU %.1f%%", 100 * $0 * tokensPerSecond / peak / Double(communicator.size)) } ?? ""
                log(String(format: "iter %d: loss %.4f%@, lr %.2e, %.0f tok/s, %.1f ms/iter%@, ETA %@",
                           it, loss, parts.summary, lr, tokensPerSecond, median * 1000, mfu, formatDuration(eta)))
                for line in parts.layerLines { log(line) }
            }
        }
        if stopAgreed {
            try saveCheckpoint(to: checkpointDir)
            log("stopped at step \(state.step); resume with --resume (checkpoint: \(checkpointDir))")
        } else if isRoot {
            for line in try task.finish(runDir: runDir) { log(line) }
        }
        if config.plots, let files = try? tracker?.writePlots(name: config.name.isEmpty ? runDir : config.name) {
            log("plots: \(files.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")) in \(runDir)/plots")
        }
        if !config.wandbProject.isEmpty && isRoot {
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

    /// Best GEMM rate (FLOP/s) of a 1024³ product, the yardstick for MFU on this machine.
    public static func measuredPeakFLOPS() throws -> Double {
        try withNoGrad {
            let g = Generator(seed: 0)   // not the dropout stream: resuming must not shift it
            let a = try Tensor.randn([1024, 1024], generator: g), b = try Tensor.randn([1024, 1024], generator: g)
            var best = Double.infinity
            for _ in 0..<5 {
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

