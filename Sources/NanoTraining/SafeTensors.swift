import Foundation
import NanoEngine

/// Errors reading or writing files: each names the file and what was wrong.
public enum FileFormatError: Error, CustomStringConvertible {
    case invalid(path: String, reason: String)
    public var description: String {
        switch self { case let .invalid(path, reason): "\(path): \(reason)" }
    }
}

/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets}, "__metadata__": {..}}`, then the raw little-endian data.
public enum SafeTensors {
    static func code(_ d: DType) -> String {
        switch d { case .float32: "F32"; case .bfloat16: "BF16"; case .float16: "F16"; case .int32: "I32"; case .uint16: "U16" }
    }
    static func dtype(_ code: String) -> DType? {
        ["F32": .float32, "BF16": .bfloat16, "F16": .float16, "I32": .int32, "U16": .uint16][code]
    }

    /// Serialises tensors (in the given order) with string metadata.
    public static func encode(_ tensors: [(String, Tensor)], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, t) in tensors {
            let bytes = t.count * t.dtype.size
            header[name] = ["dtype": code(t.dtype), "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }   // pad with spaces so data starts 8-aligned
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in tensors {
            out.append(contentsOf: t.bytes())   // from any device
        }
        return out
    }

    /// Parses a safetensors file into named CPU tensors and metadata.
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileFormatError.invalid(path: path, reason: "cannot read the file (missing or unreadable)")
        }
        return try decode(data, path: path)
    }

    public static func decode(_ data: Data, path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard data.count >= 8 else { throw FileFormatError.invalid(path: path, reason: "\(data.count) bytes is too short for a safetensors header") }
        let n = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard n > 0, n <= data.count - 8 else {
            throw FileFormatError.invalid(path: path, reason: "header length \(n) does not fit in a file of \(data.count) bytes (corrupted or truncated)")
        }
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw FileFormatError.invalid(path: path, reason: "the header is not a JSON object (corrupted file)")
        }
        let body = data.subdata(in: (8 + n)..<data.count)
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" { metadata = value as? [String: String] ?? [:]; continue }
            guard let entry = value as? [String: Any], let codeString = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw FileFormatError.invalid(path: path, reason: "entry '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let dt = dtype(codeString) else {
                throw FileFormatError.invalid(path: path, reason: "entry '\(name)' has unsupported dtype \(codeString) (expected F32, BF16, F16, I32 or U16)")
            }
            let bytes = Shape.count(shape) * dt.size
            guard offsets[0] >= 0, offsets[1] - offsets[0] == bytes, offsets[1] <= body.count else {
                throw FileFormatError.invalid(path: path, reason: "entry '\(name)' (\(codeString) \(shape)) has data_offsets \(offsets) that do not match its size \(bytes) or exceed the data (\(body.count) bytes)")
            }
            let t = try Tensor.empty(shape, dtype: dt, device: .cpu)   // host memory: copied into below
            body.withUnsafeBytes { raw in
                t.rawPointer.copyMemory(from: raw.baseAddress! + offsets[0], byteCount: bytes)
            }
            tensors[name] = t
        }
        return (tensors, metadata)
    }
}

/// Writes data to path atomically: a temporary file in the same folder, fsync, rename.
public func writeAtomically(_ data: Data, to path: String) throws {
    let tmp = path + ".tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: tmp, contents: data) else {
        throw FileFormatError.invalid(path: tmp, reason: "cannot create the file")
    }
    let fd = open(tmp, O_RDONLY)
    if fd >= 0 { fsync(fd); close(fd) }
    guard rename(tmp, path) == 0 else {
        throw FileFormatError.invalid(path: path, reason: "cannot rename \(tmp) into place: \(String(cString: strerror(errno)))")
    }
}
