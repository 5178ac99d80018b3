// Ops that change shape or layout: reshape (a view), permute/transpose (copies), concat,
// slice/split, and dtype casts.

extension Tensor {
    /// Same elements, new shape (a view: no copy). One dimension may be −1.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var target = newShape
        if let hole = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != hole }.map(\.element).reduce(1, *)
            guard known > 0, count % known == 0 else {
                throw TensorError.shapeMismatch(op: "reshape", shapes: [shape, newShape], expected: "a shape with \(count) elements")
            }
            target[hole] = count / known
        }
        guard Shape.count(target) == count, target.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.shapeMismatch(op: "reshape", shapes: [shape, newShape], expected: "a shape with \(count) elements")
        }
        let view = Tensor(shape: target, dtype: dtype, storage: storage, offset: offset, backend: backend)
        return Tensor.record("reshape", output: view, inputs: [self]) { [shape] g in [try g.reshaped(shape)] }
    }

    /// Axes reordered: output axis i is input axis order[i].
    public func permuted(_ order: [Int]) throws -> Tensor {
        let perm = try order.map { try axisIndex($0, op: "permute") }
        guard perm.count == rank, Set(perm).count == rank else {
            throw TensorError.invalidArgument(op: "permute", message: "order \(order) is not a permutation of the \(rank) axes of \(shape)")
        }
        if perm == Array(0..<rank) { return self }
        let out = try emptyLike(perm.map { shape[$0] }, dtype: dtype)
        backend.permute(self, perm, out)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return Tensor.record("permute", output: out, inputs: [self]) { g in [try g.permuted(inverse)] }
    }

    /// Swaps two axes.
    public func transposed(_ a: Int = -2, _ b: Int = -1) throws -> Tensor {
        var order = Array(0..<rank)
        let i = try axisIndex(a, op: "transpose"), j = try axisIndex(b, op: "transpose")
        order.swapAt(i, j)
        return try permuted(order)
    }

    /// Elements [start, start + length) along an axis (a copy).
    public func slice(axis: Int, start: Int, length: Int) throws -> Tensor {
        let a = try axisIndex(axis, op: "slice")
        guard start >= 0, length >= 0, start + length <= shape[a] else {
            throw TensorError.invalidArgument(op: "slice", message: "range \(start)..<\(start + length) is outside axis \(a) of size \(shape[a]) in \(shape)")
        }
        var outShape = shape
        outShape[a] = length
        let out = try emptyLike(outShape, dtype: dtype)
        backend.copySlices(self, AxisView(shape: shape, axis: a), srcStart: start, out, AxisView(shape: outShape, axis: a),
                           dstStart: 0, length: length)
        return Tensor.record("slice", output: out, inputs: [self]) { [shape] g in
            let dx = try Tensor.zeros(shape, device: g.device)
            g.backend.copySlices(g, AxisView(shape: outShape, axis: a), srcStart: 0, dx, AxisView(shape: shape, axis: a),
                                 dstStart: start, length: length)
            return [dx]
        }
    }

    /// Splits along an axis into pieces of the given sizes.
    public func split(_ sizes: [Int], axis: Int) throws -> [Tensor] {
        let a = try axisIndex(axis, op: "split")
        guard sizes.reduce(0, +) == shape[a] else {
            throw TensorError.invalidArgument(op: "split", message: "sizes \(sizes) sum to \(sizes.reduce(0, +)), axis \(a) of \(shape) has \(shape[a])")
        }
        var start = 0
        return try sizes.map { n in defer { start += n }; return try slice(axis: a, start: start, length: n) }
    }

    /// Joins tensors along an axis; all other dimensions must agree.
    public static func concat(_ tensors: [Tensor], axis: Int) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError.invalidArgument(op: "concat", message: "no tensors to join") }
        let a = try first.axisIndex(axis, op: "concat")
        try requireSameDevice("concat", tensors)
        for t in tensors {
            var s1 = t.shape, s0 = first.shape
            guard t.rank == first.rank, t.dtype == first.dtype else {
                throw TensorError.shapeMismatch(op: "concat", shapes: tensors.map(\.shape), expected: "equal ranks and dtypes")
            }
            s1[a] = 0; s0[a] = 0
            guard s1 == s0 else {
                throw TensorError.shapeMismatch(op: "concat", shapes: tensors.map(\.shape), expected: "equal sizes except along axis \(a)")
            }
        }
        var outShape = first.shape
        outShape[a] = tensors.map { $0.shape[a] }.reduce(0, +)
        let out = try first.emptyLike(outShape, dtype: first.dtype)
        let outView = AxisView(shape: outShape, axis: a)
        var start = 0
        for t in tensors {
            first.backend.copySlices(t, AxisView(shape: t.shape, axis: a), srcStart: 0, out, outView, dstStart: start, length: t.shape[a])
            start += t.shape[a]
        }
        let sizes = tensors.map { $0.shape[a] }
        return record("concat", output: out, inputs: tensors) { g in try g.split(sizes, axis: a).map { $0 } }
    }

    /// Converts to another dtype. Gradients flow back through float casts.
    /// A copy of this tensor on `device` (itself when it is already there), through host memory.
    /// Recorded: the gradient flows back to this tensor's device.
    public func to(_ device: Device) throws -> Tensor {
        if device == self.device { return self }
        let out = try Tensor.empty(shape, dtype: dtype, device: device)
        bytes().withUnsafeBytes { out.backend.write($0, to: out) }
        guard dtype.isFloatingPoint else { return out }
        return Tensor.record("to(\(device))", output: out, inputs: [self]) { [from = self.device] g in [try g.to(from)] }
    }

    public func cast(to target: DType) throws -> Tensor {
        if target == dtype { return self }
        let out = try emptyLike(shape, dtype: target)
        backend.cast(self, to: out)
        guard dtype.isFloatingPoint && target.isFloatingPoint else { return out }
        return Tensor.record("cast", output: out, inputs: [self]) { [dtype] g in [try g.cast(to: dtype)] }
    }
}
