import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Context

/// A ZeroMQ context: the I/O threads and the registry of sockets (`zmq_ctx_new`).
///
/// Shareable between threads (libzmq contexts are thread-safe). Every ``Socket`` keeps its
/// context alive, so the context's `deinit` (`zmq_ctx_term`) runs only once every socket made
/// from it has been closed: termination never waits on a socket the program still holds.
/// What `zmq_ctx_term` *does* wait for is each closed socket's unsent messages, for at most its
/// linger. Sockets are therefore created with ``defaultLinger`` (0 ms unless you choose otherwise,
/// as CZMQ does): set ``SocketOption/linger`` on a socket whose queued messages must survive
/// `close` (e.g. `-1` to wait until delivered, which can then block `deinit` while no peer reads).
///
/// ``shutdown()`` is the way to stop threads blocked in `receive`, `send`, ``Poller/poll(timeoutMilliseconds:)``
/// or ``Proxy/run(frontend:backend:capture:)``: they throw ``ZMQError/terminated``; the owners then
/// drop their sockets and the context terminates.
public final class Context: @unchecked Sendable {
    /// The `void *` context handle; never null while `self` exists.
    let handle: UnsafeMutableRawPointer
    /// The linger, in ms, that ``Socket/init(_:_:)`` sets on every new socket.
    public let defaultLinger: Int32

    /// Creates a context with `ioThreads` I/O threads.
    /// - Parameters:
    ///   - ioThreads: libzmq's `ZMQ_IO_THREADS`; one thread moves about a gigabyte a second.
    ///   - defaultLinger: the `ZMQ_LINGER` (ms) of sockets made from this context; `0` discards
    ///     unsent messages at close so that termination never hangs, `-1` waits forever.
    /// - Throws: ``ZMQError`` from `zmq_ctx_new` (e.g. too many open files) or `zmq_ctx_set`.
    public init(ioThreads: Int = 1, defaultLinger: Int32 = 0) throws(ZMQError) {
        handle = try ZMQCall.pointer("zmq_ctx_new") { zmq_ctx_new() }
        self.defaultLinger = defaultLinger
        if ioThreads != 1 {
            let h = handle
            do {
                try ZMQCall.check("zmq_ctx_set") { zmq_ctx_set(h, ZMQ_IO_THREADS, Int32(clamping: ioThreads)) }
            } catch {
                zmq_ctx_term(h)
                throw error
            }
        }
    }

    /// Wakes every call blocked on a socket of this context with ``ZMQError/terminated`` and makes
    /// every later blocking call fail the same way (`zmq_ctx_shutdown`). Idempotent; thread-safe.
    ///
    /// Sockets stay valid objects: close them (drop them) afterwards, then the context terminates.
    public func shutdown() {
        // EFAULT (a bad handle) cannot happen: the handle lives as long as `self`.
        _ = zmq_ctx_shutdown(handle)
    }

    deinit {
        // Every Socket holds a strong reference to its Context, so all are closed by now;
        // zmq_ctx_term waits at most for their linger. EINTR: retry, as the libzmq guide says.
        while zmq_ctx_term(handle) == -1 && zmq_errno() == EINTR {}
    }

    /// The libzmq version linked at run time (`zmq_version`), e.g. `(4, 3, 4)`.
    public static let version: (major: Int, minor: Int, patch: Int) = {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }()

    /// Whether libzmq was built with a capability (`zmq_has`): `"curve"`, `"ipc"`, `"draft"`, ...
    public static func has(_ capability: String) -> Bool {
        zmq_has(capability) != 0
    }
}
