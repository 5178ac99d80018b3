import NanoEngine

// STUB: being written.
extension CUDABackend {
    public func attention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, _ shape: AttentionShape) { fatalError("not yet") }
    public func attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                                  dq: Tensor, dk: Tensor, dv: Tensor, _ shape: AttentionShape) { fatalError("not yet") }
}
