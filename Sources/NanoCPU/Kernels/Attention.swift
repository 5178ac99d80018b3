import Foundation
import CKernelMath
import NanoEngine

// Fused scaled-dot-product attention, one query row at a time: only one row of scores per
// thread exists in memory (never the T×T matrix). q, out: (B, H, Tq, D); k, v: (B, H, Tk, D);
// lse: (B, H, Tq). Query i sits at absolute position Tk − Tq + i (a KV cache holds the rest).

@inline(__always) private func keepScale(_ s: AttentionShape, head: Int, i: Int, j: Int) -> Float {
    let index = (head * s.queryTime + i) * s.keyTime + j
    let u = Philox.sample(.uniform(low: 0, high: 1), seed: s.seed, offset: s.offset, index: index)
    return u < s.dropout ? 0 : 1 / (1 - s.dropout)
}

func attentionForward(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>,
                      _ out: UnsafeMutablePointer<Float>, _ lse: UnsafeMutablePointer<Float>, _ s: AttentionShape) {
    let TQ = s.queryTime, TK = s.keyTime, D = s.headDim
    Parallel.forRange(s.batch * s.heads, costPerItem: TQ * TK * D) { heads in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: TK)
        defer { scores.deallocate() }
        for h in heads {
            let qh = q + h * TQ * D, kh = k + h * TK * D, vh = v + h * TK * D, oh = out + h * TQ * D
            for i in 0..<TQ {
                let qi = qh + i * D
                let n = s.causal ? TK - TQ + i + 1 : TK
                var m = -Float.infinity
                for j in 0..<n {
                    let sc = dot16(qi, kh + j * D, D) * s.scale
                    scores[j] = sc
                    m = max(m, sc)
                }
                let mv = F16x(repeating: m)
                map16(scores, scores, n) { nd_exp($0 - mv) }
                let total = sum16(scores, n)
                lse[h * TQ + i] = m + Foundation.log(total)
                let oi = oh + i * D
                oi.update(repeating: 0, count: D)
                let inv = 1 / total
                for j in 0..<n {
                    var p = scores[j] * inv
                    if s.dropout > 0 { p *= keepScale(s, head: h, i: i, j: j) }
                    if p != 0 { axpy16(p, vh + j * D, oi, D) }
                }
            }
        }
    }
}

func attentionBackward(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>,
                       _ out: UnsafePointer<Float>, _ lse: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
                       _ dq: UnsafeMutablePointer<Float>, _ dk: UnsafeMutablePointer<Float>, _ dv: UnsafeMutablePointer<Float>,
                       _ s: AttentionShape) {
    let TQ = s.queryTime, TK = s.keyTime, D = s.headDim
    Parallel.forRange(s.batch * s.heads, costPerItem: TQ * TK * D * 2) { heads in
        for h in heads {
            let qh = q + h * TQ * D, kh = k + h * TK * D, vh = v + h * TK * D, oh = out + h * TQ * D, gh = dout + h * TQ * D
            let dqh = dq + h * TQ * D, dkh = dk + h * TK * D, dvh = dv + h * TK * D
            dqh.update(repeating: 0, count: TQ * D)
            dkh.update(repeating: 0, count: TK * D)
            dvh.update(repeating: 0, count: TK * D)
            for i in 0..<TQ {
                let qi = qh + i * D, gi = gh + i * D, dqi = dqh + i * D
                let l = lse[h * TQ + i]
                let di = dot16(gi, oh + i * D, D)   // Σ_j p'_ij (dO_i·V_j) = dO_i·O_i
                let n = s.causal ? TK - TQ + i + 1 : TK
                for j in 0..<n {
                    let p = Foundation.exp(dot16(qi, kh + j * D, D) * s.scale - l)
                    let z = s.dropout > 0 ? keepScale(s, head: h, i: i, j: j) : 1
                    let dpd = dot16(gi, vh + j * D, D)
                    if p * z != 0 { axpy16(p * z, gi, dvh + j * D, D) }
                    let ds = p * (dpd * z - di) * s.scale
                    if ds != 0 {
                        axpy16(ds, kh + j * D, dqi, D)
                        axpy16(ds, qi, dkh + j * D, D)
                    }
                }
            }
        }
    }
}
