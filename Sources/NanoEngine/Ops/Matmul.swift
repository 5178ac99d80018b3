// Matrix products: batched matmul with transposed operands, and linear layers with bias.
// Forward and backward both run as GEMMs on the backend (oneDNN on the CPU).

extension Tensor {
    /// C = op(A)·op(B) without recording. A: [..., M, K] ([..., K, M] when transA); B: [K, N] shared by
    /// every batch, or [..., K, N] with A's leading dimensions. float32, or bfloat16/float16 pairs → float32.
    static func gemm(_ a: Tensor, _ b: Tensor, transA: Bool, transB: Bool, bias: Tensor? = nil, op: String = "matmul") throws -> Tensor {
        guard a.rank >= 2, b.rank >= 2 else {
            throw TensorError.shapeMismatch(op: op, shapes: [a.shape, b.shape], expected: "operands of rank ≥ 2")
        }
        guard a.dtype == b.dtype, a.dtype.isFloatingPoint else {
            throw TensorError.dtypeMismatch(op: op, got: a.dtype == .float32 ? b.dtype : a.dtype,
                                            expected: "float32 × float32, bfloat16 × bfloat16 or float16 × float16")
        }
        try requireSameDevice(op, [a, b] + (bias.map { [$0] } ?? []))
        let m = transA ? a.shape[a.rank - 1] : a.shape[a.rank - 2]
        let k = transA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
        let kb = transB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
        let n = transB ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
        let lead = Array(a.shape.dropLast(2))
        let batch = Shape.count(lead)
        let shared = b.rank == 2
        guard k == kb, shared || Array(b.shape.dropLast(2)) == lead else {
            throw TensorError.shapeMismatch(op: op, shapes: [a.shape, b.shape],
                expected: "inner dimensions to agree (\(k) vs \(kb)) and B to be 2-D or share A's batch dimensions"
                + " (transA: \(transA), transB: \(transB))")
        }
        if let bias {
            try bias.requireFloat32(op)
            guard bias.shape == [n] else {
                throw TensorError.shapeMismatch(op: op, shapes: [bias.shape], expected: "a bias of shape [\(n)]")
            }
        }
        let out = try a.emptyLike(lead + [m, n])
        a.backend.matmul(a, b, bias: bias, out, batch: batch, m: m, n: n, k: k, transA: transA, transB: transB, accumulate: false)
        return out
    }

    /// Matrix product op(self)·op(other), batched over leading dimensions. Under
    /// `MixedPrecision.run(.bfloat16)` (or `.float16`) the operands (and, in backward, the gradient)
    /// are rounded to that type; the product is float32.
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) throws -> Tensor {
        let p = MixedPrecision.compute
        let (needA, needB) = (requiresGrad, other.requiresGrad)
        let a = try inComputeType(p), b = try other.inComputeType(p), ta = transposeSelf, tb = transposeOther
        let out = try Tensor.gemm(a, b, transA: ta, transB: tb)
        return Tensor.record("matmul", output: out, inputs: [self, other]) { g32 in
            let g = try g32.inComputeType(p)
            var da: Tensor? = nil, db: Tensor? = nil
            if needA {
                let dOpA = try Tensor.gemm(g, b, transA: false, transB: !tb)          // G·op(B)ᵀ: [..., M, K]
                da = ta ? try dOpA.transposed() : dOpA
            }
            if needB {
                if b.rank == 2 && a.rank > 2 {
                    // Shared B: fold the batch into rows, one GEMM over all of them.
                    let a2 = try (ta ? a.transposed() : a).reshaped([-1, a.shape[ta ? a.rank - 2 : a.rank - 1]])
                    let g2 = try g.reshaped([-1, g.shape[g.rank - 1]])
                    db = tb ? try Tensor.gemm(g2, a2, transA: true, transB: false) : try Tensor.gemm(a2, g2, transA: true, transB: false)
                } else {
                    db = tb ? try Tensor.gemm(g, a, transA: true, transB: ta) : try Tensor.gemm(a, g, transA: !ta, transB: false)
                }
            }
            return [da, db]
        }
    }

    /// y = x·Wᵀ + b with weight [out, in] (PyTorch's layout) and optional bias [out]; x: [..., in].
    public func linear(weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        guard weight.rank == 2, rank >= 1, shape[rank - 1] == weight.shape[1] else {
            throw TensorError.shapeMismatch(op: "linear", shapes: [shape, weight.shape],
                                            expected: "input [..., in] and weight [out, in] with equal in")
        }
        // Under mixed precision x2 and w are bf16/fp16 copies, and backward keeps those.
        let p = MixedPrecision.compute
        let x2 = try detached().reshaped([-1, weight.shape[1]]).inComputeType(p), w = try weight.inComputeType(p)
        let y2 = try Tensor.gemm(x2, w, transA: false, transB: true, bias: bias, op: "linear")
        let y = Tensor(shape: Array(shape.dropLast()) + [weight.shape[0]], dtype: .float32, storage: y2.storage, backend: backend)
        let inputs = [self, weight] + (bias.map { [$0] } ?? [])
        let (xShape, needX) = (shape, requiresGrad)
        return Tensor.record("linear", output: y, inputs: inputs) { g in
            let g2 = try g.reshaped([-1, weight.shape[0]])
            let g2c = try g2.inComputeType(p)
            let dx = needX ? try Tensor.gemm(g2c, w, transA: false, transB: false).reshaped(xShape) : nil
            let dw = weight.requiresGrad ? try Tensor.gemm(g2c, x2, transA: true, transB: false) : nil
            let db = bias?.requiresGrad == true ? try g2.sum(axes: [0]) : nil
            return [dx, dw, db]
        }
    }

    /// y = f(x)·Wᵀ + b for a pointwise activation f, keeping only x for backward: f(x) is made
    /// again there for the weight gradient. In a GPT MLP f(x) is the widest activation (4× the
    /// model width), so not saving it cuts a quarter of what training keeps per block.
    public func activatedLinear(_ activation: UnaryOp, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        try requireFloat32("activatedLinear")
        guard weight.rank == 2, rank >= 1, shape[rank - 1] == weight.shape[1] else {
            throw TensorError.shapeMismatch(op: "activatedLinear", shapes: [shape, weight.shape],
                                            expected: "input [..., in] and weight [out, in] with equal in")
        }
        let (inputs, outputs) = (weight.shape[1], weight.shape[0])
        let p = MixedPrecision.compute
        let w = try weight.inComputeType(p)
        let y2 = try Tensor.gemm(activatedRows(activation, inputs).inComputeType(p), w, transA: false, transB: true, bias: bias,
                                 op: "activatedLinear")
        let y = Tensor(shape: Array(shape.dropLast()) + [outputs], dtype: .float32, storage: y2.storage, backend: backend)
        return Tensor.record("activatedLinear", output: y, inputs: [self, weight] + (bias.map { [$0] } ?? [])) { [x = self] g in
            let g2 = try g.reshaped([-1, outputs]), g2c = try g2.inComputeType(p)
            var dx: Tensor? = nil
            if x.requiresGrad {
                let da = try Tensor.gemm(g2c, w, transA: false, transB: false)   // dL/df(x), [rows, in]
                let d = try x.emptyLike(x.shape)
                x.backend.unaryBackward(activation, x: x, dy: da, dx: d)
                dx = d
            }
            let dw = weight.requiresGrad
                ? try Tensor.gemm(g2c, x.activatedRows(activation, inputs).inComputeType(p), transA: true, transB: false) : nil
            let db = bias?.requiresGrad == true ? try g2.sum(axes: [0]) : nil
            return [dx, dw, db]
        }
    }

    /// f(self) reshaped to [rows, width], not recorded.
    private func activatedRows(_ activation: UnaryOp, _ width: Int) throws -> Tensor {
        let a = try emptyLike([count / width, width])
        backend.unary(activation, self, a)
        return a
    }
}
