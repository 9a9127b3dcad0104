import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Poller

/// Waits until any of several sockets or file descriptors is ready (`zmq_poll`).
///
/// Build it once, then ``poll(timeoutMilliseconds:)`` in the owning thread's loop and read
/// ``revents(_:)`` by the index ``add(_:_:)`` returned. The poller keeps its sockets alive.
/// - Complexity: `poll` is O(n) in the number of items (libzmq scans them all).
public struct Poller {
    private var items: [zmq_pollitem_t] = []
    private var sockets: [Socket?] = []

    public init() {}

    /// The number of items.
    public var count: Int { items.count }

    /// Adds a socket; returns its index. The socket must stay open while it is polled.
    @discardableResult
    public mutating func add(_ socket: Socket, _ events: PollEvents) -> Int {
        precondition(!socket.isClosed, "Poller.add: the socket is closed")
        items.append(zmq_pollitem_t(socket: socket.pollHandle, fd: -1, events: events.rawValue, revents: 0))
        sockets.append(socket)
        return items.count - 1
    }

    /// Adds a plain file descriptor (a pipe, an eventfd, a TCP socket); returns its index.
    @discardableResult
    public mutating func add(fileDescriptor: Int32, _ events: PollEvents) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fileDescriptor, events: events.rawValue, revents: 0))
        sockets.append(nil)
        return items.count - 1
    }

    /// Changes the events watched for item `index` (e.g. add `.pollOut` only while output is queued).
    public mutating func setEvents(_ index: Int, _ events: PollEvents) {
        items[index].events = events.rawValue
    }

    /// Waits up to `timeoutMilliseconds` (`-1` forever, `0` just checks) for readiness.
    /// - Returns: how many items are ready (0 on timeout).
    /// - Throws: ``ZMQError/terminated`` after ``Context/shutdown()``; ``ZMQError/notSocket``
    ///   if a polled socket was closed.
    public mutating func poll(timeoutMilliseconds: Int) throws(ZMQError) -> Int {
        for i in items.indices {
            items[i].revents = 0
            if let s = sockets[i], s.isClosed { throw ZMQError(ENOTSOCK, call: "zmq_poll") }
        }
        let n = Int32(items.count)
        let timeout = timeoutMilliseconds
        let result = items.withUnsafeMutableBufferPointer { buf in
            Result { () throws(ZMQError) -> Int32 in
                try ZMQCall.check("zmq_poll") { zmq_poll(buf.baseAddress, n, timeout) }
            }
        }
        return Int(try result.get())
    }

    /// The events item `index` is ready for after the last ``poll(timeoutMilliseconds:)``.
    public func revents(_ index: Int) -> PollEvents {
        PollEvents(rawValue: items[index].revents)
    }
}
