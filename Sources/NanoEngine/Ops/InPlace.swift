// In-place updates for optimizers and bookkeeping. They record no graph; use them on leaves
// (parameters, gradients, optimizer state), never inside a forward pass.

extension Tensor {
    /// Overwrites every element.
    public func fill(with value: Float) { backend.fill(self, value: value) }

    /// Copies `other`'s elements into this tensor (same shape and dtype).
    public func assign(_ other: Tensor) throws {
        guard other.shape == shape, other.dtype == dtype else {
            throw TensorError.shapeMismatch(op: "assign", shapes: [shape, other.shape], expected: "equal shapes and dtypes (\(dtype) vs \(other.dtype))")
        }
        // From another device (a checkpoint read into host memory, say): through the host.
        backend.copy(other.device == device ? other : try withNoGrad { try other.to(device) }, to: self)
    }

    /// self ← a·self.
    public func scaleInPlace(by a: Float) throws {
        try requireFloat32("scaleInPlace")
        backend.unary(.affine(a, 0), self, self)
    }

    /// Σ x² (double accumulation), e.g. for gradient norms.
    public func sumOfSquares() throws -> Double {
        try requireFloat32("sumOfSquares")
        return backend.sumOfSquares(self)
    }

    /// One AdamW step on this parameter with its gradient and moment buffers.
    public func adamWUpdate(grad: Tensor, m: Tensor, v: Tensor, _ step: AdamWStep) throws {
        for t in [grad, m, v] where t.shape != shape || t.dtype != .float32 {
            throw TensorError.shapeMismatch(op: "adamW", shapes: [shape, t.shape], expected: "gradient and moments shaped like the parameter")
        }
        backend.adamW(param: self, grad: grad, m: m, v: v, step)
    }

    /// ‖tensors‖₂ as a one-element float32 tensor on their device, computed there (nothing is read
    /// back, so a recorded graph can hold it).
    public static func gradientNorm(_ tensors: [Tensor]) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError.invalidArgument(op: "gradientNorm", message: "no tensors") }
        for t in tensors { try t.requireFloat32("gradientNorm") }
        try requireSameDevice("gradientNorm", tensors)
        let out = try Tensor.empty([1], device: first.device)
        first.backend.gradientNorm(tensors, into: out)
        return out
    }

    /// AdamW on many parameters with hyperparameters in device memory (`AdamWStep.deviceLayout`,
    /// rewritten before each replay of a recorded step) and gradients scaled by `gradScale[0]`.
    public static func adamWUpdate(_ tensors: [AdamWTensors], hyper: Tensor, gradScale: Tensor) throws {
        guard let first = tensors.first else { return }
        guard hyper.count == 9, gradScale.count == 1, hyper.dtype == .float32, gradScale.dtype == .float32 else {
            throw TensorError.invalidArgument(op: "adamW", message: "expected float32 hyper [9] and gradScale [1], got \(hyper.shape), \(gradScale.shape)")
        }
        for t in tensors { try requireAdamW(t, alongside: [hyper, gradScale]) }
        first.param.backend.adamW(tensors, hyper: hyper, gradScale: gradScale)
    }

    /// One AdamW step on many parameters with the same hyperparameters: one call per device
    /// (on a GPU, one kernel launch for all of them).
    public static func adamWUpdate(_ tensors: [AdamWTensors], _ step: AdamWStep) throws {
        var byDevice: [Device: [AdamWTensors]] = [:], order: [Device] = []
        for t in tensors {
            try requireAdamW(t)
            if byDevice[t.param.device] == nil { order.append(t.param.device) }
            byDevice[t.param.device, default: []].append(t)
        }
        for d in order { byDevice[d]![0].param.backend.adamW(byDevice[d]!, step) }
    }

    /// A parameter, its gradient and moments: float32, one shape, on one device (with `alongside`).
    private static func requireAdamW(_ t: AdamWTensors, alongside: [Tensor] = []) throws {
        for x in [t.grad, t.m, t.v] where x.shape != t.param.shape || x.dtype != .float32 || t.param.dtype != .float32 {
            throw TensorError.shapeMismatch(op: "adamW", shapes: [t.param.shape, x.shape], expected: "float32 gradient and moments shaped like the parameter")
        }
        try requireSameDevice("adamW", [t.param, t.grad, t.m, t.v] + alongside)
    }
}
