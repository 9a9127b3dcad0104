import Logging
import Synchronization
import ZeroMQ

// MARK: - LatestSnapshot

/// The latest published snapshot, handed from the engine thread to the snapshot service under a
/// lock. The bytes are an immutable array: the service holds a reference, never a copy.
public final class LatestSnapshot: Sendable {
    private let state = Mutex<(seq: UInt64, json: [UInt8])>((0, []))

    public init() {}

    public func set(seq: UInt64, json: [UInt8]) { state.withLock { $0 = (seq, json) } }

    /// - Complexity: O(1) (a reference to the array).
    public func get() -> (seq: UInt64, json: [UInt8]) { state.withLock { $0 } }
}

// MARK: - SnapshotService

/// The snapshot service: a ROUTER on its own thread answering every request with the latest
/// snapshot, so a burst of late joiners costs ingest nothing.
///
/// Requests (after the ROUTER's routing id and an optional empty delimiter, which a REQ adds and
/// a DEALER may): an empty body, an empty frame, or the single frame `snapshot` are valid and
/// answered with the snapshot JSON; anything else is answered with
/// `{"error":"unknown request ...","code":"unknown_request"}`: never silence. The reply carries
/// the request's envelope (routing id and delimiter), so REQ, DEALER with a delimiter (the
/// benchmark's `[b"", b"snapshot"]`) and DEALER without one all work.
final class SnapshotService: @unchecked Sendable {
    private let socket: Socket
    private let latest: LatestSnapshot
    private let stop: Atomic<Bool>
    private let logger: Logger
    /// Requests answered (for tests and `STATUS=`).
    let answered = Atomic<Int>(0)
    let errors = Atomic<Int>(0)

    /// The bound endpoint (read once at construction, before the thread owns the socket).
    let endpoint: String

    init(socket: Socket, latest: LatestSnapshot, logger: Logger) {
        self.socket = socket
        self.endpoint = (try? socket.lastEndpoint) ?? ""
        self.latest = latest
        self.stop = Atomic(false)
        self.logger = logger
    }

    func requestStop() { stop.store(true, ordering: .releasing) }

    /// The thread body: poll (100 ms, so a stop is noticed within that), answer, repeat.
    func run() {
        var poller = Poller()
        poller.add(socket, .pollIn)
        let valid: [UInt8] = Array("snapshot".utf8)
        do {
            while !stop.load(ordering: .acquiring) {
                guard try poller.poll(timeoutMilliseconds: 100) > 0 else { continue }
                while let frames = try socket.receiveMultipart(flags: .dontWait) {
                    guard frames.count >= 1 else { continue }
                    // Envelope: the routing id, and the empty delimiter when there is one.
                    var envelope = [frames[0]]
                    var body = frames.dropFirst()
                    if let first = body.first, first.count == 0, body.count >= 1 {
                        envelope.append(Message())
                        body = body.dropFirst()
                    }
                    let ok = body.isEmpty || (body.count == 1 && (body.first!.count == 0 || body.first!.bytes == valid))
                    let reply: [UInt8]
                    if ok {
                        let snap = latest.get().json
                        reply = snap.isEmpty ? JSONText.errorObject("no snapshot has been built yet: retry in a moment", code: "not_ready") : snap
                        answered.add(1, ordering: .relaxed)
                    } else {
                        let shown = body.map { String(decoding: $0.bytes.prefix(64), as: UTF8.self) }.joined(separator: "|")
                        reply = JSONText.errorObject(
                            "unknown request '\(shown)': send an empty frame or the frame 'snapshot' to get the latest snapshot",
                            code: "unknown_request")
                        errors.add(1, ordering: .relaxed)
                    }
                    var parts = envelope
                    parts.append(Message(bytes: reply))
                    // .dontWait: a client that stopped reading is not waited for.
                    _ = try socket.sendMultipart(parts, flags: .dontWait)
                }
            }
        } catch {
            if error != .terminated { logger.error("snapshot service stopped: \(error)") }
        }
        socket.close()
    }
}
