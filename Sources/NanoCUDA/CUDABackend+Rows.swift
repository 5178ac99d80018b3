import NanoEngine

// STUB: being written.
extension CUDABackend {
    public func reduce(_ op: ReduceOp, _ x: Tensor, _ view: AxisView, _ out: Tensor) { fatalError("not yet") }
    public func softmax(_ x: Tensor, _ y: Tensor, rows: Int, cols: Int, log: Bool) { fatalError("not yet") }
    public func softmaxBackward(y: Tensor, dy: Tensor, dx: Tensor, rows: Int, cols: Int, log: Bool) { fatalError("not yet") }
    public func cumsum(_ x: Tensor, _ view: AxisView, _ out: Tensor, reverse: Bool) { fatalError("not yet") }
    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, y: Tensor, mean: Tensor, rstd: Tensor, rows: Int, cols: Int) { fatalError("not yet") }
    public func layerNormBackward(_ x: Tensor, weight: Tensor?, mean: Tensor, rstd: Tensor, dy: Tensor, dx: Tensor,
                                  dweight: Tensor?, dbias: Tensor?, rows: Int, cols: Int) { fatalError("not yet") }
    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, y: Tensor, rstd: Tensor, rows: Int, cols: Int) { fatalError("not yet") }
    public func rmsNormBackward(_ x: Tensor, weight: Tensor?, rstd: Tensor, dy: Tensor, dx: Tensor, dweight: Tensor?, rows: Int, cols: Int) { fatalError("not yet") }
    public func crossEntropy(logits: Tensor, targets: Tensor, losses: Tensor, lse: Tensor, rows: Int, classes: Int, ignoreIndex: Int32) { fatalError("not yet") }
    public func crossEntropyBackward(logits: Tensor, targets: Tensor, lse: Tensor, dlogits: Tensor, scale: Float,
                                     rows: Int, classes: Int, ignoreIndex: Int32) { fatalError("not yet") }
    public func topK(_ x: Tensor, rows: Int, cols: Int, k: Int, values: Tensor, indices: Tensor) { fatalError("not yet") }
    public func sumOfSquares(_ x: Tensor) -> Double { fatalError("not yet") }
    public func indexRange(_ index: Tensor) -> (min: Int32, max: Int32) { fatalError("not yet") }
}
