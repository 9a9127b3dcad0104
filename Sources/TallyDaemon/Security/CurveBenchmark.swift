import ZeroMQ
import Foundation
import Logging

// MARK: - CurveBenchmark

/// Measures what CURVE costs on this machine: events/s over PUSH→PULL on loopback TCP, with the
/// daemon's CURVE server setup (``Security/configure(socket:role:)``, the ZAP handler, a producer
/// key from an authorized-keys directory) versus plain TCP, in the same process and run.
///
/// Each frame is a JSON batch of `batch` realistic CloudEvents (~230 bytes each); the receiver
/// reads every frame and, as the engine thread does, its `User-Id` and the key's allowed sources.
/// Rounds alternate off/on so that machine noise hits both alike; the best round of each counts.
/// A benchmark, not a test: it prints figures and asserts nothing about them.
public enum CurveBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public let curve: Bool
        public let events: Int
        public let seconds: Double
        public var eventsPerSecond: Double { Double(events) / seconds }
        public var description: String {
            let rate = Int(eventsPerSecond.rounded())
            return "CURVE \(curve ? "on " : "off"): \(events) events in \(String(format: "%.3f", seconds)) s = \(rate) events/s"
        }
    }

    /// Runs `rounds` alternating off/on measurements of `events` events in frames of `batch`.
    /// - Complexity: O(events); memory: one frame plus libzmq's queues (bounded by the HWM).
    public static func run(events: Int = 1_000_000, batch: Int = 100, rounds: Int = 2) throws -> [Result] {
        let dir = NSTemporaryDirectory() + "tally-curve-bench-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try Certificate.generate(name: "server")
        let serverPaths = try server.write(toDirectory: dir + "/server")
        let producer = try Certificate.generate(name: "bench", roles: .producer, sources: ["/bench/"])
        let producerPaths = try producer.write(toDirectory: dir + "/client")
        try SecureFiles.createPrivateDirectory(dir + "/authorized")
        try FileManager.default.copyItem(atPath: producerPaths.publicPath, toPath: dir + "/authorized/bench.key")

        let frame = makeFrame(batch: batch)
        var results: [Result] = []
        for _ in 0..<max(1, rounds) {
            for curve in [false, true] {
                let options = curve
                    ? SecurityOptions(curveSecret: serverPaths.secretPath, authorizedKeys: dir + "/authorized")
                    : SecurityOptions()
                results.append(try measure(options: options, client: curve ? producer : nil, serverKey: server.publicKey,
                                           frame: frame, frames: max(1, events / batch), batch: batch))
            }
        }
        return results
    }

    /// One JSON array of `batch` `ndxp.transaction` events.
    static func makeFrame(batch: Int) -> [UInt8] {
        var s = "["
        for i in 0..<batch {
            if i > 0 { s += "," }
            s += #"{"specversion":"1.0","id":"bench-\#(i)","source":"/bench/gateway","type":"ndxp.transaction","time":"2024-04-30T10:00:00+07:00","data":{"endpoint":"ep-\#(i % 17)","consumer":"c-\#(i % 5)","provider":"p-\#(i % 3)","status":"ok"}}"#
        }
        return Array((s + "]").utf8)
    }

    private static func measure(options: SecurityOptions, client: Certificate?, serverKey: CurveKey,
                                frame: [UInt8], frames: Int, batch: Int) throws -> Result {
        let context = try Context(ioThreads: 2)
        defer { context.shutdown() }
        var logger = Logger(label: "tally.bench")
        logger.logLevel = .error
        let security = try Security.start(options: options, context: context, logger: logger)
        defer { security.stop() }
        let pull = try Socket(context, .pull)
        try pull.set(.linger, 0)
        try security.configure(socket: pull, role: .ingest)
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = try pull.lastEndpoint

        let push = try Socket(context, .push)
        try push.set(.linger, 0)
        if let client, let secret = client.secretKey {
            try push.set(.curveServerKey, serverKey)
            try push.set(.curvePublicKey, client.publicKey)
            try push.set(.curveSecretKey, secret)
        }
        try push.connect(endpoint)
        // Handshake (and for CURVE, the ZAP round trip) before the clock starts.
        _ = try push.send(frame)
        try pull.set(.receiveTimeout, 5000)
        guard try pull.receive() != nil else { throw SecurityConfigError("benchmark: the first frame never arrived") }

        let done = DispatchSemaphore(value: 0)
        let sender = Thread {
            for _ in 0..<frames { _ = try? push.send(frame) }
            done.signal()
        }
        let start = DispatchTime.now().uptimeNanoseconds
        sender.start()
        let message = Message()
        var received = 0
        var allowed = 0
        while received < frames {
            guard try pull.receive(into: message) else { throw SecurityConfigError("benchmark: a frame was lost") }
            received += 1
            // What the engine thread does per frame with CURVE: the key's name and its sources.
            if let prefixes = security.origin(forUserId: message.property("User-Id")) { allowed &+= prefixes.count }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        done.wait()
        precondition(client == nil || allowed == frames, "every CURVE frame carries the producer's User-Id")
        pull.close()
        push.close()
        return Result(curve: client != nil, events: received * batch, seconds: seconds)
    }
}
