import NanoEngine
import NanoNN

/// What the trainer needs from an optimizer: clipping, the update, and state for checkpoints
/// keyed by parameter name (so any rank count can resume it).
public protocol Optimizer: AnyObject {
    /// Number of updates applied.
    var step: Int { get }
    /// Divides the gradients by `lossScale` (what backward started from, 1 unless float16 loss
    /// scaling is on) and clips them to `maxNorm` (0: no clipping); returns the global norm of the
    /// unscaled gradients before clipping. When that norm is not finite (an overflow) the
    /// gradients are left as they are: the caller skips the step.
    func clipGradients(maxNorm: Float, lossScale: Float) throws -> Float
    func update(learningRate: Float) throws
    /// Moments as named tensors ("m.<name>", "v.<name>"). Collective under ZeRO: every rank calls it.
    func stateTensors() throws -> [(String, Tensor)]
    func load(state: [String: Tensor], step: Int, path: String) throws
}

/// AdamW with decoupled weight decay on a chosen set of parameters (matrices and embeddings),
/// global-norm gradient clipping, and state that checkpoints by parameter name.
public final class AdamW: Optimizer {
    public let parameters: [(name: String, tensor: Tensor)]
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public let decayed: Set<String>
    /// First and second moments by parameter name.
    public private(set) var m: [String: Tensor] = [:], v: [String: Tensor] = [:]
    /// Number of updates applied.
    public var step = 0

    public init(_ parameters: [(name: String, tensor: Tensor)], decayed: Set<String>, beta1: Float, beta2: Float,
                eps: Float, weightDecay: Float) throws {
        self.parameters = parameters
        self.decayed = decayed
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        for (name, p) in parameters {
            m[name] = try Tensor.zeros(p.shape, device: p.device)
            v[name] = try Tensor.zeros(p.shape, device: p.device)
        }
    }

    /// Global L2 norm of all gradients.
    /// AdamW over `trainable` with a config's betas, eps and weight decay, decaying matrices and
    /// embeddings only (`decayedNames`), as the trainer builds it.
    public convenience init(_ trainable: [(name: String, tensor: Tensor)], config: TrainConfig) throws {
        try self.init(trainable, decayed: Self.decayedNames(trainable), beta1: config.beta1, beta2: config.beta2, eps: config.eps,
                      weightDecay: config.weightDecay)
    }

    /// The parameters weight decay applies to: rank ≥ 2 (matrices, embeddings), not biases or norms.
    public static func decayedNames(_ trainable: [(name: String, tensor: Tensor)]) -> Set<String> {
        Set(trainable.filter { $0.tensor.rank >= 2 }.map(\.name))
    }

    /// ‖gradients‖₂, computed on their device and read back once.
    public func gradientNorm() throws -> Float {
        let grads = parameters.compactMap { $0.tensor.grad }
        return grads.isEmpty ? 0 : try Tensor.gradientNorm(grads).item()
    }

    /// The parameters that have gradients, with their moments: [without weight decay, with it].
    private func groups() -> [[AdamWTensors]] {
        var groups: [[AdamWTensors]] = [[], []]
        for (name, p) in parameters {
            guard let g = p.grad, let mt = m[name], let vt = v[name] else { continue }
            groups[decayed.contains(name) ? 1 : 0].append(AdamWTensors(param: p, grad: g, m: mt, v: vt))
        }
        return groups
    }

    /// The step's hyperparameters for the group without (0) or with (1) weight decay.
    private func hyperparameters(group: Int, learningRate: Float) -> AdamWStep {
        AdamWStep(learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps, weightDecay: group == 1 ? weightDecay : 0, step: step)
    }

    /// Unscales gradients by `lossScale`, clips them to `maxNorm` (0: no clipping) and returns the
    /// unscaled norm before clipping (see `Optimizer.clipGradients`). One pass over the gradients.
    @discardableResult
    public func clipGradients(maxNorm: Float, lossScale: Float = 1) throws -> Float {
        let norm = try gradientNorm() / lossScale
        guard let factor = Self.gradientFactor(norm: norm, maxNorm: maxNorm, lossScale: lossScale) else { return norm }
        for (_, p) in parameters { try p.grad?.scaleInPlace(by: factor) }
        return norm
    }

    /// What to multiply gradients by to unscale and clip them, or nil for nothing (factor 1, or a
    /// non-finite norm whose step will be skipped).
    static func gradientFactor(norm: Float, maxNorm: Float, lossScale: Float) -> Float? {
        guard norm.isFinite else { return nil }
        var factor = 1 / lossScale
        if maxNorm > 0 && norm > maxNorm { factor *= maxNorm / (norm + 1e-6) }
        return factor == 1 ? nil : factor
    }

    /// One update with the given learning rate. Parameters without a gradient are skipped.
    public func update(learningRate: Float) throws {
        step += 1
        // Two groups (with and without weight decay), each one call for all its parameters.
        for (i, group) in groups().enumerated() where !group.isEmpty {
            try Tensor.adamWUpdate(group, hyperparameters(group: i, learningRate: learningRate))
        }
    }

    /// A step kept in device memory, for a recorded graph: hyperparameters per group (without and
    /// with weight decay), rewritten before each replay, and the gradient norm the graph writes.
    public final class DeviceStep {
        let hyper: [Tensor]
        /// ‖gradients‖₂ before clipping, written by each replay.
        public let norm: Tensor
        init(hyper: [Tensor], norm: Tensor) { self.hyper = hyper; self.norm = norm }
    }

    /// Makes the step's device memory (call it before recording: it must outlive the graph).
    public func makeDeviceStep(on device: Device) throws -> DeviceStep {
        DeviceStep(hyper: [try Tensor.zeros([9], device: device), try Tensor.zeros([9], device: device)],
                   norm: try Tensor.zeros([1], device: device))
    }

    /// Enqueues clipping to `maxNorm` (0: none) and the update, reading the step from device memory:
    /// what `clipGradients` and `update` do, for recording in a graph (no value is read back).
    public func enqueueDeviceStep(_ s: DeviceStep, maxNorm: Float) throws {
        let groups = groups()
        let grads = parameters.compactMap { $0.tensor.grad }
        guard !grads.isEmpty else { return }
        try s.norm.assign(try Tensor.gradientNorm(grads))
        // The factor clipGradients computes: maxNorm / (norm + 1e-6) when norm > maxNorm, else 1.
        let one = try Tensor.full([1], value: 1, device: s.norm.device)
        let factor = maxNorm > 0
            ? try Tensor.where(try s.norm.affine(scale: 1, shift: -maxNorm).relu(),
                               try Tensor.full([1], value: maxNorm, device: s.norm.device) / (try s.norm.affine(scale: 1, shift: 1e-6)), one)
            : one
        for (hyper, group) in zip(s.hyper, groups) where !group.isEmpty {
            try Tensor.adamWUpdate(group, hyper: hyper, gradScale: factor)
        }
    }

    /// Counts a step and writes its hyperparameters for the next replay of a recorded device step.
    public func prepareDeviceStep(_ s: DeviceStep, learningRate: Float) throws {
        step += 1
        for (i, hyper) in s.hyper.enumerated() {
            try hyper.assign(try Tensor(hyperparameters(group: i, learningRate: learningRate).deviceLayout, shape: [9], device: hyper.device))
        }
    }

    /// Moments as named tensors for a checkpoint ("m.<name>", "v.<name>").
    public func stateTensors() -> [(String, Tensor)] {
        parameters.flatMap { [("m." + $0.name, m[$0.name]!), ("v." + $0.name, v[$0.name]!)] }
    }

    /// Restores moments saved by `stateTensors`.
    public func load(state: [String: Tensor], step: Int, path: String) throws {
        for (name, p) in parameters {
            for (prefix, target) in [("m.", m[name]!), ("v.", v[name]!)] {
                guard let t = state[prefix + name], t.shape == p.shape else {
                    throw FileFormatError.invalid(path: path, reason: "optimizer state '\(prefix + name)' is missing or not shaped \(p.shape)")
                }
                try target.assign(t)
            }
        }
        self.step = step
    }
}
