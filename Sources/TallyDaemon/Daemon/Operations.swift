public import Logging
import Synchronization

// MARK: - Operations

/// What an operator's tooling sees of a running daemon, wired onto ``DaemonHooks``: systemd
/// notifications (`READY=1` after recovery and binding, `STATUS=` with live figures, `WATCHDOG=1`
/// from the engine loop, `RELOADING=1`/`READY=1` around a reload, `STOPPING=1`,
/// `EXTEND_TIMEOUT_USEC=` during a long recovery or the final checkpoint), the health state
/// behind `/healthz` and `/readyz`, and the Prometheus server of `--metrics`.
///
/// Every hook runs on the engine thread; each costs a comparison unless something is due
/// (one datagram per watchdog period, one `STATUS=` every ``statusEvery``).
public final class Operations: Sendable {
    public let notifier: SystemdNotifier
    public let health = HealthState()
    public let metrics: TallyMetrics?
    public let server: MetricsHTTPServer?
    private let watchdog: Mutex<WatchdogPinger>
    private let logger: Logger
    /// When the last `STATUS=` was due (µs): gates the updates.
    private let statusState = Mutex<(at: UInt64, events: Int)>((0, 0))
    /// (time µs, events) of the previous ``statusText(_:)``: the events/s is measured between two
    /// texts, not between the gate and the text (which would divide by ~0).
    private let rateState = Mutex<(at: UInt64, events: Int)>((0, 0))
    /// Time between `STATUS=` updates.
    public let statusEvery: UInt64 = 2_000_000

    /// Opens the notify socket (when `NOTIFY_SOCKET` is set) and binds `--metrics` (so a bad
    /// address fails the start before `READY=1`).
    /// - Throws: ``DaemonError/usage(_:)`` for an unusable `--metrics`, `runtime` if it cannot be bound.
    public init(settings: RunSettings, logger: Logger, version: String = TallyVersion.current) throws(DaemonError) {
        self.logger = logger
        do {
            notifier = try SystemdNotifier()
        } catch {
            logger.warning("NOTIFY_SOCKET is set but unusable, systemd will not hear from tally: \(error)")
            notifier = .disabled
        }
        watchdog = Mutex(WatchdogPinger(notifier: notifier, policy: WatchdogPolicy.fromEnvironment()))
        if let text = settings.metrics {
            let endpoint: MetricsEndpoint
            do { endpoint = try MetricsEndpoint(parsing: text) } catch {
                throw .usage("--metrics \(text): \(error): write HOST:PORT, e.g. 127.0.0.1:9464")
            }
            let m = MetricsBootstrap.bootstrap(version: version)
            metrics = m
            do { server = try MetricsHTTPServer(endpoint: endpoint, metrics: m, health: health) } catch {
                throw .runtime("--metrics \(text) cannot be served: \(error): choose a free port")
            }
        } else {
            metrics = nil
            server = nil
        }
    }

    /// Installs the hooks and the metrics on `daemon`; call before ``Daemon/start()``.
    public func attach(to daemon: Daemon) {
        daemon.metrics = metrics
        server?.start()
        var hooks = daemon.hooks
        let notifier = self.notifier
        let health = self.health
        let logger = self.logger
        hooks.ready = { [self, weak daemon] in
            health.markReady()
            do { try notifier.ready(status: daemon.map { statusText($0) }) } catch {
                logger.warning("sd_notify READY failed: \(error)")
            }
        }
        hooks.loopTurn = { [self, weak daemon] in
            let now = MonotonicClock.microseconds()
            health.heartbeat(nowMonotonic: now)
            _ = try? watchdog.withLock { try $0.tick(nowMonotonic: now) }
            guard notifier.isEnabled, let daemon else { return }
            let due = statusState.withLock { s -> Bool in
                guard now &- s.at >= statusEvery else { return false }
                s.at = now
                return true
            }
            if due { try? notifier.status(statusText(daemon)) }
        }
        hooks.reloading = {
            try? notifier.reloading()
        }
        hooks.stopping = {
            health.markStopping()
            try? notifier.stopping(status: "stopping: draining input, final snapshot")
        }
        hooks.finalCheckpoint = {
            try? notifier.extendTimeout(microseconds: 30_000_000)
        }
        hooks.recovering = { records in
            try? notifier.extendTimeout(microseconds: 30_000_000)
            try? notifier.status("recovering: \(records) log records replayed")
        }
        daemon.hooks = hooks
    }

    /// `STATUS=` text: events/s since the last update, seq, producers, rejects.
    func statusText(_ daemon: Daemon) -> String {
        let s = daemon.stats.withLock { $0 }
        let now = MonotonicClock.microseconds()
        let rate = rateState.withLock { st -> Int in
            defer { st = (now, s.events) }
            let dt = now &- st.at
            return st.at > 0 && dt >= 100_000 ? Int((Double(s.events - st.events) * 1e6 / Double(dt)).rounded()) : 0
        }
        let peers = daemon.connectedPeers
        var text = "\(rate) events/s, seq \(s.seq), \(s.accepted) accepted, \(s.rejected) rejected, \(peers.producers) producers connected, \(peers.subscribers) subscribers, \(s.producers) acknowledged producers known"
        if s.storageErrors > 0 { text += ", \(s.storageErrors) storage errors" }
        return text
    }

    /// Stops the metrics server (after the daemon stopped).
    public func shutdown() {
        server?.shutdown()
    }
}

/// The version reported in `tally_build_info` and `tally --version`.
public enum TallyVersion {
    public static let current = "0.1.0"
}
