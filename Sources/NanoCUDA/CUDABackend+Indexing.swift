import NanoEngine

// STUB: being written.
extension CUDABackend {
    public func indexSelect(_ x: Tensor, _ view: AxisView, index: Tensor, _ out: Tensor) { fatalError("not yet") }
    public func indexAdd(_ src: Tensor, index: Tensor, _ out: Tensor, _ outView: AxisView) { fatalError("not yet") }
    public func gather(_ x: Tensor, _ view: AxisView, index: Tensor, _ out: Tensor, indexAxis: Int) { fatalError("not yet") }
    public func scatterAdd(_ src: Tensor, index: Tensor, indexAxis: Int, _ out: Tensor, _ outView: AxisView) { fatalError("not yet") }
}
