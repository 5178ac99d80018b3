// Index ops: embedding, index-select, gather/scatter, top-k, one-hot. Indices are int32 and
// are range-checked before any kernel reads memory through them.

extension Tensor {
    /// Rows of self along `axis` picked by a 1-D int32 index (torch.index_select).
    public func indexSelect(axis: Int, index: Tensor) throws -> Tensor {
        try requireFloat32("indexSelect")
        try index.requireInt32("indexSelect")
        try Tensor.requireSameDevice("indexSelect", [self, index])
        let a = try axisIndex(axis, op: "indexSelect")
        guard index.rank == 1 else {
            throw TensorError.shapeMismatch(op: "indexSelect", shapes: [index.shape], expected: "a 1-D index")
        }
        try index.requireIndices(in: shape[a], op: "indexSelect")
        var outShape = shape
        outShape[a] = index.count
        let view = AxisView(shape: shape, axis: a)
        let out = try emptyLike(outShape)
        backend.indexSelect(self, view, index: index, out)
        return Tensor.record("indexSelect", output: out, inputs: [self]) { [shape] g in
            let dx = try Tensor.zeros(shape, device: g.device)
            g.backend.indexAdd(g, index: index, dx, view)
            return [dx]
        }
    }

    /// Embedding lookup: self is the table [vocab, dim]; tokens are int32 of any shape → [..., dim].
    public func embedding(_ tokens: Tensor) throws -> Tensor {
        guard rank == 2 else {
            throw TensorError.shapeMismatch(op: "embedding", shapes: [shape], expected: "a table [vocab, dim]")
        }
        return try indexSelect(axis: 0, index: try tokens.reshaped([-1])).reshaped(tokens.shape + [shape[1]])
    }

    /// torch.gather: out[..., j, ...] = self[..., index[..., j, ...], ...] along `axis`; index has
    /// self's shape except along the axis.
    public func gather(axis: Int, index: Tensor) throws -> Tensor {
        try requireFloat32("gather")
        try index.requireInt32("gather")
        let a = try axisIndex(axis, op: "gather")
        var expected = index.shape
        if index.rank == rank { expected[a] = shape[a] }
        guard index.rank == rank, expected == shape else {
            throw TensorError.shapeMismatch(op: "gather", shapes: [shape, index.shape], expected: "an index with the input's shape except along axis \(a)")
        }
        try index.requireIndices(in: shape[a], op: "gather")
        let view = AxisView(shape: shape, axis: a)
        let out = try emptyLike(index.shape)
        backend.gather(self, view, index: index, out, indexAxis: index.shape[a])
        return Tensor.record("gather", output: out, inputs: [self]) { [shape] g in
            let dx = try Tensor.zeros(shape, device: g.device)
            g.backend.scatterAdd(g, index: index, indexAxis: index.shape[a], dx, view)
            return [dx]
        }
    }

    /// self + scatter of src along axis: out[..., index[..., j, ...], ...] += src[..., j, ...].
    public func scatterAdding(axis: Int, index: Tensor, source: Tensor) throws -> Tensor {
        try requireFloat32("scatterAdd")
        try source.requireFloat32("scatterAdd")
        try index.requireInt32("scatterAdd")
        let a = try axisIndex(axis, op: "scatterAdd")
        var expected = index.shape
        if index.rank == rank { expected[a] = shape[a] }
        guard index.shape == source.shape, index.rank == rank, expected == shape else {
            throw TensorError.shapeMismatch(op: "scatterAdd", shapes: [shape, index.shape, source.shape],
                                            expected: "index and source of equal shape, matching the input except along axis \(a)")
        }
        try index.requireIndices(in: shape[a], op: "scatterAdd")
        let view = AxisView(shape: shape, axis: a)
        let out = try emptyLike(shape)
        backend.copy(self, to: out)
        backend.scatterAdd(source, index: index, indexAxis: index.shape[a], out, view)
        return Tensor.record("scatterAdd", output: out, inputs: [self, source]) { g in
            [g, source.requiresGrad ? try g.gather(axis: a, index: index) : nil]
        }
    }

    /// The k largest values along the last axis, in descending order, with their int32 positions.
    /// Gradients flow to the selected values.
    public func topK(_ k: Int) throws -> (values: Tensor, indices: Tensor) {
        try requireFloat32("topK")
        let cols = shape.last ?? 1
        guard rank >= 1, k >= 1, k <= cols else {
            throw TensorError.invalidArgument(op: "topK", message: "k = \(k) must be in 1...\(cols) for shape \(shape)")
        }
        let rows = count / cols
        let outShape = Array(shape.dropLast()) + [k]
        let values = try emptyLike(outShape), indices = try emptyLike(outShape, dtype: .int32)
        backend.topK(self, rows: rows, cols: cols, k: k, values: values, indices: indices)
        let v = Tensor.record("topK", output: values, inputs: [self]) { [shape] g in
            let dx = try Tensor.zeros(shape, device: g.device)
            g.backend.scatterAdd(g, index: indices, indexAxis: k, dx, AxisView(shape: shape, axis: shape.count - 1))
            return [dx]
        }
        return (v, indices)
    }

    /// One-hot float32 encoding of int32 classes: [...] → [..., classes].
    public func oneHot(classes: Int) throws -> Tensor {
        try requireInt32("oneHot", role: "classes")
        try requireIndices(in: classes, op: "oneHot")
        let out = try Tensor.zeros(shape + [classes], device: device)
        let index = try reshaped(shape + [1])
        let ones = try Tensor.ones(shape + [1], device: device)
        backend.scatterAdd(ones, index: index, indexAxis: 1, out, AxisView(shape: shape + [classes], axis: rank))
        return out
    }
}

extension Tensor {
    /// self + rows of `source` added at positions `index` along `axis` (repeats accumulate):
    /// out[..., index[j], ...] += source[..., j, ...]. index is 1-D int32.
    public func indexAdding(axis: Int, index: Tensor, source: Tensor) throws -> Tensor {
        try requireFloat32("indexAdd")
        try source.requireFloat32("indexAdd")
        try index.requireInt32("indexAdd")
        let a = try axisIndex(axis, op: "indexAdd")
        var expected = shape
        if a < expected.count { expected[a] = index.count }
        guard index.rank == 1, source.shape == expected else {
            throw TensorError.shapeMismatch(op: "indexAdd", shapes: [shape, index.shape, source.shape],
                                            expected: "a 1-D index and a source shaped like the input with \(index.count) along axis \(a)")
        }
        try index.requireIndices(in: shape[a], op: "indexAdd")
        let out = try emptyLike(shape)
        backend.copy(self, to: out)
        backend.indexAdd(source, index: index, out, AxisView(shape: shape, axis: a))
        return Tensor.record("indexAdd", output: out, inputs: [self, source]) { g in
            [g, source.requiresGrad ? try g.indexSelect(axis: a, index: index) : nil]
        }
    }

    /// Elements start..<start+count as a 1-D view sharing this tensor's storage, outside any graph
    /// (for optimizers and communication buffers that work on flat slices of parameters).
    public func flatView(start: Int, count n: Int) throws -> Tensor {
        guard start >= 0, n >= 0, start + n <= count else {
            throw TensorError.invalidArgument(op: "flatView", message: "elements \(start)..<\(start + n) are outside a tensor of \(count) elements")
        }
        return view(start: start, shape: [n])
    }

    /// A contiguous view of `count` elements starting `start` elements in, with a new shape (no copy).
    func view(start: Int, shape newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, dtype: dtype, storage: storage, offset: offset + start, backend: backend)
    }

    /// Grouped matrix product: rows of self [M, K] are split into consecutive groups of
    /// `groupSizes` (summing to M) and group e is multiplied by weights[e] ([E, K, N]) → [M, N].
    /// The MoE expert computation after tokens are sorted by expert: one GEMM per non-empty
    /// group on views (no copies); backward writes each expert's weight gradient in place.
    public func groupedMatmul(_ weights: Tensor, groupSizes: [Int]) throws -> Tensor {
        try requireFloat32("groupedMatmul")
        try weights.requireFloat32("groupedMatmul")
        guard rank == 2, weights.rank == 3, weights.shape[1] == shape[1], groupSizes.count == weights.shape[0],
              groupSizes.reduce(0, +) == shape[0], groupSizes.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.shapeMismatch(op: "groupedMatmul", shapes: [shape, weights.shape, groupSizes],
                                            expected: "x [M, K], weights [E, K, N] and E group sizes summing to M")
        }
        let (k, n) = (weights.shape[1], weights.shape[2])
        let out = try emptyLike([shape[0], n])
        // Under mixed precision the products read bf16/fp16 copies, and backward keeps those.
        let p = MixedPrecision.compute
        let x = try inComputeType(p), w = try weights.inComputeType(p)
        var start = 0
        for (e, size) in groupSizes.enumerated() {
            defer { start += size }
            guard size > 0 else { continue }
            backend.matmul(x.view(start: start * k, shape: [size, k]), w.view(start: e * k * n, shape: [k, n]), bias: nil,
                           out.view(start: start * n, shape: [size, n]), batch: 1, m: size, n: n, k: k,
                           transA: false, transB: false, accumulate: false)
        }
        let xShape = shape
        return Tensor.record("groupedMatmul", output: out, inputs: [self, weights]) { g32 in
            let g = try g32.inComputeType(p)
            let dx = try Tensor.empty(xShape, device: g.device)
            let dw = try Tensor.zeros(weights.shape, device: weights.device)
            var start = 0
            for (e, size) in groupSizes.enumerated() {
                defer { start += size }
                guard size > 0 else { continue }
                let gRows = g.view(start: start * n, shape: [size, n]), xRows = x.view(start: start * k, shape: [size, k])
                // dX_e = G_e · W_eᵀ ; dW_e = X_eᵀ · G_e
                g.backend.matmul(gRows, w.view(start: e * k * n, shape: [k, n]), bias: nil,
                                 dx.view(start: start * k, shape: [size, k]), batch: 1, m: size, n: k, k: n,
                                 transA: false, transB: true, accumulate: false)
                g.backend.matmul(xRows, gRows, bias: nil, dw.view(start: e * k * n, shape: [k, n]), batch: 1,
                                 m: k, n: n, k: size, transA: true, transB: false, accumulate: false)
            }
            return [dx, dw]
        }
    }
}
