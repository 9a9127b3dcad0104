public import Logging
public import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Services

/// The daemon as a swift-service-lifecycle `Service`: it runs until the engine thread has
/// stopped; the group's graceful shutdown (SIGTERM/SIGINT through ``SignalBridge``) stops input,
/// drains, publishes the final snapshot and checkpoints, bounded by `--shutdown-timeout`.
public struct DaemonService: Service {
    public let daemon: Daemon

    public init(daemon: Daemon) { self.daemon = daemon }

    public func run() async throws {
        let daemon = self.daemon
        await withGracefulShutdownHandler {
            await daemon.stopped.wait()
        } onGracefulShutdown: {
            DaemonRunner.beginStop(daemon, reason: "graceful shutdown")
        }
    }
}

/// The operator endpoints (metrics, health, sd_notify) as a `Service`. Listed before the daemon in
/// the group, so the group shuts it down after the daemon has stopped: `/readyz` says 503 and
/// STOPPING is sent while the final snapshot is still being made.
struct OperationsService: Service {
    let operations: Operations

    func run() async throws {
        try? await gracefulShutdown()
        operations.shutdown()
    }
}

// MARK: - DaemonRunner

/// `tally run`: logging, the aggregation core, the daemon, and the service group around it.
public enum DaemonRunner {
    /// Builds the aggregation core for the settings: ``EngineCore`` over `TallyEngine.Engine`.
    public static func makeCore(_ settings: RunSettings, _ logger: Logger) throws(ConfigError) -> any AggregationCore {
        try EngineCore(settings: settings, logger: logger)
    }

    /// Asks the engine thread to stop, and exits 1 if it has not finished within
    /// `--shutdown-timeout` (a bounded shutdown rather than a hang). Idempotent: the signal thread
    /// and the group's graceful shutdown both call it; only the first request logs and guards.
    static func beginStop(_ daemon: Daemon, reason: String) {
        guard daemon.requestStop() else { return }
        daemon.logger.info("shutting down: draining input, final snapshot", metadata: ["reason": "\(reason)"])
        let timeout = daemon.settings.shutdownTimeout
        spawnThread(name: "tally-shutdown-guard") {
            if !daemon.stopped.waitBlocking(timeout: timeout) {
                daemon.logger.critical("shutdown did not finish within \(DurationText.format(timeout)); exiting")
                exit(1)
            }
        }
    }

    /// Runs until SIGTERM/SIGINT; returns after the graceful shutdown.
    /// - Throws: ``ConfigError`` / ``DaemonError`` (mapped to exit 2 or 1 by the executable).
    /// - Parameter reread: re-resolves the settings on SIGHUP (the `--config` file under the same
    ///   flags); nil = the pipeline file is re-read from the same path.
    public static func run(settings: RunSettings, configPath: String?,
                           reread: (@Sendable () throws -> RunSettings)? = nil) async throws {
        LoggingSystem.bootstrapOnce()
        MallocTuning.apply()   // before the state is built: flat memory over months of events
        let logger = Logger(label: "tally")
        let core = try makeCore(settings, logger)
        let daemon = try Daemon(settings: settings, core: core, logger: logger)
        daemon.settingsReloader = reread
        let operations = try Operations(settings: settings, logger: logger)
        operations.attach(to: daemon)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: OperationsService(operations: operations)),
                .init(service: DaemonService(daemon: daemon), successTerminationBehavior: .gracefullyShutdownGroup),
            ],
            logger: logger))
        // Signals are trapped before anything is bound (the group's own signal handling would
        // start only once it runs, after binding): a SIGTERM that arrives while recovering or just
        // after the snapshot service first answers must still mean a graceful stop.
        SignalBridge.install()
        spawnThread(name: "tally-signals") {
            while let signal = SignalBridge.next() {
                switch signal {
                case SIGHUP:
                    daemon.logger.info("SIGHUP: reloading the pipeline")
                    daemon.requestReload()
                default:
                    // Stop at once (the group may not be running yet), then let the group wind down.
                    beginStop(daemon, reason: "signal \(signal)")
                    Task { await group.triggerGracefulShutdown() }
                }
            }
        }
        try daemon.start()
        try await group.run()
    }
}

extension LoggingSystem {
    /// Logs to stderr through ``JournalLogHandler`` (journald priorities and structured
    /// metadata when `JOURNAL_STREAM` says stderr is the journal; plain lines otherwise).
    static func bootstrapOnce() {
        _ = bootstrapped
    }
    private static let bootstrapped: Bool = {
        JournalLogHandler.bootstrap(level: .info)
        return true
    }()
}

// MARK: - SignalBridge

/// SIGTERM, SIGINT and SIGHUP turned into bytes on a pipe, read by a dedicated thread.
///
/// Why not only the `ServiceGroup`'s signal handling: its handlers are installed when the group
/// runs, after the sockets are bound, so a supervisor that signals as soon as the snapshot
/// service answers (the bench harness, systemd during a slow start) could kill the process with
/// the default action. A `sigaction` handler installed first closes that window; the handler only
/// `write`s one byte (async-signal-safe).
enum SignalBridge {
    nonisolated(unsafe) static var pipeFDs: (read: Int32, write: Int32) = (-1, -1)

    static func install() {
        guard pipeFDs.read < 0 else { return }
        var fds: [Int32] = [-1, -1]
        guard fds.withUnsafeMutableBufferPointer({ pipe($0.baseAddress!) }) == 0 else { return }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        pipeFDs = (fds[0], fds[1])
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                var byte = UInt8(truncatingIfNeeded: sig)
                _ = write(SignalBridge.pipeFDs.write, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(sig, &action, nil)
        }
    }

    /// Blocks until a trapped signal arrives. - Returns: its number, or nil if the pipe failed.
    static func next() -> Int32? {
        var byte: UInt8 = 0
        while true {
            let n = read(pipeFDs.read, &byte, 1)
            if n == 1 { return Int32(byte) }
            if n < 0 && errno == EINTR { continue }
            return nil
        }
    }
}
