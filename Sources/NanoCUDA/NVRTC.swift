import Foundation

/// A kernel source that failed to compile: the program name, the target and NVRTC's log.
public struct NVRTCError: Error, CustomStringConvertible {
    public var program: String, target: String, log: String
    public var description: String { "NVRTC could not compile \(program) for \(target):\n\(log)" }
}

/// CUDA C++ compiled at run time with NVRTC (loaded with dlopen): to a CUBIN for one GPU
/// architecture, or to PTX for the driver to JIT (the fallback for architectures newer than the
/// NVRTC in use knows). Results are cached on disk by source hash, target and NVRTC version.
public final class NVRTC {
    private typealias Program = OpaquePointer
    private typealias Create = @convention(c) (UnsafeMutablePointer<Program?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
                                               UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    private typealias Compile = @convention(c) (Program?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    private typealias Size = @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Int32
    private typealias Get = @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Int32
    private typealias Destroy = @convention(c) (UnsafeMutablePointer<Program?>) -> Int32
    private typealias Version = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32

    private let create: Create, compile: Compile, destroy: Destroy
    private let logSize: Size, getLog: Get, cubinSize: Size, getCUBIN: Get, ptxSize: Size, getPTX: Get
    /// NVRTC's version, e.g. (12, 9).
    public let version: (major: Int, minor: Int)
    /// Folders with CUDA headers (cuda_bf16.h, cuda_fp16.h) passed as -I.
    public let includePaths: [String]
    /// Where compiled kernels are cached (nil: no cache).
    public let cacheDirectory: String?

    /// What to produce: machine code for one architecture (e.g. 90 → sm_90), or PTX for it.
    public enum Target: Sendable, Equatable, CustomStringConvertible {
        case cubin(Int), ptx(Int)
        public var option: String {
            switch self { case .cubin(let a): "--gpu-architecture=sm_\(a)"; case .ptx(let a): "--gpu-architecture=compute_\(a)" }
        }
        public var description: String {
            switch self { case .cubin(let a): "sm_\(a) (cubin)"; case .ptx(let a): "compute_\(a) (PTX)" }
        }
    }

    public init(environment: [String: String] = ProcessInfo.processInfo.environment,
                cacheDirectory: String? = NVRTC.defaultCacheDirectory()) throws {
        let sym = try CUDALibraryLoader.symbols(["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"], environment: environment)
        create = try sym("nvrtcCreateProgram", Create.self)
        compile = try sym("nvrtcCompileProgram", Compile.self)
        destroy = try sym("nvrtcDestroyProgram", Destroy.self)
        logSize = try sym("nvrtcGetProgramLogSize", Size.self)
        getLog = try sym("nvrtcGetProgramLog", Get.self)
        cubinSize = try sym("nvrtcGetCUBINSize", Size.self)
        getCUBIN = try sym("nvrtcGetCUBIN", Get.self)
        ptxSize = try sym("nvrtcGetPTXSize", Size.self)
        getPTX = try sym("nvrtcGetPTX", Get.self)
        var major: Int32 = 0, minor: Int32 = 0
        _ = try sym("nvrtcVersion", Version.self)(&major, &minor)
        version = (Int(major), Int(minor))
        // Headers: the same search as the libraries, looking for include/cuda_bf16.h.
        let fm = FileManager.default
        includePaths = CUDALibraryLoader.searchDirectories(environment: environment)
            .map { URL(fileURLWithPath: $0).deletingLastPathComponent().appendingPathComponent("include").path }
            .filter { fm.fileExists(atPath: $0 + "/cuda_bf16.h") }
            .reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        self.cacheDirectory = cacheDirectory
    }

    /// ~/.cache/nanodecoder/kernels, or $NANODECODER_KERNEL_CACHE.
    public static func defaultCacheDirectory() -> String? {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["NANODECODER_KERNEL_CACHE"] { return dir.isEmpty ? nil : dir }
        return (env["XDG_CACHE_HOME"] ?? NSHomeDirectory() + "/.cache") + "/nanodecoder/kernels"
    }

    /// The cache file for a source and target.
    func cachePath(source: String, target: Target) -> String? {
        guard let cacheDirectory else { return nil }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in source.utf8 { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        let kind: String
        switch target { case .cubin(let a): kind = "sm\(a).cubin"; case .ptx(let a): kind = "compute\(a).ptx" }
        return "\(cacheDirectory)/\(String(hash, radix: 16))-\(source.utf8.count)-nvrtc\(version.major).\(version.minor)-\(kind)"
    }

    /// Compiles one translation unit; returns the CUBIN or PTX bytes (from the cache when present).
    public func compile(_ source: String, name: String, target: Target, options extra: [String] = []) throws -> Data {
        if let path = cachePath(source: source, target: target), let data = FileManager.default.contents(atPath: path) {
            return data
        }
        var program: Program?
        let rc = source.withCString { src in name.withCString { create(&program, src, $0, 0, nil, nil) } }
        guard rc == 0, let program else { throw NVRTCError(program: name, target: target.description, log: "nvrtcCreateProgram failed (\(rc))") }
        defer { var p: Program? = program; _ = destroy(&p) }
        let options = [target.option, "--std=c++17", "--use_fast_math", "-default-device"] + includePaths.map { "-I\($0)" } + extra
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer { compile(program, Int32(options.count), $0.baseAddress) }
        if status != 0 {
            throw NVRTCError(program: name, target: target.description, log: read(program, logSize, getLog))
        }
        let bytes: String
        var data: Data
        switch target {
        case .cubin:
            var n = 0
            _ = cubinSize(program, &n)
            var buffer = [CChar](repeating: 0, count: n)
            _ = getCUBIN(program, &buffer)
            data = buffer.withUnsafeBytes { Data($0) }
        case .ptx:
            bytes = read(program, ptxSize, getPTX)
            data = Data(bytes.utf8)
            data.append(0)   // cuModuleLoadData wants NUL-terminated PTX
        }
        if let path = cachePath(source: source, target: target) {
            try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let tmp = path + ".tmp\(getpid())"
            if FileManager.default.createFile(atPath: tmp, contents: data) { rename(tmp, path) }
        }
        return data
    }

    private func read(_ program: Program, _ size: Size, _ get: Get) -> String {
        var n = 0
        _ = size(program, &n)
        guard n > 0 else { return "" }
        var buffer = [CChar](repeating: 0, count: n)
        _ = get(program, &buffer)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
