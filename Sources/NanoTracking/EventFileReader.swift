import Foundation

/// A scalar read back from an event file (stored as float32, widened to Double).
public struct ScalarEvent: Equatable, Sendable {
    public var tag: String
    public var step: Int
    public var value: Double
    public var wallTime: Double
}

/// A text summary read back from an event file.
public struct TextEvent: Equatable, Sendable {
    public var tag: String
    public var step: Int
    public var text: String
    public var wallTime: Double
}

/// Everything `EventFileReader` understood in one event file, in file order.
public struct EventFileContents: Sendable {
    public var scalars: [ScalarEvent] = []
    public var texts: [TextEvent] = []
    /// Problems that did not stop the read, such as a truncated last record.
    public var warnings: [String] = []
}

/// Reads the event files `TensorBoardWriter` writes, verifying every checksum.
///
/// A truncated last record (a run killed mid-write) is skipped with a warning; a checksum
/// mismatch or an undecodable record before the end throws `TrackingError.corruptRecord`.
/// Summary types other than simple scalars and text are ignored.
public enum EventFileReader {
    /// Scalars, text and warnings from the event file at `path`.
    public static func read(path: String) throws -> EventFileContents {
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw TrackingError.cannotRead(path: path, reason: error.localizedDescription)
        }
        var contents = EventFileContents()
        var offset = 0
        var record = 0
        while offset < bytes.count {
            let remaining = bytes.count - offset
            func truncated(_ have: Int, of need: UInt64) -> String {
                "\(path): record \(record) at byte \(offset) is truncated (\(have) of \(need) bytes, "
                    + "probably a run stopped mid-write); skipped it"
            }
            guard remaining >= TFRecord.headerSize else {
                contents.warnings.append(truncated(remaining, of: UInt64(TFRecord.headerSize)))
                break
            }
            let lengthBytes = bytes[offset..<offset + 8]
            guard CRC32C.masked(CRC32C.checksum(lengthBytes)) == littleEndianUInt32(bytes, at: offset + 8) else {
                throw TrackingError.corruptRecord(path: path, record: record,
                                                  reason: "length checksum mismatch at byte \(offset)")
            }
            let length = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let frame = UInt64(TFRecord.headerSize + TFRecord.footerSize) &+ length
            guard length < UInt64(Int.max / 2), UInt64(remaining) >= frame else {
                contents.warnings.append(truncated(remaining, of: frame))
                break
            }
            let start = offset + TFRecord.headerSize
            let data = bytes[start..<start + Int(length)]
            guard CRC32C.masked(CRC32C.checksum(data)) == littleEndianUInt32(bytes, at: data.endIndex) else {
                throw TrackingError.corruptRecord(path: path, record: record,
                                                  reason: "data checksum mismatch at byte \(offset)")
            }
            do {
                try decodeEvent(data, into: &contents)
            } catch let error as ProtobufDecodingError {
                throw TrackingError.corruptRecord(path: path, record: record, reason: "undecodable event: \(error.reason)")
            }
            offset += Int(frame)
            record += 1
        }
        return contents
    }

    /// The scalars in the event file at `path` as `(tag, step, value)`, plus any warnings.
    public static func readScalars(path: String) throws -> (scalars: [(tag: String, step: Int, value: Double)], warnings: [String]) {
        let contents = try read(path: path)
        return (contents.scalars.map { ($0.tag, $0.step, $0.value) }, contents.warnings)
    }

    private static func littleEndianUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    /// Event: wall_time, step and a Summary whose values are scalars or text tensors.
    private static func decodeEvent(_ data: ArraySlice<UInt8>, into contents: inout EventFileContents) throws {
        var wallTime = 0.0
        var step = 0
        var summaries: [ArraySlice<UInt8>] = []
        var event = ProtobufReader(data)
        while let (field, value) = try event.next() {
            switch (field, value) {
            case let (EventProto.Event.wallTime, .fixed64(bits)): wallTime = Double(bitPattern: bits)
            case let (EventProto.Event.step, .varint(v)): step = Int(truncatingIfNeeded: Int64(bitPattern: v))
            case let (EventProto.Event.summary, .lengthDelimited(bytes)): summaries.append(bytes)
            default: break
            }
        }
        for summaryBytes in summaries {
            var summary = ProtobufReader(summaryBytes)
            while let (field, value) = try summary.next() {
                guard field == EventProto.Summary.value, case let .lengthDelimited(valueBytes) = value else { continue }
                let v = try decodeValue(valueBytes)
                if let scalar = v.scalar {
                    contents.scalars.append(ScalarEvent(tag: v.tag, step: step, value: Double(scalar), wallTime: wallTime))
                } else if v.plugin == EventProto.textPlugin, let text = v.strings.first {
                    contents.texts.append(TextEvent(tag: v.tag, step: step, text: text, wallTime: wallTime))
                }
            }
        }
    }

    /// Summary.Value: tag, simple_value, or metadata.plugin_data.plugin_name plus a tensor's string_val.
    private static func decodeValue(_ data: ArraySlice<UInt8>) throws -> (tag: String, scalar: Float?, plugin: String?, strings: [String]) {
        var result: (tag: String, scalar: Float?, plugin: String?, strings: [String]) = ("", nil, nil, [])
        var value = ProtobufReader(data)
        while let (field, v) = try value.next() {
            switch (field, v) {
            case let (EventProto.SummaryValue.tag, .lengthDelimited(bytes)):
                result.tag = String(decoding: bytes, as: UTF8.self)
            case let (EventProto.SummaryValue.simpleValue, .fixed32(bits)):
                result.scalar = Float(bitPattern: bits)
            case let (EventProto.SummaryValue.metadata, .lengthDelimited(bytes)):
                result.plugin = try pluginName(bytes)
            case let (EventProto.SummaryValue.tensor, .lengthDelimited(bytes)):
                var tensor = ProtobufReader(bytes)
                while let (f, t) = try tensor.next() {
                    if f == EventProto.Tensor.stringValue, case let .lengthDelimited(s) = t {
                        result.strings.append(String(decoding: s, as: UTF8.self))
                    }
                }
            default: break
            }
        }
        return result
    }

    private static func pluginName(_ metadata: ArraySlice<UInt8>) throws -> String? {
        var reader = ProtobufReader(metadata)
        while let (field, value) = try reader.next() {
            guard field == EventProto.SummaryMetadata.pluginData, case let .lengthDelimited(pluginData) = value else { continue }
            var plugin = ProtobufReader(pluginData)
            while let (f, v) = try plugin.next() {
                if f == EventProto.PluginData.pluginName, case let .lengthDelimited(name) = v {
                    return String(decoding: name, as: UTF8.self)
                }
            }
        }
        return nil
    }
}
