import Foundation
import Testing
import ZeroMQ

// MARK: - Interop with pyzmq

/// Talks to `Tests/Interop/peer.py`, a pyzmq (libzmq's Python binding, written by others) peer:
/// its PUSH, DEALER and SUB against our PULL, ROUTER and PUB, over tcp loopback.
@Suite("Interop with pyzmq")
struct InteropTests {
    /// `Tests/Interop/peer.py`, found from this file's path.
    static let peerScript: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop/peer.py").path

    /// Fails (never skips) with instructions when python3 or pyzmq is missing.
    static func requirePyzmq() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import zmq"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        var ok = false
        do {
            try probe.run()
            probe.waitUntilExit()
            ok = probe.terminationStatus == 0
        } catch {}
        try #require(ok, "the interop test needs python3 with pyzmq: install it (`apt-get install python3-zmq` or `python3 -m pip install pyzmq`)")
    }

    @Test("a pyzmq PUSH, DEALER and SUB talk to our PULL, ROUTER and PUB and answer back")
    func pyzmqPeer() async throws {
        try Self.requirePyzmq()
        let outcome = try await onThread { () -> (status: Int32, output: String, pulled: [[String]], report: [String]) in
            let context = try Context()
            let pull = try makeSocket(context, .pull, timeout: 15000)
            let router = try makeSocket(context, .router, timeout: 15000)
            let pub = try makeSocket(context, .pub)
            try router.set(.routerMandatory, true)
            let pullEndpoint = try bindFresh(pull, .tcp)
            let routerEndpoint = try bindFresh(router, .tcp)
            let pubEndpoint = try bindFresh(pub, .tcp)

            let peer = Process()
            peer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            peer.arguments = ["python3", Self.peerScript, pullEndpoint, routerEndpoint, pubEndpoint]
            let output = Pipe()
            peer.standardOutput = output
            peer.standardError = output
            try peer.run()
            defer { if peer.isRunning { peer.terminate() } }

            // 1. PUSH -> PULL
            var pulled: [[String]] = []
            for _ in 0..<2 {
                guard let parts = try pull.receiveMultipart() else { break }
                pulled.append(parts.map(\.string))
            }
            // 2. DEALER -> ROUTER -> DEALER
            let request = try #require(try router.receiveMultipart(), "no request from the pyzmq DEALER")
            #expect(strings(request) == ["py-dealer", "ping", "42"])
            try router.sendMultipart([b("py-dealer"), b("pong"), request[2].bytes])
            // 3. PUB -> SUB, reported back through the DEALER. Publish until the report arrives
            //    (the SUB may join late); the unsubscribed topic is interleaved and must be filtered.
            var report: [String] = []
            var sequence = 0
            while report.isEmpty, sequence < 2000 {
                try pub.send(b("other.noise"))
                try pub.sendMultipart([b("tally.snapshot"), b("{\"seq\":\(sequence)}")])
                sequence += 1
                if let parts = try router.receiveMultipart(flags: .dontWait) {
                    report = parts.dropFirst().map(\.string)
                } else {
                    Thread.sleep(forTimeInterval: 0.005)
                }
            }
            // 4. bye
            try router.sendMultipart([b("py-dealer"), b("bye")])
            let bye = try router.receiveMultipart()
            #expect(strings(bye) == ["py-dealer", "bye"])

            peer.waitUntilExit()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            return (peer.terminationStatus, text, pulled, report)
        }
        #expect(outcome.status == 0, "peer.py: \(outcome.output)")
        #expect(outcome.output.contains("OK"))
        #expect(outcome.pulled == [["hello from pyzmq"], ["batch", "", "3"]])
        #expect(outcome.report.first == "got")
        #expect(outcome.report.dropFirst().first == "tally.snapshot")
        #expect(outcome.report.last?.hasPrefix("{\"seq\":") == true)
    }
}
