// Pointwise ops: activations, broadcasting arithmetic, select/masked fill, scalar arithmetic.

extension Tensor {
    func unaryOp(_ op: UnaryOp, _ name: String) throws -> Tensor {
        try requireFloat32(name)
        let y = try emptyLike(shape)
        backend.unary(op, self, y)
        return Tensor.record(name, output: y, inputs: [self]) { [x = self] dy in
            let dx = try x.emptyLike(x.shape)
            x.backend.unaryBackward(op, x: x, dy: dy, dx: dx)
            return [dx]
        }
    }

    /// GELU, tanh approximation (Hendrycks & Gimpel 2016, as in GPT-2).
    public func gelu() throws -> Tensor { try unaryOp(.gelu, "gelu") }
    public func relu() throws -> Tensor { try unaryOp(.relu, "relu") }
    /// x·σ(x).
    public func silu() throws -> Tensor { try unaryOp(.silu, "silu") }
    /// log(1 + eˣ).
    public func softplus() throws -> Tensor { try unaryOp(.softplus, "softplus") }
    public func exp() throws -> Tensor { try unaryOp(.exp, "exp") }
    public func log() throws -> Tensor { try unaryOp(.log, "log") }
    public func tanh() throws -> Tensor { try unaryOp(.tanh, "tanh") }
    public func sigmoid() throws -> Tensor { try unaryOp(.sigmoid, "sigmoid") }
    public func square() throws -> Tensor { try unaryOp(.square, "square") }
    public func sqrt() throws -> Tensor { try unaryOp(.sqrt, "sqrt") }
    /// a·x + b.
    public func affine(scale a: Float, shift b: Float = 0) throws -> Tensor { try unaryOp(.affine(a, b), "affine") }
    public func scaled(by a: Float) throws -> Tensor { try affine(scale: a) }

    static func binaryOp(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, _ name: String) throws -> Tensor {
        try a.requireFloat32(name)
        try b.requireFloat32(name)
        try requireSameDevice(name, [a, b])
        guard let outShape = Shape.broadcast(a.shape, b.shape) else {
            throw TensorError.shapeMismatch(op: name, shapes: [a.shape, b.shape], expected: "shapes that broadcast (equal, or 1, per trailing axis)")
        }
        let out = try a.emptyLike(outShape)
        a.backend.binary(op, a, b, out)
        // add and sub keep only shapes: their inputs' values are freed as soon as forward drops them.
        let (aShape, bShape, aNeeds, bNeeds) = (a.shape, b.shape, a.requiresGrad, b.requiresGrad)
        let saved = op == .mul || op == .div ? (a, b) : nil
        return record(name, output: out, inputs: [a, b]) { g in
            switch op {
            case .add: return [try g.sum(to: aShape), try g.sum(to: bShape)]
            case .sub: return [try g.sum(to: aShape), try g.affine(scale: -1).sum(to: bShape)]
            case .mul:
                let (a, b) = saved!
                return [aNeeds ? try (g * b).sum(to: aShape) : nil, bNeeds ? try (g * a).sum(to: bShape) : nil]
            case .div:
                let (a, b) = saved!
                let ga = try g / b
                return [aNeeds ? try ga.sum(to: aShape) : nil,
                        bNeeds ? try (ga * a / b).affine(scale: -1).sum(to: bShape) : nil]
            }
        }
    }

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try binaryOp(.add, a, b, "add") }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try binaryOp(.sub, a, b, "sub") }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try binaryOp(.mul, a, b, "mul") }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try binaryOp(.div, a, b, "div") }
    public static func + (a: Tensor, b: Float) throws -> Tensor { try a.affine(scale: 1, shift: b) }
    public static func - (a: Tensor, b: Float) throws -> Tensor { try a.affine(scale: 1, shift: -b) }
    public static func * (a: Tensor, b: Float) throws -> Tensor { try a.affine(scale: b) }
    public static func / (a: Tensor, b: Float) throws -> Tensor { try a.affine(scale: 1 / b) }
    public static prefix func - (a: Tensor) throws -> Tensor { try a.affine(scale: -1) }

    /// self + other (used by autograd to sum gradients).
    public func adding(_ other: Tensor) throws -> Tensor { try self + other }

    /// Sums a broadcast gradient back to `target` (the shape an input had before broadcasting).
    public func sum(to target: [Int]) throws -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        guard lead >= 0 else {
            throw TensorError.shapeMismatch(op: "sum(to:)", shapes: [shape, target], expected: "a target that this shape broadcasts from")
        }
        var axes: [Int] = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        return try sum(axes: axes, keepDims: true).reshaped(target)
    }

    /// Broadcasts to `target` (copying), with gradient summed back.
    public func expanded(to target: [Int]) throws -> Tensor {
        try requireFloat32("expand")
        guard Shape.broadcast(shape, target) == target else {
            throw TensorError.shapeMismatch(op: "expand", shapes: [shape, target], expected: "a target this shape broadcasts to")
        }
        let out = try emptyLike(target)
        let zero = try Tensor.zeros([], device: device)
        backend.binary(.add, self, zero, out)
        return Tensor.record("expand", output: out, inputs: [self]) { [shape] g in [try g.sum(to: shape)] }
    }

    /// Elementwise `condition ≠ 0 ? a : b` with broadcasting; condition is a float32 mask.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        for t in [condition, a, b] { try t.requireFloat32("where") }
        try requireSameDevice("where", [condition, a, b])
        guard let ab = Shape.broadcast(a.shape, b.shape), let outShape = Shape.broadcast(condition.shape, ab) else {
            throw TensorError.shapeMismatch(op: "where", shapes: [condition.shape, a.shape, b.shape], expected: "shapes that broadcast together")
        }
        let out = try a.emptyLike(outShape)
        a.backend.select(condition, a, b, out)
        return record("where", output: out, inputs: [a, b]) { g in
            let zero = try Tensor.zeros([], device: g.device)
            return [a.requiresGrad ? try withNoGrad { try Tensor.where(condition, g, zero) }.sum(to: a.shape) : nil,
                    b.requiresGrad ? try withNoGrad { try Tensor.where(condition, zero, g) }.sum(to: b.shape) : nil]
        }
    }

    /// Replaces elements where mask ≠ 0 with value (e.g. −∞ before a softmax).
    public func maskedFill(_ mask: Tensor, value: Float) throws -> Tensor {
        try Tensor.where(mask, try Tensor(scalar: value, device: device), self)
    }
}
