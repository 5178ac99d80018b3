import Foundation

/// A CUDA driver call that failed, with the driver's name for the error.
public struct CUDADriverError: Error, CustomStringConvertible {
    public var call: String, code: Int32, name: String
    public var description: String { "\(call) failed: \(name) (\(code))" }
    public init(call: String, code: Int32, name: String) { self.call = call; self.code = code; self.name = name }
}

/// The CUDA driver API (libcuda.so.1, installed with the NVIDIA driver), loaded at run time.
/// Only what device discovery needs so far; the backend's kernels launch through the same handle.
public final class CUDADriver {
    private typealias Init = @convention(c) (UInt32) -> Int32
    private typealias Count = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    private typealias Get = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    private typealias Attribute = @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Int32
    private typealias Name = @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Int32
    private typealias ErrorName = @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Int32
    private typealias DriverVersion = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32

    private let deviceCount: Count, deviceGet: Get, attribute: Attribute, deviceName: Name, errorName: ErrorName
    /// The driver's CUDA version, e.g. 12080 for 12.8.
    public let driverVersion: Int

    /// One GPU as the driver reports it.
    public struct Device: Sendable, CustomStringConvertible {
        public var ordinal: Int, name: String, major: Int, minor: Int, multiprocessors: Int
        /// The NVRTC architecture number, e.g. 90 for sm_90.
        public var architecture: Int { major * 10 + minor }
        public var description: String { "cuda:\(ordinal) \(name) (sm_\(architecture), \(multiprocessors) SMs)" }
    }

    /// Loads libcuda.so.1 and initialises it; throws a `CUDALibraryError` naming where it looked
    /// when no driver is installed, or a `CUDADriverError` when it refuses (e.g. no device).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let sym = try CUDALibraryLoader.driver(environment: environment)
        errorName = try sym("cuGetErrorName", ErrorName.self)
        deviceCount = try sym("cuDeviceGetCount", Count.self)
        deviceGet = try sym("cuDeviceGet", Get.self)
        attribute = try sym("cuDeviceGetAttribute", Attribute.self)
        deviceName = try sym("cuDeviceGetName", Name.self)
        let initialise = try sym("cuInit", Init.self)
        var version: Int32 = 0
        _ = try sym("cuDriverGetVersion", DriverVersion.self)(&version)
        driverVersion = Int(version)
        try check("cuInit", initialise(0))
    }

    private func check(_ call: String, _ code: Int32) throws {
        guard code != 0 else { return }
        var name: UnsafePointer<CChar>? = nil
        _ = errorName(code, &name)
        throw CUDADriverError(call: call, code: code, name: name.map { String(cString: $0) } ?? "unknown error")
    }

    /// Every GPU the driver sees.
    public func devices() throws -> [Device] {
        var n: Int32 = 0
        try check("cuDeviceGetCount", deviceCount(&n))
        return try (0..<Int(n)).map { ordinal in
            var handle: Int32 = 0
            try check("cuDeviceGet", deviceGet(&handle, Int32(ordinal)))
            func attr(_ a: Int32) throws -> Int { var v: Int32 = 0; try check("cuDeviceGetAttribute", attribute(&v, a, handle)); return Int(v) }
            var name = [CChar](repeating: 0, count: 256)
            try check("cuDeviceGetName", deviceName(&name, Int32(name.count), handle))
            // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76, MULTIPROCESSOR_COUNT = 16.
            return Device(ordinal: ordinal, name: String(cString: name), major: try attr(75), minor: try attr(76),
                          multiprocessors: try attr(16))
        }
    }
}
