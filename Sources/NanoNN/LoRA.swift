import NanoEngine

// LoRA (Hu et al. 2021): instead of updating a frozen weight W [out, in], learn a low-rank
// update ΔW = (α / r) · B·A with A [r, in] and B [out, r]. B starts at zero, so a freshly
// adapted model computes exactly what the base model does.

/// The low-rank update of one Linear layer: x ↦ (α/r) · (x·Aᵀ)·Bᵀ.
public final class LoRA: Module {
    /// Down-projection [rank, in], random at start.
    public var a: Tensor
    /// Up-projection [out, rank], zero at start.
    public var b: Tensor
    public let rank: Int
    public let alpha: Float
    public var scale: Float { alpha / Float(rank) }

    public init(inFeatures: Int, outFeatures: Int, rank: Int, alpha: Float, generator: Generator? = nil) throws {
        guard rank >= 1 else { throw TensorError.invalidArgument(op: "LoRA", message: "rank must be ≥ 1, got \(rank)") }
        // Kaiming-uniform bound for A (as in the paper's reference code); B = 0.
        let bound = 1 / Float(inFeatures).squareRoot()
        a = parameter(try Tensor.uniform([rank, inFeatures], low: -bound, high: bound, generator: generator))
        b = parameter(try Tensor.zeros([outFeatures, rank]))
        self.rank = rank
        self.alpha = alpha
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try x.linear(weight: a).linear(weight: b).scaled(by: scale)
    }

    /// ΔW = (α/r) · B·A, shaped like the adapted weight [out, in].
    public func delta() throws -> Tensor {
        try withNoGrad { try b.matmul(a).scaled(by: scale) }
    }
}

/// Which Linear layers of a model get adapters, and how big they are.
public struct LoRASettings: Codable, Equatable, Sendable {
    public var rank: Int
    public var alpha: Float
    /// Groups of layers: "attn" (attention qkv and output projection), "mlp" (MLP fc and proj),
    /// "head" (a separate LM head), or any substring of a Linear layer's name.
    public var targets: [String]

    public init(rank: Int, alpha: Float, targets: [String]) {
        self.rank = rank; self.alpha = alpha; self.targets = targets
    }

    /// Whether the Linear layer called `name` (e.g. "blocks.0.attention.qkv") is a target.
    public func matches(_ name: String) -> Bool {
        targets.contains { target in
            switch target {
            case "attn", "attention": return name.contains("attention.")
            case "mlp": return name.contains(".mlp.")
            default: return name.contains(target)
            }
        }
    }
}

extension Module {
    /// Attaches fresh adapters to the targeted Linear layers and freezes everything else.
    /// Returns the names of the adapted layers; throws when no layer matches.
    @discardableResult
    public func attachLoRA(_ settings: LoRASettings, generator: Generator? = nil) throws -> [String] {
        let targets = namedModules().compactMap { entry -> (String, Linear)? in
            guard let linear = entry.module as? Linear, settings.matches(entry.name) else { return nil }
            return (entry.name, linear)
        }
        guard !targets.isEmpty else {
            let linears = namedModules().filter { $0.module is Linear }.map(\.name)
            throw TensorError.invalidArgument(op: "LoRA", message: "no Linear layer matches targets \(settings.targets.joined(separator: ",")); layers: \(linears.prefix(8).joined(separator: ", "))…")
        }
        setTrainable(false)
        for (_, linear) in targets {
            linear.lora = try LoRA(inFeatures: linear.inFeatures, outFeatures: linear.outFeatures,
                                   rank: settings.rank, alpha: settings.alpha, generator: generator)
        }
        return targets.map(\.0)
    }

    /// Folds every adapter into its layer's weight (W ← W + (α/r)·B·A) and removes the adapters.
    /// Returns the number of merged layers.
    @discardableResult
    public func mergeLoRA() throws -> Int {
        var merged = 0
        for case let linear as Linear in namedModules().map(\.module) {
            guard let lora = linear.lora else { continue }
            let w = try withNoGrad { try linear.weight.detached() + lora.delta() }
            try linear.weight.assign(w)
            linear.lora = nil
            merged += 1
        }
        return merged
    }

    /// The adapter tensors alone, with their full names ("blocks.0.attention.qkv.lora.a").
    public func loraParameters() -> [(name: String, tensor: Tensor)] {
        namedParameters().filter { $0.name.contains(".lora.") || $0.name.hasPrefix("lora.") }
    }
}
