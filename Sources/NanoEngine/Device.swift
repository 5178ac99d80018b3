import Foundation

/// Where a tensor's storage lives.
public enum Device: Hashable, Sendable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    public var description: String {
        switch self {
        case .cpu: "cpu"
        case let .cuda(i): "cuda:\(i)"
        }
    }

    /// Parses "cpu", "cuda" or "cuda:N".
    public init?(parsing text: String) {
        if text == "cpu" { self = .cpu; return }
        if text == "cuda" { self = .cuda(0); return }
        if text.hasPrefix("cuda:"), let i = Int(text.dropFirst(5)), i >= 0 { self = .cuda(i); return }
        return nil
    }

    /// The device tensors are made on when no device is named: the CPU, unless a `Device.run`
    /// scope says otherwise. The trainer builds the model, its batches and its optimizer state
    /// inside one, so model code never names a device.
    @TaskLocal public static var current: Device = .cpu

    /// Runs `body` with `device` as the device new tensors are made on.
    public static func run<T>(_ device: Device, _ body: () throws -> T) rethrows -> T {
        try $current.withValue(device, operation: body)
    }

    /// The backend that runs ops for this device.
    public var backend: any Backend {
        get throws { try BackendRegistry.backend(for: self) }
    }
}

/// Keeps one backend per device. The CPU backend registers itself when its module is
/// linked (looked up by name on first use); other backends call `register`.
public enum BackendRegistry {
    nonisolated(unsafe) private static var backends: [Device: any Backend] = [:]
    private static let lock = NSLock()

    /// Makes `backend` the one that runs ops on `backend.device`.
    public static func register(_ backend: any Backend) {
        lock.lock(); defer { lock.unlock() }
        backends[backend.device] = backend
    }

    public static func backend(for device: Device) throws -> any Backend {
        lock.lock()
        if let b = backends[device] { lock.unlock(); return b }
        lock.unlock()
        if device == .cpu, let type = _typeByName("7NanoCPU10CPUBackendC") as? any Backend.Type {
            let b = type.makeDefault()
            register(b)
            return b
        }
        throw TensorError.backendUnavailable(device: device, message: "no backend is registered for this device"
            + (device == .cpu ? " (link the NanoCPU module)" : ""))
    }
}
