// Fused scaled-dot-product attention over (B, heads, T, head_dim).

extension Tensor {
    /// softmax(Q·Kᵀ·scale + causal mask)·V with optional dropout on the attention weights.
    /// q: [B, H, Tq, D]; k, v: [B, H, Tk, D] with Tq ≤ Tk (queries are the last Tq positions, as
    /// with a KV cache). The T×T weights are never stored: backward recomputes them from the
    /// saved log-sum-exp (as FlashAttention does).
    public static func scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, causal: Bool = true, dropout: Float = 0,
                                                 scale: Float? = nil, generator: Generator? = nil) throws -> Tensor {
        for t in [q, k, v] { try t.requireFloat32("attention") }
        try requireSameDevice("attention", [q, k, v])
        guard q.rank == 4, k.shape == v.shape, k.rank == 4, q.shape[0] == k.shape[0], q.shape[1] == k.shape[1],
              q.shape[3] == k.shape[3], q.shape[2] <= k.shape[2] else {
            throw TensorError.shapeMismatch(op: "attention", shapes: [q.shape, k.shape, v.shape],
                                            expected: "q [B, H, Tq, D] and k, v [B, H, Tk, D] with Tq ≤ Tk")
        }
        guard (0..<1).contains(dropout) else {
            throw TensorError.invalidArgument(op: "attention", message: "dropout \(dropout) must be in [0, 1)")
        }
        let (b, h, t, tk, d) = (q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3])
        let p = dropout   // callers pass 0 outside training
        let gen = generator ?? Generator.default
        let offset = p > 0 ? gen.reserve(count: b * h * t * tk) : 0
        let shape = AttentionShape(batch: b, heads: h, queryTime: t, keyTime: tk, headDim: d, scale: scale ?? 1 / Float(d).squareRoot(),
                                   causal: causal, dropout: p, seed: gen.seed, offset: offset,
                                   productType: MixedPrecision.compute == .bfloat16 ? .bfloat16 : .float32)
        let out = try q.emptyLike(q.shape), lse = try q.emptyLike([b, h, t])
        q.backend.attention(q: q, k: k, v: v, out: out, lse: lse, shape)
        return record("attention", output: out, inputs: [q, k, v]) { g in
            let dq = try q.emptyLike(q.shape), dk = try k.emptyLike(k.shape), dv = try v.emptyLike(v.shape)
            q.backend.attentionBackward(q: q, k: k, v: v, out: out, lse: lse, dout: g, dq: dq, dk: dk, dv: dv, shape)
            return [dq, dk, dv]
        }
    }

    /// Causal self-attention straight from a QKV projection: qkv [B, T, 3·C] holds, per position,
    /// the queries of all heads, then the keys, then the values (C = heads · D); returns [B, T, C]
    /// with the heads side by side. The same as splitting qkv, permuting each part to
    /// [B, H, T, D], calling `scaledDotProductAttention` and permuting back, without the copies.
    public static func packedCausalAttention(qkv: Tensor, heads: Int, dropout: Float = 0, scale: Float? = nil,
                                             generator: Generator? = nil) throws -> Tensor {
        try qkv.requireFloat32("attention")
        guard qkv.rank == 3, heads > 0, qkv.shape[2] % (3 * heads) == 0 else {
            throw TensorError.shapeMismatch(op: "attention", shapes: [qkv.shape],
                                            expected: "qkv [B, T, 3·C] with C divisible by heads (\(heads))")
        }
        guard (0..<1).contains(dropout) else {
            throw TensorError.invalidArgument(op: "attention", message: "dropout \(dropout) must be in [0, 1)")
        }
        let (b, t, c) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
        let d = c / heads
        let gen = generator ?? Generator.default
        let offset = dropout > 0 ? gen.reserve(count: b * heads * t * t) : 0
        let shape = AttentionShape(batch: b, heads: heads, queryTime: t, keyTime: t, headDim: d, scale: scale ?? 1 / Float(d).squareRoot(),
                                   causal: true, dropout: dropout, seed: gen.seed, offset: offset, packed: true,
                                   productType: MixedPrecision.compute == .bfloat16 ? .bfloat16 : .float32)
        let out = try qkv.emptyLike([b, t, c]), lse = try qkv.emptyLike([b, heads, t])
        qkv.backend.attention(q: qkv, k: qkv, v: qkv, out: out, lse: lse, shape)
        return record("attention", output: out, inputs: [qkv]) { g in
            let dqkv = try qkv.emptyLike(qkv.shape)
            qkv.backend.attentionBackward(q: qkv, k: qkv, v: qkv, out: out, lse: lse, dout: g, dq: dqkv, dk: dqkv, dv: dqkv, shape)
            return [dqkv]
        }
    }
}
