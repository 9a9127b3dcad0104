// sd_notify(3) without libsystemd: the protocol is one datagram of `KEY=VALUE` lines sent to the
// AF_UNIX socket named by `$NOTIFY_SOCKET` (a filesystem path, or `@name` for Linux's abstract
// namespace). Writing it ourselves keeps libsystemd out of the link and the build.
import Glibc

// MARK: - Errors

/// Why a notification could not be sent.
public enum NotifyError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `$NOTIFY_SOCKET` names something other than a path or an abstract `@name` (for example the
    /// `vsock:` addresses of newer systemd, which Debian 12's systemd 252 never hands out).
    case unsupportedAddress(String)
    /// The address does not fit in `sockaddr_un.sun_path` (108 bytes).
    case addressTooLong(String)
    /// A POSIX call failed (after `EINTR` retries).
    case systemCall(SystemCallError)
    /// The kernel accepted fewer bytes than the datagram holds (should never happen for datagrams).
    case shortWrite(sent: Int, expected: Int)

    public var description: String {
        switch self {
        case .unsupportedAddress(let text):
            return "NOTIFY_SOCKET=\(text) is neither an absolute path nor an abstract @name; cannot notify systemd"
        case .addressTooLong(let text):
            return "NOTIFY_SOCKET=\(text) is longer than a unix socket address allows (107 bytes)"
        case .systemCall(let error):
            return "sd_notify: \(error)"
        case .shortWrite(let sent, let expected):
            return "sd_notify: sent \(sent) of \(expected) bytes"
        }
    }
}

// MARK: - Address

/// Where `$NOTIFY_SOCKET` points.
public enum NotifyAddress: Sendable, Equatable {
    /// A socket file, e.g. `/run/systemd/notify`.
    case path(String)
    /// A Linux abstract-namespace socket, given in the environment as `@name` (stored without `@`).
    case abstract(String)

    /// Parses the value of `$NOTIFY_SOCKET`.
    public init(parsing text: String) throws(NotifyError) {
        if text.hasPrefix("/") {
            self = .path(text)
        } else if text.hasPrefix("@"), text.utf8.count > 1 {
            self = .abstract(String(text.dropFirst()))
        } else {
            throw .unsupportedAddress(text)
        }
    }

    /// Builds the `sockaddr_un` and its length. Abstract names get a leading NUL and no trailing one:
    /// the length, not a terminator, delimits them.
    func withSocketAddress<R>(
        _ body: (UnsafePointer<sockaddr>, socklen_t) throws(NotifyError) -> R
    ) throws(NotifyError) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let name: [UInt8]
        let prefix: Int
        switch self {
        case .path(let path):
            name = Array(path.utf8)
            prefix = 0
            guard name.count < capacity else { throw .addressTooLong(path) }
        case .abstract(let label):
            name = Array(label.utf8)
            prefix = 1
            guard name.count + 1 <= capacity else { throw .addressTooLong("@" + label) }
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            for (offset, byte) in name.enumerated() { raw[prefix + offset] = byte }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        // Paths count their terminating NUL (as libsystemd does); abstract names must not.
        let length = pathOffset + prefix + name.count + (prefix == 0 ? 1 : 0)
        return try withUnsafePointer(to: &address) { pointer throws(NotifyError) -> R in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (generic) throws(NotifyError) -> R in
                try body(generic, socklen_t(length))
            }
        }
    }
}

// MARK: - Notifier

/// Sends sd_notify(3) state changes to systemd; a no-op when `$NOTIFY_SOCKET` is unset (a daemon run
/// by hand, in a test or a container behaves the same, it just tells nobody).
///
/// One datagram socket is opened at construction and reused, so a watchdog ping costs one `sendto`.
/// `sendto` on a datagram socket is thread-safe, so one notifier may be shared by the engine thread
/// (watchdog, status) and the signal handling task (reloading, stopping).
///
/// ```swift
/// let notifier = try SystemdNotifier()          // reads $NOTIFY_SOCKET
/// try notifier.ready(status: "recovered seq 41; listening")
/// ```
public final class SystemdNotifier: Sendable {
    /// Where notifications go; `nil` when `$NOTIFY_SOCKET` was unset or empty.
    public let address: NotifyAddress?
    private let descriptor: Int32

    /// A notifier that never sends anything.
    public static let disabled = SystemdNotifier(address: nil, descriptor: -1)

    private init(address: NotifyAddress?, descriptor: Int32) {
        self.address = address
        self.descriptor = descriptor
    }

    /// Reads `NOTIFY_SOCKET` from `environment` (the process environment by default) and opens the
    /// datagram socket used to reach it.
    /// - Throws: `NotifyError` if the variable is set but unusable, or no socket can be opened.
    public convenience init(environment: [String: String]? = nil) throws(NotifyError) {
        let environment = environment ?? SystemCall.environment()
        guard let text = environment["NOTIFY_SOCKET"], !text.isEmpty else {
            self.init(address: nil, descriptor: -1)
            return
        }
        let address = try NotifyAddress(parsing: text)
        let descriptor: Int32
        do {
            descriptor = try SystemCall.retrying("socket") {
                socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            }
        } catch {
            throw .systemCall(error)
        }
        self.init(address: address, descriptor: descriptor)
    }

    deinit { SystemCall.closeQuietly(descriptor) }

    /// Whether notifications are actually sent somewhere.
    public var isEnabled: Bool { address != nil }

    // MARK: State changes

    /// `READY=1`: startup finished (sockets bound, state recovered), or a reload finished.
    /// `status` adds a `STATUS=` line in the same datagram, as systemd recommends.
    public func ready(status: String? = nil) throws(NotifyError) {
        var fields = [("READY", "1")]
        if let status { fields.append(("STATUS", status)) }
        try send(fields)
    }

    /// `STATUS=`: the one-line text `systemctl status tally` shows (live figures: events/s, seq, producers).
    public func status(_ text: String) throws(NotifyError) {
        try send([("STATUS", text)])
    }

    /// `WATCHDOG=1`: the service is alive. Send it from the loop that does the work (see `WatchdogPinger`).
    public func watchdog() throws(NotifyError) {
        try send([("WATCHDOG", "1")])
    }

    /// `STOPPING=1`: shutdown has begun (on SIGTERM), before the final drain, snapshot and checkpoint.
    public func stopping(status: String? = nil) throws(NotifyError) {
        var fields = [("STOPPING", "1")]
        if let status { fields.append(("STATUS", status)) }
        try send(fields)
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the `CLOCK_MONOTONIC` time the reload began, which
    /// systemd ≥ 253 requires to match the reload to its request). Send `ready()` when the reload is done,
    /// whether it succeeded or kept the old configuration.
    /// - Parameter monotonicMicroseconds: defaults to now; injectable for tests.
    public func reloading(monotonicMicroseconds: UInt64 = MonotonicClock.microseconds()) throws(NotifyError) {
        try send([("RELOADING", "1"), ("MONOTONIC_USEC", String(monotonicMicroseconds))])
    }

    /// `EXTEND_TIMEOUT_USEC=`: asks systemd for `microseconds` more before it declares a start, stop or
    /// watchdog timeout (a long recovery replay, a large final checkpoint). Repeat it before it runs out.
    public func extendTimeout(microseconds: UInt64) throws(NotifyError) {
        try send([("EXTEND_TIMEOUT_USEC", String(microseconds))])
    }

    // MARK: Sending

    /// Sends one datagram made of `KEY=VALUE` lines. Newlines inside a value are replaced by spaces
    /// (a newline would start a new assignment and could forge one).
    /// - Complexity: O(bytes sent), one `sendto`.
    public func send(_ fields: [(String, String)]) throws(NotifyError) {
        guard let address else { return }
        var datagram: [UInt8] = []
        datagram.reserveCapacity(64)
        for (key, value) in fields {
            datagram.append(contentsOf: key.utf8)
            datagram.append(UInt8(ascii: "="))
            for byte in value.utf8 {
                datagram.append(byte == 0x0A || byte == 0x0D ? 0x20 : byte)
            }
            datagram.append(0x0A)
        }
        let descriptor = self.descriptor
        let sent: Int = try address.withSocketAddress { (target, length) throws(NotifyError) -> Int in
            let outcome: Result<Int, SystemCallError> = datagram.withUnsafeBytes { bytes in
                Result { () throws(SystemCallError) -> Int in
                    try SystemCall.retrying("sendto") {
                        sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), target, length)
                    }
                }
            }
            switch outcome {
            case .success(let count): return count
            case .failure(let error): throw .systemCall(error)
            }
        }
        guard sent == datagram.count else { throw .shortWrite(sent: sent, expected: datagram.count) }
    }
}
