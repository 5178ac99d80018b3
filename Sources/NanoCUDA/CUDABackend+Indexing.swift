import NanoEngine

// Index ops on the GPU (kernels in Kernels/EngineIndexing.swift), with NanoCPU's Indexing
// semantics: indexSelect and gather overwrite their output, indexAdd and scatterAdd add into
// theirs. Indices are int32 and checked by the engine (`indexRange`) before these run.
//
// Every kernel takes (input, index, output, outer, axis, inner, n): three pointers, then four
// sizes as `long long` (`.int64`).

extension CUDABackend {
    private static let indexingUnit = "engine_indexing.cu"

    /// The four `long long` sizes the index kernels take after their pointers.
    private func indexSizes(_ view: AxisView, _ n: Int) -> [CUDAContext.Argument] {
        [.int64(Int64(view.outer)), .int64(Int64(view.axis)), .int64(Int64(view.inner)), .int64(Int64(n))]
    }

    /// out[o, j, i] = x[o, index[j], i] (overwrites out). Any element type of 4 or 2 bytes, as the
    /// CPU's byte-copying kernel: float32 and int32 tables, bf16/fp16 embeddings.
    public func indexSelect(_ x: Tensor, _ view: AxisView, index: Tensor, _ out: Tensor) {
        guard out.count > 0 else { return }
        let kernel: String
        switch x.dtype.size {
        case 4: kernel = "nd_index_select_b32"
        case 2: kernel = "nd_index_select_b16"
        default: preconditionFailure("CUDABackend.indexSelect: no kernel for \(x.dtype.size)-byte elements (\(x.dtype))")
        }
        launch(Self.indexingUnit, kernel, grid: elementGrid(out.count), block: (256, 1, 1),
               [arg(x), arg(index), arg(out)] + indexSizes(view, index.count))
    }

    /// out[o, index[j], i] += src[o, j, i] (accumulates into out; repeated indices add up).
    public func indexAdd(_ src: Tensor, index: Tensor, _ out: Tensor, _ outView: AxisView) {
        guard src.count > 0 else { return }
        launch(Self.indexingUnit, "nd_index_add", grid: elementGrid(src.count), block: (256, 1, 1),
               [arg(src), arg(index), arg(out)] + indexSizes(outView, index.count))
    }

    /// out[o, j, i] = x[o, index[o, j, i], i] (overwrites out); index and out are (outer, indexAxis, inner).
    public func gather(_ x: Tensor, _ view: AxisView, index: Tensor, _ out: Tensor, indexAxis: Int) {
        guard out.count > 0 else { return }
        launch(Self.indexingUnit, "nd_gather", grid: elementGrid(out.count), block: (256, 1, 1),
               [arg(x), arg(index), arg(out)] + indexSizes(view, indexAxis))
    }

    /// out[o, index[o, j, i], i] += src[o, j, i] (accumulates into out); src and index are (outer, indexAxis, inner).
    public func scatterAdd(_ src: Tensor, index: Tensor, indexAxis: Int, _ out: Tensor, _ outView: AxisView) {
        guard src.count > 0 else { return }
        launch(Self.indexingUnit, "nd_scatter_add", grid: elementGrid(src.count), block: (256, 1, 1),
               [arg(src), arg(index), arg(out)] + indexSizes(outView, indexAxis))
    }
}
