import Foundation

/// What went wrong writing or reading an event file; every case names the path.
public enum TrackingError: Error, CustomStringConvertible, Equatable {
    case cannotCreateDirectory(path: String, reason: String)
    case cannotCreateFile(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case cannotRead(path: String, reason: String)
    /// A record whose checksum or contents are wrong; `record` counts from 0 (the file-version event).
    case corruptRecord(path: String, record: Int, reason: String)

    public var description: String {
        switch self {
        case let .cannotCreateDirectory(path, reason): "\(path): cannot create the log directory: \(reason)"
        case let .cannotCreateFile(path, reason): "\(path): cannot create the event file: \(reason)"
        case let .writeFailed(path, reason): "\(path): writing events failed: \(reason)"
        case let .cannotRead(path, reason): "\(path): cannot read the event file: \(reason)"
        case let .corruptRecord(path, record, reason): "\(path): record \(record) is corrupt: \(reason)"
        }
    }
}

/// Field numbers of the messages in an event file, from TensorFlow's event.proto, summary.proto,
/// tensor.proto and tensor_shape.proto. The writer and the reader both use these.
enum EventProto {
    enum Event { static let wallTime = 1, step = 2, fileVersion = 3, summary = 5 }
    enum Summary { static let value = 1 }
    enum SummaryValue { static let tag = 1, simpleValue = 2, tensor = 8, metadata = 9 }
    enum SummaryMetadata { static let pluginData = 1 }
    enum PluginData { static let pluginName = 1 }
    enum Tensor { static let dtype = 1, shape = 2, stringValue = 8 }
    /// `DT_STRING` in types.proto.
    static let stringDataType: Int64 = 7
    static let fileVersion = "brain.Event:2"
    static let textPlugin = "text"
}

/// TFRecord framing: `uint64 length`, `uint32 masked crc32c(length bytes)`, `data`,
/// `uint32 masked crc32c(data)`, all little-endian.
enum TFRecord {
    static let headerSize = 12
    static let footerSize = 4

    static func append(_ data: [UInt8], to out: inout [UInt8]) {
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
        out += length
        withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(length)).littleEndian) { out += $0 }
        out += data
        withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(data)).littleEndian) { out += $0 }
    }
}

/// Writes scalars and text to a TensorBoard event file (`tensorboard --logdir <logDirectory>`).
///
///     let tb = try TensorBoardWriter(logDirectory: "runs/shakespeare")
///     tb.scalar("train/loss", 2.31, step: 100)
///     tb.close()
///
/// Records are buffered in memory and written when `maxPendingRecords` are waiting, every
/// `flushInterval` seconds, on `flush()` and on `close()`. A run killed mid-write leaves a
/// truncated last record, which TensorBoard and `EventFileReader` skip. Safe to call from
/// several threads. Logging never throws, so tracking cannot stop a training run: a write
/// failure stops the writer instead (later events are dropped) and is kept in `writeError`.
public final class TensorBoardWriter: @unchecked Sendable {
    /// The event file being written.
    public let path: String
    /// Seconds between automatic flushes (0 writes every record at once; `.infinity` never flushes on a timer).
    public let flushInterval: Double
    /// Records buffered before they are written out regardless of the time.
    public let maxPendingRecords: Int

    private let lock = NSLock()
    private var handle: FileHandle?
    private var pending: [UInt8] = []
    private var pendingRecords = 0
    private var lastFlush = Date()
    private var failure: TrackingError?
    private var timer: DispatchSourceTimer?

    /// The first write failure, after which the writer dropped everything; nil while all is well.
    public var writeError: TrackingError? {
        lock.lock()
        defer { lock.unlock() }
        return failure
    }

    /// Creates `logDirectory` (and its parents) and a new event file in it, named
    /// `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>`.
    public init(logDirectory: String, flushInterval: Double = 10, maxPendingRecords: Int = 100) throws {
        self.flushInterval = flushInterval
        self.maxPendingRecords = max(1, maxPendingRecords)
        do {
            try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        } catch {
            throw TrackingError.cannotCreateDirectory(path: logDirectory, reason: error.localizedDescription)
        }
        let now = Date().timeIntervalSince1970
        let host = Self.hostName()
        let pid = ProcessInfo.processInfo.processIdentifier
        var candidate: String
        repeat {
            let name = "events.out.tfevents.\(Int(now)).\(host).\(pid).\(Self.fileCounter.next())"
            candidate = URL(fileURLWithPath: logDirectory).appendingPathComponent(name).path
        } while FileManager.default.fileExists(atPath: candidate)
        path = candidate
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw TrackingError.cannotCreateFile(path: path, reason: "the file system refused to create it")
        }
        do {
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        } catch {
            throw TrackingError.cannotCreateFile(path: path, reason: error.localizedDescription)
        }
        // TensorBoard reads the version from the first record; write it at once so the file is never empty.
        append(Self.event(wallTime: now, step: 0) { $0.string(EventProto.Event.fileVersion, EventProto.fileVersion) })
        flush()
        if let failure { throw failure }
        startTimer()
    }

    deinit {
        close()
    }

    /// Logs `value` under `tag` (shown as a float32, as TensorBoard stores it).
    public func scalar(_ tag: String, _ value: Double, step: Int, wallTime: Double? = nil) {
        let record = Self.event(wallTime: wallTime ?? Date().timeIntervalSince1970, step: step) { event in
            event.message(EventProto.Event.summary) { summary in
                summary.message(EventProto.Summary.value) { v in
                    v.string(EventProto.SummaryValue.tag, tag)
                    v.float(EventProto.SummaryValue.simpleValue, Float(value))
                }
            }
        }
        append(record)
    }

    /// Logs `text` (rendered as Markdown by TensorBoard's Text tab) under `tag`.
    public func text(_ tag: String, _ text: String, step: Int, wallTime: Double? = nil) {
        let record = Self.event(wallTime: wallTime ?? Date().timeIntervalSince1970, step: step) { event in
            event.message(EventProto.Event.summary) { summary in
                summary.message(EventProto.Summary.value) { v in
                    v.string(EventProto.SummaryValue.tag, tag)
                    // A scalar DT_STRING tensor: an empty shape message, one string_val.
                    v.message(EventProto.SummaryValue.tensor) { tensor in
                        tensor.int64(EventProto.Tensor.dtype, EventProto.stringDataType)
                        tensor.message(EventProto.Tensor.shape) { _ in }
                        tensor.string(EventProto.Tensor.stringValue, text)
                    }
                    // The plugin name is what puts the tensor on TensorBoard's Text tab.
                    v.message(EventProto.SummaryValue.metadata) { metadata in
                        metadata.message(EventProto.SummaryMetadata.pluginData) {
                            $0.string(EventProto.PluginData.pluginName, EventProto.textPlugin)
                        }
                    }
                }
            }
        }
        append(record)
    }

    /// Writes buffered records to the file (check `writeError` to learn whether it worked).
    public func flush() {
        lock.lock()
        defer { lock.unlock() }
        writePending()
    }

    /// Flushes and closes the file. Later calls, and events logged after it, do nothing.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        timer?.cancel()
        timer = nil
        writePending()
        if let handle {
            do { try handle.close() } catch {
                if failure == nil { failure = .writeFailed(path: path, reason: error.localizedDescription) }
            }
        }
        handle = nil
    }

    /// One serialised Event message with its wall time and step, plus whatever `body` adds.
    static func event(wallTime: Double, step: Int, _ body: (inout ProtobufWriter) -> Void) -> [UInt8] {
        var event = ProtobufWriter()
        event.double(EventProto.Event.wallTime, wallTime)
        if step != 0 { event.int64(EventProto.Event.step, Int64(step)) }   // proto3 leaves defaults out
        body(&event)
        return event.encoded
    }

    private func append(_ record: [UInt8]) {
        lock.lock()
        defer { lock.unlock() }
        guard handle != nil, failure == nil else { return }
        TFRecord.append(record, to: &pending)
        pendingRecords += 1
        if pendingRecords >= maxPendingRecords || Date().timeIntervalSince(lastFlush) >= flushInterval { writePending() }
    }

    /// Call with the lock held.
    private func writePending() {
        lastFlush = Date()
        guard let handle, failure == nil, !pending.isEmpty else { return }
        do {
            try handle.write(contentsOf: pending)
        } catch {
            failure = .writeFailed(path: path, reason: error.localizedDescription)
        }
        pending.removeAll(keepingCapacity: true)
        pendingRecords = 0
    }

    private func startTimer() {
        guard flushInterval > 0, flushInterval.isFinite else { return }
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        timer.schedule(deadline: .now() + flushInterval, repeating: flushInterval)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            lock.lock()
            defer { lock.unlock() }
            if pendingRecords > 0 { writePending() }
        }
        lock.lock()
        self.timer = timer
        lock.unlock()
        timer.resume()
    }

    /// The machine's name for the file name. `gethostname` rather than `ProcessInfo.hostName`,
    /// which on macOS may wait on a DNS lookup.
    private static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name.replacingOccurrences(of: "/", with: "_")
    }

    /// Numbers the files a process creates, so two writers started in the same second differ.
    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func next() -> Int {
            lock.lock()
            defer { lock.unlock() }
            value += 1
            return value - 1
        }
    }
    private static let fileCounter = Counter()
}
