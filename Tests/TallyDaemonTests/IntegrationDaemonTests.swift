import Foundation
import Testing
import ZeroMQ
import Logging
@testable import TallyDaemon

// MARK: - Helpers

private let projectRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The built `tally` binary (next to the test bundle, or `.build/debug/tally`).
private func tallyExecutable() throws -> String {
    let candidates = [Bundle.main.bundleURL.appendingPathComponent("tally"),
                      projectRoot.appendingPathComponent(".build/debug/tally")]
    guard let exe = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "the tally binary is not built: run 'swift build --product tally' first"])
    }
    return exe.path
}

/// Runs one of `Tests/Integration/*.py` against the real daemon; returns (status, output).
private func runScript(_ name: String, _ extra: [String] = []) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", projectRoot.appendingPathComponent("Tests/Integration/\(name)").path,
                   try tallyExecutable(), projectRoot.path] + extra
    p.currentDirectoryURL = projectRoot.appendingPathComponent("Tests/Integration")
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

private func pipelinePath() -> String { projectRoot.appendingPathComponent("Pipelines/national-dx.yaml").path }

private func payment(_ i: Int, _ prefix: String) -> String {
    #"{"specversion":"1.0","id":"\#(prefix)-\#(i)","source":"dvc/portal","type":"dvc.payment.completed","time":"2024-04-15T10:00:00+07:00","data":{"payment":"p\#(i)","amount_vnd":500}}"#
}

private func value(_ snapshot: [UInt8], _ id: String) throws -> Double {
    let obj = try #require(try JSONSerialization.jsonObject(with: Data(snapshot)) as? [String: Any])
    let inds = try #require(obj["indicators"] as? [String: Any])
    let entry = try #require(inds[id] as? [String: Any])
    return (entry["value"] as? NSNumber)?.doubleValue ?? 0
}

private func seq(_ snapshot: [UInt8]) throws -> Int {
    let obj = try #require(try JSONSerialization.jsonObject(with: Data(snapshot)) as? [String: Any])
    return try #require((obj["seq"] as? NSNumber)?.intValue)
}

// MARK: - In-process daemon (the library with real sockets)

@Suite("Daemon in-process on real sockets")
struct IntegrationDaemonTests {
    private func makeDaemon(stateDir: String?) throws -> Daemon {
        var s = RunSettings(pipelinePath: pipelinePath(), stateDirectory: stateDir)
        s.ingest = ["tcp://127.0.0.1:*"]
        s.ingestAck = "tcp://127.0.0.1:*"
        s.publish = "tcp://127.0.0.1:*"
        s.snapshotService = "tcp://127.0.0.1:*"
        s.snapshotInterval = .milliseconds(20)
        var logger = Logger(label: "it")
        logger.logLevel = .critical
        let core = try EngineCore(settings: s, logger: logger)
        return try Daemon(settings: s, core: core, logger: logger)
    }

    private func ask(_ context: Context, _ endpoint: String) throws -> [UInt8] {
        let d = try Socket(context, .dealer)
        try d.set(.receiveTimeout, 3000)
        try d.connect(endpoint)
        try d.sendMultipart([[], Array("snapshot".utf8)])
        let reply = try #require(try d.receiveMultipart())
        return try #require(reply.last).bytes
    }

    private func waitFor(_ context: Context, _ endpoint: String, _ id: String, _ expected: Double) throws -> [UInt8] {
        let deadline = ContinuousClock.now + .seconds(10)
        var last: [UInt8] = []
        while ContinuousClock.now < deadline {
            last = try ask(context, endpoint)
            if try value(last, id) >= expected { return last }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return last
    }

    @Test("events pushed in come out in the snapshot, with consecutive seq on a subscriber and per-indicator topics")
    func eventsInSnapshotOut() throws {
        let daemon = try makeDaemon(stateDir: nil)
        try daemon.start()
        defer { daemon.requestStop() }
        let e = daemon.boundEndpoints
        let context = try Context()
        let sub = try Socket(context, .sub)
        try sub.set(.subscribe, Array("snapshot.".utf8))
        try sub.set(.receiveTimeout, 3000)
        try sub.connect(e.publish)
        let one = try Socket(context, .sub)
        try one.set(.subscribe, Array("indicator.dvc.online_payments".utf8))
        try one.set(.receiveTimeout, 3000)
        try one.connect(e.publish)
        let push = try Socket(context, .push)
        try push.connect(e.ingest[0])
        for i in 0..<25 { try push.send(Array(payment(i, "inproc").utf8)) }
        try push.send(Array("[\(payment(100, "inproc")),{\"nope\":1},\(payment(101, "inproc"))]".utf8))
        let snap = try waitFor(context, e.snapshotService, "dvc.online_payments", 27)
        #expect(try value(snap, "dvc.online_payments") == 27)
        #expect(try value(snap, "dvc.online_payments_vnd") == 27 * 500)

        var seqs: [Int] = []
        while seqs.count < 10, let parts = try sub.receiveMultipart() {
            #expect(parts[0].string == "snapshot.national-dx")
            seqs.append(try seq(parts[1].bytes))
        }
        #expect(seqs.count == 10)
        #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $1 == $0 + 1 }, "seq \(seqs)")
        let ind = try #require(try one.receiveMultipart())
        #expect(ind[0].string == "indicator.dvc.online_payments")
        #expect(ind[1].string.contains(#""id":"dvc.online_payments""#))
    }

    @Test("an acknowledged batch re-sent with the same sequence is answered the same and applied once, also after a restart")
    func acknowledgedResendAcrossRestart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tally-it-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let batch = Array("[\((0..<10).map { payment($0, "acked") }.joined(separator: ","))]".utf8)
        var replies: [String] = []
        var before = 0
        for round in 0..<2 {
            let daemon = try makeDaemon(stateDir: dir)
            try daemon.start()
            let e = daemon.boundEndpoints
            let context = try Context()
            let dealer = try Socket(context, .dealer)
            try dealer.set(.receiveTimeout, 5000)
            try dealer.connect(try #require(e.ingestAck))
            for _ in 0..<2 {
                try dealer.sendMultipart([[], Array("producer-a".utf8), Array("7".utf8), batch])
                let r = try #require(try dealer.receiveMultipart())
                #expect(r[1].string == "7")
                replies.append(r[2].string)
            }
            let snap = try waitFor(context, e.snapshotService, "dvc.online_payments", 10)
            #expect(try value(snap, "dvc.online_payments") == 10, "round \(round)")
            let s = try seq(snap)
            #expect(s > before, "seq must survive the restart: \(s) after \(before)")
            before = s
            daemon.requestStop()
            #expect(daemon.stopped.waitBlocking(timeout: .seconds(10)))
        }
        #expect(replies.count == 4)
        #expect(Set(replies).count == 1, "every answer to sequence 7 is the first one: \(replies)")
        #expect(replies[0].contains(#""accepted":10"#))
    }

    @Test("a reload with a broken pipeline keeps the running one")
    func brokenReloadKeepsPipeline() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tally-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let pipeline = dir.appendingPathComponent("p.yaml")
        try FileManager.default.copyItem(atPath: pipelinePath(), toPath: pipeline.path)
        var s = RunSettings(pipelinePath: pipeline.path, stateDirectory: dir.appendingPathComponent("state").path)
        s.ingest = ["tcp://127.0.0.1:*"]; s.ingestAck = nil
        s.publish = "tcp://127.0.0.1:*"; s.snapshotService = "tcp://127.0.0.1:*"
        s.snapshotInterval = .milliseconds(20)
        var logger = Logger(label: "it")
        logger.logLevel = .critical
        let daemon = try Daemon(settings: s, core: try EngineCore(settings: s, logger: logger), logger: logger)
        try daemon.start()
        defer { daemon.requestStop() }
        let context = try Context()
        let push = try Socket(context, .push)
        try push.connect(daemon.boundEndpoints.ingest[0])
        for i in 0..<5 { try push.send(Array(payment(i, "reload").utf8)) }
        _ = try waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 5)
        try "pipeline: broken\nindicators: [".write(to: pipeline, atomically: true, encoding: .utf8)
        daemon.requestReload()
        let deadline = ContinuousClock.now + .seconds(5)
        while daemon.stats.withLock({ $0.reloadFailures }) == 0 && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(daemon.stats.withLock { $0.reloadFailures } == 1)
        let snap = try ask(context, daemon.boundEndpoints.snapshotService)
        #expect(try value(snap, "dvc.online_payments") == 5)
    }
}

// MARK: - The built binary, driven from pyzmq

@Suite("tally run end to end (built binary, pyzmq peers)", .serialized)
struct IntegrationProcessTests {
    @Test("pyzmq: snapshots, Clone pattern, per-indicator topics, slow subscriber, bad input, acks, SIGTERM, restart")
    func endToEnd() throws {
        let (status, output) = try runScript("daemon_e2e.py")
        #expect(status != 3, "pyzmq is missing: pip install pyzmq\n\(output)")
        #expect(status == 0, "\(output)")
    }

    @Test("crash loop: kill -9 under acknowledged load from retrying producers, every acknowledged event counted exactly once")
    func crashLoop() throws {
        let (status, output) = try runScript("crash_loop.py", ["8"])
        #expect(status != 3, "pyzmq is missing: pip install pyzmq\n\(output)")
        #expect(status == 0, "\(output)")
    }

    @Test("crash loop with 4 batches in flight per producer: kill -9 under load, every acknowledged event counted exactly once")
    func crashLoopWindowed() throws {
        let (status, output) = try runScript("crash_loop.py", ["8", "4"])
        #expect(status != 3, "pyzmq is missing: pip install pyzmq\n\(output)")
        #expect(status == 0, "\(output)")
    }

    @Test("tally check: exit 0 for the shipped pipeline, 2 with file:line:col for a broken one")
    func checkCodes() throws {
        let ok = try runTally(["check", pipelinePath()])
        #expect(ok.status == 0, "\(ok.stderr)")
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).yaml")
        try "pipeline: x\nindicators:\n  - id: a\n    unit: count\n    events: no.such.type\n".write(to: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: bad) }
        let r = try runTally(["check", bad.path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(bad.path):"), "\(r.stderr)")
        #expect(r.stderr.contains(": error: "), "\(r.stderr)")
    }

    @Test("usage errors exit 2 with a message that says what to do")
    func usageErrors() throws {
        let badEndpoint = try runTally(["run", "--pipeline", pipelinePath(), "--publish", "nonsense"])
        #expect(badEndpoint.status == 2)
        #expect(badEndpoint.stderr.contains("tcp://127.0.0.1"), "\(badEndpoint.stderr)")
        let open = try runTally(["run", "--pipeline", pipelinePath(), "--ingest", "tcp://0.0.0.0:0", "--publish", "tcp://127.0.0.1:0",
                                 "--snapshot-service", "tcp://127.0.0.1:0", "--ingest-ack", "none"])
        #expect(open.status == 2)
        #expect(open.stderr.contains("CURVE"), "\(open.stderr)")
        let pipe = try runTally(["run", "--pipeline", "/nonexistent.yaml"])
        #expect(pipe.status == 2)
        #expect(pipe.stderr.contains("tally check"), "\(pipe.stderr)")
        let sim = try runTally(["simulate", "--profile", "may-1999"])
        #expect(sim.status == 2)
    }
}
