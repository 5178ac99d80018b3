/// Protocol buffer wire types: the low three bits of every field key.
enum WireType: UInt64 {
    case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
}

/// Encodes protocol buffer fields into a byte buffer; just the encodings the TensorBoard
/// event messages need. Fields are written in the order they are called, which any
/// protobuf parser accepts.
struct ProtobufWriter {
    private(set) var encoded: [UInt8] = []

    /// Base-128, least significant group first, high bit set on all but the last byte.
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            encoded.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        encoded.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wire: WireType) {
        varint(UInt64(field) << 3 | wire.rawValue)
    }

    /// `int64` and enum fields; negative values take ten bytes (two's complement), as protobuf specifies.
    mutating func int64(_ field: Int, _ value: Int64) {
        key(field, .varint)
        varint(UInt64(bitPattern: value))
    }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, .fixed64)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { encoded.append(contentsOf: $0) }
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, .fixed32)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { encoded.append(contentsOf: $0) }
    }

    /// `bytes` fields and embedded messages: a varint length, then the payload.
    mutating func lengthDelimited(_ field: Int, _ payload: some Collection<UInt8>) {
        key(field, .lengthDelimited)
        varint(UInt64(payload.count))
        encoded.append(contentsOf: payload)
    }

    mutating func string(_ field: Int, _ value: String) {
        lengthDelimited(field, Array(value.utf8))
    }

    /// An embedded message, built by `body` into its own buffer so its length is known.
    mutating func message(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        body(&inner)
        lengthDelimited(field, inner.encoded)
    }
}

/// What went wrong decoding a protobuf message (the event file reader adds the file and record).
struct ProtobufDecodingError: Error {
    let reason: String
}

/// Walks the fields of one encoded protobuf message; the counterpart of `ProtobufWriter`,
/// used to read our own event files back. Unknown fields are returned like any other,
/// so callers skip what they do not need.
struct ProtobufReader {
    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case lengthDelimited(ArraySlice<UInt8>)
        case fixed32(UInt32)
    }

    private let bytes: ArraySlice<UInt8>
    private var position: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    /// The next field and its value, or nil at the end of the message.
    mutating func next() throws -> (field: Int, value: Value)? {
        guard position < bytes.endIndex else { return nil }
        let key = try varint()
        let field = Int(truncatingIfNeeded: key >> 3)
        guard field > 0 else { throw ProtobufDecodingError(reason: "field number 0 at byte \(position)") }
        switch key & 7 {
        case WireType.varint.rawValue:
            return (field, .varint(try varint()))
        case WireType.fixed64.rawValue:
            return (field, .fixed64(try littleEndian(8)))
        case WireType.fixed32.rawValue:
            return (field, .fixed32(UInt32(try littleEndian(4))))
        case WireType.lengthDelimited.rawValue:
            let length = try varint()
            guard length <= UInt64(bytes.endIndex - position) else {
                throw ProtobufDecodingError(reason: "field \(field) claims \(length) bytes, \(bytes.endIndex - position) remain")
            }
            let start = position
            position += Int(length)
            return (field, .lengthDelimited(bytes[start..<position]))
        case let wire:
            throw ProtobufDecodingError(reason: "field \(field) has unsupported wire type \(wire)")
        }
    }

    private mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.endIndex, shift < 64 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        throw ProtobufDecodingError(reason: "unterminated varint at byte \(position)")
    }

    private mutating func littleEndian(_ count: Int) throws -> UInt64 {
        guard bytes.endIndex - position >= count else {
            throw ProtobufDecodingError(reason: "fixed\(count * 8) field runs past the end")
        }
        var value: UInt64 = 0
        for k in 0..<count { value |= UInt64(bytes[position + k]) << (8 * k) }
        position += count
        return value
    }
}
