/// Element type of a tensor's storage.
///
/// Compute kernels run in float32; bfloat16 and float16 are storage types (weights and
/// activations under mixed precision) converted on the fly; int32 and uint16 hold indices and tokens.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case float32, bfloat16, float16, int32, uint16

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float32, .int32: 4
        case .bfloat16, .float16, .uint16: 2
        }
    }

    /// Whether values are floating point.
    public var isFloatingPoint: Bool { self == .float32 || self == .bfloat16 || self == .float16 }

    public var description: String { rawValue }
}

/// bfloat16 ↔ float32 conversion (round to nearest even; NaN stays NaN).
public enum BFloat16 {
    @inlinable public static func fromFloat(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(rounded >> 16)
    }

    @inlinable public static func toFloat(_ b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }
}
