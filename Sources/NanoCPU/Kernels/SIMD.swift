import CKernelMath

// Load/store helpers for 16-float vectors, and the partial forms used for row tails.
typealias F16x = SIMD16<Float>

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> F16x {
    UnsafeRawPointer(p).loadUnaligned(as: F16x.self)
}
@inline(__always) func load16(_ p: UnsafeMutablePointer<Float>) -> F16x {
    UnsafeRawPointer(p).loadUnaligned(as: F16x.self)
}
@inline(__always) func store16(_ v: F16x, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F16x.self)
}
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ n: Int, fill: Float = 0) -> F16x {
    var v = F16x(repeating: fill)
    for i in 0..<n { v[i] = p[i] }
    return v
}
@inline(__always) func storePartial(_ v: F16x, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = v[i] }
}
/// Sum of lanes, reduced by halves (a serial `.sum()` is 15 dependent adds).
@inline(__always) func hsum(_ v: F16x) -> Float { nd_hsum(v) }
@inline(__always) func hmax(_ v: F16x) -> Float { nd_hmax(v) }

/// y[i] = f(x[i]) over n floats, 16 at a time; the tail runs through the same vector code.
@inline(__always) func map16(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                             _ f: (F16x) -> F16x) {
    var i = 0
    // Two vectors per iteration: independent dependency chains hide FMA and division latency.
    while i + 32 <= n {
        let a = f(load16(x + i)), b = f(load16(x + i + 16))
        store16(a, y + i); store16(b, y + i + 16)
        i += 32
    }
    while i + 16 <= n { store16(f(load16(x + i)), y + i); i += 16 }
    if i < n { storePartial(f(loadPartial(x + i, n - i)), y + i, n - i) }
}

/// z[i] = f(x[i], y[i]) over n floats.
@inline(__always) func zip16(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafeMutablePointer<Float>, _ n: Int,
                             _ f: (F16x, F16x) -> F16x) {
    var i = 0
    while i + 16 <= n { store16(f(load16(x + i), load16(y + i)), z + i); i += 16 }
    if i < n { storePartial(f(loadPartial(x + i, n - i), loadPartial(y + i, n - i)), z + i, n - i) }
}

/// Σ x[i]·y[i].
@inline(__always) func dot16(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F16x(repeating: 0), i = 0
    while i + 16 <= n { acc = acc.addingProduct(load16(x + i), load16(y + i)); i += 16 }
    if i < n { acc = acc.addingProduct(loadPartial(x + i, n - i), loadPartial(y + i, n - i)) }
    return hsum(acc)
}

/// y[i] += a·x[i].
@inline(__always) func axpy16(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let av = F16x(repeating: a)
    var i = 0
    while i + 16 <= n { store16(load16(y + i).addingProduct(av, load16(x + i)), y + i); i += 16 }
    while i < n { y[i] += a * x[i]; i += 1 }
}

/// Σ x[i].
@inline(__always) func sum16(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F16x(repeating: 0), i = 0
    while i + 16 <= n { acc += load16(x + i); i += 16 }
    var total = hsum(acc)
    while i < n { total += x[i]; i += 1 }
    return total
}
