import NanoEngine

/// A training step's forward and backward that replays without the Swift code that built it:
/// `CompiledStep` on the CPU, `GraphStep` on a device that records graphs.
public protocol ReplayableStep: AnyObject {
    /// One step by replay, with the same batches eager mode would draw; nil (nothing run) when a
    /// batch's shape differs from the recorded one. `learningRate` is this step's, for a step that
    /// recorded the optimizer too.
    func run(task: LanguageModelTask, generator: Generator, shard: DataShard, learningRate: Float) throws -> (lossSum: Float, tokens: Int)?
    /// For the log: what was recorded.
    var summary: String { get }
    /// Whether a replay also clips and updates the parameters (the caller must not).
    var includesOptimizer: Bool { get }
    /// The gradient norm before clipping of the last replay, when the optimizer is recorded.
    func lastGradientNorm() throws -> Float?
}

extension CompiledStep: ReplayableStep {
    public var summary: String { "recorded \(recordedCount) kernels, \(kernelCount) after fusing row-wise chains" }
    /// The CPU's compiled step records forward and backward only.
    public var includesOptimizer: Bool { false }
    public func lastGradientNorm() throws -> Float? { nil }
    public func run(task: LanguageModelTask, generator: Generator, shard: DataShard, learningRate: Float) throws -> (lossSum: Float, tokens: Int)? {
        try run(task: task, generator: generator, shard: shard)
    }
}

/// `compile: true` on a device whose backend records graphs (`GraphCapturing`: CUDA graphs on
/// NVIDIA GPUs). After one eager warm-up step (which fills the allocator's cache and the GEMM
/// plans), the next step's forward and backward over every micro-step, gradients zeroed first,
/// are recorded as one graph, and every step from then on writes its batches into the recorded
/// input tensors and replays the graph: one launch instead of thousands, and no Swift on the
/// host between kernels. Under data parallelism the gradient buckets' reductions (a
/// `DeviceCollective` that `recordsInGraphs`: NCCL) are recorded too, in the order backward
/// starts them. Given the optimizer, the graph also computes the gradient norm, clips
/// and applies AdamW, reading the step's hyperparameters from device memory rewritten before
/// each replay (`AdamW.DeviceStep`).
public final class GraphStep: ReplayableStep {
    private let graph: any DeviceGraph
    /// Per micro-step: the token and target tensors the graph reads, and the LM loss it writes.
    private let inputs: [(x: Tensor, y: Tensor)]
    private let losses: [Tensor]
    /// The optimizer step recorded with forward and backward, when it was.
    private let optimizer: (adamW: AdamW, state: AdamW.DeviceStep)?
    /// The collective whose reductions the graph holds, asked after each replay for errors.
    private let collective: DeviceCollective?
    public var summary: String {
        let parts = ["forward", "backward"] + (collective != nil ? ["all-reduce"] : []) + (optimizer != nil ? ["clipping", "AdamW"] : [])
        return graph.summary + " (" + parts.dropLast().joined(separator: ", ") + " and " + parts.last! + ")"
    }
    public var includesOptimizer: Bool { optimizer != nil }
    public func lastGradientNorm() throws -> Float? { try optimizer.map { try $0.state.norm.item() } }

    private init(graph: any DeviceGraph, inputs: [(x: Tensor, y: Tensor)], losses: [Tensor], optimizer: (AdamW, AdamW.DeviceStep)?,
                 collective: DeviceCollective?) {
        self.graph = graph; self.inputs = inputs; self.losses = losses; self.optimizer = optimizer; self.collective = collective
    }

    /// Records one step on `device` and runs it (by replaying the graph once). Returns the step
    /// and the summed LM loss and tokens of its micro-steps. With `optimizer`, the graph also
    /// clips the gradients to `maxNorm` and applies AdamW at `learningRate` (this step's), with
    /// its hyperparameters in device memory, rewritten before each replay. With `bucketer`, the
    /// last micro-step's backward also averages the gradients across ranks in the graph.
    public static func capture(task: LanguageModelTask, device: Device, microSteps: Int, generator: Generator, shard: DataShard,
                               optimizer: AdamW? = nil, maxNorm: Float = 0, learningRate: Float = 0) throws -> (step: GraphStep, lossSum: Float, tokens: Int) {
        try capture(task: task, device: device, microSteps: microSteps, generator: generator, shard: shard, bucketer: nil,
                    optimizer: optimizer, maxNorm: maxNorm, learningRate: learningRate)
    }

    static func capture(task: LanguageModelTask, device: Device, microSteps: Int, generator: Generator, shard: DataShard,
                        bucketer: GradientBucketer?, optimizer: AdamW?, maxNorm: Float,
                        learningRate: Float) throws -> (step: GraphStep, lossSum: Float, tokens: Int) {
        guard let backend = try device.backend as? GraphCapturing else {
            throw TensorError.backendUnavailable(device: device, message: "its backend does not record graphs")
        }
        if let bucketer {
            guard let collective = bucketer.collective, collective.recordsInGraphs else {
                throw TensorError.invalidArgument(op: "GraphStep.capture", message: "the gradients are reduced by "
                    + (bucketer.collective.map { "\($0.name), which cannot be recorded into a graph" } ?? "MPI in host memory, which a graph cannot hold"))
            }
        }
        // Batches come from the generator in eager order; the graph reads these tensors.
        let inputs = try (0..<microSteps).map { _ in try task.trainingBatch(generator: generator, shard: shard) }
        var losses: [Tensor] = []
        let optimizerState = try optimizer.map { try $0.makeDeviceStep(on: device) }
        // Language-model targets are tokens, never ignored: the loss needs no read-back of them.
        let graph = try GraphRecording.$targetsAreAllValid.withValue(true) {
            try backend.captureGraph {
                task.module.zeroGrad()
                for (micro, (x, y)) in inputs.enumerated() {
                    let loss = try task.model.loss(x, targets: y, training: true)
                    losses.append(loss.lm)
                    try GradientBucketer.backward(loss.total, seed: Tensor.full([], value: 1 / Float(microSteps)),
                                                  reducingWith: micro == microSteps - 1 ? bucketer : nil)
                }
                if let optimizer, let optimizerState { try optimizer.enqueueDeviceStep(optimizerState, maxNorm: maxNorm) }
            }
        }
        let step = GraphStep(graph: graph, inputs: inputs, losses: losses, optimizer: optimizer.map { ($0, optimizerState!) },
                             collective: bucketer?.collective)
        if let optimizer, let optimizerState { try optimizer.prepareDeviceStep(optimizerState, learningRate: learningRate) }
        try step.replay()
        return (step, try step.lossSum(), inputs.reduce(0) { $0 + $1.x.count })
    }

    public func run(task: LanguageModelTask, generator: Generator, shard: DataShard, learningRate: Float) throws -> (lossSum: Float, tokens: Int)? {
        let batches = try inputs.map { _ in try task.trainingBatch(generator: generator, shard: shard) }
        for (batch, recorded) in zip(batches, inputs) where batch.x.shape != recorded.x.shape || batch.y.shape != recorded.y.shape {
            return nil
        }
        for (batch, recorded) in zip(batches, inputs) {
            try recorded.x.assign(batch.x)
            try recorded.y.assign(batch.y)
        }
        if let optimizer { try optimizer.adamW.prepareDeviceStep(optimizer.state, learningRate: learningRate) }
        try replay()
        return (try lossSum(), batches.reduce(0) { $0 + $1.x.count })
    }

    private func replay() throws {
        try graph.replay()
        try collective?.checkForErrors()
    }

    private func lossSum() throws -> Float { try losses.reduce(0) { $0 + (try $1.item()) } }
}
