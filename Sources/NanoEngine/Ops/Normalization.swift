// LayerNorm and RMSNorm over the last axis, fused forward and backward kernels.

extension Tensor {
    /// LayerNorm (Ba et al. 2016) over the last axis with optional affine weight and bias.
    public func layerNorm(weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws -> Tensor {
        try requireFloat32("layerNorm")
        let cols = shape.last ?? 1, rows = count / Swift.max(cols, 1)
        for p in [weight, bias].compactMap({ $0 }) where p.shape != [cols] {
            throw TensorError.shapeMismatch(op: "layerNorm", shapes: [shape, p.shape], expected: "weight and bias of shape [\(cols)]")
        }
        let y = try emptyLike(shape), mean = try emptyLike([rows]), rstd = try emptyLike([rows])
        backend.layerNorm(self, weight: weight, bias: bias, eps: eps, y: y, mean: mean, rstd: rstd, rows: rows, cols: cols)
        let inputs = [self] + [weight, bias].compactMap { $0 }
        return Tensor.record("layerNorm", output: y, inputs: inputs) { [x = self] g in
            let dx = try x.emptyLike(x.shape)
            let dw = try weight.map { _ in try x.emptyLike([cols]) }
            let db = try bias.map { _ in try x.emptyLike([cols]) }
            x.backend.layerNormBackward(x, weight: weight, mean: mean, rstd: rstd, dy: g, dx: dx, dweight: dw, dbias: db,
                                        rows: rows, cols: cols)
            return [dx] + (weight != nil ? [dw] : []) + (bias != nil ? [db] : [])
        }
    }

    /// RMSNorm (Zhang & Sennrich 2019) over the last axis with optional weight.
    public func rmsNorm(weight: Tensor?, eps: Float = 1e-6) throws -> Tensor {
        try requireFloat32("rmsNorm")
        let cols = shape.last ?? 1, rows = count / Swift.max(cols, 1)
        if let weight, weight.shape != [cols] {
            throw TensorError.shapeMismatch(op: "rmsNorm", shapes: [shape, weight.shape], expected: "a weight of shape [\(cols)]")
        }
        let y = try emptyLike(shape), rstd = try emptyLike([rows])
        backend.rmsNorm(self, weight: weight, eps: eps, y: y, rstd: rstd, rows: rows, cols: cols)
        return Tensor.record("rmsNorm", output: y, inputs: [self] + [weight].compactMap { $0 }) { [x = self] g in
            let dx = try x.emptyLike(x.shape)
            let dw = try weight.map { _ in try x.emptyLike([cols]) }
            x.backend.rmsNormBackward(x, weight: weight, rstd: rstd, dy: g, dx: dx, dweight: dw, rows: rows, cols: cols)
            return [dx] + (weight != nil ? [dw] : [])
        }
    }
}
