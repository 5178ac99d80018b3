import Foundation
import CKernelMath
import NanoEngine

// Fused scaled-dot-product attention, a block of query rows at a time: each thread holds one
// block of scores (queryBlock × Tk), never the T×T matrix of a head, and the products inside a
// block run through `smallGEMM`. q, out: (B, H, Tq, D); k, v: (B, H, Tk, D); lse: (B, H, Tq); or
// the packed layout (`AttentionShape.packed`), where `layout(head:)` gives each head's rows.
// Query i sits at absolute position Tk − Tq + i (a KV cache holds the rest), so with a causal
// mask it sees keys 0 ... Tk − Tq + i. Keys past a row's last visible one get probability 0, which
// lets a block's products run over the block's widest key range.

/// Query rows per block: 64 rows × 1024 keys of scores is 256 KB, inside L2.
private let queryBlock = 32

@inline(__always) private func keepScale(_ s: AttentionShape, head: Int, i: Int, j: Int) -> Float {
    let index = (head * s.queryTime + i) * s.keyTime + j
    let u = Philox.sample(.uniform(low: 0, high: 1), seed: s.seed, offset: s.offset, index: index)
    return u < s.dropout ? 0 : 1 / (1 - s.dropout)
}

/// Keys visible to query row i.
@inline(__always) private func visibleKeys(_ s: AttentionShape, _ i: Int) -> Int {
    s.causal ? s.keyTime - s.queryTime + i + 1 : s.keyTime
}

/// Per-thread scratch: Kᵀ (D × Tk), Vᵀ, two score blocks (queryBlock × Tk), and one softmax
/// denominator per query row of a block.
private struct AttentionScratch {
    let kt: UnsafeMutablePointer<Float>, vt: UnsafeMutablePointer<Float>
    let scores: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>, totals: UnsafeMutablePointer<Float>
    private let base: UnsafeMutablePointer<Float>
    init(_ s: AttentionShape) {
        let kv = s.headDim * s.keyTime, block = queryBlock * s.keyTime
        base = .allocate(capacity: 2 * kv + 2 * block + queryBlock)
        kt = base; vt = base + kv; scores = base + 2 * kv; grads = scores + block; totals = grads + block
    }
    func release() { base.deallocate() }
}

func attentionForward(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>,
                      _ out: UnsafeMutablePointer<Float>, _ lse: UnsafeMutablePointer<Float>, _ s: AttentionShape) {
    let TQ = s.queryTime, TK = s.keyTime, D = s.headDim
    Parallel.forRange(s.batch * s.heads, costPerItem: TQ * TK * D) { heads in
        let scratch = AttentionScratch(s)
        defer { scratch.release() }
        for h in heads {
            let at = s.layout(head: h), ld = at.row
            let qh = q + at.q, kh = k + at.k, vh = v + at.v, oh = out + at.out
            transposeBlock(kh, rows: TK, cols: D, ld: ld, scratch.kt)
            for i0 in stride(from: 0, to: TQ, by: queryBlock) {
                let rows = min(queryBlock, TQ - i0), n = visibleKeys(s, i0 + rows - 1)
                let sc = scratch.scores
                // S = Q·Kᵀ for the block's rows and its widest key range.
                smallGEMM(m: rows, n: n, k: D, a: qh + i0 * ld, rowStride: ld, colStride: 1,
                          b: scratch.kt, ldb: TK, c: sc, ldc: n, accumulate: false)
                // Unnormalised probabilities exp(s − max); each output row is divided by its sum after P·V.
                for r in 0..<rows {
                    let i = i0 + r, row = sc + r * n, visible = visibleKeys(s, i)
                    let m = maxOfRow(row, visible) * s.scale
                    let total = expInPlace(row, visible, scale: s.scale, shift: m)
                    lse[h * TQ + i] = m + Foundation.log(total)
                    scratch.totals[r] = 1 / total
                    if visible < n { (row + visible).update(repeating: 0, count: n - visible) }
                    if s.dropout > 0 { for j in 0..<visible { row[j] *= keepScale(s, head: h, i: i, j: j) } }
                }
                // O = P·V.
                let ob = oh + i0 * at.outRow
                smallGEMM(m: rows, n: D, k: n, a: sc, rowStride: n, colStride: 1,
                          b: vh, ldb: ld, c: ob, ldc: at.outRow, accumulate: false)
                for r in 0..<rows {
                    let inv = F16x(repeating: scratch.totals[r]), o = ob + r * at.outRow
                    map16(o, o, D) { $0 * inv }
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
        let scratch = AttentionScratch(s)
        defer { scratch.release() }
        for h in heads {
            let at = s.layout(head: h), ld = at.row, ldo = at.outRow
            let qh = q + at.q, kh = k + at.k, vh = v + at.v, oh = out + at.out, gh = dout + at.out
            let dqh = dq + at.q, dkh = dk + at.k, dvh = dv + at.v
            for j in 0..<TK {
                (dkh + j * ld).update(repeating: 0, count: D)
                (dvh + j * ld).update(repeating: 0, count: D)
            }
            transposeBlock(kh, rows: TK, cols: D, ld: ld, scratch.kt)
            transposeBlock(vh, rows: TK, cols: D, ld: ld, scratch.vt)
            for i0 in stride(from: 0, to: TQ, by: queryBlock) {
                let rows = min(queryBlock, TQ - i0), n = visibleKeys(s, i0 + rows - 1)
                let p = scratch.scores, ds = scratch.grads
                let qb = qh + i0 * ld, gb = gh + i0 * ldo
                smallGEMM(m: rows, n: n, k: D, a: qb, rowStride: ld, colStride: 1, b: scratch.kt, ldb: TK, c: p, ldc: n, accumulate: false)
                // dP = dO·Vᵀ (with dropout: the gradient of the kept, rescaled probabilities).
                smallGEMM(m: rows, n: n, k: D, a: gb, rowStride: ldo, colStride: 1, b: scratch.vt, ldb: TK, c: ds, ldc: n, accumulate: false)
                for r in 0..<rows {
                    let i = i0 + r, pr = p + r * n, dr = ds + r * n, visible = visibleKeys(s, i)
                    let di = dot16(gb + r * ldo, oh + i * ldo, D)   // Σ_j P'_ij (dO_i·V_j) = dO_i·O_i
                    if s.dropout > 0 {
                        _ = expInPlace(pr, visible, scale: s.scale, shift: lse[h * TQ + i])
                        for j in 0..<visible {
                            let z = keepScale(s, head: h, i: i, j: j)
                            dr[j] = pr[j] * (dr[j] * z - di) * s.scale
                            pr[j] *= z
                        }
                    } else {
                        softmaxGradientRow(pr, dr, visible, scale: s.scale, lse: lse[h * TQ + i], delta: di)
                    }
                    if visible < n {
                        (pr + visible).update(repeating: 0, count: n - visible)
                        (dr + visible).update(repeating: 0, count: n - visible)
                    }
                }
                // dV += P'ᵀ·dO, dK += dSᵀ·Q, dQ = dS·K.
                smallGEMM(m: n, n: D, k: rows, a: p, rowStride: 1, colStride: n, b: gb, ldb: ldo, c: dvh, ldc: ld, accumulate: true)
                smallGEMM(m: n, n: D, k: rows, a: ds, rowStride: 1, colStride: n, b: qb, ldb: ld, c: dkh, ldc: ld, accumulate: true)
                smallGEMM(m: rows, n: D, k: n, a: ds, rowStride: n, colStride: 1, b: kh, ldb: ld, c: dqh + i0 * ld, ldc: ld, accumulate: false)
            }
        }
    }
}

/// x[j] = exp(x[j]·scale − shift) for j < n, in one pass that also returns their sum.
@inline(__always) private func expInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, shift: Float) -> Float {
    let sv = F16x(repeating: scale), mv = F16x(repeating: shift)
    var acc = F16x(repeating: 0), j = 0
    while j + 16 <= n {
        let e = nd_exp(load16(x + j) * sv - mv)
        store16(e, x + j)
        acc += e
        j += 16
    }
    var total = hsum(acc)
    if j < n {
        let e = nd_exp(loadPartial(x + j, n - j) * sv - mv)
        storePartial(e, x + j, n - j)
        for t in 0..<(n - j) { total += e[t] }
    }
    return total
}

/// One row of attention backward in one pass: p = exp(s·scale − lse) replaces the scores s, and
/// dS = p·(dP − delta)·scale replaces dP.
@inline(__always) private func softmaxGradientRow(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ n: Int,
                                                  scale: Float, lse: Float, delta: Float) {
    let sv = F16x(repeating: scale), lv = F16x(repeating: lse), dv = F16x(repeating: delta)
    var j = 0
    while j + 16 <= n {
        let e = nd_exp(load16(p + j) * sv - lv)
        store16(e, p + j)
        store16(e * (load16(g + j) - dv) * sv, g + j)
        j += 16
    }
    if j < n {
        let e = nd_exp(loadPartial(p + j, n - j) * sv - lv)
        storePartial(e, p + j, n - j)
        storePartial(e * (loadPartial(g + j, n - j) - dv) * sv, g + j, n - j)
    }
}

/// max of x[0..<n].
@inline(__always) private func maxOfRow(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F16x(repeating: -.infinity), i = 0
    while i + 16 <= n { acc = nd_max(acc, load16(x + i)); i += 16 }
    var m = hmax(acc)
    while i < n { m = max(m, x[i]); i += 1 }
    return m
}
