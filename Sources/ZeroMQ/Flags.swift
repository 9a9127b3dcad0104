import CZeroMQ

// MARK: - SocketType

/// A ZeroMQ socket type (`ZMQ_PUSH`, `ZMQ_ROUTER`, ...): the messaging pattern a socket plays.
public struct SocketType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The `ZMQ_*` socket type constant.
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `ZMQ_PAIR`: exclusive pair (inproc signalling, monitors).
    public static let pair = SocketType(rawValue: ZMQ_PAIR)
    /// `ZMQ_PUB`: fan out to subscribers; drops at the high-water mark, never blocks.
    public static let pub = SocketType(rawValue: ZMQ_PUB)
    /// `ZMQ_SUB`: receives what matches its `.subscribe` prefixes.
    public static let sub = SocketType(rawValue: ZMQ_SUB)
    /// `ZMQ_REQ`: strict send/receive alternation, one peer at a time.
    public static let req = SocketType(rawValue: ZMQ_REQ)
    /// `ZMQ_REP`: answers REQ (or DEALER with an empty delimiter).
    public static let rep = SocketType(rawValue: ZMQ_REP)
    /// `ZMQ_DEALER`: asynchronous REQ; round-robin out, fair-queued in.
    public static let dealer = SocketType(rawValue: ZMQ_DEALER)
    /// `ZMQ_ROUTER`: addresses peers by routing id (the first frame of every message).
    public static let router = SocketType(rawValue: ZMQ_ROUTER)
    /// `ZMQ_PULL`: fair-queued input of a pipeline.
    public static let pull = SocketType(rawValue: ZMQ_PULL)
    /// `ZMQ_PUSH`: round-robin output of a pipeline; blocks at the high-water mark.
    public static let push = SocketType(rawValue: ZMQ_PUSH)
    /// `ZMQ_XPUB`: PUB that also receives subscription messages (`0x01` + prefix, `0x00` + prefix).
    public static let xpub = SocketType(rawValue: ZMQ_XPUB)
    /// `ZMQ_XSUB`: SUB that sends its subscriptions as messages.
    public static let xsub = SocketType(rawValue: ZMQ_XSUB)
    /// `ZMQ_STREAM`: raw TCP.
    public static let stream = SocketType(rawValue: ZMQ_STREAM)

    public var description: String {
        switch self {
        case .pair: "PAIR"
        case .pub: "PUB"
        case .sub: "SUB"
        case .req: "REQ"
        case .rep: "REP"
        case .dealer: "DEALER"
        case .router: "ROUTER"
        case .pull: "PULL"
        case .push: "PUSH"
        case .xpub: "XPUB"
        case .xsub: "XSUB"
        case .stream: "STREAM"
        default: "socket type \(rawValue)"
        }
    }
}

// MARK: - Flags

/// Flags of a send (`zmq_send`).
public struct SendFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// `ZMQ_DONTWAIT`: return `false` instead of blocking at the high-water mark.
    public static let dontWait = SendFlags(rawValue: ZMQ_DONTWAIT)
    /// `ZMQ_SNDMORE`: more parts of the same message follow.
    public static let more = SendFlags(rawValue: ZMQ_SNDMORE)
}

/// Flags of a receive (`zmq_msg_recv`).
public struct ReceiveFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// `ZMQ_DONTWAIT`: return `nil` instead of blocking when no message is queued.
    public static let dontWait = ReceiveFlags(rawValue: ZMQ_DONTWAIT)
}

/// Readiness of a socket or file descriptor (`ZMQ_POLLIN`, `ZMQ_POLLOUT`, ...).
public struct PollEvents: OptionSet, Sendable, Hashable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    /// A message can be received without blocking.
    public static let pollIn = PollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// A message can be sent without blocking.
    public static let pollOut = PollEvents(rawValue: Int16(ZMQ_POLLOUT))
    /// An error condition (file descriptors only).
    public static let pollError = PollEvents(rawValue: Int16(ZMQ_POLLERR))
    /// Urgent data (file descriptors only).
    public static let pollPriority = PollEvents(rawValue: Int16(ZMQ_POLLPRI))
}
