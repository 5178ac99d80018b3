import ArgumentParser
import Foundation
import NanoCPU
import NanoCUDA
import NanoData
import NanoEngine
import NanoModels
import NanoTraining

/// Training-step throughput on the CPU for the benchmark workloads, with the same model,
/// optimizer and FLOP count as `bench/pytorch_gpt.py`, so `bench/cpu_vs_pytorch.sh` can put the
/// two side by side.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Time training steps of a benchmark workload (A, B: dense; C: MoE) on char-level tiny Shakespeare.")

    @Option(help: "A: 4 layers × 128 wide, block 64, batch 12; B: 6 × 384, block 256, batch 16; C: B with 8 experts top-2 in every 2nd block; GPT2: the 124M shape (12 × 768, block 1024, vocab padded to 50304, batch 8).")
    var workload: String = "A"
    @Option(help: "Rows per step (default: the workload's).") var batch: Int?
    @Option(help: "cpu, cuda or cuda:N.") var device: String = "cpu"
    @Flag(help: "On a GPU: fp32 GEMMs in TF32.") var tf32 = false
    @Option(help: "Timed steps.") var steps: Int = 30
    @Option(help: "Untimed steps first.") var warmup: Int = 5
    @Option(help: "Text file (char-level tokens).") var data: String = "../shared/data/tinyshakespeare.txt"
    @Option(help: "Peak GFLOP/s for MFU (default: best fp32 1024³ matmul measured here).") var peakGflops: Double?
    @Flag(help: "Record the first step's kernels and replay them (the config's compile: true).") var compile = false
    @Flag(help: "With --compile: replay the kernels as recorded, without fusing row-wise chains.") var noFuse = false
    @Option(help: "Matrix products in fp32 or bf16 (the config's mixed_precision: bf16).") var precision: String = "fp32"
    @Flag(help: "Print one JSON object.") var json = false

    func config() throws -> TrainConfig {
        var c = TrainConfig()
        switch workload {
        case "A": (c.nLayer, c.nHead, c.nEmbd, c.blockSize, c.batchSize) = (4, 4, 128, 64, 12)
        case "B", "C": (c.nLayer, c.nHead, c.nEmbd, c.blockSize, c.batchSize) = (6, 6, 384, 256, 16)
        case "GPT2": (c.nLayer, c.nHead, c.nEmbd, c.blockSize, c.batchSize, c.vocabSize) = (12, 12, 768, 1024, 8, 50304)
        default: throw ValidationError("--workload: expected A, B, C or GPT2, got '\(workload)'")
        }
        if let batch {
            guard batch >= 1 else { throw ValidationError("--batch must be ≥ 1") }
            c.batchSize = batch
        }
        c.device = device
        c.tf32 = tf32
        if workload == "C" {
            c.useMoE = true
            c.moe.nExp = 8; c.moe.topK = 2; c.moe.stride = 2
            c.moe.useSwitchTfmInit = true
        }
        c.dropout = 0
        switch precision {
        case "fp32": c.mixedPrecision = "none"
        case "bf16": c.mixedPrecision = "bf16"
        default: throw ValidationError("--precision: expected fp32 or bf16, got '\(precision)'")
        }
        c.learningRate = 1e-3; c.minLr = 1e-3; c.decayLr = false; c.warmupIters = 0
        c.weightDecay = 0.1; c.beta1 = 0.9; c.beta2 = 0.99; c.gradClip = 1
        return c
    }

    func run() throws {
        try Nanodecoder.reporting {
            guard steps >= 1, warmup >= 0 else { throw ValidationError("--steps must be ≥ 1 and --warmup ≥ 0") }
            var cfg = try config()
            let target = try CUDACommand.device(device)
            var gpu: CUDABackend? = nil
            if case .cuda(let n) = target { gpu = try CUDACommand.registerBackend(ordinal: n, tf32: tf32) }
            let dataset = try TemporaryCharDataset(text: data, tag: "bench")
            defer { dataset.remove() }
            cfg.dataset = dataset.folder
            try Device.run(target) { try measure(cfg, gpu: gpu) }
        }
    }

    /// Builds the workload on the current device and times its steps.
    private func measure(_ cfg: TrainConfig, gpu: CUDABackend?) throws {
        let task = try LanguageModelTask(config: cfg)
        let model = task.model
        let optimizer = try AdamW(model.trainableParameters(), config: cfg)
        // MFU on a GPU is against its dense bf16 peak (H100 SXM: 989 TFLOP/s) unless given.
        let peak = try peakGflops ?? (gpu != nil ? 989_000 : Trainer.measuredPeakFLOPS() / 1e9)
        let flopsPerToken = task.flopsPerToken ?? 0
        let say: (String) -> Void = json ? { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } : { emit($0) }
        say("workload \(workload): n_layer \(cfg.nLayer), n_embd \(cfg.nEmbd), block \(cfg.blockSize), batch \(cfg.batchSize)"
            + (cfg.useMoE ? ", MoE \(cfg.moe.nExp) experts top-\(cfg.moe.topK) every \(cfg.moe.stride) blocks" : ""))
        say(String(format: "parameters: %d total, %d active; %.3f MFLOP per token; %@; peak %.1f GFLOP/s",
                   model.parameterCount, model.activeParameterCount, flopsPerToken / 1e6, try Device.current.backend.name, peak))
        let generator = Generator(seed: 1337)
        var times: [Double] = [], firstLoss: Float = .nan, lastLoss: Float = .nan
        if compile, let reason = CompiledStep.unsupported(task: task, config: cfg, distributed: false) {
            throw ValidationError("--compile: \(reason)")
        }
        var compiled: (any ReplayableStep)? = nil
        if cfg.computeType == .bfloat16 && gpu == nil {
            let bf16 = CPUBackend.shared.gemm.bf16Support
            say(bf16.native ? "bf16 matmuls: oneDNN \(bf16.detail)" : "bf16 matmuls emulated (operands widened to fp32): oneDNN has none here (\(bf16.detail))")
        }
        try MixedPrecision.run(cfg.computeType) {
            for step in 0..<(warmup + steps) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let value: Float
                if compile, let replay = compiled {
                    guard let replayed = try replay.run(task: task, generator: generator, shard: .whole, learningRate: cfg.learningRate) else {
                        throw ValidationError("--compile: the batch shape changed between steps")
                    }
                    value = replayed.lossSum
                } else if compile && Device.current != .cpu && step > 0 {
                    // A device records a graph after one eager warm-up step.
                    let captured = try GraphStep.capture(task: task, device: Device.current, microSteps: 1, generator: generator, shard: .whole,
                                                         optimizer: cfg.computeType == .float16 ? nil : optimizer,
                                                         maxNorm: cfg.gradClip, learningRate: cfg.learningRate)
                    (compiled, value) = (captured.step, captured.lossSum)
                    say("compile: recorded a \(captured.step.summary)")
                } else if compile && Device.current == .cpu {
                    let captured = try CompiledStep.capture(task: task, microSteps: 1, generator: generator, shard: .whole, fuse: !noFuse)
                    (compiled, value) = (captured.step, captured.lossSum)
                    say("compile: recorded \(captured.step.recordedCount) kernels, replaying \(captured.step.kernelCount): \(captured.step.kernelSummary)")
                } else {
                    model.zeroGrad()
                    let (loss, _) = try task.trainingLoss(step: step, micro: 0, generator: generator, shard: .whole)
                    try loss.total.backward()
                    value = try loss.lm.item()
                }
                if compiled?.includesOptimizer != true {   // a recorded step clips and updates itself
                    try optimizer.clipGradients(maxNorm: cfg.gradClip)
                    try optimizer.update(learningRate: cfg.learningRate)
                }
                try gpu?.gpu.synchronize()   // the step's kernels have finished
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                if step == 0 { firstLoss = value }
                lastLoss = value
                if step >= warmup { times.append(seconds) }
                say(String(format: "%@ step %d: loss %.4f, %.1f ms", step < warmup ? "warmup" : "timed", step, value, seconds * 1000))
            }
        }
        let median = times.sorted()[times.count / 2]
        let tokensPerSecond = Double(cfg.batchSize * cfg.blockSize) / median
        let gflops = flopsPerToken * tokensPerSecond / 1e9
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let rssMB = Double(usage.ru_maxrss) / 1024
        let allocator: (peakLiveBytes: Int, peakReservedBytes: Int) = gpu.map { ($0.allocator.peakLiveBytes, $0.allocator.peakReservedBytes) }
            ?? (CPUBackend.shared.allocator.peakLiveBytes, CPUBackend.shared.allocator.peakReservedBytes)
        let result: [String: Any] = [
            "workload": workload, "impl": compile ? (noFuse ? "nanodecoder-compiled-unfused" : "nanodecoder-compiled") : "nanodecoder", "precision": precision, "threads": Parallel.threads, "device": device,
            "ms_per_step": median * 1000, "tokens_per_s": tokensPerSecond, "gflops": gflops, "mfu": gflops / peak,
            "peak_rss_mb": rssMB, "peak_tensor_mb": Double(allocator.peakLiveBytes) / 1048576,
            "peak_reserved_mb": Double(allocator.peakReservedBytes) / 1048576, "loss": lastLoss, "loss_step0": firstLoss, "params_total": model.parameterCount,
            "params_active": model.activeParameterCount, "flops_per_token": flopsPerToken, "peak_gflops": peak, "steps": steps]
        if json {
            emit(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            emit(String(format: "median %.1f ms/step, %.0f tokens/s, %.1f GFLOP/s, MFU %.1f%%, peak RSS %.0f MB (tensors %.0f MB live, %.0f MB reserved)",
                        median * 1000, tokensPerSecond, gflops, 100 * gflops / peak, rssMB,
                        Double(allocator.peakLiveBytes) / 1048576, Double(allocator.peakReservedBytes) / 1048576))
        }
    }
}
