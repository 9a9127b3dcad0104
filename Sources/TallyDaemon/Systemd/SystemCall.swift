// The one place where the operator-facing pieces (sd_notify, the metrics HTTP server, the log
// writer) call POSIX: every call goes through `SystemCall.retrying`, which retries `EINTR` and turns
// any other failure into a typed `SystemCallError` carrying the call's name and `errno`.
import Glibc

// MARK: - Errors

/// A failed POSIX call: which call, and the `errno` it left.
///
/// Carrying the call name matters to operators: "sendto failed: Connection refused" in the journal
/// says which step broke, where a bare errno would not.
public struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The name of the failed call (`socket`, `sendto`, `bind`, ...).
    public let call: String
    /// The `errno` value the call left.
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

// MARK: - The funnel

/// Namespace for the retrying wrapper around raw system calls.
enum SystemCall {
    /// Runs `body` (a raw POSIX call returning `-1` and setting `errno` on failure) until it does not
    /// fail with `EINTR`.
    ///
    /// Why: signals (SIGHUP for reload, SIGTERM for shutdown) arrive on any thread; a call interrupted
    /// by one must simply be repeated, never surface as an error.
    /// - Complexity: O(1) per attempt; the number of attempts is the number of interrupting signals.
    @inline(__always)
    static func retrying<Result: BinaryInteger>(
        _ call: String, _ body: () -> Result
    ) throws(SystemCallError) -> Result {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw SystemCallError(call: call, errno: code)
        }
    }

    /// Closes a descriptor, ignoring errors: on Linux the descriptor is released even when `close`
    /// reports `EINTR` or `EIO`, so retrying would risk closing somebody else's reused descriptor.
    static func closeQuietly(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Reads the process environment without Foundation, so the systemd pieces stay light.
    /// - Complexity: O(size of the environment).
    static func environment() -> [String: String] {
        var result: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            cursor += 1
        }
        return result
    }
}

// MARK: - Clock

/// `CLOCK_MONOTONIC` in microseconds: the clock systemd uses for `MONOTONIC_USEC=` and the one the
/// watchdog pacing and rate limiters are written against (never affected by wall-clock jumps).
public enum MonotonicClock {
    /// The current `CLOCK_MONOTONIC` reading in microseconds.
    /// - Complexity: O(1), a vDSO call (no system call on Linux).
    public static func microseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}
