// Reductions: sum and mean over axes, max over one axis, cumulative sum.

extension Tensor {
    /// Sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        try requireFloat32("sum")
        let list = try (axes ?? Array(0..<rank)).map { try axisIndex($0, op: "sum") }
        var keptShape = shape
        var x = detached()
        for a in Set(list).sorted(by: >) {
            let view = AxisView(shape: keptShape, axis: a)
            keptShape[a] = 1
            let out = try emptyLike(keptShape)
            backend.reduce(.sum, x, view, out)
            x = out
        }
        let finalShape = keepDims ? keptShape : shape.enumerated().filter { !list.contains($0.offset) }.map(\.element)
        let out = Tensor(shape: finalShape, dtype: .float32, storage: x.storage, offset: x.offset, backend: backend)
        return Tensor.record("sum", output: out, inputs: [self]) { [shape] g in
            [try g.reshaped(keptShape).expanded(to: shape)]
        }
    }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let list = try (axes ?? Array(0..<rank)).map { try axisIndex($0, op: "mean") }
        let n = Set(list).map { shape[$0] }.reduce(1, *)
        return try sum(axes: list, keepDims: keepDims).scaled(by: 1 / Float(Swift.max(n, 1)))
    }

    /// Maximum over one axis (no gradient; use for statistics and masks).
    public func max(axis: Int, keepDims: Bool = false) throws -> Tensor {
        try requireFloat32("max")
        let a = try axisIndex(axis, op: "max")
        var kept = shape
        kept[a] = 1
        let out = try emptyLike(keepDims ? kept : shape.enumerated().filter { $0.offset != a }.map(\.element))
        backend.reduce(.max, self, AxisView(shape: shape, axis: a), out)
        return out
    }

    /// Running sum along an axis.
    public func cumsum(axis: Int, reverse: Bool = false) throws -> Tensor {
        try requireFloat32("cumsum")
        let a = try axisIndex(axis, op: "cumsum")
        let out = try emptyLike(shape)
        let view = AxisView(shape: shape, axis: a)
        backend.cumsum(self, view, out, reverse: reverse)
        return Tensor.record("cumsum", output: out, inputs: [self]) { g in
            let dx = try g.emptyLike(g.shape)
            g.backend.cumsum(g, view, dx, reverse: !reverse)
            return [dx]
        }
    }
}
