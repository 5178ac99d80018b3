/// Errors thrown by tensor operations. Each names the op and what was expected.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(op: String, shapes: [[Int]], expected: String)
    case dtypeMismatch(op: String, got: DType, expected: String)
    case deviceMismatch(op: String, devices: [Device])
    case indexOutOfRange(op: String, index: Int, bound: Int)
    case invalidArgument(op: String, message: String)
    case noGraph(message: String)
    case backendUnavailable(device: Device, message: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, shapes, expected):
            let s = shapes.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: " and ")
            return "\(op): shapes \(s) do not fit: expected \(expected)"
        case let .dtypeMismatch(op, got, expected):
            return "\(op): got dtype \(got), expected \(expected)"
        case let .deviceMismatch(op, devices):
            return "\(op): tensors live on different devices (\(devices.map(\.description).joined(separator: ", "))); move them to one device first"
        case let .indexOutOfRange(op, index, bound):
            return "\(op): index \(index) is out of range for a dimension of size \(bound)"
        case let .invalidArgument(op, message):
            return "\(op): \(message)"
        case let .noGraph(message):
            return "backward: \(message)"
        case let .backendUnavailable(device, message):
            return "device \(device): \(message)"
        }
    }
}
