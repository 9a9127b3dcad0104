public import ZeroMQ
public import Logging
import Metrics
import Synchronization
import Foundation

// MARK: - Rejection

/// One refused handshake, as handed to ``ZAPHandler/onReject`` and logged.
public struct HandshakeRejection: Sendable, CustomStringConvertible {
    /// The endpoint's ZAP domain (`ingest`, `publish`, ...), as the socket sent it.
    public let domain: String
    /// The peer's IP address as libzmq reports it.
    public let address: String
    /// The client's CURVE public key (Z85), when the request carried one.
    public let publicKey: String?
    public let reason: AccessPolicy.DenyReason

    public var description: String {
        "handshake refused on \(domain) from \(address) key \(publicKey ?? "-"): \(reason)"
    }
}

// MARK: - ZAPHandler

/// The ZeroMQ Authentication Protocol handler (RFC 27) of the daemon's context: a dedicated thread
/// with a REP socket bound to `inproc://zeromq.zap.01`, answering every CURVE handshake of every
/// socket of that context that has a ZAP domain.
///
/// Decisions come from the live ``AccessControl``: a CURVE client key in the authorized set with the
/// role the endpoint (ZAP domain) needs gets `200` and the certificate name as User-Id (which then
/// appears as `Message.property("User-Id")` on every message of that connection); anything else gets
/// `400`, is counted, and is logged with the key at a bounded rate (a flood of bad handshakes costs
/// a few log lines per window, not a line each).
///
/// Why a thread of its own: libzmq's I/O threads wait for the ZAP answer during the handshake; the
/// handler must answer promptly and must never run on Swift concurrency's cooperative pool.
///
/// Start it **before** binding any CURVE socket: libzmq 4.3 admits every CURVE client when no ZAP
/// handler is bound. The initializer binds synchronously for that reason.
/// - Complexity: one hash lookup per handshake; memory O(1) besides the policy.
public final class ZAPHandler: Sendable {
    /// The RFC 27 endpoint libzmq sends ZAP requests to.
    public static let endpoint = "inproc://zeromq.zap.01"

    private let access: AccessControl
    private let logger: Logger
    private let stopFlag = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let rejected = Atomic<Int>(0)
    private let accepted = Atomic<Int>(0)
    private let rejectHook: Mutex<(@Sendable (HandshakeRejection) -> Void)?> = Mutex(nil)
    /// Monitor endpoints registered by ``watch(_:role:)``, picked up by the handler thread.
    private let pendingMonitors = Mutex<[(endpoint: String, domain: String)]>([])
    private let monitorSerial = Atomic<Int>(0)
    /// Log at most this many rejections per window; the rest are summarised at the next line.
    private let logBudget: Int
    private let logWindowNanos: UInt64

    /// Binds the ZAP socket on `context` and starts the handler thread.
    /// - Parameters:
    ///   - logBudget: rejection log lines per `logWindow` (default 5 per 10 s).
    /// - Throws: ``ZMQError`` when the socket cannot be bound (another handler already bound it).
    public init(context: Context, access: AccessControl, logger: Logger,
                logBudget: Int = 5, logWindow: Duration = .seconds(10)) throws(ZMQError) {
        self.access = access
        self.logger = logger
        self.logBudget = logBudget
        let (s, atto) = logWindow.components
        self.logWindowNanos = UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, atto) / 1_000_000_000)
        let socket = try Socket(context, .rep)
        try socket.set(.linger, 0)
        try socket.set(.receiveTimeout, 200)     // wake up to notice stop()
        try socket.bind(Self.endpoint)
        let box = SocketBox(socket)
        let thread = Thread { [self] in
            self.run(box.socket)
            box.socket.close()
            self.finished.signal()
        }
        thread.name = "tally-zap"
        thread.start()
    }

    /// Handshakes refused since start.
    public var rejectedCount: Int { rejected.load(ordering: .relaxed) }
    /// Handshakes admitted since start.
    public var acceptedCount: Int { accepted.load(ordering: .relaxed) }

    /// Called on the ZAP thread for every refusal (e.g. to feed a metric or a test); keep it cheap.
    public func onReject(_ hook: (@Sendable (HandshakeRejection) -> Void)?) {
        rejectHook.withLock { $0 = hook }
    }

    /// Also counts handshakes that never reach ZAP: a client with no key (NULL mechanism against a
    /// CURVE server) or with the wrong server key fails in the protocol layer, which only the
    /// socket's monitor reports. Call from the thread that owns `socket` (before `bind`).
    ///
    /// This takes the socket's one monitor slot (`zmq_socket_monitor`): a caller that needs its own
    /// monitor on the socket must not call this.
    public func watch(_ socket: Socket, role: EndpointRole) throws(ZMQError) {
        let endpoint = "inproc://tally-zap-monitor-\(ObjectIdentifier(self).hashValue)-\(monitorSerial.add(1, ordering: .relaxed).newValue)"
        try socket.monitor([.handshakeFailedNoDetail, .handshakeFailedProtocol], endpoint: endpoint)
        pendingMonitors.withLock { $0.append((endpoint, role.zapDomain)) }
    }

    /// Stops the thread and closes the socket; returns once it is closed (at most ~200 ms).
    /// Idempotent. After this, CURVE handshakes on the context fail (no handler answers).
    public func stop() {
        guard !stopFlag.exchange(true, ordering: .acquiringAndReleasing) else { return }
        finished.wait()
    }

    // MARK: - The loop

    private func run(_ socket: Socket) {
        var throttle = LogThrottle(budget: logBudget, windowNanos: logWindowNanos)
        var counters: [String: Counter] = [:]
        var monitors: [(receiver: MonitorReceiver, domain: String)] = []
        var poller = Poller()
        poller.add(socket, .pollIn)
        defer { for m in monitors { m.receiver.socket.close() } }
        while !stopFlag.load(ordering: .acquiring) {
            let pending: [(endpoint: String, domain: String)] = pendingMonitors.withLock { list in
                let taken = list
                list.removeAll()
                return taken
            }
            for item in pending {
                let receiver: MonitorReceiver
                do {
                    receiver = try MonitorReceiver(context: socket.context, endpoint: item.endpoint)
                    try receiver.socket.set(SocketOption<Int32>.linger, 0)
                } catch {
                    logger.error("cannot watch handshakes on \(item.domain): \(error)")
                    continue
                }
                monitors.append((receiver, item.domain))
                poller.add(receiver.socket, .pollIn)
            }
            do {
                guard try poller.poll(timeoutMilliseconds: 200) > 0 else { continue }
                while let request = try socket.receiveMultipart(flags: .dontWait) {
                    let reply = answer(request, throttle: &throttle, counters: &counters)
                    _ = try socket.sendMultipart(reply)
                }
                for (receiver, domain) in monitors {
                    while let event = try? receiver.next(flags: .dontWait) {
                        record(HandshakeRejection(domain: domain, address: event.endpoint, publicKey: nil,
                                                  reason: .handshakeFailed(event.value)),
                               throttle: &throttle, counters: &counters)
                    }
                }
            } catch {
                if error == .terminated { return }
                logger.error("ZAP handler failed to serve a request", metadata: ["error": "\(error)"])
            }
        }
    }

    /// RFC 27: request = version, request id, domain, address, identity, mechanism, credentials...;
    /// reply = version, request id, status code, status text, user id, metadata.
    func answer(_ request: [Message], throttle: inout LogThrottle,
                counters: inout [String: Counter]) -> [[UInt8]] {
        guard request.count >= 6, request[0].string == "1.0" else {
            // Not even a request id we can trust to echo; libzmq never sends this.
            let id = request.count > 1 ? request[1].bytes : []
            return reply(id: id, status: "500", text: "malformed ZAP request", userId: "")
        }
        let id = request[1].bytes
        let domain = request[2].string
        let address = request[3].string
        let mechanism = request[5].string
        var key: CurveKey?
        let decision: AccessPolicy.Decision
        if mechanism != "CURVE" {
            decision = .denied(.notCurve(mechanism))
        } else if request.count < 7 {
            decision = .denied(.malformedRequest)
        } else if let k = try? CurveKey(bytes: request[6].bytes) {
            key = k
            if let endpoint = EndpointRole(rawValue: domain) {
                decision = access.policy.authorize(publicKey: k, for: endpoint)
            } else {
                decision = .denied(.unknownDomain(domain))
            }
        } else {
            decision = .denied(.malformedRequest)
        }
        switch decision {
        case .allowed(let entry):
            accepted.add(1, ordering: .relaxed)
            return reply(id: id, status: "200", text: "OK", userId: entry.name)
        case .denied(let reason):
            record(HandshakeRejection(domain: domain, address: address, publicKey: key?.z85, reason: reason),
                   throttle: &throttle, counters: &counters)
            return reply(id: id, status: "400", text: reason.description, userId: "")
        }
    }

    /// Counts, reports and (within the log budget) logs one refused handshake.
    private func record(_ rejection: HandshakeRejection, throttle: inout LogThrottle, counters: inout [String: Counter]) {
        rejected.add(1, ordering: .relaxed)
        let label = rejection.domain + "|" + rejection.reason.code
        let counter = counters[label] ?? {
            let c = Counter(label: "tally_handshakes_rejected_total",
                            dimensions: [("endpoint", rejection.domain), ("reason", rejection.reason.code)])
            if counters.count < 256 { counters[label] = c }
            return c
        }()
        counter.increment()
        if let hook = rejectHook.withLock({ $0 }) { hook(rejection) }
        switch throttle.admit(now: DispatchTime.now().uptimeNanoseconds) {
        case .log(let suppressed):
            var metadata: Logger.Metadata = ["endpoint": "\(rejection.domain)", "peer": "\(rejection.address)",
                                             "key": "\(rejection.publicKey ?? "-")", "reason": "\(rejection.reason.code)"]
            if suppressed > 0 { metadata["suppressed_since_last"] = "\(suppressed)" }
            logger.warning("handshake refused: \(rejection.reason)", metadata: metadata)
        case .suppress:
            break
        }
    }

    private func reply(id: [UInt8], status: String, text: String, userId: String) -> [[UInt8]] {
        [Array("1.0".utf8), id, Array(status.utf8), Array(text.utf8), Array(userId.utf8), []]
    }
}

/// Hands a socket to the thread that will own it.
private final class SocketBox: @unchecked Sendable {
    let socket: Socket
    init(_ socket: Socket) { self.socket = socket }
}

// MARK: - LogThrottle

/// At most `budget` log lines per window; lines over budget are counted and the count is reported
/// with the next line that is logged. Single-owner (not thread-safe).
/// - Complexity: O(1), no allocation.
public struct LogThrottle: Sendable {
    public enum Verdict: Equatable, Sendable {
        /// Log this one; `suppressed` lines were dropped since the last logged one.
        case log(suppressed: Int)
        case suppress
    }

    public let budget: Int
    public let windowNanos: UInt64
    private var windowStart: UInt64 = 0
    private var used = 0
    private var suppressed = 0
    private var started = false

    public init(budget: Int, windowNanos: UInt64) {
        self.budget = max(1, budget)
        self.windowNanos = max(1, windowNanos)
    }

    public mutating func admit(now: UInt64) -> Verdict {
        if !started || now &- windowStart >= windowNanos {
            started = true
            windowStart = now
            used = 0
        }
        guard used < budget else {
            suppressed += 1
            return .suppress
        }
        used += 1
        defer { suppressed = 0 }
        return .log(suppressed: suppressed)
    }
}
