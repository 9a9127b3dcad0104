// What `/healthz` and `/readyz` answer, set by the daemon's lifecycle and read by the metrics thread.
import Synchronization

// MARK: - Health

/// Liveness and readiness of the daemon, shared lock-free between the lifecycle (writer) and the
/// metrics HTTP thread (reader).
///
/// - Readiness (`/readyz`): `starting` until the daemon has bound its sockets and recovered its state
///   (the same moment it sends `READY=1`), `ready` afterwards, `stopping` from SIGTERM on. A load
///   balancer or orchestrator should route only to a ready daemon.
/// - Liveness (`/healthz`): the engine loop calls `heartbeat(nowMonotonic:)` each iteration; the
///   daemon is alive while the last heartbeat is younger than `staleAfterMicroseconds`. Before the
///   first heartbeat (recovery may take a while) it counts as alive: the watchdog covers a hung start.
public final class HealthState: Sendable {
    /// The readiness phases.
    public enum Phase: UInt8, Sendable {
        case starting = 0, ready = 1, stopping = 2
    }

    /// A heartbeat older than this makes `/healthz` fail.
    public let staleAfterMicroseconds: UInt64
    private let phaseValue = Atomic<UInt8>(Phase.starting.rawValue)
    /// `CLOCK_MONOTONIC` µs of the last heartbeat, plus one (0 = never).
    private let lastHeartbeat = Atomic<UInt64>(0)

    public init(staleAfterMicroseconds: UInt64 = 30_000_000) {
        self.staleAfterMicroseconds = staleAfterMicroseconds
    }

    public var phase: Phase { Phase(rawValue: phaseValue.load(ordering: .acquiring)) ?? .starting }

    /// Sockets bound and state recovered: `/readyz` answers 200 (unless stopping).
    public func markReady() {
        // A daemon already stopping never becomes ready again.
        _ = phaseValue.compareExchange(
            expected: Phase.starting.rawValue, desired: Phase.ready.rawValue, ordering: .releasing)
    }

    /// Shutdown has begun: `/readyz` answers 503 from now on.
    public func markStopping() {
        phaseValue.store(Phase.stopping.rawValue, ordering: .releasing)
    }

    /// Called by the engine loop each iteration. - Complexity: O(1), one atomic store.
    public func heartbeat(nowMonotonic: UInt64) {
        lastHeartbeat.store(nowMonotonic &+ 1, ordering: .relaxed)
    }

    /// Whether `/readyz` should answer 200.
    public var isReady: Bool { phase == .ready }

    /// Whether `/healthz` should answer 200 at `nowMonotonic`.
    public func isAlive(nowMonotonic: UInt64) -> Bool {
        let stamp = lastHeartbeat.load(ordering: .relaxed)
        guard stamp != 0 else { return true }
        let last = stamp - 1
        return nowMonotonic < last || nowMonotonic - last <= staleAfterMicroseconds
    }
}
