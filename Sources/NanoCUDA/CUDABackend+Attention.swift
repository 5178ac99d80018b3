import NanoEngine

// Fused attention on the GPU (kernels in Kernels/EngineAttention.swift), with the CPU backend's
// semantics: forward overwrites out and lse; backward overwrites dq, dk and dv. In the packed layout
// those three are one tensor (dqkv), whose q columns the dq kernel writes and whose k and v
// columns the dk/dv kernel writes, so nothing needs zeroing first.

/// The kernels' `AttnParams`, field for field: 8-byte fields, then 4-byte ones in pairs, so Swift
/// and C lay it out the same way without padding (80 bytes).
struct AttentionParameters {
    var batchHeads: Int64, heads: Int64, queryTime: Int64, keyTime: Int64, headDim: Int64
    var seed: UInt64, offset: UInt64
    var scale: Float, scaleLog2: Float, dropout: Float, keepScale: Float
    var causal: Int32, packed: Int32

    init(_ s: AttentionShape) {
        batchHeads = Int64(s.batch * s.heads); heads = Int64(s.heads)
        queryTime = Int64(s.queryTime); keyTime = Int64(s.keyTime); headDim = Int64(s.headDim)
        seed = s.seed; offset = s.offset
        scale = s.scale; scaleLog2 = s.scale * 1.442_695_04   // scores in base 2 for exp2f
        dropout = s.dropout
        keepScale = s.dropout > 0 ? 1 / (1 - s.dropout) : 1   // the CPU's keepScale, computed the same way
        causal = s.causal ? 1 : 0; packed = s.packed ? 1 : 0
    }
}

extension CUDABackend {
    private static let attentionUnit = "engine_attention.cu"
    private static let tensorCoreUnit = "engine_attention_tc.cu"
    /// Query or key rows per block of the tiled kernels.
    private static let attentionTile = 64

    /// Suffix of the kernels compiled for this head size (d64: D ≤ 64, d128: D ≤ 128, d256: D ≤ 256).
    private static func attentionVariant(_ s: AttentionShape) -> String {
        switch s.headDim {
        case ...64: "d64"
        case ...128: "d128"
        case ...256: "d256"
        default: fatalError("CUDABackend: attention supports head_dim ≤ 256 (got \(s.headDim) = n_embd / n_head)")
        }
    }

    /// Blocks for tiles of `rows` rows in each of the B·H heads (one grid axis, so B·H may exceed 65,535).
    private static func attentionGrid(rows: Int, _ s: AttentionShape) -> (Int, Int, Int) {
        let blocks = (rows + attentionTile - 1) / attentionTile * s.batch * s.heads
        precondition(blocks <= Int(Int32.max), "CUDABackend: attention grid of \(blocks) blocks is too large")
        return (blocks, 1, 1)
    }

    /// The tensor-core kernels' suffix (Kernels/EngineAttentionTC.swift) when they serve `shape`:
    /// bf16 products, no dropout, head size 64 or 128, a GPU with bf16 tensor cores (sm_80 and
    /// newer); nil: the fp32 kernels. `NANODECODER_ATTENTION=fp32` keeps the fp32 kernels everywhere.
    private func tensorCoreVariant(_ s: AttentionShape) -> String? {
        guard s.productType == .bfloat16, s.dropout == 0, tensorCoreAttention, gpu.device.architecture >= 80 else { return nil }
        switch s.headDim {
        case 64: return "d64"
        case 128: return "d128"
        default: return nil
        }
    }

    // q (B,H,Tq,D), k, v (B,H,Tk,D) -> out (B,H,Tq,D), lse (B,H,Tq); or packed qkv (B,T,3·H·D) -> out (B,T,H·D).
    public func attention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, _ shape: AttentionShape) {
        let variant = Self.attentionVariant(shape)
        guard shape.batch * shape.heads > 0, shape.queryTime > 0 else { return }
        if let tc = tensorCoreVariant(shape) {
            launch(Self.tensorCoreUnit, "nd_attn_tc_forward_" + tc, grid: Self.attentionGrid(rows: shape.queryTime, shape),
                   block: (128, 1, 1), [arg(q), arg(k), arg(v), arg(out), arg(lse), .value(AttentionParameters(shape))])
            return
        }
        launch(Self.attentionUnit, "nd_attn_forward_" + variant, grid: Self.attentionGrid(rows: shape.queryTime, shape),
               block: (256, 1, 1), [arg(q), arg(k), arg(v), arg(out), arg(lse), .value(AttentionParameters(shape))])
    }

    // dout like out -> dq like q, dk like k, dv like v (overwritten; one tensor dqkv when packed).
    public func attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                                  dq: Tensor, dk: Tensor, dv: Tensor, _ shape: AttentionShape) {
        let variant = Self.attentionVariant(shape)
        let heads = shape.batch * shape.heads
        guard heads > 0, shape.keyTime > 0 else { return }
        let parameters = CUDAContext.Argument.value(AttentionParameters(shape))
        let rows = heads * shape.queryTime
        if rows > 0 {
            // delta_i = dout_i · out_i (B·H·Tq), read by both gradient kernels; one warp per row.
            let deltaBytes = rows * MemoryLayout<Float>.size
            let delta = scratch(bytes: deltaBytes)
            launch(Self.attentionUnit, "nd_attn_backward_delta", grid: ((rows + 7) / 8, 1, 1), block: (256, 1, 1),
                   [arg(out), arg(dout), .pointer(delta), parameters])
            if let tc = tensorCoreVariant(shape) {
                launch(Self.tensorCoreUnit, "nd_attn_tc_dq_" + tc, grid: Self.attentionGrid(rows: shape.queryTime, shape),
                       block: (128, 1, 1), [arg(q), arg(k), arg(v), arg(dout), arg(lse), .pointer(delta), arg(dq), parameters])
                launch(Self.tensorCoreUnit, "nd_attn_tc_dkdv_" + tc, grid: Self.attentionGrid(rows: shape.keyTime, shape),
                       block: (128, 1, 1), [arg(q), arg(k), arg(v), arg(dout), arg(lse), .pointer(delta), arg(dk), arg(dv), parameters])
                releaseScratch(delta, bytes: deltaBytes)
                return
            }
            launch(Self.attentionUnit, "nd_attn_backward_dq_" + variant, grid: Self.attentionGrid(rows: shape.queryTime, shape),
                   block: (256, 1, 1), [arg(q), arg(k), arg(v), arg(dout), arg(lse), .pointer(delta), arg(dq), parameters])
            launch(Self.attentionUnit, "nd_attn_backward_dkdv_" + variant, grid: Self.attentionGrid(rows: shape.keyTime, shape),
                   block: (256, 1, 1), [arg(q), arg(k), arg(v), arg(dout), arg(lse), .pointer(delta), arg(dk), arg(dv), parameters])
            releaseScratch(delta, bytes: deltaBytes)   // later work on the default stream runs after these kernels
        } else {
            // No queries: nothing reaches the keys, and the dk/dv kernel writes zeros without reading delta.
            launch(Self.attentionUnit, "nd_attn_backward_dkdv_" + variant, grid: Self.attentionGrid(rows: shape.keyTime, shape),
                   block: (256, 1, 1), [arg(q), arg(k), arg(v), arg(dout), arg(lse), .pointer(0), arg(dk), arg(dv), parameters])
        }
    }
}
