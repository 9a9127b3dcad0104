import Foundation
import Testing
import TallyEngine
import ZeroMQ
@testable import TallyDaemon

// MARK: - tally demo / tally simulate (the built binary)

/// Runs the built `tally` with `arguments` from the checkout root; returns (status, stdout, stderr).
func runBuiltTally(_ arguments: [String], cwd: URL = DaemonFixture.projectRoot) throws -> (status: Int32, stdout: String, stderr: String) {
    let candidates = [Bundle.main.bundleURL.appendingPathComponent("tally"),
                      DaemonFixture.projectRoot.appendingPathComponent(".build/debug/tally")]
    guard let exe = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw CommandFailure(code: 1, "the tally binary is not built: run 'swift build --product tally' first")
    }
    let p = Process()
    p.executableURL = exe
    p.arguments = arguments
    p.currentDirectoryURL = cwd
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let errData = Mutex<Data>(Data())
    let reader = Thread { errData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
    reader.start()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
    return (p.terminationStatus, String(decoding: data, as: UTF8.self), String(decoding: errData.withLock { $0 }, as: UTF8.self))
}

import Synchronization

@Suite("tally demo and tally simulate on the real simulator", .serialized)
struct CommandDemoTests {
    @Test("tally demo --json ends with a snapshot whose figures match the simulator's expected report")
    func demoMatchesExpectedReport() throws {
        let scale = 0.0005
        let r = try runBuiltTally(["demo", "--scale", "\(scale)", "--max", "--until-complete", "--duration", "180s",
                                   "--snapshot-interval", "200ms", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let last = try #require(r.stdout.split(separator: "\n").last, "no snapshot printed; stderr: \(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        let indicators = try #require(obj["indicators"] as? [String: Any])
        #expect((obj["as_of"] as? String)?.hasPrefix("2024-04-30T23:59:59") == true, "\(obj["as_of"] ?? "nil")")
        let expected = SimulationProfile.april2024.expectedReport(scale: scale)
        #expect(expected.count > 20)
        var mismatches: [String] = []
        for (id, exp) in expected.sorted(by: { $0.key < $1.key }) {
            let live = ((indicators[id] as? [String: Any])?["value"] as? NSNumber)?.doubleValue
            if !exp.matches(live) { mismatches.append("\(id): live \(live.map { "\($0)" } ?? "absent"), expected \(exp)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
    }

    @Test("tally simulate --ack sends the whole stream to a daemon, exits 0, and the daemon's figures match the expected report")
    func simulateIntoDaemon() throws {
        let dir = DaemonFixture.temporaryDirectory("sim")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try DaemonFixture.start(DaemonFixture.settings(stateDir: dir))
        defer { DaemonFixture.stop(daemon) }
        let scale = 0.0002
        let r = try runBuiltTally(["simulate", "--scale", "\(scale)", "--rate", "50000", "--batch", "200", "--ack",
                                   "--to", try #require(daemon.boundEndpoints.ingestAck)])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("done"), "the progress line ends with done: \(r.stderr)")
        let total = try Simulator(profile: .april2024, scale: scale).totalEvents
        let deadline = ContinuousClock.now + .seconds(10)
        while daemon.stats.withLock({ $0.events }) < total && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        Thread.sleep(forTimeInterval: 0.1)
        let context = try ZeroMQ.Context()
        let snap = try DaemonFixture.ask(context, daemon.boundEndpoints.snapshotService)
        var mismatches: [String] = []
        for (id, exp) in SimulationProfile.april2024.expectedReport(scale: scale) {
            if !exp.matches(try DaemonFixture.value(snap, id)) { mismatches.append("\(id): \(try DaemonFixture.value(snap, id) ?? -1) vs \(exp)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.sorted().joined(separator: "\n"))")
    }

    @Test("tally simulate with a scale out of range exits 2 and names --scale")
    func simulateErrors() throws {
        let bad = try runBuiltTally(["simulate", "--scale", "7"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("--scale"), "\(bad.stderr)")
    }
}
