import CKernelMath
import NanoEngine

// Pointwise kernels: unary activations and their derivatives, broadcasting binary ops,
// select, fills, casts and random fills. x, y: (n) contiguous float32 unless stated.

private let geluC: Float = 0.797_884_560_8   // √(2/π)
private let geluA: Float = 0.044_715

/// One activation applied to a vector; shared by forward and backward.
@inline(__always) func unaryVector(_ op: UnaryOp, _ x: F16x) -> F16x {
    switch op {
    case .gelu:   // 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³)
        let u = x.addingProduct(geluA * x * x, x) * geluC
        let half = 0.5 * x
        return half.addingProduct(half, nd_tanh(u))
    case .relu: return pointwiseMax(x, F16x(repeating: 0))
    case .silu: return x / (1 + nd_exp(-x))
    case .softplus:   // max(x, 0) + log(1 + e^-|x|)
        let ax = nd_max(x, -x)
        return pointwiseMax(x, F16x(repeating: 0)) + nd_log(1 + nd_exp(-ax))
    case .exp: return nd_exp(x)
    case .log: return nd_log(x)
    case .tanh: return nd_tanh(x)
    case .sigmoid: return 1 / (1 + nd_exp(-x))
    case .square: return x * x
    case .sqrt: return nd_sqrt(x)
    case .neg: return -x
    case let .affine(a, b): return x * a + b
    }
}

/// f'(x) for one activation.
@inline(__always) func unaryDerivative(_ op: UnaryOp, _ x: F16x) -> F16x {
    switch op {
    case .gelu:
        let x2: F16x = x * x
        let inner: F16x = x.addingProduct(geluA * x2, x)
        let t: F16x = nd_tanh(geluC * inner)
        let du: F16x = geluC * (1 + (3 * geluA) * x2)
        let left: F16x = 0.5 * (1 + t)
        return left + (0.5 * x) * (1 - t * t) * du
    case .relu: return nd_gt_zero_select(x, F16x(repeating: 1), F16x(repeating: 0))
    case .silu:
        let s = 1 / (1 + nd_exp(-x))
        return s * (1 + x * (1 - s))
    case .softplus, .sigmoid:
        let s = 1 / (1 + nd_exp(-x))
        return op == .softplus ? s : s * (1 - s)
    case .exp: return nd_exp(x)
    case .log: return 1 / x
    case .tanh:
        let t = nd_tanh(x)
        return 1 - t * t
    case .square: return 2 * x
    case .sqrt: return 0.5 / nd_sqrt(x)
    case .neg: return F16x(repeating: -1)
    case let .affine(a, _): return F16x(repeating: a)
    }
}

func unaryForward(_ op: UnaryOp, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    Parallel.forRange((n + 15) / 16, costPerItem: 64) { r in
        let lo = r.lowerBound * 16, hi = min(r.upperBound * 16, n)
        unarySpan(op, x + lo, y + lo, hi - lo)
    }
}

/// y = op(x) over n elements on the calling thread.
func unarySpan(_ op: UnaryOp, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    switch op {   // the switch sits outside the loop so each op's loop is specialised
    case .gelu: map16(x, y, n) { unaryVector(.gelu, $0) }
    case .relu: map16(x, y, n) { unaryVector(.relu, $0) }
    case let .affine(a, b):
        let av = F16x(repeating: a), bv = F16x(repeating: b)
        map16(x, y, n) { $0 * av + bv }
    default: map16(x, y, n) { unaryVector(op, $0) }
    }
}

func unaryBackward(_ op: UnaryOp, _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
    Parallel.forRange((n + 15) / 16, costPerItem: 64) { r in
        let lo = r.lowerBound * 16, hi = min(r.upperBound * 16, n)
        unaryBackwardSpan(op, x + lo, dy + lo, dx + lo, hi - lo)
    }
}

/// dx = op'(x)·dy over n elements on the calling thread.
func unaryBackwardSpan(_ op: UnaryOp, _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
    switch op {
    case .gelu: zip16(x, dy, dx, n) { unaryDerivative(.gelu, $0) * $1 }
    default: zip16(x, dy, dx, n) { unaryDerivative(op, $0) * $1 }
    }
}

/// Output shape and per-operand element strides (0 on broadcast axes), with adjacent axes merged
/// where every operand is contiguous across them.
struct BroadcastPlan {
    var shape: [Int]
    var strides: [[Int]]

    init(out: [Int], inputs: [[Int]]) {
        let rank = out.count
        var st: [[Int]] = inputs.map { inShape in
            let padded = [Int](repeating: 1, count: rank - inShape.count) + inShape
            let s = Shape.strides(padded)
            return (0..<rank).map { padded[$0] == 1 && out[$0] != 1 ? 0 : s[$0] }
        }
        st.append(Shape.strides(out))
        var shape: [Int] = []
        var merged: [[Int]] = Array(repeating: [], count: st.count)
        for axis in 0..<rank where out[axis] != 1 {
            if let last = shape.indices.last,
               st.indices.allSatisfy({ merged[$0][last] == st[$0][axis] * out[axis] }) {
                shape[last] *= out[axis]
                for o in st.indices { merged[o][last] = st[o][axis] }
            } else {
                shape.append(out[axis])
                for o in st.indices { merged[o].append(st[o][axis]) }
            }
        }
        if shape.isEmpty { shape = [1]; merged = merged.map { _ in [1] } }
        self.shape = shape
        self.strides = merged   // inputs, then the output
    }

    /// Calls body(offsets, length) for each run along the innermost axis; rows split across threads.
    func forEachRun(_ body: @Sendable ([Int], Int) -> Void) {
        let inner = shape.last!
        let rows = shape.dropLast().reduce(1, *)
        let outerShape = Array(shape.dropLast())
        let strides = self.strides
        Parallel.forRange(rows, costPerItem: inner * 2) { r in
            var idx = [Int](repeating: 0, count: outerShape.count)
            var rem = r.lowerBound
            for a in stride(from: outerShape.count - 1, through: 0, by: -1) { idx[a] = rem % outerShape[a]; rem /= outerShape[a] }
            var offs = [Int](repeating: 0, count: strides.count)
            for _ in r {
                for o in strides.indices {
                    var off = 0
                    for a in 0..<outerShape.count { off += idx[a] * strides[o][a] }
                    offs[o] = off
                }
                body(offs, inner)
                var a = outerShape.count - 1
                while a >= 0 { idx[a] += 1; if idx[a] < outerShape[a] { break }; idx[a] = 0; a -= 1 }
            }
        }
    }

    var innerStrides: [Int] { strides.map { $0.last! } }
}

@inline(__always) func binaryVector(_ op: BinaryOp, _ a: F16x, _ b: F16x) -> F16x {
    switch op {
    case .add: a + b
    case .sub: a - b
    case .mul: a * b
    case .div: a / b
    }
}

/// out = a op b over n elements of equal-shaped operands, on the calling thread.
func binarySpan(_ op: BinaryOp, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    switch op {   // one loop per op
    case .add: zip16(a, b, out, n) { $0 + $1 }
    case .sub: zip16(a, b, out, n) { $0 - $1 }
    case .mul: zip16(a, b, out, n) { $0 * $1 }
    case .div: zip16(a, b, out, n) { $0 / $1 }
    }
}

func binaryKernel(_ op: BinaryOp, _ a: UnsafePointer<Float>, _ aShape: [Int], _ b: UnsafePointer<Float>, _ bShape: [Int],
                  _ out: UnsafeMutablePointer<Float>, _ outShape: [Int]) {
    let plan = BroadcastPlan(out: outShape, inputs: [aShape, bShape])
    let inner = plan.innerStrides
    let sa = inner[0], sb = inner[1]
    // A single contiguous run: split it across threads directly.
    if plan.shape.count == 1 && sa == 1 && sb == 1 {
        let n = plan.shape[0]
        Parallel.forRange((n + 15) / 16, costPerItem: 16) { r in
            let lo = r.lowerBound * 16, hi = min(r.upperBound * 16, n)
            binarySpan(op, a + lo, b + lo, out + lo, hi - lo)
        }
        return
    }
    plan.forEachRun { offs, n in
        let pa = a + offs[0], pb = b + offs[1], po = out + offs[2]
        if sa == 1 && sb == 1 {
            zip16(pa, pb, po, n) { binaryVector(op, $0, $1) }
        } else if sa == 1 && sb == 0 {
            let bv = F16x(repeating: pb[0])
            map16(pa, po, n) { binaryVector(op, $0, bv) }
        } else if sa == 0 && sb == 1 {
            let av = F16x(repeating: pa[0])
            map16(pb, po, n) { binaryVector(op, av, $0) }
        } else {
            for i in 0..<n {
                let x = pa[i * sa], y = pb[i * sb]
                switch op {
                case .add: po[i] = x + y
                case .sub: po[i] = x - y
                case .mul: po[i] = x * y
                case .div: po[i] = x / y
                }
            }
        }
    }
}

func selectKernel(_ c: UnsafePointer<Float>, _ cShape: [Int], _ a: UnsafePointer<Float>, _ aShape: [Int],
                  _ b: UnsafePointer<Float>, _ bShape: [Int], _ out: UnsafeMutablePointer<Float>, _ outShape: [Int]) {
    let plan = BroadcastPlan(out: outShape, inputs: [cShape, aShape, bShape])
    let s = plan.innerStrides
    plan.forEachRun { offs, n in
        let pc = c + offs[0], pa = a + offs[1], pb = b + offs[2], po = out + offs[3]
        for i in 0..<n { po[i] = pc[i * s[0]] != 0 ? pa[i * s[1]] : pb[i * s[2]] }
    }
}

func randomFill(_ y: UnsafeMutablePointer<Float>, _ n: Int, _ d: RandomDistribution, seed: UInt64, offset: UInt64) {
    Parallel.forRange(n, costPerItem: 64) { r in
        for i in r { y[i] = Philox.sample(d, seed: seed, offset: offset, index: i) }
    }
}
