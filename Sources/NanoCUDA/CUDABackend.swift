import Foundation
import NanoEngine

/// The engine's `Backend` on one NVIDIA GPU: tensors in device memory from a caching allocator,
/// every op as NVRTC-compiled kernels (`CUDAKernels.engine*`) or cuBLASLt GEMMs, all on the
/// default stream, so the host only waits when it reads a tensor back.
///
/// Register it with `CUDABackend.register(ordinal:)`; then tensors made on `.cuda(n)` (or inside
/// `Device.run(.cuda(n))`) run here, and model code does not change. Kernels follow the CPU
/// backend's semantics op for op; `nanodecoder cuda conformance` compares the two on a GPU.
///
/// Backend methods cannot throw (the CPU never fails there): a CUDA error in a launch is a
/// device fault that leaves the context unusable, so it stops the process with the kernel and
/// error named, as PyTorch's CUDA errors do. Allocation failures do throw (`allocate`).
public final class CUDABackend: Backend, @unchecked Sendable {
    public let device: Device
    public let gpu: CUDAContext
    public let blas: CUBLASLt
    public let allocator: DeviceCachingAllocator
    /// fp32 GEMMs on TF32 tensor cores (`device.tf32: true`).
    public var tf32 = false
    /// Attention with bf16 products on tensor cores under bf16 mixed precision (head sizes 64,
    /// 128); false (`NANODECODER_ATTENTION=fp32`) keeps the fp32 kernels.
    public var tensorCoreAttention: Bool
    private let modules: [String: CUDAContext.Module]
    /// Pinned host memory that writes go through (nil when the driver would not pin any).
    private let staging: PinnedStaging?

    /// While a CUDA graph is recorded (`captureGraph`): the device copies of host data written
    /// meanwhile, which the graph copies into place on every replay.
    struct Capture { var constants: [(address: CUDAContext.DevicePointer, bytes: Int)] = [] }
    var capture: Capture? = nil
    public var isRecordingGraph: Bool { capture != nil }

    /// Opens GPU `physical` (default: `ordinal`) as the device `.cuda(ordinal)` and compiles (or
    /// loads from NVRTC's disk cache) every kernel for it. One process per GPU names its GPU
    /// `cuda:0` and opens its local rank's, as CUDA_VISIBLE_DEVICES would.
    public init(ordinal: Int = 0, physical: Int? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let driver = try CUDADriver(environment: environment)
        gpu = try CUDAContext(driver: driver, ordinal: physical ?? ordinal, environment: environment)
        device = .cuda(ordinal)
        let nvrtc = try NVRTC(environment: environment)
        var loaded: [String: CUDAContext.Module] = [:]
        for (name, source) in CUDAKernels.engine {
            loaded[name] = try gpu.load(try nvrtc.compile(source, name: name, target: .cubin(gpu.device.architecture)), name: name)
        }
        modules = loaded
        blas = try CUBLASLt(context: gpu, environment: environment)
        staging = try? PinnedStaging(context: gpu, environment: environment)
        tensorCoreAttention = environment["NANODECODER_ATTENTION"] != "fp32"
        allocator = DeviceCachingAllocator(deviceName: "\(device) (\(gpu.device.name))", allocate: { [gpu] in try gpu.allocate($0) },
                                           free: { [gpu] in gpu.release($0) }, synchronize: { [gpu] in try? gpu.synchronize() })
    }

    /// Makes a CUDA backend for GPU `ordinal` the one that runs `.cuda(ordinal)` tensors.
    @discardableResult
    public static func register(ordinal: Int = 0, physical: Int? = nil, tf32: Bool = false) throws -> CUDABackend {
        let backend = try CUDABackend(ordinal: ordinal, physical: physical)
        backend.tf32 = tf32
        BackendRegistry.register(backend)
        return backend
    }

    /// The registry makes only the CPU backend by itself; a GPU is opened by `register(ordinal:)`,
    /// which can report a missing driver. Reaching this is a programming error.
    public static func makeDefault() -> CUDABackend {
        preconditionFailure("CUDABackend: open a GPU with CUDABackend.register(ordinal:), which reports a missing driver")
    }

    public var name: String {
        "\(gpu.device) (NVRTC kernels, cuBLASLt\(tf32 ? " TF32" : "")"
            + (staging.map { ", uploads through 2 × \($0.halfBytes >> 20) MB pinned" } ?? ", uploads unpinned") + ")"
    }

    // MARK: Helpers for the op files (CUDABackend+*.swift)

    /// Device address of a tensor's first element.
    @inline(__always) func address(_ t: Tensor) -> CUDAContext.DevicePointer {
        CUDAContext.DevicePointer(UInt(bitPattern: t.rawPointer))
    }

    /// A tensor as a kernel's pointer argument (a null pointer for nil).
    @inline(__always) func arg(_ t: Tensor?) -> CUDAContext.Argument { .pointer(t.map(address) ?? 0) }

    /// Stops on a CUDA error: the context is unusable after a device fault (see the type's notes).
    func fatal(_ what: String, _ error: Error) -> Never {
        fatalError("\(device): \(what) failed: \(error)")
    }

    /// Launches `kernel` of translation unit `unit` ("engine_pointwise.cu", ...).
    func launch(_ unit: String, _ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int = 0,
                _ arguments: [CUDAContext.Argument]) {
        guard let module = modules[unit] else { fatalError("CUDABackend: no kernel unit \(unit)") }
        do { try gpu.launch(module, kernel, grid: grid, block: block, sharedBytes: sharedBytes, arguments) }
        catch { fatal("launching \(kernel)", error) }
    }

    /// Enough 256-thread blocks for n elements with a grid-stride loop (at most 65,535 · 4).
    func elementGrid(_ n: Int) -> (Int, Int, Int) { (max(1, min((n + 255) / 256, 262_140)), 1, 1) }

    /// Zeroes a tensor's bytes.
    func zero(_ t: Tensor) {
        do { try gpu.zero(address(t), bytes: t.count * t.dtype.size) } catch { fatal("zeroing \(t)", error) }
    }

    /// Temporary device memory for a kernel's partial results; released by the caller.
    func scratch(bytes: Int) -> CUDAContext.DevicePointer {
        do { return try allocator.allocate(bytes) } catch { fatal("allocating \(bytes) bytes of scratch", error) }
    }

    func releaseScratch(_ p: CUDAContext.DevicePointer, bytes: Int) { allocator.release(p, byteCount: bytes) }

    /// Copies `count` values of a device buffer to the host (waits for the GPU).
    func download<T>(_ p: CUDAContext.DevicePointer, count: Int, as: T.Type = T.self) -> [T] {
        refuseReadDuringCapture("reading back \(count) values")
        do { return try gpu.download(p, count: count, as: T.self) } catch { fatal("reading back \(count) values", error) }
    }

    /// A graph records without running, so a value read back while recording would be stale:
    /// that is a bug in the recorded code (`GraphCapturing` forbids it), stopped here.
    func refuseReadDuringCapture(_ what: String) {
        if capture != nil { fatalError("\(device): \(what) while recording a CUDA graph; the recorded code must not read device values") }
    }

    // MARK: Memory

    public func allocate(byteCount: Int) throws -> Storage {
        let p = try allocator.allocate(byteCount)
        return Storage(pointer: UnsafeMutableRawPointer(bitPattern: UInt(p))!, byteCount: byteCount, device: device, allocator: allocator)
    }

    public func write(_ bytes: UnsafeRawBufferPointer, to t: Tensor) {
        let n = min(bytes.count, t.count * t.dtype.size)
        if capture != nil {
            // Recording a graph: the upload runs now, outside the graph, into memory kept with
            // the graph; the recorded device copy puts the data in place on every replay.
            // Not from the allocator: its pool hands out blocks that earlier recorded kernels write.
            do {
                let constant = try gpu.allocate(n)
                capture!.constants.append((constant, n))
                try gpu.upload(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), to: constant)
                try gpu.copy(from: constant, to: address(t), bytes: n)
            } catch { fatal("recording a copy to \(t)", error) }
            return
        }
        // Through pinned memory, so the host goes on without waiting for the GPU (a batch
        // uploaded while the previous step still runs); large writes are synchronous.
        let source = UnsafeRawBufferPointer(rebasing: bytes[0..<n])
        do {
            if let staging, try staging.upload(source, to: address(t), stream: gpu.stream) { return }
            try gpu.upload(source, to: address(t))
        } catch { fatal("copying to \(t)", error) }
    }

    public func read(_ t: Tensor, into bytes: UnsafeMutableRawBufferPointer) {
        refuseReadDuringCapture("reading \(t)")
        let n = min(bytes.count, t.count * t.dtype.size)
        do { try gpu.download(address(t), into: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<n])) } catch { fatal("reading \(t)", error) }
    }

    public func copy(_ src: Tensor, to dst: Tensor) {
        do { try gpu.copy(from: address(src), to: address(dst), bytes: min(src.count, dst.count) * src.dtype.size) }
        catch { fatal("copying \(src) to \(dst)", error) }
    }
}
