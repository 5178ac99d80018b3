import Foundation

/// One GPU's primary context through the driver API: device memory, modules (CUBIN/PTX from
/// `NVRTC`) and kernel launches on the default stream. This is the layer the CUDA backend and
/// `nanodecoder cuda selftest` stand on.
///
/// Written against the driver API's documented C signatures; it has not run on a GPU yet (none
/// was lent while it was written), so `nanodecoder cuda selftest` is the first thing to run on one.
public final class CUDAContext {
    public typealias DevicePointer = UInt64
    private typealias Retain = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> Int32
    private typealias SetCurrent = @convention(c) (OpaquePointer?) -> Int32
    private typealias GetCurrent = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    private typealias Alloc = @convention(c) (UnsafeMutablePointer<DevicePointer>, Int) -> Int32
    private typealias Free = @convention(c) (DevicePointer) -> Int32
    private typealias CopyIn = @convention(c) (DevicePointer, UnsafeRawPointer, Int) -> Int32
    private typealias CopyOut = @convention(c) (UnsafeMutableRawPointer, DevicePointer, Int) -> Int32
    private typealias Memset = @convention(c) (DevicePointer, UInt8, Int, OpaquePointer?) -> Int32
    private typealias CopyDevice = @convention(c) (DevicePointer, DevicePointer, Int, OpaquePointer?) -> Int32
    private typealias LoadData = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> Int32
    private typealias GetFunction = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> Int32
    private typealias Launch = @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                               UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    private typealias Synchronize = @convention(c) () -> Int32
    private typealias ErrorName = @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Int32

    private let alloc: Alloc, free: Free, copyIn: CopyIn, copyOut: CopyOut, memset: Memset, copyDevice: CopyDevice
    private let loadData: LoadData, getFunction: GetFunction, launchKernel: Launch, synchronizeContext: Synchronize
    private let errorName: ErrorName
    private let setCurrent: SetCurrent, getCurrent: GetCurrent
    private let context: OpaquePointer?
    public let device: CUDADriver.Device
    /// Where launches, device-to-device copies and memsets go: nil is the legacy default stream,
    /// which every synchronous copy waits for; a capture stream while a CUDA graph is recorded.
    public var stream: OpaquePointer? = nil

    /// A loaded module: its kernels by name.
    public struct Module {
        fileprivate let handle: OpaquePointer?
        public let name: String
    }

    /// A kernel argument, passed by value as the kernel's C signature declares it.
    public enum Argument: Sendable {
        case pointer(DevicePointer), int32(Int32), int64(Int64), float(Float)
        /// A struct passed by value: its bytes exactly as the kernel's C struct lays them out.
        case bytes([UInt8])

        /// The bytes of a plain Swift value (a struct of Int32/Int64/Float fields laid out like its C twin).
        public static func value<T>(_ v: T) -> Argument { withUnsafeBytes(of: v) { .bytes(Array($0)) } }
    }

    /// Opens device `ordinal`'s primary context and makes it current on this thread.
    public init(driver: CUDADriver, ordinal: Int = 0, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let devices = try driver.devices()
        guard ordinal < devices.count else {
            throw CUDADriverError(call: "cuDeviceGet(\(ordinal))", code: 101, name: "CUDA_ERROR_INVALID_DEVICE: \(devices.count) GPU(s) visible")
        }
        device = devices[ordinal]
        let sym = try CUDALibraryLoader.driver(environment: environment)
        let errorNames = try sym("cuGetErrorName", ErrorName.self)
        errorName = errorNames
        alloc = try sym("cuMemAlloc_v2", Alloc.self)
        free = try sym("cuMemFree_v2", Free.self)
        copyIn = try sym("cuMemcpyHtoD_v2", CopyIn.self)
        copyOut = try sym("cuMemcpyDtoH_v2", CopyOut.self)
        memset = try sym("cuMemsetD8Async", Memset.self)
        copyDevice = try sym("cuMemcpyDtoDAsync_v2", CopyDevice.self)
        loadData = try sym("cuModuleLoadData", LoadData.self)
        getFunction = try sym("cuModuleGetFunction", GetFunction.self)
        launchKernel = try sym("cuLaunchKernel", Launch.self)
        synchronizeContext = try sym("cuCtxSynchronize", Synchronize.self)
        var ctx: OpaquePointer? = nil
        let retain = try sym("cuDevicePrimaryCtxRetain", Retain.self)
        let setCurrent = try sym("cuCtxSetCurrent", SetCurrent.self)
        self.setCurrent = setCurrent
        getCurrent = try sym("cuCtxGetCurrent", GetCurrent.self)
        var handle: Int32 = 0
        let deviceGet = try sym("cuDeviceGet", (@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32).self)
        for (call, code) in [("cuDeviceGet", { deviceGet(&handle, Int32(ordinal)) }), ("cuDevicePrimaryCtxRetain", { retain(&ctx, handle) }),
                             ("cuCtxSetCurrent", { setCurrent(ctx) })] as [(String, () -> Int32)] {
            let result = code()
            if result != 0 { throw Self.error(errorNames, call, result) }
        }
        context = ctx
    }

    private static func error(_ errorName: ErrorName, _ call: String, _ code: Int32) -> CUDADriverError {
        var name: UnsafePointer<CChar>? = nil
        _ = errorName(code, &name)
        return CUDADriverError(call: call, code: code, name: name.map { String(cString: $0) } ?? "unknown error")
    }

    /// Makes this context current on the calling thread when it is not (the driver keeps the
    /// current context per thread; the context was made current only on the thread that opened it).
    public func makeCurrent() throws { try ensureCurrent() }

    private func ensureCurrent() throws {
        var current: OpaquePointer? = nil
        if getCurrent(&current) == 0 && current == context { return }
        try check("cuCtxSetCurrent", setCurrent(context))
    }

    /// Throws a `CUDADriverError` naming `call` for a failed driver result (also for `CUDAStream`).
    func check(_ call: String, _ code: Int32) throws {
        if code != 0 { throw Self.error(errorName, call, code) }
    }

    // MARK: Memory

    /// `bytes` of device memory (uninitialised).
    public func allocate(_ bytes: Int) throws -> DevicePointer {
        try ensureCurrent()
        var p: DevicePointer = 0
        try check("cuMemAlloc(\(bytes) bytes)", alloc(&p, max(bytes, 1)))
        return p
    }

    public func release(_ p: DevicePointer) {
        try? ensureCurrent()
        _ = free(p)
    }

    public func upload<T>(_ values: [T], to p: DevicePointer) throws {
        guard !values.isEmpty else { return }
        try ensureCurrent()
        try values.withUnsafeBytes { try check("cuMemcpyHtoD", copyIn(p, $0.baseAddress!, $0.count)) }
    }

    /// A new device buffer holding `values`.
    public func upload<T>(_ values: [T]) throws -> DevicePointer {
        let p = try allocate(values.count * MemoryLayout<T>.stride)
        try upload(values, to: p)
        return p
    }

    public func download<T>(_ p: DevicePointer, count: Int, as: T.Type = T.self) throws -> [T] {
        try ensureCurrent()
        var out = [T](unsafeUninitializedCapacity: count) { _, n in n = count }
        guard count > 0 else { return out }
        try out.withUnsafeMutableBytes { try check("cuMemcpyDtoH", copyOut($0.baseAddress!, p, $0.count)) }
        return out
    }

    public func zero(_ p: DevicePointer, bytes: Int) throws {
        try ensureCurrent()
        try check("cuMemsetD8Async", memset(p, 0, bytes, stream))
    }

    /// Copies `bytes` between device buffers, ordered after the launches before it.
    public func copy(from src: DevicePointer, to dst: DevicePointer, bytes: Int) throws {
        try ensureCurrent()
        guard bytes > 0 else { return }
        try check("cuMemcpyDtoDAsync", copyDevice(dst, src, bytes, stream))
    }

    /// Copies host bytes into device memory (synchronous).
    public func upload(_ bytes: UnsafeRawBufferPointer, to p: DevicePointer) throws {
        try ensureCurrent()
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        try check("cuMemcpyHtoD", copyIn(p, base, bytes.count))
    }

    /// Copies device memory into host bytes (waits for the launches before it).
    public func download(_ p: DevicePointer, into bytes: UnsafeMutableRawBufferPointer) throws {
        try ensureCurrent()
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        try check("cuMemcpyDtoH", copyOut(base, p, bytes.count))
    }

    // MARK: Modules and launches

    /// Loads a CUBIN (or PTX, which the driver JIT-compiles) produced by `NVRTC.compile`.
    public func load(_ image: Data, name: String) throws -> Module {
        try ensureCurrent()
        var module: OpaquePointer? = nil
        // PTX must be NUL-terminated; a CUBIN is read by its ELF header, the extra byte is harmless.
        let bytes = [UInt8](image) + [0]
        try bytes.withUnsafeBytes { try check("cuModuleLoadData(\(name))", loadData(&module, $0.baseAddress!)) }
        return Module(handle: module, name: name)
    }

    /// Launches `kernel` of `module` on `stream` (asynchronous: `synchronize` waits).
    public func launch(_ module: Module, _ kernel: String, grid: (Int, Int, Int), block: (Int, Int, Int),
                       sharedBytes: Int = 0, _ arguments: [Argument]) throws {
        try ensureCurrent()
        let function = try self.function(module, kernel)
        // kernelParams: one pointer per argument, to a copy of its value (8-byte aligned slots).
        let sizes = arguments.map { a -> Int in if case .bytes(let b) = a { return (b.count + 7) / 8 * 8 } else { return 8 } }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(sizes.reduce(0, +), 8), alignment: 16)
        defer { storage.deallocate() }
        var params = [UnsafeMutableRawPointer?](repeating: nil, count: arguments.count)
        var at = 0
        for (i, argument) in arguments.enumerated() {
            let slot = storage + at
            at += sizes[i]
            switch argument {
            case .pointer(let p): slot.storeBytes(of: p, as: UInt64.self)
            case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
            case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
            case .float(let v): slot.storeBytes(of: v, as: Float.self)
            case .bytes(let b): b.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: b.count) }
            }
            params[i] = slot
        }
        try params.withUnsafeMutableBufferPointer { params in
            try check("cuLaunchKernel(\(kernel))", launchKernel(function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2),
                                                                  UInt32(block.0), UInt32(block.1), UInt32(block.2), UInt32(sharedBytes),
                                                                  stream, params.baseAddress, nil))
        }
    }

    /// Kernel handles by "module/kernel", looked up once.
    private var functions: [String: OpaquePointer] = [:]
    private let functionsLock = NSLock()

    private func function(_ module: Module, _ kernel: String) throws -> OpaquePointer? {
        let key = module.name + "/" + kernel
        functionsLock.lock(); defer { functionsLock.unlock() }
        if let f = functions[key] { return f }
        var function: OpaquePointer? = nil
        try check("cuModuleGetFunction(\(module.name): \(kernel))", getFunction(&function, module.handle, kernel))
        if let function { functions[key] = function }
        return function
    }

    /// Compiles every kernel source (`CUDAKernels.all`) for this GPU and loads it: modules by
    /// program name ("elementwise.cu", ...). PTX lets the driver JIT for GPUs newer than NVRTC knows.
    public func loadKernels(_ nvrtc: NVRTC, ptx: Bool = false) throws -> [String: Module] {
        var modules: [String: Module] = [:]
        for (name, source) in CUDAKernels.all {
            let arch = device.architecture
            modules[name] = try load(try nvrtc.compile(source, name: name, target: ptx ? .ptx(arch) : .cubin(arch)), name: name)
        }
        return modules
    }

    // Launch geometry shared by the kernels' conventions.
    /// 256 threads per block.
    public static let blockOf256 = (256, 1, 1)
    /// Grid-stride loops over n elements: enough 256-thread blocks for n, at most 1024.
    public static func gridStride(_ n: Int) -> (Int, Int, Int) { (max(1, min(1024, (n + 255) / 256)), 1, 1) }
    /// One warp per row with 256-thread blocks: 8 rows per block.
    public static func warpPerRow(_ rows: Int, y: Int = 1) -> (Int, Int, Int) { (max(1, (rows + 7) / 8), y, 1) }

    /// Waits for every launch so far; a kernel's fault surfaces here.
    public func synchronize() throws {
        try ensureCurrent()
        try check("cuCtxSynchronize", synchronizeContext())
    }
}
