// A deliberately small HTTP/1.1 server for `/metrics`, `/healthz` and `/readyz`, on one dedicated
// thread with POSIX sockets and poll(2): no NIO, no Foundation networking, so the daemon's build and
// binary stay light and the server can never touch Swift concurrency's cooperative pool.
//
// One request per connection (`Connection: close`), every connection non-blocking with a deadline
// and a request-size limit, a cap on simultaneous connections: a slow or malicious client costs one
// slot for at most the deadline, never the thread.
import Glibc
import Synchronization

// MARK: - Errors

/// Why the metrics server could not start.
public enum MetricsServerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `--metrics` is not `HOST:PORT` (IPv6 as `[::1]:9464`).
    case invalidEndpoint(String)
    /// The host does not resolve.
    case unresolvable(host: String, reason: String)
    /// A socket call failed (bind: address in use, permission denied...).
    case systemCall(endpoint: String, SystemCallError)

    public var description: String {
        switch self {
        case .invalidEndpoint(let text):
            return "--metrics \(text): expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464"
        case .unresolvable(let host, let reason):
            return "--metrics: cannot resolve host \(host): \(reason)"
        case .systemCall(let endpoint, let error):
            return "--metrics \(endpoint): \(error)"
        }
    }
}

// MARK: - Endpoint

/// A `HOST:PORT` to bind. Port 0 binds an ephemeral port (tests read it back from `boundPort`).
public struct MetricsEndpoint: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `127.0.0.1:9464`, `localhost:9464`, `[::1]:9464`, `0.0.0.0:9464`.
    public init(parsing text: String) throws(MetricsServerError) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                text.index(after: close) < text.endIndex, text[text.index(after: close)] == ":"
            else { throw .invalidEndpoint(text) }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .invalidEndpoint(text) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw .invalidEndpoint(text) }  // bare IPv6 needs brackets
        }
        guard !host.isEmpty, let port = UInt16(portText) else { throw .invalidEndpoint(text) }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

// MARK: - Server

/// Serves the Prometheus exposition and the health probes.
///
/// ```swift
/// let server = try MetricsHTTPServer(endpoint: MetricsEndpoint(parsing: "127.0.0.1:9464"),
///                                    metrics: metrics, health: health)
/// server.start()          // its own thread
/// ...
/// server.shutdown()       // wakes the thread, joins it, closes the sockets
/// ```
public final class MetricsHTTPServer: Sendable {
    /// Protection against slow and hostile clients.
    public struct Limits: Sendable {
        /// Whole-exchange deadline per connection (read the request, write the answer).
        public var connectionTimeoutMicroseconds: UInt64 = 5_000_000
        /// Largest request head accepted; larger gets 431 and the connection closed.
        public var maxRequestBytes: Int = 8_192
        /// Simultaneous connections; further ones wait in the kernel's backlog.
        public var maxConnections: Int = 64
        public init() {}
    }

    /// The endpoint actually bound (with the real port when 0 was asked).
    public let boundEndpoint: MetricsEndpoint
    public var boundPort: UInt16 { boundEndpoint.port }
    public let limits: Limits

    private let listenDescriptor: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let health: HealthState
    private let exposition: @Sendable () -> [UInt8]
    private let thread = Mutex<pthread_t?>(nil)
    private let stopped = Atomic<Bool>(false)

    /// Binds and listens at once (so a bad `--metrics` fails the start, before `READY=1`); serving
    /// begins with `start()`.
    /// - Parameter exposition: produces the `/metrics` body (called on the server thread per scrape).
    public init(
        endpoint: MetricsEndpoint, health: HealthState, limits: Limits = Limits(),
        exposition: @escaping @Sendable () -> [UInt8]
    ) throws(MetricsServerError) {
        self.health = health
        self.exposition = exposition
        self.limits = limits
        let listening = try Self.bind(endpoint)
        self.listenDescriptor = listening.descriptor
        self.boundEndpoint = MetricsEndpoint(host: endpoint.host, port: listening.port)
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            let error = SystemCallError(call: "pipe", errno: errno)
            SystemCall.closeQuietly(listening.descriptor)
            throw .systemCall(endpoint: endpoint.description, error)
        }
        self.wakeRead = pipeEnds[0]
        self.wakeWrite = pipeEnds[1]
        for fd in pipeEnds { Self.makeNonBlockingAndCloseOnExec(fd) }
    }

    /// Serves `TallyMetrics`' registry.
    public convenience init(
        endpoint: MetricsEndpoint, metrics: TallyMetrics, health: HealthState, limits: Limits = Limits()
    ) throws(MetricsServerError) {
        try self.init(endpoint: endpoint, health: health, limits: limits) { metrics.exposition() }
    }

    deinit {
        SystemCall.closeQuietly(listenDescriptor)
        SystemCall.closeQuietly(wakeRead)
        SystemCall.closeQuietly(wakeWrite)
    }

    // MARK: Lifecycle

    /// Starts the server thread. Calling it twice does nothing.
    public func start() {
        thread.withLock { handle in
            guard handle == nil, !stopped.load(ordering: .acquiring) else { return }
            let box = Unmanaged.passRetained(ThreadBody { [self] in self.serve() }).toOpaque()
            var id = pthread_t()
            let result = pthread_create(&id, nil, { raw in
                Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
                return nil
            }, box)
            precondition(result == 0, "pthread_create failed: \(result)")
            handle = id
        }
    }

    /// Stops serving: wakes the thread through its pipe, joins it and closes open connections.
    /// Idempotent; safe from any thread except the server thread itself.
    public func shutdown() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var byte: UInt8 = 1
        _ = try? SystemCall.retrying("write") { write(wakeWrite, &byte, 1) }
        let handle = thread.withLock { handle -> pthread_t? in
            defer { handle = nil }
            return handle
        }
        if let handle { pthread_join(handle, nil) }
    }

    // MARK: Binding

    private static func bind(_ endpoint: MetricsEndpoint) throws(MetricsServerError) -> (descriptor: Int32, port: UInt16) {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard status == 0, let first = list else {
            throw .unresolvable(host: endpoint.host, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(first) }
        var lastError = SystemCallError(call: "bind", errno: EADDRNOTAVAIL)
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            cursor = info.pointee.ai_next
            do {
                let fd = try SystemCall.retrying("socket") {
                    socket(info.pointee.ai_family,
                           info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                }
                var on: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
                do {
                    _ = try SystemCall.retrying("bind") { Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) }
                    _ = try SystemCall.retrying("listen") { listen(fd, 128) }
                    return (fd, try boundPort(of: fd))
                } catch {
                    SystemCall.closeQuietly(fd)
                    throw error
                }
            } catch let error as SystemCallError {
                lastError = error
            } catch {
                lastError = SystemCallError(call: "bind", errno: EINVAL)
            }
        }
        throw .systemCall(endpoint: endpoint.description, lastError)
    }

    private static func boundPort(of fd: Int32) throws(SystemCallError) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { (pointer) throws(SystemCallError) -> Int32 in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(SystemCallError) -> Int32 in
                try SystemCall.retrying("getsockname") { getsockname(fd, address, &length) }
            }
        }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
        case AF_INET6:
            return withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
        default:
            return 0
        }
    }

    /// `pipe2`/`accept4` are GNU extensions the Swift Glibc module does not export; two `fcntl`s do the same.
    private static func makeNonBlockingAndCloseOnExec(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    }

    // MARK: Event loop

    /// One client connection: accumulating its request head, then writing its answer.
    private struct Connection {
        let descriptor: Int32
        var deadline: UInt64
        var request: [UInt8] = []
        var response: [UInt8]? = nil
        var written = 0
        /// Answer sent and write side shut: discarding whatever the client still sends until it closes,
        /// so unread bytes do not make the kernel reset the connection before the answer is read.
        var draining = false
    }

    /// The server thread's loop: poll the wake pipe, the listening socket (while below the connection
    /// cap) and every connection; close connections past their deadline.
    /// - Complexity: O(open connections) per wake-up; memory O(maxConnections × maxRequestBytes) plus
    ///   the responses being written.
    private func serve() {
        var connections: [Connection] = []
        var acceptPausedUntil: UInt64 = 0
        var descriptors: [pollfd] = []
        defer { for connection in connections { SystemCall.closeQuietly(connection.descriptor) } }
        while true {
            let now = MonotonicClock.microseconds()
            connections.removeAll { connection in
                guard connection.deadline <= now else { return false }
                SystemCall.closeQuietly(connection.descriptor)
                return true
            }
            descriptors.removeAll(keepingCapacity: true)
            descriptors.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            let listening = connections.count < limits.maxConnections && now >= acceptPausedUntil
            descriptors.append(pollfd(fd: listening ? listenDescriptor : -1, events: Int16(POLLIN), revents: 0))
            for connection in connections {
                let events = connection.response == nil || connection.draining ? POLLIN : POLLOUT
                descriptors.append(pollfd(fd: connection.descriptor, events: Int16(events), revents: 0))
            }
            var nextWake = connections.map(\.deadline).min() ?? UInt64.max
            if !listening && acceptPausedUntil > now { nextWake = min(nextWake, acceptPausedUntil) }
            let timeout: Int32 = nextWake == .max ? -1 : Int32(clamping: (nextWake - min(nextWake, now) + 999) / 1_000)
            let ready = descriptors.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeout) }
            if ready < 0 {
                if errno == EINTR { continue }
                return  // poll itself failing (EFAULT/ENOMEM) leaves nothing sensible to do.
            }
            if descriptors[0].revents != 0 || stopped.load(ordering: .acquiring) { return }
            // Service existing connections first (the indices match `descriptors[2...]`).
            var index = connections.count - 1
            while index >= 0 {
                let revents = descriptors[index + 2].revents
                if revents != 0, !advance(&connections[index], revents: revents) {
                    SystemCall.closeQuietly(connections[index].descriptor)
                    connections.remove(at: index)
                }
                index -= 1
            }
            if listening, descriptors[1].revents != 0 {
                acceptPausedUntil = acceptAll(into: &connections)
            }
        }
    }

    /// Accepts pending clients up to the cap.
    /// - Returns: a monotonic time before which accepting should pause (after EMFILE and the like),
    ///   or 0.
    private func acceptAll(into connections: inout [Connection]) -> UInt64 {
        while connections.count < limits.maxConnections {
            let fd = accept(listenDescriptor, nil, nil)
            if fd >= 0 {
                Self.makeNonBlockingAndCloseOnExec(fd)
                let deadline = MonotonicClock.microseconds() + limits.connectionTimeoutMicroseconds
                connections.append(Connection(descriptor: fd, deadline: deadline))
                continue
            }
            switch errno {
            case EINTR, ECONNABORTED, EPROTO: continue
            case EAGAIN, EWOULDBLOCK: return 0
            default: return MonotonicClock.microseconds() + 100_000  // EMFILE, ENFILE, ENOBUFS: back off 100 ms
            }
        }
        return 0
    }

    /// Reads or writes what the connection is ready for.
    /// - Returns: false when the connection is finished (answered, failed or hung up).
    private func advance(_ connection: inout Connection, revents: Int16) -> Bool {
        if connection.draining {
            var scratch = [UInt8](repeating: 0, count: 4_096)
            while true {
                let count = scratch.withUnsafeMutableBytes { recv(connection.descriptor, $0.baseAddress, $0.count, 0) }
                if count > 0 { continue }
                if count < 0 && errno == EINTR { continue }
                return count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
            }
        }
        if connection.response == nil {
            if revents & Int16(POLLERR | POLLNVAL) != 0 { return false }
            var chunk = [UInt8](repeating: 0, count: 4_096)
            while connection.response == nil {
                let count = chunk.withUnsafeMutableBytes { recv(connection.descriptor, $0.baseAddress, $0.count, 0) }
                if count > 0 {
                    let searchFrom = max(0, connection.request.count - 3)
                    connection.request.append(contentsOf: chunk[0..<count])
                    if let response = respond(to: connection.request, searchFrom: searchFrom) {
                        connection.response = response
                    }
                } else if count == 0 {
                    return false  // the client hung up before finishing its request
                } else if errno == EINTR {
                    continue
                } else if errno == EAGAIN || errno == EWOULDBLOCK {
                    return true
                } else {
                    return false
                }
            }
        }
        guard let response = connection.response else { return true }
        while connection.written < response.count {
            let count = response.withUnsafeBytes { bytes in
                send(connection.descriptor, bytes.baseAddress! + connection.written,
                     bytes.count - connection.written, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                connection.written += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return true
            } else {
                return false
            }
        }
        _ = Glibc.shutdown(connection.descriptor, Int32(SHUT_WR))
        connection.draining = true
        // Give the client at most one more second (and never past its deadline) to close its side.
        connection.deadline = min(connection.deadline, MonotonicClock.microseconds() + 1_000_000)
        return true
    }

    // MARK: HTTP

    /// The answer to a request head, once complete (`nil` while more bytes are needed).
    func respond(to request: [UInt8], searchFrom: Int) -> [UInt8]? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var end: Int?
        if request.count >= 4 {
            var position = searchFrom
            while position + 4 <= request.count {
                if request[position] == 13, request[position..<position + 4].elementsEqual(terminator) {
                    end = position
                    break
                }
                position += 1
            }
        }
        guard let end else {
            if request.count > limits.maxRequestBytes {
                return Self.response(status: "431 Request Header Fields Too Large", body: "request head too large\n")
            }
            return nil
        }
        guard end <= limits.maxRequestBytes else {
            return Self.response(status: "431 Request Header Fields Too Large", body: "request head too large\n")
        }
        guard let parsed = HTTPRequestLine(request[..<end]) else {
            return Self.response(status: "400 Bad Request", body: "malformed request line\n")
        }
        return route(parsed)
    }

    private func route(_ request: HTTPRequestLine) -> [UInt8] {
        let known = ["/metrics", "/healthz", "/readyz"]
        guard known.contains(request.path) else {
            return Self.response(status: "404 Not Found", body: "not found; try /metrics, /healthz or /readyz\n")
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            return Self.response(status: "405 Method Not Allowed", body: "only GET and HEAD\n",
                                 extraHeaders: "Allow: GET, HEAD\r\n")
        }
        let head = request.method == "HEAD"
        switch request.path {
        case "/metrics":
            return Self.response(status: "200 OK", body: exposition(),
                                 contentType: "text/plain; version=0.0.4; charset=utf-8", headOnly: head)
        case "/healthz":
            if health.isAlive(nowMonotonic: MonotonicClock.microseconds()) {
                return Self.response(status: "200 OK", body: "ok\n", headOnly: head)
            }
            return Self.response(status: "503 Service Unavailable", body: "engine loop stalled\n", headOnly: head)
        default:
            switch health.phase {
            case .ready: return Self.response(status: "200 OK", body: "ready\n", headOnly: head)
            case .starting: return Self.response(status: "503 Service Unavailable", body: "starting\n", headOnly: head)
            case .stopping: return Self.response(status: "503 Service Unavailable", body: "stopping\n", headOnly: head)
            }
        }
    }

    static func response(
        status: String, body: String, extraHeaders: String = "", headOnly: Bool = false
    ) -> [UInt8] {
        response(status: status, body: Array(body.utf8), contentType: "text/plain; charset=utf-8",
                 extraHeaders: extraHeaders, headOnly: headOnly)
    }

    static func response(
        status: String, body: [UInt8], contentType: String, extraHeaders: String = "", headOnly: Bool = false
    ) -> [UInt8] {
        var bytes = Array(
            ("HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
                + "Cache-Control: no-store\r\nConnection: close\r\n\(extraHeaders)\r\n").utf8)
        if !headOnly { bytes.append(contentsOf: body) }
        return bytes
    }
}

// MARK: - Request line

/// The parts of an HTTP/1.x request line the server routes on.
struct HTTPRequestLine: Equatable {
    let method: String
    /// The target without its query string.
    let path: String

    /// Parses `METHOD SP TARGET SP HTTP/1.x` from the head (headers after the first CRLF are ignored).
    init?(_ head: ArraySlice<UInt8>) {
        let lineEnd = head.firstIndex(of: 13) ?? head.endIndex
        let parts = head[head.startIndex..<lineEnd].split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3,
            let method = String(validating: parts[0], as: UTF8.self),
            let target = String(validating: parts[1], as: UTF8.self),
            let version = String(validating: parts[2], as: UTF8.self),
            version == "HTTP/1.1" || version == "HTTP/1.0",
            !method.isEmpty, method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }),
            target.hasPrefix("/")
        else { return nil }
        self.method = method
        self.path = String(target.prefix { $0 != "?" && $0 != "#" })
    }
}

// MARK: - Thread plumbing

/// Carries the thread's closure through `pthread_create`'s `void *`.
private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
