import NanoEngine

/// A parameter: a leaf tensor that requires grad.
public func parameter(_ t: Tensor) -> Tensor {
    t.requiresGrad = true
    t.isParameter = true
    return t
}

/// y = x·Wᵀ + b, weight [out, in]; plus a low-rank update when a LoRA adapter is attached.
public final class Linear: Module {
    public var weight: Tensor
    public var bias: Tensor?
    /// Low-rank adapter (see `LoRA`); nil for a plain layer.
    public var lora: LoRA?

    /// Weights from N(0, std²) (GPT-2 uses 0.02), bias zero.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, std: Float = 0.02, generator: Generator? = nil) throws {
        weight = parameter(try Tensor.randn([outFeatures, inFeatures], std: std, generator: generator))
        self.bias = bias ? parameter(try Tensor.zeros([outFeatures])) : nil
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try x.linear(weight: weight, bias: bias)
        guard let lora else { return y }
        return try y + lora(x)
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }
}

/// LayerNorm over the last axis with learned scale (and optional shift).
public final class LayerNorm: Module {
    public var weight: Tensor
    public var bias: Tensor?
    public let eps: Float

    public init(_ features: Int, bias: Bool = true, eps: Float = 1e-5) throws {
        weight = parameter(try Tensor.ones([features]))
        self.bias = bias ? parameter(try Tensor.zeros([features])) : nil
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.layerNorm(weight: weight, bias: bias, eps: eps) }
}

/// Token (or position) embedding table [count, dim].
public final class Embedding: Module {
    public var weight: Tensor

    public init(_ count: Int, _ dim: Int, std: Float = 0.02, generator: Generator? = nil) throws {
        weight = parameter(try Tensor.randn([count, dim], std: std, generator: generator))
    }

    public func callAsFunction(_ tokens: Tensor) throws -> Tensor { try weight.embedding(tokens) }
}
