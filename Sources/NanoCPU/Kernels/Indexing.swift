import NanoEngine

// Gathers, scatters and copies that move elements without arithmetic (index ops, permute,
// slices). Index tensors are int32 and validated by the engine before these run.

/// out[o, j, :] = x[o, index[j], :]   x: (outer, axis, inner), index: (n), out: (outer, n, inner)
func indexSelectKernel(_ x: UnsafeRawPointer, _ v: AxisView, _ index: UnsafePointer<Int32>, _ n: Int,
                       _ out: UnsafeMutableRawPointer, elementSize: Int) {
    let rowBytes = v.inner * elementSize
    Parallel.forRange(v.outer * n, costPerItem: v.inner) { r in
        for item in r {
            let o = item / n, j = item % n
            let src = x + (o * v.axis + Int(index[j])) * rowBytes
            (out + item * rowBytes).copyMemory(from: src, byteCount: rowBytes)
        }
    }
}

/// out[o, index[j], :] += src[o, j, :]   (serial over j: indices may repeat)
func indexAddKernel(_ src: UnsafePointer<Float>, _ index: UnsafePointer<Int32>, _ n: Int, _ out: UnsafeMutablePointer<Float>,
                    _ v: AxisView) {
    Parallel.forRange(v.outer, costPerItem: n * v.inner) { r in
        for o in r {
            for j in 0..<n {
                let dst = out + (o * v.axis + Int(index[j])) * v.inner
                let s = src + (o * n + j) * v.inner
                zip16(dst, s, dst, v.inner) { $0 + $1 }
            }
        }
    }
}

/// out[o, j, i] = x[o, index[o, j, i], i]   x: (outer, axis, inner); index, out: (outer, J, inner)
func gatherKernel(_ x: UnsafePointer<Float>, _ v: AxisView, _ index: UnsafePointer<Int32>, _ out: UnsafeMutablePointer<Float>,
                  indexAxis: Int) {
    Parallel.forRange(v.outer, costPerItem: indexAxis * v.inner) { r in
        for o in r {
            for j in 0..<indexAxis {
                let base = (o * indexAxis + j) * v.inner
                for i in 0..<v.inner { out[base + i] = x[(o * v.axis + Int(index[base + i])) * v.inner + i] }
            }
        }
    }
}

/// out[o, index[o, j, i], i] += src[o, j, i]
func scatterAddKernel(_ src: UnsafePointer<Float>, _ index: UnsafePointer<Int32>, indexAxis: Int,
                      _ out: UnsafeMutablePointer<Float>, _ v: AxisView) {
    Parallel.forRange(v.outer, costPerItem: indexAxis * v.inner) { r in
        for o in r {
            for j in 0..<indexAxis {
                let base = (o * indexAxis + j) * v.inner
                for i in 0..<v.inner { out[(o * v.axis + Int(index[base + i])) * v.inner + i] += src[base + i] }
            }
        }
    }
}

/// out = x with axes permuted: out axis a is x axis perm[a].
func permuteKernel(_ x: UnsafeRawPointer, _ shape: [Int], _ perm: [Int], _ out: UnsafeMutableRawPointer, elementSize: Int) {
    let inStrides = Shape.strides(shape)
    let outShape = perm.map { shape[$0] }
    let strides = perm.map { inStrides[$0] }
    let inner = outShape.last ?? 1, innerStride = strides.last ?? 1
    let rows = outShape.dropLast().reduce(1, *)
    let outer = Array(outShape.dropLast()), outerStrides = Array(strides.dropLast())
    Parallel.forRange(rows, costPerItem: inner) { r in
        for row in r {
            var rem = row, off = 0
            for a in stride(from: outer.count - 1, through: 0, by: -1) { off += rem % outer[a] * outerStrides[a]; rem /= outer[a] }
            let dst = out + row * inner * elementSize
            if elementSize == 4 {
                let s = x.assumingMemoryBound(to: UInt32.self) + off, d = dst.assumingMemoryBound(to: UInt32.self)
                for i in 0..<inner { d[i] = s[i * innerStride] }
            } else {
                let s = x.assumingMemoryBound(to: UInt16.self) + off, d = dst.assumingMemoryBound(to: UInt16.self)
                for i in 0..<inner { d[i] = s[i * innerStride] }
            }
        }
    }
}

/// dst[o, dstStart + j, :] = src[o, srcStart + j, :] for j < length.
func copySlicesKernel(_ src: UnsafeRawPointer, _ sv: AxisView, srcStart: Int, _ dst: UnsafeMutableRawPointer, _ dv: AxisView,
                      dstStart: Int, length: Int, elementSize: Int) {
    let bytes = length * sv.inner * elementSize
    Parallel.forRange(sv.outer, costPerItem: length * sv.inner) { r in
        for o in r {
            (dst + ((o * dv.axis + dstStart) * dv.inner) * elementSize)
                .copyMemory(from: src + ((o * sv.axis + srcStart) * sv.inner) * elementSize, byteCount: bytes)
        }
    }
}
