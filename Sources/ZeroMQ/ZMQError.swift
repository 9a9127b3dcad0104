import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - ZMQError

/// A failed `zmq_*` call: the `errno` it set, the call's name and, where there is one, the endpoint.
///
/// Shaped like swift-system's `Errno`: the `rawValue` is the errno and the named members
/// (`.terminated`, `.addressInUse`, ...) compare by errno only, so `catch .terminated` and
/// `error == .again` work whatever call failed. `call` and `endpoint` are context for the
/// human reading ``description``, e.g. `zmq_bind(tcp://127.0.0.1:5555): Address already in use`.
///
/// `EAGAIN` is never thrown by the binding (it is "no message" / "would block", a value), and
/// `EINTR` is retried; both exist here only so the errno table is complete.
public struct ZMQError: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The errno value (a POSIX errno, or one of libzmq's `ZMQ_HAUSNUMERO`-based codes such as `ETERM`).
    public let rawValue: Int32
    /// The C function that failed, e.g. `"zmq_bind"`; empty for an error built from a bare code.
    public let call: String
    /// The endpoint the call was about (`bind`, `connect`, `unbind`, `disconnect`, `monitor`), if any.
    public let endpoint: String?
    /// The option the call was about (`zmq_setsockopt` / `zmq_getsockopt`), e.g. `"routingID"`.
    public let option: String?

    /// An error for `rawValue` with no call context (what the named members are).
    public init(rawValue: Int32) {
        self.init(rawValue, call: "", endpoint: nil)
    }

    /// An error for a code, naming the call and endpoint it came from.
    public init(_ code: Int32, call: String, endpoint: String? = nil, option: String? = nil) {
        self.rawValue = code
        self.call = call
        self.endpoint = endpoint
        self.option = option
    }

    /// `zmq_strerror`'s text for the code (libzmq knows its own codes and defers to `strerror`).
    public var message: String { String(cString: zmq_strerror(rawValue)) }

    /// `call(endpoint): message`, e.g. `zmq_bind(tcp://127.0.0.1:5555): Address already in use`.
    public var description: String {
        let head: String
        switch (call.isEmpty, endpoint ?? option) {
        case (true, nil): return message
        case (true, let ep?): head = ep
        case (false, nil): head = call
        case (false, let ep?): head = "\(call)(\(ep))"
        }
        return "\(head): \(message)"
    }

    // Equality is by errno only: the call and endpoint are context, not identity.
    public static func == (lhs: ZMQError, rhs: ZMQError) -> Bool { lhs.rawValue == rhs.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    // MARK: - Named codes

    /// `EAGAIN`: would block. Never thrown by the binding (returned as `nil` / `false`).
    public static var again: ZMQError { .init(rawValue: EAGAIN) }
    /// `EINTR`: interrupted by a signal. Never thrown by the binding (the call is retried).
    public static var interrupted: ZMQError { .init(rawValue: EINTR) }
    /// `ETERM`: the context was shut down or terminated; every blocked or later call fails with it.
    public static var terminated: ZMQError { .init(rawValue: Int32(ZMQ_HAUSNUMERO) + 53) }
    /// `EFSM`: the socket's state machine forbids the operation (e.g. REQ sending twice).
    public static var invalidState: ZMQError { .init(rawValue: Int32(ZMQ_HAUSNUMERO) + 51) }
    /// `ENOCOMPATPROTO`: the transport does not fit the socket type.
    public static var incompatibleProtocol: ZMQError { .init(rawValue: Int32(ZMQ_HAUSNUMERO) + 52) }
    /// `EMTHREAD`: no I/O thread is available.
    public static var noIOThread: ZMQError { .init(rawValue: Int32(ZMQ_HAUSNUMERO) + 54) }
    /// `EADDRINUSE`: the endpoint is already bound (by us or another process).
    public static var addressInUse: ZMQError { .init(rawValue: EADDRINUSE) }
    /// `EADDRNOTAVAIL`: the address is not local.
    public static var addressNotAvailable: ZMQError { .init(rawValue: EADDRNOTAVAIL) }
    /// `EHOSTUNREACH`: a ROUTER with `.routerMandatory` was asked to route to an unknown peer.
    public static var hostUnreachable: ZMQError { .init(rawValue: EHOSTUNREACH) }
    /// `EPROTONOSUPPORT`: the endpoint's transport is not supported.
    public static var protocolNotSupported: ZMQError { .init(rawValue: EPROTONOSUPPORT) }
    /// `EINVAL`: an invalid argument (unknown option, malformed endpoint, wrong option size).
    public static var invalidArgument: ZMQError { .init(rawValue: EINVAL) }
    /// `EMSGSIZE`: the message is larger than the socket accepts.
    public static var messageTooLarge: ZMQError { .init(rawValue: EMSGSIZE) }
    /// `ENOTSUP`: the operation is not supported by this socket type or this libzmq build.
    public static var notSupported: ZMQError { .init(rawValue: ENOTSUP) }
    /// `ENOTSOCK`: the socket was closed (a closed ``Socket`` reports this for every call).
    public static var notSocket: ZMQError { .init(rawValue: ENOTSOCK) }
    /// `ENOENT`: the endpoint to unbind or disconnect was never bound or connected.
    public static var noSuchEndpoint: ZMQError { .init(rawValue: ENOENT) }
    /// `ENODEV`: the network interface named in the endpoint does not exist.
    public static var noDevice: ZMQError { .init(rawValue: ENODEV) }
    /// `EMFILE`: too many open sockets or files.
    public static var tooManyOpenFiles: ZMQError { .init(rawValue: EMFILE) }
    /// `ENOMEM`: out of memory.
    public static var noMemory: ZMQError { .init(rawValue: ENOMEM) }
    /// `ECONNREFUSED`: the peer refused the connection.
    public static var connectionRefused: ZMQError { .init(rawValue: ECONNREFUSED) }
    /// `EACCES`: permission denied (e.g. an ipc path in a directory we cannot write).
    public static var permissionDenied: ZMQError { .init(rawValue: EACCES) }
}

// MARK: - The funnel

/// The one funnel every `zmq_*` call goes through (swift-nio `System.swift` style).
///
/// - `EINTR` is retried (a blocking call restarts; its timeout restarts with it).
/// - `EAGAIN` is returned as `nil`: "no message" or "would block" is a value, never an error.
/// - `EFAULT`, and `ENOTSOCK` on a handle we own, mean the binding passed libzmq a bad handle:
///   that is a bug in this file's callers, so it traps with a message instead of being thrown.
/// - Every other errno becomes a ``ZMQError`` naming the call and endpoint.
///
/// - Complexity: O(1) on success: one branch on the return code; `zmq_errno()` is read only on failure.
enum ZMQCall {
    /// Runs `body` (a `zmq_*` call returning `-1` on failure); `nil` means `EAGAIN`.
    @inline(__always)
    static func attempt(_ call: StaticString, endpoint: String? = nil, _ body: () -> Int32) throws(ZMQError) -> Int32? {
        while true {
            let rc = body()
            if rc != -1 { return rc }
            let code = zmq_errno()
            if code == EINTR { continue }
            if code == EAGAIN { return nil }
            throw failure(call, code, endpoint)
        }
    }

    /// Runs a call that cannot would-block (options, bind, connect, poll, ...): libzmq documents
    /// no `EAGAIN` for these, so one would be a libzmq contract break and is thrown, not hidden.
    @inline(__always)
    @discardableResult
    static func check(_ call: StaticString, endpoint: String? = nil, option: String? = nil,
                      _ body: () -> Int32) throws(ZMQError) -> Int32 {
        while true {
            let rc = body()
            if rc != -1 { return rc }
            let code = zmq_errno()
            if code == EINTR { continue }
            throw failure(call, code, endpoint, option)
        }
    }

    /// Runs a call returning a pointer (`zmq_ctx_new`, `zmq_socket`, `zmq_z85_*`); `nil` is a failure.
    @inline(__always)
    static func pointer<T>(_ call: StaticString, endpoint: String? = nil, _ body: () -> T?) throws(ZMQError) -> T {
        while true {
            if let p = body() { return p }
            let code = zmq_errno()
            if code == EINTR { continue }
            throw failure(call, code, endpoint)
        }
    }

    /// Classifies a failure: traps on the errnos that only a binding bug can cause.
    @inline(never)
    static func failure(_ call: StaticString, _ code: Int32, _ endpoint: String?, _ option: String? = nil) -> ZMQError {
        let error = ZMQError(code, call: "\(call)", endpoint: endpoint, option: option)
        if code == EFAULT || code == ENOTSOCK {
            preconditionFailure("ZeroMQ binding bug: \(error) on a handle the binding owns")
        }
        return error
    }
}
