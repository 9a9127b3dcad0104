import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Socket

/// A ZeroMQ socket (`zmq_socket`), closed by ``close()`` or, at the latest, in `deinit`.
///
/// Like every libzmq socket, use it from one thread at a time (it is `Sendable` so it can move
/// to the thread that owns it). Blocking calls block that thread: run them on a dedicated
/// thread, never on Swift concurrency's cooperative pool. ``Context/shutdown()`` wakes them.
///
/// Would-block is a value: `send` returns `false` and `receive` returns `nil` on `EAGAIN`
/// (`.dontWait`, or the send/receive timeout expired). Everything else is a ``ZMQError``.
/// After ``close()`` every call throws ``ZMQError/notSocket``.
public final class Socket: @unchecked Sendable {
    /// The `void *` handle; `nil` once closed.
    private var handle: UnsafeMutableRawPointer?
    /// The context, kept alive until this socket is gone (so `zmq_ctx_term` never waits on it).
    public let context: Context
    /// The socket's type.
    public let type: SocketType

    /// Creates a socket, with `context.defaultLinger` as its linger.
    /// - Throws: ``ZMQError`` from `zmq_socket` (``ZMQError/terminated`` after a shutdown,
    ///   ``ZMQError/tooManyOpenFiles``, ``ZMQError/invalidArgument`` for an unknown type).
    public init(_ context: Context, _ type: SocketType) throws(ZMQError) {
        self.context = context
        self.type = type
        let h = try ZMQCall.pointer("zmq_socket") { zmq_socket(context.handle, type.rawValue) }
        handle = h
        var linger = context.defaultLinger
        try ZMQCall.check("zmq_setsockopt", option: "linger") { zmq_setsockopt(h, ZMQ_LINGER, &linger, 4) }
    }

    deinit { close() }

    /// Closes the socket (`zmq_close`): unsent messages are kept for at most the linger.
    /// Idempotent. - Complexity: O(1); does not block (libzmq lingers in the background).
    public func close() {
        guard let h = handle else { return }
        handle = nil
        _ = zmq_close(h)   // only ENOTSOCK is possible, and we own h
    }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool { handle == nil }

    /// The live handle, or ``ZMQError/notSocket`` naming `call` when closed.
    @inline(__always)
    private func live(_ call: String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let h = handle else { throw ZMQError(ENOTSOCK, call: call) }
        return h
    }

    // MARK: - Endpoints

    /// Binds to an endpoint: `tcp://127.0.0.1:*` (then read ``lastEndpoint``), `ipc:///path`,
    /// `inproc://name`. - Throws: ``ZMQError`` naming the endpoint, e.g. ``ZMQError/addressInUse``.
    public func bind(_ endpoint: String) throws(ZMQError) {
        let h = try live("zmq_bind")
        try ZMQCall.check("zmq_bind", endpoint: endpoint) { zmq_bind(h, endpoint) }
    }

    /// Connects to an endpoint (asynchronous: the connection is made, and remade, in the background).
    public func connect(_ endpoint: String) throws(ZMQError) {
        let h = try live("zmq_connect")
        try ZMQCall.check("zmq_connect", endpoint: endpoint) { zmq_connect(h, endpoint) }
    }

    /// Stops listening on a bound endpoint (use the ``lastEndpoint`` form for wildcard binds).
    public func unbind(_ endpoint: String) throws(ZMQError) {
        let h = try live("zmq_unbind")
        try ZMQCall.check("zmq_unbind", endpoint: endpoint) { zmq_unbind(h, endpoint) }
    }

    /// Drops a connection made by ``connect(_:)``.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let h = try live("zmq_disconnect")
        try ZMQCall.check("zmq_disconnect", endpoint: endpoint) { zmq_disconnect(h, endpoint) }
    }

    /// The endpoint last bound or connected (`ZMQ_LAST_ENDPOINT`), with the port the OS chose
    /// for a `tcp://127.0.0.1:*` bind.
    public var lastEndpoint: String {
        get throws(ZMQError) { try get(.lastEndpoint) }
    }

    // MARK: - Options

    /// Sets an option (`zmq_setsockopt`). - Throws: ``ZMQError`` naming the option.
    public func set<V>(_ option: SocketOption<V>, _ value: V) throws(ZMQError) {
        let h = try live("zmq_setsockopt")
        let bytes = option.encode(value)
        let code = option.code
        try ZMQCall.check("zmq_setsockopt", option: option.name) {
            bytes.withUnsafeBytes { zmq_setsockopt(h, code, $0.baseAddress, $0.count) }
        }
    }

    /// Reads an option (`zmq_getsockopt`). Write-only options throw ``ZMQError/invalidArgument``.
    public func get<V>(_ option: SocketOption<V>) throws(ZMQError) -> V {
        let h = try live("zmq_getsockopt")
        guard let decode = option.decode else {
            throw ZMQError(EINVAL, call: "zmq_getsockopt", option: option.name)
        }
        var buffer = [UInt8](repeating: 0, count: option.capacity)
        var size = option.capacity
        let code = option.code
        try ZMQCall.check("zmq_getsockopt", option: option.name) {
            buffer.withUnsafeMutableBytes { zmq_getsockopt(h, code, $0.baseAddress, &size) }
        }
        return decode(Array(buffer.prefix(size)))
    }

    // MARK: - Send

    /// Sends one part, copied into a libzmq message (`zmq_send`), like any C producer.
    /// - Returns: `false` when it would block (`.dontWait`, or the send timeout expired).
    /// - Throws: ``ZMQError``, e.g. ``ZMQError/invalidState`` (REQ out of turn), ``ZMQError/terminated``,
    ///   ``ZMQError/hostUnreachable`` (ROUTER with `.routerMandatory`).
    /// - Complexity: O(n): one copy of the payload.
    @discardableResult
    public func send(_ buffer: UnsafeRawBufferPointer, flags: SendFlags = []) throws(ZMQError) -> Bool {
        let h = try live("zmq_send")
        // zmq_send memcpy's from the pointer even for 0 bytes: never hand it NULL.
        let base = buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        let count = buffer.count
        return try ZMQCall.attempt("zmq_send") { zmq_send(h, base, count, flags.rawValue) } != nil
    }

    /// Sends one part copied from `bytes` (see ``send(_:flags:)-(UnsafeRawBufferPointer,_)``).
    @discardableResult
    public func send(_ bytes: [UInt8], flags: SendFlags = []) throws(ZMQError) -> Bool {
        let h = try live("zmq_send")
        return try ZMQCall.attempt("zmq_send") {
            bytes.withUnsafeBytes { zmq_send(h, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count, flags.rawValue) }
        } != nil
    }

    /// Sends one part copied from any contiguous byte sequence (`ArraySlice`, `String.UTF8View`, `Data`...).
    /// A non-contiguous sequence is gathered into an array first.
    @discardableResult
    public func send<Bytes: Sequence>(_ bytes: Bytes, flags: SendFlags = []) throws(ZMQError) -> Bool where Bytes.Element == UInt8 {
        let h = try live("zmq_send")
        return try ZMQCall.attempt("zmq_send") {
            let rc = bytes.withContiguousStorageIfAvailable {
                zmq_send(h, UnsafeRawPointer($0.baseAddress) ?? UnsafeRawPointer(bitPattern: 1)!, $0.count, flags.rawValue)
            }
            if let rc { return rc }
            return Array(bytes).withUnsafeBytes {
                zmq_send(h, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count, flags.rawValue)
            }
        } != nil
    }

    /// Sends a string's UTF-8 bytes as one part.
    @discardableResult
    public func send(_ string: String, flags: SendFlags = []) throws(ZMQError) -> Bool {
        try send(string.utf8, flags: flags)
    }

    /// Sends a ``Message`` without copying its payload (`zmq_msg_send`). On success libzmq takes
    /// the payload and `message` is left empty (reusable); on `false` or a throw it is untouched.
    @discardableResult
    public func send(_ message: Message, flags: SendFlags = []) throws(ZMQError) -> Bool {
        let h = try live("zmq_msg_send")
        let m = message.pointer
        return try ZMQCall.attempt("zmq_msg_send") { zmq_msg_send(m, h, flags.rawValue) } != nil
    }

    /// Sends every part, all or none: `false` (would block) can only happen on the first part,
    /// because once libzmq has queued a message's first part it queues the rest (its high-water
    /// mark counts whole messages). `flags` may add `.dontWait`; `.more` is managed here.
    @discardableResult
    public func sendMultipart(_ parts: [[UInt8]], flags: SendFlags = []) throws(ZMQError) -> Bool {
        try sendParts(parts, flags: flags) { (part, f) throws(ZMQError) in try send(part, flags: f) }
    }

    /// Sends ``Message`` parts without copying, all or none (see ``sendMultipart(_:flags:)-([[UInt8]],_)``).
    @discardableResult
    public func sendMultipart(_ parts: [Message], flags: SendFlags = []) throws(ZMQError) -> Bool {
        try sendParts(parts, flags: flags) { (part, f) throws(ZMQError) in try send(part, flags: f) }
    }

    /// The all-or-none loop of both `sendMultipart`s: `.more` on every part but the last, and
    /// `.dontWait` only on the first (once libzmq queued a first part it queues the rest).
    private func sendParts<Part>(_ parts: [Part], flags: SendFlags,
                                 _ sendOne: (Part, SendFlags) throws(ZMQError) -> Bool) throws(ZMQError) -> Bool {
        guard !parts.isEmpty else { return true }
        var rest = flags
        rest.remove(.dontWait)
        for (i, part) in parts.enumerated() {
            var f = i == 0 ? flags : rest
            if i < parts.count - 1 { f.insert(.more) } else { f.remove(.more) }
            if try !sendOne(part, f) {
                precondition(i == 0, "libzmq refused part \(i) of a multipart message after accepting the first")
                return false
            }
        }
        return true
    }

    // MARK: - Receive

    /// Receives one part into a new ``Message``.
    /// - Returns: `nil` when there is no message (`.dontWait`, or the receive timeout expired).
    /// - Throws: ``ZMQError``, e.g. ``ZMQError/terminated`` after ``Context/shutdown()``.
    /// - Complexity: allocates one ``Message``; use ``receive(into:flags:)`` in a loop.
    public func receive(flags: ReceiveFlags = []) throws(ZMQError) -> Message? {
        let message = Message()
        return try receive(into: message, flags: flags) ? message : nil
    }

    /// Receives one part into `message`, replacing its payload (`zmq_msg_recv`): one `Message`
    /// reused for every frame allocates nothing of its own.
    /// - Returns: `false` when there is no message (`.dontWait`, or the receive timeout expired).
    public func receive(into message: Message, flags: ReceiveFlags = []) throws(ZMQError) -> Bool {
        let h = try live("zmq_msg_recv")
        let m = message.pointer
        return try ZMQCall.attempt("zmq_msg_recv") { zmq_msg_recv(m, h, flags.rawValue) } != nil
    }

    /// Receives every part of one message. `flags` applies to the first part; the others are
    /// already queued (libzmq delivers a message's parts together), so they never wait.
    /// - Returns: `nil` when there is no message.
    public func receiveMultipart(flags: ReceiveFlags = []) throws(ZMQError) -> [Message]? {
        guard let first = try receive(flags: flags) else { return nil }
        var parts = [first]
        while parts[parts.count - 1].more {
            guard let next = try receive(flags: .dontWait) else {
                preconditionFailure("libzmq delivered part \(parts.count) of a multipart message late")
            }
            parts.append(next)
        }
        return parts
    }

    // MARK: - Readiness

    /// The file descriptor that becomes readable when ``events`` may have changed (`ZMQ_FD`),
    /// for an external event loop. It is edge-like: after it fires, read ``events`` and drain.
    public var fileDescriptor: Int32 {
        get throws(ZMQError) { try get(.int32(ZMQ_FD, "fileDescriptor")) }
    }

    /// What the socket can do now without blocking (`ZMQ_EVENTS`).
    public var events: PollEvents {
        get throws(ZMQError) { PollEvents(rawValue: Int16(truncatingIfNeeded: try get(.int32(ZMQ_EVENTS, "events")))) }
    }

    /// The handle for ``Poller``; `nil` when closed.
    var pollHandle: UnsafeMutableRawPointer? { handle }

    // MARK: - Monitor

    /// Publishes this socket's `events` on a PAIR socket bound at `endpoint` (an `inproc://` name),
    /// read with ``MonitorReceiver`` (`zmq_socket_monitor`). One monitor per socket; a new call replaces it.
    public func monitor(_ events: MonitorEvents, endpoint: String) throws(ZMQError) {
        let h = try live("zmq_socket_monitor")
        try ZMQCall.check("zmq_socket_monitor", endpoint: endpoint) { zmq_socket_monitor(h, endpoint, events.rawValue) }
    }

    /// Stops the monitor started by ``monitor(_:endpoint:)``.
    public func stopMonitor() throws(ZMQError) {
        let h = try live("zmq_socket_monitor")
        try ZMQCall.check("zmq_socket_monitor") { zmq_socket_monitor(h, nil, 0) }
    }
}
