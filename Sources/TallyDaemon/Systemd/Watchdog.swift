// The systemd watchdog: with `WatchdogSec=` in the unit, systemd sets `WATCHDOG_USEC` (and
// `WATCHDOG_PID`) and restarts the service if no `WATCHDOG=1` arrives within that time. The daemon
// pings from its engine loop, so a stuck engine (not merely a live process) is what gets restarted.
import Glibc

// MARK: - Policy

/// The watchdog timeout systemd asked for, and how often to ping (half of it, as sd_watchdog_enabled(3)
/// recommends, so one late ping is not yet fatal).
public struct WatchdogPolicy: Sendable, Equatable {
    /// `WATCHDOG_USEC`: the time after which systemd considers the service hung.
    public let timeoutMicroseconds: UInt64

    public init(timeoutMicroseconds: UInt64) {
        precondition(timeoutMicroseconds > 0, "a watchdog timeout must be positive")
        self.timeoutMicroseconds = timeoutMicroseconds
    }

    /// How often to send `WATCHDOG=1`: half the timeout.
    public var pingIntervalMicroseconds: UInt64 { max(1, timeoutMicroseconds / 2) }

    /// Reads `WATCHDOG_USEC` and `WATCHDOG_PID` (the process environment by default).
    ///
    /// Returns `nil` (no watchdog) when `WATCHDOG_USEC` is unset, not a positive integer, or when
    /// `WATCHDOG_PID` names another process (the variables were inherited from a parent that systemd
    /// watches, not meant for us), exactly like `sd_watchdog_enabled(3)`.
    public static func fromEnvironment(
        _ environment: [String: String]? = nil,
        processID: Int32? = nil
    ) -> WatchdogPolicy? {
        let processID = processID ?? getpid()
        let environment = environment ?? SystemCall.environment()
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let pidText = environment["WATCHDOG_PID"], !pidText.isEmpty {
            guard let pid = Int32(pidText), pid == processID else { return nil }
        }
        return WatchdogPolicy(timeoutMicroseconds: usec)
    }
}

// MARK: - Pinger

/// Paces `WATCHDOG=1` from a hot loop: `tick(nowMonotonic:)` is a comparison unless a ping is due.
///
/// Owned by the engine thread (a value type, not shared). The first tick pings at once; afterwards a
/// ping is sent when `pingIntervalMicroseconds` have passed since the last successful one. A failed
/// send does not advance the schedule, so the next tick tries again.
///
/// ```swift
/// var pinger = WatchdogPinger(notifier: notifier, policy: WatchdogPolicy.fromEnvironment())
/// while running {
///     let timeout = min(untilNextSnapshot, pinger.microsecondsUntilDue(nowMonotonic: now) ?? .max)
///     poll(..., timeout); drain(); apply()
///     _ = try? pinger.tick(nowMonotonic: MonotonicClock.microseconds())
/// }
/// ```
public struct WatchdogPinger: Sendable {
    private let notifier: SystemdNotifier
    /// `nil` when no watchdog is configured: every tick is then a no-op.
    public let policy: WatchdogPolicy?
    private var lastPing: UInt64?

    public init(notifier: SystemdNotifier, policy: WatchdogPolicy?) {
        self.notifier = notifier
        self.policy = notifier.isEnabled ? policy : nil
    }

    /// Sends `WATCHDOG=1` if one is due at `nowMonotonic` (µs of `CLOCK_MONOTONIC`).
    /// - Returns: whether a ping was sent.
    /// - Complexity: O(1); one `sendto` when due, otherwise a comparison.
    @discardableResult
    public mutating func tick(nowMonotonic: UInt64) throws(NotifyError) -> Bool {
        guard let policy else { return false }
        if let lastPing, nowMonotonic &- lastPing < policy.pingIntervalMicroseconds, nowMonotonic >= lastPing {
            return false
        }
        try notifier.watchdog()
        lastPing = nowMonotonic
        return true
    }

    /// Microseconds until the next ping is due (0 if due now), or `nil` without a watchdog. The engine
    /// loop bounds its poll timeout by this so an idle daemon still pings on time.
    public func microsecondsUntilDue(nowMonotonic: UInt64) -> UInt64? {
        guard let policy else { return nil }
        guard let lastPing, nowMonotonic >= lastPing else { return 0 }
        let elapsed = nowMonotonic - lastPing
        return elapsed >= policy.pingIntervalMicroseconds ? 0 : policy.pingIntervalMicroseconds - elapsed
    }
}
