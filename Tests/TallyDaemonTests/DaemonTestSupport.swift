import Foundation
import Testing
import ZeroMQ
import Logging
@testable import TallyDaemon

// MARK: - Shared fixtures for the in-process daemon tests

/// An in-process daemon on free loopback ports and the small client side the tests need:
/// ask the snapshot service, read an indicator, wait for a value.
enum DaemonFixture {
    static let projectRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var nationalPipeline: String { projectRoot.appendingPathComponent("Pipelines/national-dx.yaml").path }

    static func temporaryDirectory(_ tag: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tally-\(tag)-\(UUID().uuidString)").path
    }

    static func settings(pipeline: String = nationalPipeline, stateDir: String?) -> RunSettings {
        var s = RunSettings(pipelinePath: pipeline, stateDirectory: stateDir)
        s.ingest = ["tcp://127.0.0.1:*"]
        s.ingestAck = "tcp://127.0.0.1:*"
        s.publish = "tcp://127.0.0.1:*"
        s.snapshotService = "tcp://127.0.0.1:*"
        s.snapshotInterval = .milliseconds(20)
        return s
    }

    static func quietLogger() -> Logger {
        var logger = Logger(label: "daemon-test")
        logger.logLevel = .critical
        return logger
    }

    static func start(_ s: RunSettings) throws -> Daemon {
        let core = try EngineCore(settings: s, logger: quietLogger())
        let daemon = try Daemon(settings: s, core: core, logger: quietLogger())
        try daemon.start()
        return daemon
    }

    static func stop(_ daemon: Daemon) {
        daemon.requestStop()
        _ = daemon.stopped.waitBlocking(timeout: .seconds(15))
    }

    static func payment(_ i: Int, _ prefix: String, amount: Int = 500) -> String {
        #"{"specversion":"1.0","id":"\#(prefix)-\#(i)","source":"dvc/portal","type":"dvc.payment.completed","time":"2024-04-15T10:00:00+07:00","data":{"payment":"p\#(i)","amount_vnd":\#(amount)}}"#
    }

    /// A CloudEvents JSON batch of `payment`s, as bytes (an acknowledged payload).
    static func paymentBatch(_ range: Range<Int>, _ prefix: String) -> [UInt8] {
        Array(("[" + range.map { payment($0, prefix) }.joined(separator: ",") + "]").utf8)
    }

    static func ask(_ context: Context, _ endpoint: String) throws -> [UInt8] {
        let d = try Socket(context, .dealer)
        try d.set(.receiveTimeout, 3000)
        try d.connect(endpoint)
        try d.sendMultipart([[], Array("snapshot".utf8)])
        let reply = try #require(try d.receiveMultipart())
        return try #require(reply.last).bytes
    }

    static func object(_ snapshot: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(snapshot)) as? [String: Any])
    }

    /// The indicator's value, or nil when the snapshot does not have it.
    static func value(_ snapshot: [UInt8], _ id: String) throws -> Double? {
        let inds = try #require(try object(snapshot)["indicators"] as? [String: Any])
        guard let entry = inds[id] as? [String: Any] else { return nil }
        return (entry["value"] as? NSNumber)?.doubleValue
    }

    /// Polls the snapshot service until `id` reaches `expected` (or 10 s); returns the last snapshot.
    static func waitFor(_ context: Context, _ endpoint: String, _ id: String, _ expected: Double, seconds: Int = 10) throws -> [UInt8] {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var last: [UInt8] = []
        while ContinuousClock.now < deadline {
            last = try ask(context, endpoint)
            if let v = try value(last, id), v >= expected { return last }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return last
    }

    /// Pushes `count` payments with ids `prefix-start...` in one batch frame per 50 events.
    static func push(_ context: Context, _ endpoint: String, prefix: String, range: Range<Int>, amount: Int = 500) throws {
        let push = try Socket(context, .push)
        try push.set(.linger, 5000)
        try push.connect(endpoint)
        var i = range.lowerBound
        while i < range.upperBound {
            let j = min(i + 50, range.upperBound)
            try push.send(Array("[\((i..<j).map { payment($0, prefix, amount: amount) }.joined(separator: ","))]".utf8))
            i = j
        }
        push.close()
    }

    static func checkpointFiles(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("checkpoint-") && $0.hasSuffix(".bin") }.sorted()
    }
}

// MARK: - Gates for hooks

/// A gate a daemon thread stops at from a test hook (the checkpoint thread before writing, the
/// log thread before its `fdatasync`): `pass` records the arrival (a checkpoint's LSN, or 0) and
/// blocks until `open()`, which lets every arrival, and every later one, through.
final class DaemonGate: @unchecked Sendable {
    private let lock = NSCondition()
    private var isOpen = false
    private var arrivals: [UInt64] = []

    func pass(_ lsn: UInt64) {
        lock.lock()
        arrivals.append(lsn)
        lock.broadcast()
        while !isOpen { lock.wait() }
        lock.unlock()
    }

    func open() {
        lock.lock()
        isOpen = true
        lock.broadcast()
        lock.unlock()
    }

    /// Waits until a thread reached the gate; returns the first arrival's value (nil after `seconds`).
    func waitForArrival(seconds: Double = 10) -> UInt64? {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(seconds)
        while arrivals.isEmpty {
            if !lock.wait(until: deadline) { return nil }
        }
        return arrivals.first
    }
}
