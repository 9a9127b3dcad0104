import Foundation
import ZeroMQ

// MARK: - Sender (`tally send`)

/// Sends events to a daemon: fire-and-forget over PUSH, or acknowledged over DEALER with the
/// ZeroMQ guide's Lazy Pirate retries with a window of batches in flight (``AckProducer``: on a
/// silence close the socket, reconnect and re-send the same sequences, which the daemon answers
/// again without applying them twice).
public struct Sender {
    public struct Options: Sendable {
        public var endpoint: String
        public var batch: Int = 1
        public var acknowledged = false
        /// Producer id; default `tally-send-<host>-<pid>`.
        public var producerID: String?
        /// Reply timeout per attempt (Lazy Pirate).
        public var timeout: Duration = .milliseconds(2500)
        /// Attempts per batch before giving up (exit 1).
        public var retries: Int = 10
        /// Acknowledged batches in flight (1 = wait for each reply before the next batch), at
        /// most ``ProducerTable/windowLimit``: see ``AckProducer``.
        public var window: Int = 4
        public init(endpoint: String) { self.endpoint = endpoint }
    }

    /// What the daemon said about everything sent.
    public struct Report: Sendable {
        public var events = 0
        public var frames = 0
        public var accepted = 0
        public var duplicates = 0
        public var unrouted = 0
        public var late = 0
        public var rejected = 0
        /// Rejections by reason, with up to three examples each ("frame 3 event 7: message").
        public var reasons: [String: (count: Int, examples: [String])] = [:]
        public var retries = 0
        public var acknowledged = false

        public var summary: String {
            var lines = ["sent \(events) events in \(frames) frames"]
            if acknowledged {
                lines.append("accepted \(accepted), duplicates \(duplicates), unrouted \(unrouted), late \(late), rejected \(rejected)"
                             + (retries > 0 ? " (\(retries) retries)" : ""))
                for (reason, v) in reasons.sorted(by: { $0.value.count > $1.value.count }) {
                    lines.append("  \(reason): \(v.count)")
                    for e in v.examples { lines.append("    \(e)") }
                }
            } else {
                lines.append("fire-and-forget: the daemon counts rejections (see its log, metrics or --dead-letter); use --ack to see them here")
            }
            return lines.joined(separator: "\n")
        }
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    /// Sends every frame; returns the report. Blocking: call from a thread, not the pool.
    /// - Throws: ``CommandFailure`` when a batch is never acknowledged or the endpoint is unusable.
    public func send(_ frames: [(payload: [UInt8], events: Int)]) throws -> Report {
        let context = try Context(defaultLinger: -1)
        var report = Report()
        report.acknowledged = options.acknowledged
        if !options.acknowledged {
            let push = try Socket(context, .push)
            // Deliver everything before exiting, but never hang forever on a daemon that is not there.
            let wait = Int32(clamping: options.timeout.millisecondsRoundedUp * 4)
            try push.set(.linger, wait)
            try push.set(.sendTimeout, wait)
            try push.set(.immediate, true)   // queue only to a real connection, so "sent" means handed to a daemon
            try connect(push)
            for f in frames {
                guard try push.send(f.payload) else {
                    throw CommandFailure(code: 1, "nothing accepted the frames at \(options.endpoint) within \(wait) ms after \(report.frames) frames: is the daemon running with --ingest \(options.endpoint)?")
                }
                report.events += f.events
                report.frames += 1
            }
            push.close()
            return report
        }
        let producer = try AckProducer(context: context, endpoint: options.endpoint, producer: options.producerID ?? AckProducer.defaultProducerID(command: "send"),
                                       window: options.window, timeout: options.timeout, retries: options.retries)
        defer { producer.close() }
        for (index, f) in frames.enumerated() {
            for done in try producer.send(f.payload, tag: index) { merge(done.status, frame: done.tag, into: &report) }
            report.events += f.events
            report.frames += 1
        }
        for done in try producer.finish() { merge(done.status, frame: done.tag, into: &report) }
        report.retries = producer.resends
        return report
    }

    private func connect(_ s: Socket) throws {
        do { try s.connect(options.endpoint) } catch {
            throw CommandFailure(code: 2, "--to \(options.endpoint) is not a usable endpoint (\(error)): write e.g. tcp://127.0.0.1:7701")
        }
    }

    private func merge(_ status: [String: Any], frame: Int, into r: inout Report) {
        func int(_ k: String) -> Int { (status[k] as? NSNumber)?.intValue ?? 0 }
        r.accepted += int("accepted")
        r.duplicates += int("duplicates")
        r.unrouted += int("unrouted")
        r.late += int("late")
        func note(_ reason: String, _ example: String) {
            var v = r.reasons[reason] ?? (0, [])
            v.count += 1
            if v.examples.count < 3 { v.examples.append(example) }
            r.reasons[reason] = v
            r.rejected += 1
        }
        for item in status["rejected"] as? [[String: Any]] ?? [] {
            note(item["reason"] as? String ?? "rejected",
                 "frame \(frame) event \((item["index"] as? NSNumber)?.intValue ?? 0): \(item["message"] as? String ?? "")")
        }
        if let e = status["payload_error"] as? [String: Any] {
            note(e["reason"] as? String ?? "payload_error", "frame \(frame): \(e["message"] as? String ?? "")")
        }
        if let e = status["error"] as? String {
            note(status["code"] as? String ?? "error", "frame \(frame): \(e)")
        } else if let e = status["error"] as? [String: Any] {
            note(e["reason"] as? String ?? "error", "frame \(frame): \(e["message"] as? String ?? "") (not applied)")
        }
    }
}

// MARK: - Reading input

extension Sender {
    /// Reads the named files (`-` or none = stdin) and returns their events.
    /// - Throws: ``CommandFailure`` (exit 2) naming an unreadable file.
    public static func readEvents(files: [String]) throws -> [[UInt8]] {
        let names = files.isEmpty ? ["-"] : files
        var events: [[UInt8]] = []
        for name in names {
            let bytes: [UInt8]
            if name == "-" {
                bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
            } else {
                do { bytes = try readFileBytes(name) } catch {
                    throw CommandFailure(code: 2, "\(error): give a readable NDJSON or JSON-array file, or - for stdin")
                }
            }
            events.append(contentsOf: EventInput.events(in: bytes))
        }
        return events
    }
}
