import NanoCPU
import NanoEngine
import NanoModels

/// `compile: true` for pre-training. The first step runs eagerly while the CPU backend records
/// every kernel it launches (the forward and backward of each micro-step, in a `KernelTape`).
/// Later steps write the new batch into the recorded input tensors and replay the kernels: no
/// graph is built, no tensor allocated, no shape checked, and the buffers are the ones the first
/// step's allocator planned (a block freed during the step was reused by a later tensor of the
/// same step). Chains of row-wise kernels (residual add then LayerNorm, GELU's derivative then
/// GELU again) are fused into one pass over blocks of rows (`KernelTape.fuseRowChains`).
/// The optimizer update stays eager: it is one fused kernel per parameter already,
/// and its learning rate and clipping factor change every step.
///
/// What replays correctly is what launches the same kernels every step: a dense model without
/// dropout on fixed-shape batches. `CompiledStep.unsupported` names why anything else runs eagerly.
public final class CompiledStep {
    private let tape: KernelTape
    private let backend: CPUBackend
    /// Per micro-step: aliases of the token and target tensors the recording reads, and of its LM loss.
    private let inputs: [(x: Tensor, y: Tensor)]
    private let losses: [Tensor]

    /// Why a task/config cannot be compiled (nil when it can). `distributed`: gradients are
    /// reduced across ranks by something a recording cannot hold (MPI on host memory).
    public static func unsupported(task: any TrainingTask, config: TrainConfig, distributed: Bool) -> String? {
        guard let lm = task as? LanguageModelTask else { return "only pre-training is compiled (fine-tuning batches change shape)" }
        if lm.model.config.moe != nil { return "MoE routing is decided on the host every step" }
        if config.dropout > 0 { return "dropout draws new masks every step" }
        if distributed && config.zero == 1 { return "ZeRO-1's sharded optimizer step runs eagerly" }
        if distributed {
            return "data parallelism reduces gradients with MPI in host memory during backward, which a recording cannot hold "
                + "(on GPUs, NCCL's reductions are recorded: device.collective: auto or nccl)"
        }
        if config.trainingDevice != .cpu && !((try? config.trainingDevice.backend) is any GraphCapturing) {
            return "\(config.device)'s backend does not record graphs"
        }
        if config.computeType == .float16 { return "fp16 loss scaling changes the backward seed between steps" }
        return nil
    }

    /// Runs one eager training step (every micro-step's forward and backward) while recording it.
    /// Returns the recording and the summed LM loss of the micro-steps.
    /// `fuse: false` replays the kernels exactly as recorded (for comparison).
    public static func capture(task: LanguageModelTask, microSteps: Int, generator: Generator, shard: DataShard,
                               fuse: Bool = true) throws -> (step: CompiledStep, lossSum: Float, tokens: Int) {
        let backend = CPUBackend.shared
        let tape = KernelTape()
        var inputs: [(x: Tensor, y: Tensor)] = [], losses: [Tensor] = []
        var lossSum: Float = 0, tokens = 0
        task.module.zeroGrad()
        backend.recording = tape
        defer { backend.recording = nil }
        for _ in 0..<microSteps {
            // The batch is written outside the recording: replay writes each new batch instead.
            backend.recording = nil
            let (x, y) = try task.trainingBatch(generator: generator, shard: shard)
            backend.recording = tape
            inputs.append((tape.alias(x), tape.alias(y)))
            let loss = try task.model.loss(x, targets: y, training: true)
            losses.append(tape.alias(loss.lm))
            try loss.total.backward(gradient: Tensor.full([], value: 1 / Float(microSteps)))
            tape.endSegment()
            lossSum += try loss.lm.item()
            tokens += x.count
        }
        backend.recording = nil
        backend.allocator.pin(tape.blocks)
        let recorded = tape.count
        if fuse {
            tape.fuseRowChains { rows, cost, body in Parallel.forRange(rows, costPerItem: cost) { body($0) } }
        }
        let step = CompiledStep(tape: tape, backend: backend, inputs: inputs, losses: losses, recordedCount: recorded)
        return (step, lossSum, tokens)
    }

    private init(tape: KernelTape, backend: CPUBackend, inputs: [(x: Tensor, y: Tensor)], losses: [Tensor], recordedCount: Int) {
        self.tape = tape; self.backend = backend; self.inputs = inputs; self.losses = losses; self.recordedCount = recordedCount
    }

    /// Kernels the first step launched; `kernelCount` is what replays after fusion.
    public let recordedCount: Int

    deinit { backend.allocator.unpin(tape.blocks) }

    /// Number of kernels one step replays (after fusion).
    public var kernelCount: Int { tape.count }

    /// How many of each kernel one step replays, most frequent first ("matmul ×62, …").
    public var kernelSummary: String {
        Dictionary(tape.names.map { ($0, 1) }, uniquingKeysWith: +).sorted { ($0.value, $1.key) > ($1.value, $0.key) }
            .map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
    }

    /// One step's forward and backward by replay; nil (nothing run) when a batch's shape differs
    /// from the recorded one, so the caller runs the step eagerly.
    public func run(task: LanguageModelTask, generator: Generator, shard: DataShard) throws -> (lossSum: Float, tokens: Int)? {
        // The batches come from the generator in the same order as in eager mode.
        let batches = try inputs.map { _ in try task.trainingBatch(generator: generator, shard: shard) }
        for (batch, recorded) in zip(batches, inputs) where batch.x.shape != recorded.x.shape || batch.y.shape != recorded.y.shape {
            return nil
        }
        var lossSum: Float = 0, tokens = 0
        for (micro, (batch, recorded)) in zip(batches, inputs).enumerated() {
            try recorded.x.assign(batch.x)
            try recorded.y.assign(batch.y)
            tape.replay(segment: micro)
            lossSum += try losses[micro].item()
            tokens += batch.x.count
        }
        return (lossSum, tokens)
    }
}
