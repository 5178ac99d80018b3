import Foundation
import CKernelMath
import NanoEngine

// Row kernels over the last axis: softmax, LayerNorm, RMSNorm, cross-entropy; and reductions
// over an (outer, axis, inner) view. Rows are split across threads.

/// Max and log-sum-exp of one row.
@inline(__always) func rowLogSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var mv = F16x(repeating: -.infinity), i = 0
    while i + 16 <= n { mv = nd_max(mv, load16(x + i)); i += 16 }
    if i < n { mv = nd_max(mv, loadPartial(x + i, n - i, fill: -.infinity)) }
    let m = hmax(mv)
    if m == -.infinity { return m }
    let mb = F16x(repeating: m)
    var sv = F16x(repeating: 0)
    i = 0
    while i + 16 <= n { sv += nd_exp(load16(x + i) - mb); i += 16 }
    if i < n { sv += nd_exp(loadPartial(x + i, n - i, fill: -.infinity) - mb) }
    return m + Foundation.log(hsum(sv))
}

// MARK: softmax / log-softmax   x, y: (rows, cols)

func softmaxForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, log: Bool) {
    Parallel.forRange(rows, costPerItem: cols * 8) { r in
        for row in r {
            let xr = x + row * cols, yr = y + row * cols
            if log {
                let lse = F16x(repeating: rowLogSumExp(xr, cols))
                map16(xr, yr, cols) { $0 - lse }
                continue
            }
            // max, then exp into y while summing, then one scale: a single exp per element.
            var mv = F16x(repeating: -.infinity), i = 0
            while i + 16 <= cols { mv = nd_max(mv, load16(xr + i)); i += 16 }
            var m = hmax(mv)
            while i < cols { m = Swift.max(m, xr[i]); i += 1 }
            let mb = F16x(repeating: m)
            var sv = F16x(repeating: 0)
            i = 0
            while i + 16 <= cols { let e = nd_exp(load16(xr + i) - mb); sv += e; store16(e, yr + i); i += 16 }
            var total = hsum(sv)
            while i < cols { let e = Foundation.exp(xr[i] - m); total += e; yr[i] = e; i += 1 }
            let inv = F16x(repeating: 1 / total)
            map16(yr, yr, cols) { $0 * inv }
        }
    }
}

/// softmax: dx = y ⊙ (dy − Σ dy·y); log-softmax: dx = dy − softmax · Σ dy.
func softmaxBackward(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                     rows: Int, cols: Int, log: Bool) {
    Parallel.forRange(rows, costPerItem: cols * 8) { r in
        for row in r {
            let yr = y + row * cols, gr = dy + row * cols, dr = dx + row * cols
            if log {
                var s = F16x(repeating: 0)
                map16(gr, dr, cols) { s += $0; return $0 }
                let total = F16x(repeating: hsum(s))
                zip16(yr, gr, dr, cols) { $1 - nd_exp($0) * total }
            } else {
                let d = F16x(repeating: dot16(yr, gr, cols))
                zip16(yr, gr, dr, cols) { $0 * ($1 - d) }
            }
        }
    }
}

// MARK: LayerNorm   x, y: (rows, cols); weight, bias: (cols); mean, rstd: (rows)

func layerNormForward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, _ b: UnsafePointer<Float>?, eps: Float,
                      _ y: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                      rows: Int, cols: Int) {
    Parallel.forRange(rows, costPerItem: cols * 6) { r in
        layerNormRows(r, x, w, b, eps: eps, y, mean, rstd, cols: cols)
    }
}

/// LayerNorm of the rows in r on the calling thread.
func layerNormRows(_ r: Range<Int>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, _ b: UnsafePointer<Float>?, eps: Float,
                   _ y: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                   cols: Int) {
    for row in r {
        let xr = x + row * cols, yr = y + row * cols
        let m = sum16(xr, cols) / Float(cols)
        let mv = F16x(repeating: m)
        var v = F16x(repeating: 0), i = 0
        while i + 16 <= cols { let d = load16(xr + i) - mv; v = v.addingProduct(d, d); i += 16 }
        var variance = hsum(v)
        while i < cols { let d = xr[i] - m; variance += d * d; i += 1 }
        let rs = 1 / (variance / Float(cols) + eps).squareRoot()
        mean[row] = m
        rstd[row] = rs
        let rv = F16x(repeating: rs)
        switch (w, b) {
        case let (w?, b?):
            i = 0
            while i + 16 <= cols {
                let h = (load16(xr + i) - mv) * rv
                store16(load16(b + i).addingProduct(h, load16(w + i)), yr + i)
                i += 16
            }
            while i < cols { yr[i] = (xr[i] - m) * rs * w[i] + b[i]; i += 1 }
        case let (w?, nil):
            zip16(xr, w, yr, cols) { ($0 - mv) * rv * $1 }
        default:
            map16(xr, yr, cols) { ($0 - mv) * rv }
            if let b { zip16(yr, b, yr, cols) { $0 + $1 } }
        }
    }
}

/// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy⊙w; dw = Σ dy⊙x̂, db = Σ dy (per-thread partials).
func layerNormBackward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, _ mean: UnsafePointer<Float>,
                       _ rstd: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                       _ dw: UnsafeMutablePointer<Float>?, _ db: UnsafeMutablePointer<Float>?, rows: Int, cols: Int,
                       rmsOnly: Bool = false) {
    let threads = max(1, min(Parallel.threads, rows))
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: threads * cols * 2)
    partials.initialize(repeating: 0, count: threads * cols * 2)
    defer { partials.deallocate() }
    let chunkRows = (rows + threads - 1) / threads
    Parallel.forRange(threads, costPerItem: 1 << 20) { tr in
        for t in tr {
            let pw = partials + t * cols * 2, pb = pw + cols
            let g = UnsafeMutablePointer<Float>.allocate(capacity: cols)
            defer { g.deallocate() }
            for row in (t * chunkRows)..<min(rows, (t + 1) * chunkRows) {
                let xr = x + row * cols, gr = dy + row * cols, dr = dx + row * cols
                let m = rmsOnly ? 0 : mean[row], rs = rstd[row]
                let mv = F16x(repeating: m), rv = F16x(repeating: rs)
                // g = dy ⊙ w; accumulate dw, db; sums of g and g·x̂
                var sg = F16x(repeating: 0), sgx = F16x(repeating: 0)
                var i = 0
                while i < cols {
                    let n = min(16, cols - i)
                    let xh = ((n == 16 ? load16(xr + i) : loadPartial(xr + i, n)) - mv) * rv
                    let d = n == 16 ? load16(gr + i) : loadPartial(gr + i, n)
                    let gv = w.map { d * (n == 16 ? load16($0 + i) : loadPartial($0 + i, n)) } ?? d
                    if n == 16 {
                        store16(load16(pw + i).addingProduct(d, xh), pw + i)
                        store16(load16(pb + i) + d, pb + i)
                        store16(gv, g + i)
                    } else {
                        storePartial(loadPartial(pw + i, n).addingProduct(d, xh), pw + i, n)
                        storePartial(loadPartial(pb + i, n) + d, pb + i, n)
                        storePartial(gv, g + i, n)
                    }
                    sg += gv
                    sgx = sgx.addingProduct(gv, xh)
                    i += 16
                }
                let meanG = F16x(repeating: rmsOnly ? 0 : hsum(sg) / Float(cols))
                let meanGX = F16x(repeating: hsum(sgx) / Float(cols))
                i = 0
                while i < cols {
                    let n = min(16, cols - i)
                    let xh = ((n == 16 ? load16(xr + i) : loadPartial(xr + i, n)) - mv) * rv
                    let gv = n == 16 ? load16(g + i) : loadPartial(g + i, n)
                    let out = rv * (gv - meanG - xh * meanGX)
                    if n == 16 { store16(out, dr + i) } else { storePartial(out, dr + i, n) }
                    i += 16
                }
            }
        }
    }
    for t in 0..<threads {
        let pw = partials + t * cols * 2, pb = pw + cols
        if let dw { for i in 0..<cols { dw[i] = (t == 0 ? 0 : dw[i]) + pw[i] } }
        if let db { for i in 0..<cols { db[i] = (t == 0 ? 0 : db[i]) + pb[i] } }
    }
}

/// RMSNorm (Zhang & Sennrich 2019): y = x / rms(x) · w.
func rmsNormForward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, eps: Float, _ y: UnsafeMutablePointer<Float>,
                    _ rstd: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    Parallel.forRange(rows, costPerItem: cols * 4) { r in
        for row in r {
            let xr = x + row * cols, yr = y + row * cols
            let rs = 1 / (dot16(xr, xr, cols) / Float(cols) + eps).squareRoot()
            rstd[row] = rs
            let rv = F16x(repeating: rs)
            if let w { zip16(xr, w, yr, cols) { $0 * rv * $1 } } else { map16(xr, yr, cols) { $0 * rv } }
        }
    }
}

// MARK: cross-entropy   logits: (rows, classes); targets: int32 (rows)

func crossEntropyForward(_ logits: UnsafePointer<Float>, _ targets: UnsafePointer<Int32>, _ losses: UnsafeMutablePointer<Float>,
                         _ lse: UnsafeMutablePointer<Float>, rows: Int, classes: Int, ignoreIndex: Int32) {
    Parallel.forRange(rows, costPerItem: classes * 4) { r in
        for row in r {
            let t = targets[row]
            let xr = logits + row * classes
            let l = rowLogSumExp(xr, classes)
            lse[row] = l
            losses[row] = t == ignoreIndex ? 0 : l - xr[Int(t)]
        }
    }
}

func crossEntropyBackward(_ logits: UnsafePointer<Float>, _ targets: UnsafePointer<Int32>, _ lse: UnsafePointer<Float>,
                          _ dlogits: UnsafeMutablePointer<Float>, scale: Float, rows: Int, classes: Int, ignoreIndex: Int32) {
    Parallel.forRange(rows, costPerItem: classes * 4) { r in
        for row in r {
            let t = targets[row]
            let xr = logits + row * classes, dr = dlogits + row * classes
            if t == ignoreIndex { dr.update(repeating: 0, count: classes); continue }
            let l = F16x(repeating: lse[row]), s = F16x(repeating: scale)
            map16(xr, dr, classes) { nd_exp($0 - l) * s }
            dr[Int(t)] -= scale
        }
    }
}

// MARK: reductions over (outer, axis, inner)

func reduceKernel(_ op: ReduceOp, _ x: UnsafePointer<Float>, _ v: AxisView, _ out: UnsafeMutablePointer<Float>) {
    if v.inner == 1 {
        Parallel.forRange(v.outer, costPerItem: v.axis) { r in
            for o in r {
                let xr = x + o * v.axis
                if op == .sum {
                    var s = F16x(repeating: 0), i = 0
                    while i + 16 <= v.axis { s += load16(xr + i); i += 16 }
                    var total = hsum(s)
                    while i < v.axis { total += xr[i]; i += 1 }
                    out[o] = total
                } else {
                    var m = -Float.infinity
                    for i in 0..<v.axis { m = Swift.max(m, xr[i]) }
                    out[o] = m
                }
            }
        }
        return
    }
    Parallel.forRange(v.outer * ((v.inner + 63) / 64), costPerItem: v.axis * 64) { r in
        let blocks = (v.inner + 63) / 64
        for item in r {
            let o = item / blocks, lo = item % blocks * 64, hi = Swift.min(v.inner, lo + 64)
            let dst = out + o * v.inner
            let src = x + o * v.axis * v.inner
            for i in lo..<hi { dst[i] = op == .sum ? 0 : -.infinity }
            for j in 0..<v.axis {
                let row = src + j * v.inner
                if op == .sum {
                    zip16(dst + lo, row + lo, dst + lo, hi - lo) { $0 + $1 }
                } else {
                    for i in lo..<hi { dst[i] = Swift.max(dst[i], row[i]) }
                }
            }
        }
    }
}

func cumsumKernel(_ x: UnsafePointer<Float>, _ v: AxisView, _ out: UnsafeMutablePointer<Float>, reverse: Bool) {
    Parallel.forRange(v.outer, costPerItem: v.axis * v.inner) { r in
        for o in r {
            let src = x + o * v.axis * v.inner, dst = out + o * v.axis * v.inner
            for i in 0..<v.inner {
                var acc: Float = 0
                for jj in 0..<v.axis {
                    let j = reverse ? v.axis - 1 - jj : jj
                    acc += src[j * v.inner + i]
                    dst[j * v.inner + i] = acc
                }
            }
        }
    }
}

/// Top-k per row by insertion into a sorted list (k is small: experts per token, sampling).
/// Ties keep the lower index first.
func topKKernel(_ x: UnsafePointer<Float>, rows: Int, cols: Int, k: Int, _ values: UnsafeMutablePointer<Float>,
                _ indices: UnsafeMutablePointer<Int32>) {
    Parallel.forRange(rows, costPerItem: cols * k) { r in
        for row in r {
            let xr = x + row * cols, vr = values + row * k, ir = indices + row * k
            var filled = 0
            for c in 0..<cols {
                let v = xr[c]
                if filled == k && !(v > vr[k - 1]) { continue }
                var pos = Swift.min(filled, k - 1)
                while pos > 0 && v > vr[pos - 1] { vr[pos] = vr[pos - 1]; ir[pos] = ir[pos - 1]; pos -= 1 }
                vr[pos] = v
                ir[pos] = Int32(c)
                if filled < k { filled += 1 }
            }
        }
    }
}
