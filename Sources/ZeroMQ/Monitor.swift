import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - MonitorEvents

/// Socket events a monitor reports (`ZMQ_EVENT_*`), as a set to subscribe to and as one event's kind.
public struct MonitorEvents: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// A connection to a peer was established (value: the fd).
    public static let connected = MonitorEvents(rawValue: ZMQ_EVENT_CONNECTED)
    /// A connect is pending, to be retried.
    public static let connectDelayed = MonitorEvents(rawValue: ZMQ_EVENT_CONNECT_DELAYED)
    /// A reconnect is scheduled (value: the reconnect interval, ms).
    public static let connectRetried = MonitorEvents(rawValue: ZMQ_EVENT_CONNECT_RETRIED)
    /// A bind succeeded and the socket listens (value: the fd).
    public static let listening = MonitorEvents(rawValue: ZMQ_EVENT_LISTENING)
    /// A bind failed (value: the errno).
    public static let bindFailed = MonitorEvents(rawValue: ZMQ_EVENT_BIND_FAILED)
    /// A peer connected to a bound endpoint (value: the fd).
    public static let accepted = MonitorEvents(rawValue: ZMQ_EVENT_ACCEPTED)
    /// Accepting a peer failed (value: the errno).
    public static let acceptFailed = MonitorEvents(rawValue: ZMQ_EVENT_ACCEPT_FAILED)
    /// A connection's fd was closed (value: the fd).
    public static let closed = MonitorEvents(rawValue: ZMQ_EVENT_CLOSED)
    /// Closing an fd failed (value: the errno).
    public static let closeFailed = MonitorEvents(rawValue: ZMQ_EVENT_CLOSE_FAILED)
    /// A session was broken off by the peer or the network (value: the fd).
    public static let disconnected = MonitorEvents(rawValue: ZMQ_EVENT_DISCONNECTED)
    /// The monitor stopped (the socket closed, or ``Socket/stopMonitor()``): the last event.
    public static let monitorStopped = MonitorEvents(rawValue: ZMQ_EVENT_MONITOR_STOPPED)
    /// A ZMTP handshake failed for an unspecified reason (value: the errno).
    public static let handshakeFailedNoDetail = MonitorEvents(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    /// The ZMTP handshake (including security) succeeded: the peer can now talk.
    public static let handshakeSucceeded = MonitorEvents(rawValue: ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
    /// The handshake failed on a protocol error, e.g. a CURVE client with the wrong server key
    /// seen from the server (value: a `ZMQ_PROTOCOL_ERROR_*` code).
    public static let handshakeFailedProtocol = MonitorEvents(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
    /// The handshake failed authentication: ZAP refused the peer (value: the ZAP status code, e.g. 400).
    public static let handshakeFailedAuth = MonitorEvents(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
    /// Any handshake failure.
    public static let handshakeFailed: MonitorEvents = [.handshakeFailedNoDetail, .handshakeFailedProtocol, .handshakeFailedAuth]
    /// Every event (`ZMQ_EVENT_ALL`).
    public static let all = MonitorEvents(rawValue: ZMQ_EVENT_ALL)

    private static let names: [(MonitorEvents, String)] = [
        (.connected, "connected"), (.connectDelayed, "connectDelayed"), (.connectRetried, "connectRetried"),
        (.listening, "listening"), (.bindFailed, "bindFailed"), (.accepted, "accepted"),
        (.acceptFailed, "acceptFailed"), (.closed, "closed"), (.closeFailed, "closeFailed"),
        (.disconnected, "disconnected"), (.monitorStopped, "monitorStopped"),
        (.handshakeFailedNoDetail, "handshakeFailedNoDetail"), (.handshakeSucceeded, "handshakeSucceeded"),
        (.handshakeFailedProtocol, "handshakeFailedProtocol"), (.handshakeFailedAuth, "handshakeFailedAuth"),
    ]

    public var description: String {
        let parts = Self.names.filter { contains($0.0) }.map(\.1)
        return parts.isEmpty ? "[]" : "[" + parts.joined(separator: ", ") + "]"
    }
}

// MARK: - MonitorEvent

/// One event read from a monitor.
public struct MonitorEvent: Sendable, Hashable, CustomStringConvertible {
    /// The event's kind (exactly one member of ``MonitorEvents``).
    public let event: MonitorEvents
    /// The event's value: an fd, an errno, a reconnect interval or a protocol/ZAP code (see each kind).
    public let value: UInt32
    /// The endpoint concerned, e.g. `tcp://127.0.0.1:41234`.
    public let endpoint: String

    public init(event: MonitorEvents, value: UInt32, endpoint: String) {
        self.event = event
        self.value = value
        self.endpoint = endpoint
    }

    public var description: String { "\(event) value=\(value) endpoint=\(endpoint)" }
}

// MARK: - MonitorReceiver

/// Reads the events a socket publishes after ``Socket/monitor(_:endpoint:)``: a PAIR socket
/// connected to the monitor endpoint, parsing libzmq's two-frame monitor message
/// (`[u16 event][u32 value]` in host order, then the endpoint).
///
/// Create it right after `monitor` (events are dropped while nothing is connected). Like any
/// socket, read it from one thread at a time; ``next(flags:)`` blocks unless `.dontWait` or
/// ``Socket/set(_:_:)`` a `.receiveTimeout` on ``socket``.
public final class MonitorReceiver: @unchecked Sendable {
    /// The PAIR socket, to poll or to give a receive timeout.
    public let socket: Socket

    /// Connects a PAIR socket of `context` to the monitor `endpoint`.
    public init(context: Context, endpoint: String) throws(ZMQError) {
        socket = try Socket(context, .pair)
        try socket.connect(endpoint)
    }

    /// The next event, or `nil` when none arrived (`.dontWait`, or the socket's receive timeout).
    /// - Throws: ``ZMQError`` (e.g. ``ZMQError/terminated``), or ``ZMQError/invalidArgument``
    ///   (call `"monitor message"`) for a message that is not a monitor event.
    public func next(flags: ReceiveFlags = []) throws(ZMQError) -> MonitorEvent? {
        guard let parts = try socket.receiveMultipart(flags: flags) else { return nil }
        guard parts.count == 2, parts[0].count == 6 else {
            throw ZMQError(EINVAL, call: "monitor message")
        }
        let (event, value) = parts[0].withUnsafeBytes { b in
            (b.loadUnaligned(fromByteOffset: 0, as: UInt16.self), b.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        }
        return MonitorEvent(event: MonitorEvents(rawValue: Int32(event)), value: value, endpoint: parts[1].string)
    }

    /// Waits up to `timeoutMilliseconds` for an event of a kind in `wanted`, discarding others.
    /// - Returns: the event, or `nil` if none came in time.
    public func waitFor(_ wanted: MonitorEvents, timeoutMilliseconds: Int) throws(ZMQError) -> MonitorEvent? {
        var poller = Poller()
        poller.add(socket, .pollIn)
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(timeoutMilliseconds))
        while true {
            while let e = try next(flags: .dontWait) {
                if !e.event.isDisjoint(with: wanted) { return e }
            }
            let left = ContinuousClock.now.duration(to: deadline)
            if left <= .zero { return nil }
            let ms = Int(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1
            _ = try poller.poll(timeoutMilliseconds: ms)
        }
    }
}
