import NanoEngine

// Row ops on the GPU (kernels in Kernels/EngineRows.swift), with NanoCPU's Rows semantics:
// reductions, softmax, cumsum, LayerNorm, RMSNorm, cross-entropy, top-k, and the two reductions
// the host reads back. Every output is overwritten, parameter gradients included.
//
// Argument lists follow the kernels' C signatures position by position: pointers, then sizes as
// `long long` (`.int64`), then flags and op codes as `int` (`.int32`) and floats where the C says so.

extension CUDABackend {
    private static let rowsUnit = "engine_rows.cu"

    /// Grid for kernels that give one warp to each of `items` (256-thread blocks of 8 warps; the
    /// kernels loop when there are more items than warps).
    private func warpGrid(items: Int) -> (Int, Int, Int) { (max(1, min((items + 7) / 8, 1 << 20)), 1, 1) }

    /// Row lengths fit the kernels' `int` column loops.
    private func requireRowLength(_ cols: Int, _ op: String) {
        precondition(cols <= Int(Int32.max), "CUDABackend.\(op): rows of \(cols) elements are longer than the kernels' int32 column index")
    }

    // MARK: Reductions

    /// out (outer, inner) = sum or max of x (outer, axis, inner) over the axis; an empty axis gives 0 or −∞.
    public func reduce(_ op: ReduceOp, _ x: Tensor, _ view: AxisView, _ out: Tensor) {
        let (outer, axis, inner) = (view.outer, view.axis, view.inner)
        guard outer * inner > 0 else { return }
        let code: Int32 = op == .sum ? 0 : 1
        if inner == 1 {
            // One warp per row; a long row with few rows is split into parts of ≥ 2,048 columns
            // (enough warps to fill the GPU), then the parts are reduced again.
            let splits = max(1, min((axis + 2047) / 2048, 16_384 / outer, 4096))
            guard splits > 1 else {
                launch(Self.rowsUnit, "nd_reduce_rows", grid: warpGrid(items: outer), block: (256, 1, 1),
                       [arg(x), arg(out), .int64(Int64(outer)), .int64(Int64(axis)), .int64(1), .int32(code)])
                return
            }
            let bytes = outer * splits * 4
            let partial = scratch(bytes: bytes)
            launch(Self.rowsUnit, "nd_reduce_rows", grid: warpGrid(items: outer * splits), block: (256, 1, 1),
                   [arg(x), .pointer(partial), .int64(Int64(outer)), .int64(Int64(axis)), .int64(Int64(splits)), .int32(code)])
            launch(Self.rowsUnit, "nd_reduce_rows", grid: warpGrid(items: outer), block: (256, 1, 1),
                   [.pointer(partial), arg(out), .int64(Int64(outer)), .int64(Int64(splits)), .int64(1), .int32(code)])
            releaseScratch(partial, bytes: bytes)
            return
        }
        // One thread per output element; with few outputs (bias gradients: outer 1, a long axis)
        // the axis is split into parts of ≥ 64 rows and the (outer, splits, inner) partials reduced again.
        let splits = max(1, min((axis + 63) / 64, 262_144 / (outer * inner), 1024))
        guard splits > 1 else {
            launch(Self.rowsUnit, "nd_reduce_axis", grid: elementGrid(outer * inner), block: (256, 1, 1),
                   [arg(x), arg(out), .int64(Int64(outer)), .int64(Int64(axis)), .int64(Int64(inner)), .int64(1), .int32(code)])
            return
        }
        let bytes = outer * splits * inner * 4
        let partial = scratch(bytes: bytes)
        launch(Self.rowsUnit, "nd_reduce_axis", grid: elementGrid(outer * splits * inner), block: (256, 1, 1),
               [arg(x), .pointer(partial), .int64(Int64(outer)), .int64(Int64(axis)), .int64(Int64(inner)), .int64(Int64(splits)), .int32(code)])
        launch(Self.rowsUnit, "nd_reduce_axis", grid: elementGrid(outer * inner), block: (256, 1, 1),
               [.pointer(partial), arg(out), .int64(Int64(outer)), .int64(Int64(splits)), .int64(Int64(inner)), .int64(1), .int32(code)])
        releaseScratch(partial, bytes: bytes)
    }

    // MARK: Softmax   x, y, dy, dx: (rows, cols)

    public func softmax(_ x: Tensor, _ y: Tensor, rows: Int, cols: Int, log: Bool) {
        guard rows > 0, cols > 0 else { return }
        requireRowLength(cols, "softmax")
        launch(Self.rowsUnit, "nd_softmax_forward", grid: warpGrid(items: rows), block: (256, 1, 1),
               [arg(x), arg(y), .int64(Int64(rows)), .int64(Int64(cols)), .int32(log ? 1 : 0)])
    }

    public func softmaxBackward(y: Tensor, dy: Tensor, dx: Tensor, rows: Int, cols: Int, log: Bool) {
        guard rows > 0, cols > 0 else { return }
        requireRowLength(cols, "softmaxBackward")
        launch(Self.rowsUnit, "nd_softmax_backward", grid: warpGrid(items: rows), block: (256, 1, 1),
               [arg(y), arg(dy), arg(dx), .int64(Int64(rows)), .int64(Int64(cols)), .int32(log ? 1 : 0)])
    }

    // MARK: Cumulative sum   x, out: (outer, axis, inner)

    public func cumsum(_ x: Tensor, _ view: AxisView, _ out: Tensor, reverse: Bool) {
        let (outer, axis, inner) = (view.outer, view.axis, view.inner)
        guard outer * axis * inner > 0 else { return }
        let sizes: [CUDAContext.Argument] = [.int64(Int64(outer)), .int64(Int64(axis)), .int64(Int64(inner)), .int32(reverse ? 1 : 0)]
        if inner >= 32 && outer * inner >= 16_384 {
            // Enough contiguous columns: one thread each, adding in the CPU's order.
            launch(Self.rowsUnit, "nd_cumsum_columns", grid: elementGrid(outer * inner), block: (256, 1, 1), [arg(x), arg(out)] + sizes)
        } else {
            launch(Self.rowsUnit, "nd_cumsum_scan", grid: warpGrid(items: outer * inner), block: (256, 1, 1), [arg(x), arg(out)] + sizes)
        }
    }

    // MARK: LayerNorm and RMSNorm   x, y, dy, dx: (rows, cols); weight, bias: (cols); mean, rstd: (rows)

    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, y: Tensor, mean: Tensor, rstd: Tensor,
                          rows: Int, cols: Int) {
        guard rows > 0, cols > 0 else { return }
        requireRowLength(cols, "layerNorm")
        launch(Self.rowsUnit, "nd_layernorm_forward", grid: warpGrid(items: rows), block: (256, 1, 1),
               [arg(x), arg(weight), arg(bias), arg(y), arg(mean), arg(rstd), .int64(Int64(rows)), .int64(Int64(cols)), .float(eps)])
    }

    /// dx overwritten; dweight = Σ dy·x̂ and dbias = Σ dy over rows, overwritten (zero when rows = 0).
    public func layerNormBackward(_ x: Tensor, weight: Tensor?, mean: Tensor, rstd: Tensor, dy: Tensor, dx: Tensor,
                                  dweight: Tensor?, dbias: Tensor?, rows: Int, cols: Int) {
        normBackward(x, weight: weight, mean: mean, rstd: rstd, dy: dy, dx: dx, dweight: dweight, dbias: dbias, rows: rows, cols: cols)
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float, y: Tensor, rstd: Tensor, rows: Int, cols: Int) {
        guard rows > 0, cols > 0 else { return }
        requireRowLength(cols, "rmsNorm")
        launch(Self.rowsUnit, "nd_rmsnorm_forward", grid: warpGrid(items: rows), block: (256, 1, 1),
               [arg(x), arg(weight), arg(y), arg(rstd), .int64(Int64(rows)), .int64(Int64(cols)), .float(eps)])
    }

    /// dx overwritten; dweight = Σ dy·x̂ over rows, overwritten.
    public func rmsNormBackward(_ x: Tensor, weight: Tensor?, rstd: Tensor, dy: Tensor, dx: Tensor, dweight: Tensor?,
                                rows: Int, cols: Int) {
        normBackward(x, weight: weight, mean: nil, rstd: rstd, dy: dy, dx: dx, dweight: dweight, dbias: nil, rows: rows, cols: cols)
    }

    /// LayerNorm's backward, or RMSNorm's when mean is nil (x̂ = x·rstd, no mean term), as the CPU's
    /// `layerNormBackward(rmsOnly:)`. dx by rows; the parameter gradients as column sums over parts of
    /// the rows (no atomics, so they are the same from run to run), then over the parts.
    private func normBackward(_ x: Tensor, weight: Tensor?, mean: Tensor?, rstd: Tensor, dy: Tensor, dx: Tensor,
                              dweight: Tensor?, dbias: Tensor?, rows: Int, cols: Int) {
        guard cols > 0 else { return }
        requireRowLength(cols, "layerNormBackward")
        guard rows > 0 else {
            for g in [dweight, dbias].compactMap({ $0 }) { zero(g) }
            return
        }
        launch(Self.rowsUnit, "nd_norm_backward_dx", grid: warpGrid(items: rows), block: (256, 1, 1),
               [arg(x), arg(weight), arg(mean), arg(rstd), arg(dy), arg(dx), .int64(Int64(rows)), .int64(Int64(cols))])
        guard dweight != nil || dbias != nil else { return }
        // Parts of ≥ 32 rows, enough of them for ~128K threads.
        let splits = max(1, min((rows + 31) / 32, 131_072 / cols, 4096))
        let columnBlocks = min((cols + 255) / 256, 65_535)
        let sizes: [CUDAContext.Argument] = [.int64(Int64(rows)), .int64(Int64(cols)), .int64(Int64(splits))]
        guard splits > 1 else {
            launch(Self.rowsUnit, "nd_norm_backward_params", grid: (columnBlocks, 1, 1), block: (256, 1, 1),
                   [arg(x), arg(mean), arg(rstd), arg(dy), arg(dweight), arg(dbias)] + sizes)
            return
        }
        let bytes = splits * cols * 4
        let partialW = dweight.map { _ in scratch(bytes: bytes) }, partialB = dbias.map { _ in scratch(bytes: bytes) }
        launch(Self.rowsUnit, "nd_norm_backward_params", grid: (columnBlocks, splits, 1), block: (256, 1, 1),
               [arg(x), arg(mean), arg(rstd), arg(dy), .pointer(partialW ?? 0), .pointer(partialB ?? 0)] + sizes)
        for (partial, gradient) in [(partialW, dweight), (partialB, dbias)] {
            guard let partial, let gradient else { continue }
            // (1, splits, cols) → (1, cols)
            launch(Self.rowsUnit, "nd_reduce_axis", grid: elementGrid(cols), block: (256, 1, 1),
                   [.pointer(partial), arg(gradient), .int64(1), .int64(Int64(splits)), .int64(Int64(cols)), .int64(1), .int32(0)])
            releaseScratch(partial, bytes: bytes)
        }
    }

    // MARK: Cross-entropy   logits, dlogits: (rows, classes); targets (int32), losses, lse: (rows)

    /// losses = lse − logit[target], 0 where the target is `ignoreIndex`; lse saved for every row.
    public func crossEntropy(logits: Tensor, targets: Tensor, losses: Tensor, lse: Tensor, rows: Int, classes: Int, ignoreIndex: Int32) {
        guard rows > 0 else { return }
        requireRowLength(classes, "crossEntropy")
        launch(Self.rowsUnit, "nd_cross_entropy_forward", grid: warpGrid(items: rows), block: (256, 1, 1),
               [arg(logits), arg(targets), arg(losses), arg(lse), .int64(Int64(rows)), .int64(Int64(classes)), .int32(ignoreIndex)])
    }

    /// dlogits = softmax·scale − scale at the target (overwritten), all 0 in ignored rows.
    public func crossEntropyBackward(logits: Tensor, targets: Tensor, lse: Tensor, dlogits: Tensor, scale: Float, scaleBy: Tensor?,
                                     rows: Int, classes: Int, ignoreIndex: Int32) {
        guard rows > 0, classes > 0 else { return }
        // Columns over grid.x, rows over grid.y (at most 65,535 there; the kernel loops over the rest).
        launch(Self.rowsUnit, "nd_cross_entropy_backward", grid: (min((classes + 255) / 256, 65_535), min(rows, 65_535), 1),
               block: (256, 1, 1),
               [arg(logits), arg(targets), arg(lse), arg(dlogits), .float(scale), arg(scaleBy), .int64(Int64(rows)), .int64(Int64(classes)),
                .int32(ignoreIndex)])
    }

    // MARK: Top-k   x: (rows, cols) → values, indices (int32): (rows, k)

    /// The k largest per row, descending; among equal values the lower index comes first.
    public func topK(_ x: Tensor, rows: Int, cols: Int, k: Int, values: Tensor, indices: Tensor) {
        guard rows > 0, k > 0 else { return }
        requireRowLength(cols, "topK")
        launch(Self.rowsUnit, "nd_topk", grid: warpGrid(items: rows), block: (256, 1, 1),
               [arg(x), arg(values), arg(indices), .int64(Int64(rows)), .int64(Int64(cols)), .int64(Int64(k))])
    }

    // MARK: Reductions read back by the host

    /// Blocks for the read-back reductions: one partial each, at most 1,024.
    private func partialBlocks(_ n: Int) -> Int { max(1, min((n + 255) / 256, 1024)) }

    /// Σ x²: per-block partials in double on the GPU, added on the host (waits for the GPU).
    public func sumOfSquares(_ x: Tensor) -> Double {
        guard x.count > 0 else { return 0 }
        let blocks = partialBlocks(x.count)
        let partial = scratch(bytes: blocks * 8)
        defer { releaseScratch(partial, bytes: blocks * 8) }
        launch(Self.rowsUnit, "nd_sum_of_squares", grid: (blocks, 1, 1), block: (256, 1, 1),
               [arg(x), .pointer(partial), .int64(Int64(x.count))])
        return download(partial, count: blocks, as: Double.self).reduce(0, +)
    }

    /// ‖tensors‖₂ into `out` on the device: per-block partials of every tensor in one buffer, then
    /// one block adds them (fixed order) and writes the square root as float32. Nothing is read
    /// back, so recorded graphs hold it.
    public func gradientNorm(_ tensors: [Tensor], into out: Tensor) {
        let blocks = tensors.map { $0.count > 0 ? partialBlocks($0.count) : 0 }
        let total = max(blocks.reduce(0, +), 1)
        let partial = scratch(bytes: total * 8)
        defer { releaseScratch(partial, bytes: total * 8) }
        do { try gpu.zero(partial, bytes: total * 8) } catch { fatal("zeroing the norm partials", error) }
        var offset = 0
        for (x, n) in zip(tensors, blocks) where n > 0 {
            launch(Self.rowsUnit, "nd_sum_of_squares", grid: (n, 1, 1), block: (256, 1, 1),
                   [arg(x), .pointer(partial + CUDAContext.DevicePointer(offset * 8)), .int64(Int64(x.count))])
            offset += n
        }
        launch(Self.rowsUnit, "nd_norm_of_partials", grid: (1, 1, 1), block: (256, 1, 1), [.pointer(partial), .int64(Int64(total)), arg(out)])
    }

    /// Smallest and largest value of an int32 tensor ((Int32.max, Int32.min) when empty; waits for the GPU).
    public func indexRange(_ index: Tensor) -> (min: Int32, max: Int32) {
        guard index.count > 0 else { return (Int32.max, Int32.min) }
        // A graph being recorded cannot read values back: replayed steps index with token batches,
        // whose range the dataset checked when it was loaded (against the model's vocabulary).
        if capture != nil { return (0, 0) }
        let blocks = partialBlocks(index.count)
        let partial = scratch(bytes: blocks * 8)
        defer { releaseScratch(partial, bytes: blocks * 8) }
        launch(Self.rowsUnit, "nd_index_range", grid: (blocks, 1, 1), block: (256, 1, 1),
               [arg(index), .pointer(partial), .int64(Int64(index.count))])
        let pairs = download(partial, count: 2 * blocks, as: Int32.self)
        var lo = Int32.max, hi = Int32.min
        for b in 0..<blocks { lo = min(lo, pairs[2 * b]); hi = max(hi, pairs[2 * b + 1]) }
        return (lo, hi)
    }
}
