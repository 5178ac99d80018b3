import Foundation
@testable import NanoTracking
import NanoTestSupport
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A Python that can import tensorboard; the read-back test is skipped without one.
private let pythonWithTensorBoard = python(importing: "tensorboard.backend.event_processing.event_accumulator")

/// A fresh directory under the system temporary folder; the caller removes it.
private func temporaryLogDirectory() -> String {
    NSTemporaryDirectory() + "nanotracking-\(UUID().uuidString)"
}

/// Bit-at-a-time CRC-32C, the definition the table-driven version must agree with.
private func referenceCRC32C(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return ~crc
}

@Suite struct CRC32CTests {
    @Test func knownVectorsMatch() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        // RFC 3720 appendix B.4.
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test func slicingBy8AgreesWithTheBitwiseDefinitionAtEveryLength() {
        let bytes = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for start in 0..<9 {
            for end in start...bytes.count {
                let slice = Array(bytes[start..<end])
                #expect(CRC32C.checksum(slice) == referenceCRC32C(slice), "bytes \(start)..<\(end)")
            }
        }
    }

    @Test func maskRotatesRightBy15AndAddsTheTFRecordConstant() {
        #expect(CRC32C.masked(0) == 0xA282_EAD8)
        #expect(CRC32C.masked(1 << 15) == 1 &+ 0xA282_EAD8)
        #expect(CRC32C.masked(1) == (1 << 17) &+ 0xA282_EAD8)
    }
}

@Suite struct ProtobufTests {
    @Test func varintsUseSevenBitGroupsAndNegativeInt64TakesTenBytes() {
        var w = ProtobufWriter()
        w.varint(1)
        w.varint(300)
        #expect(w.encoded == [0x01, 0xAC, 0x02])
        var negative = ProtobufWriter()
        negative.int64(2, -1)
        #expect(negative.encoded == [0x10] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
    }

    @Test func readerReturnsWhatTheWriterWrote() throws {
        var w = ProtobufWriter()
        w.double(1, 1.5)
        w.int64(2, -7)
        w.message(5) { $0.float(2, 0.25) }
        var r = ProtobufReader(w.encoded[...])
        guard case (1, .fixed64(let bits))? = try r.next() else { Issue.record("field 1"); return }
        #expect(Double(bitPattern: bits) == 1.5)
        guard case (2, .varint(let v))? = try r.next() else { Issue.record("field 2"); return }
        #expect(Int64(bitPattern: v) == -7)
        guard case (5, .lengthDelimited(let inner))? = try r.next() else { Issue.record("field 5"); return }
        #expect(Array(inner) == [0x15, 0x00, 0x00, 0x80, 0x3E])
        #expect(try r.next() == nil)
    }
}

@Suite struct TensorBoardWriterTests {
    @Test func scalarsAndTextRoundTripThroughTheReader() throws {
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tb = try TensorBoardWriter(logDirectory: dir + "/nested/run")
        #expect(URL(fileURLWithPath: tb.path).lastPathComponent.hasPrefix("events.out.tfevents."))
        tb.scalar("train/loss", 2.5, step: 0, wallTime: 1000.25)
        tb.scalar("train/loss", 0.1, step: 10)
        tb.scalar("lr", 6e-4, step: -3)
        tb.text("sample", "To be, or **not** to be — é", step: 10, wallTime: 1001)
        tb.close()
        #expect(tb.writeError == nil)

        let contents = try EventFileReader.read(path: tb.path)
        #expect(contents.warnings.isEmpty)
        #expect(contents.scalars.map(\.tag) == ["train/loss", "train/loss", "lr"])
        #expect(contents.scalars.map(\.step) == [0, 10, -3])
        #expect(contents.scalars.map(\.value) == [2.5, Double(Float(0.1)), Double(Float(6e-4))])
        #expect(contents.scalars[0].wallTime == 1000.25)
        #expect(contents.texts == [TextEvent(tag: "sample", step: 10, text: "To be, or **not** to be — é", wallTime: 1001)])

        let (scalars, warnings) = try EventFileReader.readScalars(path: tb.path)
        #expect(scalars.count == 3 && warnings.isEmpty)
        #expect(scalars[2].tag == "lr" && scalars[2].step == -3)
    }

    @Test func recordsWaitInMemoryUntilFlush() throws {
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tb = try TensorBoardWriter(logDirectory: dir, flushInterval: 3600, maxPendingRecords: 1000)
        tb.scalar("loss", 1, step: 1)
        #expect(try EventFileReader.read(path: tb.path).scalars.isEmpty)
        tb.flush()
        #expect(try EventFileReader.read(path: tb.path).scalars.count == 1)
        tb.close()
        tb.scalar("loss", 2, step: 2)   // ignored after close
        tb.flush()
        #expect(try EventFileReader.read(path: tb.path).scalars.count == 1)
    }

    @Test func reachingMaxPendingRecordsWritesThemOut() throws {
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tb = try TensorBoardWriter(logDirectory: dir, flushInterval: 3600, maxPendingRecords: 3)
        for step in 0..<7 { tb.scalar("loss", Double(step), step: step) }
        #expect(try EventFileReader.read(path: tb.path).scalars.count == 6)
        tb.close()
    }

    @Test func theFlushTimerWritesPendingRecords() async throws {
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tb = try TensorBoardWriter(logDirectory: dir, flushInterval: 0.1, maxPendingRecords: 1000)
        tb.scalar("loss", 1, step: 1)
        var seen = 0
        for _ in 0..<100 where seen == 0 {
            try await Task.sleep(nanoseconds: 50_000_000)
            seen = try EventFileReader.read(path: tb.path).scalars.count
        }
        #expect(seen == 1)
        tb.close()
    }

    @Test func concurrentWritersLoseNoRecords() throws {
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tb = try TensorBoardWriter(logDirectory: dir, maxPendingRecords: 7)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for step in 0..<200 { tb.scalar("thread\(thread)", Double(step), step: step) }
        }
        tb.close()
        let scalars = try EventFileReader.read(path: tb.path).scalars
        #expect(scalars.count == 1600)
        for thread in 0..<8 {
            #expect(scalars.filter { $0.tag == "thread\(thread)" }.map(\.step) == Array(0..<200))
        }
    }

    @Test func writersInOneProcessGetDistinctFiles() throws {
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try TensorBoardWriter(logDirectory: dir)
        let b = try TensorBoardWriter(logDirectory: dir)
        #expect(a.path != b.path)
        // events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>
        let parts = URL(fileURLWithPath: a.path).lastPathComponent.split(separator: ".")
        #expect(parts.count >= 7 && Int(parts[3]) != nil && Int(parts.last!) != nil)
        #expect(parts[parts.count - 2] == "\(ProcessInfo.processInfo.processIdentifier)")
        a.close()
        b.close()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 2)
    }

    @Test func aLogDirectoryThatIsAFileIsReportedByPath() throws {
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/not-a-directory"
        #expect(FileManager.default.createFile(atPath: file, contents: Data([1])))
        let error = #expect(throws: TrackingError.self) { try TensorBoardWriter(logDirectory: file + "/run") }
        #expect(error?.description.contains(file + "/run") == true)
    }
}

@Suite struct EventFileReaderTests {
    /// An event file with the version record and three scalars; returns its path and bytes.
    func threeScalarFile(in dir: String) throws -> (path: String, bytes: [UInt8]) {
        let tb = try TensorBoardWriter(logDirectory: dir)
        for step in 1...3 { tb.scalar("loss", Double(step), step: step) }
        tb.close()
        return (tb.path, Array(try Data(contentsOf: URL(fileURLWithPath: tb.path))))
    }

    @Test func aTruncatedLastRecordIsSkippedWithAWarning() throws {
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (path, bytes) = try threeScalarFile(in: dir)
        // Record sizes are equal for the three scalars, so the last one starts here.
        let lastSize = (bytes.count - (try firstRecordSize(bytes))) / 3
        let lastStart = bytes.count - lastSize
        // Cut inside the length, its checksum, the data and the data checksum.
        for cut in [1, 9, TFRecord.headerSize + 3, lastSize - 1] {
            try Data(bytes[..<(lastStart + cut)]).write(to: URL(fileURLWithPath: path))
            let contents = try EventFileReader.read(path: path)
            #expect(contents.scalars.map(\.step) == [1, 2], "cut after \(cut) bytes")
            #expect(contents.warnings.count == 1)
            #expect(contents.warnings.first?.contains("record 3") == true)
            #expect(contents.warnings.first?.contains(path) == true)
        }
    }

    @Test func aBadChecksumBeforeTheEndThrowsNamingFileAndRecord() throws {
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (path, bytes) = try threeScalarFile(in: dir)
        let secondRecord = try firstRecordSize(bytes)
        for (offset, what) in [(secondRecord + TFRecord.headerSize + 5, "data"), (secondRecord + 2, "length")] {
            var corrupted = bytes
            corrupted[offset] ^= 0x40
            try Data(corrupted).write(to: URL(fileURLWithPath: path))
            let error = #expect(throws: TrackingError.self) { try EventFileReader.read(path: path) }
            guard case let .corruptRecord(errorPath, record, reason)? = error else {
                Issue.record("expected corruptRecord, got \(String(describing: error))")
                continue
            }
            #expect(errorPath == path && record == 1)
            #expect(reason.contains(what))
            #expect(error?.description.contains(path) == true)
        }
    }

    @Test func aMissingFileIsReportedByPath() {
        let path = temporaryLogDirectory() + "/events.out.tfevents.0"
        let error = #expect(throws: TrackingError.self) { try EventFileReader.read(path: path) }
        #expect(error?.description.contains(path) == true)
    }

    private func firstRecordSize(_ bytes: [UInt8]) throws -> Int {
        let length = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        return TFRecord.headerSize + length + TFRecord.footerSize
    }
}

@Suite struct TensorBoardPythonTests {
    @Test(.enabled(if: pythonWithTensorBoard != nil, "needs Python with tensorboard: .venv-test or $NANODECODER_PYTHON"))
    func tensorBoardReadsOurScalarsAndText() throws {
        let python = try #require(pythonWithTensorBoard)
        let dir = temporaryLogDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tb = try TensorBoardWriter(logDirectory: dir)
        let losses: [(step: Int, value: Double)] = [(0, 10.8), (50, 3.14159), (100, 0.001), (1 << 40, -2.5e-7)]
        for (step, value) in losses { tb.scalar("train/loss", value, step: step) }
        tb.scalar("lr", 6e-4, step: 7)
        tb.text("samples/generated", "ROMEO:\nWhat light through **yonder** window — ünïcode", step: 100)
        tb.close()

        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [repositoryRoot.path + "/scripts/read_tensorboard.py", dir]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "read_tensorboard.py failed: \(stderr)")

        let json = try #require(try JSONSerialization.jsonObject(with: stdout) as? [String: [String: [[Any]]]])
        let scalars = try #require(json["scalars"])
        #expect(Set(scalars.keys) == ["train/loss", "lr"])
        let loss = try #require(scalars["train/loss"])
        #expect(loss.map { ($0[0] as? NSNumber)?.intValue } == losses.map(\.step))
        // TensorBoard stores float32; compare at that precision (JSON parsing may round the last double bit).
        #expect(loss.map { ($0[1] as? NSNumber)?.floatValue } == losses.map { Float($0.value) })
        #expect((scalars["lr"]?.first?[1] as? NSNumber)?.floatValue == Float(6e-4))

        let text = try #require(json["text"]?["samples/generated"])
        #expect(text.count == 1)
        #expect(text.first?[0] as? Int == 100)
        #expect(text.first?[1] as? String == "ROMEO:\nWhat light through **yonder** window — ünïcode")
    }
}
