/// The CUDA C++ sources of the GPU kernels, one translation unit per family, compiled at run time
/// by NVRTC for the device's architecture. The test suite compiles every one for sm_80 and sm_90
/// on machines without a GPU; none has run on a GPU yet.
public enum CUDAKernels {
    /// (program name, source) for every translation unit.
    public static var all: [(name: String, source: String)] {
        [("elementwise.cu", elementwise), ("rows.cu", rows), ("attention.cu", attention), ("optimizer.cu", optimizer)] + engine
    }

    /// The units `CUDABackend` runs the engine's ops with (one per family of `Backend` methods).
    public static var engine: [(name: String, source: String)] {
        [("engine_pointwise.cu", enginePointwise), ("engine_rows.cu", engineRows), ("engine_indexing.cu", engineIndexing),
         ("engine_attention.cu", engineAttention), ("engine_attention_tc.cu", engineAttentionTC)]
    }

    /// The `extern "C" __global__` entry points a source defines.
    public static func entryPoints(of source: String) -> [String] {
        source.components(separatedBy: "extern \"C\" __global__ void ").dropFirst().compactMap { $0.split(separator: "(").first.map(String.init) }
    }
}
