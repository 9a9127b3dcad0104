public import Logging
public import ServiceLifecycle
import UnixSignals
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - DaemonService

/// The daemon as a swift-service-lifecycle `Service`: the `ServiceGroup` turns SIGTERM/SIGINT
/// into a graceful shutdown (stop input, drain, final snapshot, checkpoint), and SIGHUP is
/// forwarded to ``Daemon/requestReload()``.
public struct DaemonService: Service {
    public let daemon: Daemon

    public init(daemon: Daemon) { self.daemon = daemon }

    public func run() async throws {
        let daemon = self.daemon
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sighup) {
                        daemon.requestReload()
                    }
                }
                await daemon.stopped.wait()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            daemon.logger.info("shutting down: draining input, final snapshot")
            daemon.requestStop()
            // A bounded shutdown: if the engine thread cannot finish in time, exit 1 rather than hang.
            let timeout = daemon.settings.shutdownTimeout
            spawnThread(name: "tally-shutdown-guard") {
                if !daemon.stopped.waitBlocking(timeout: timeout) {
                    daemon.logger.critical("shutdown did not finish within \(DurationText.format(timeout)); exiting")
                    exit(1)
                }
            }
        }
    }
}

// MARK: - DaemonRunner

/// `tally run`: logging, the aggregation core, the daemon, and the service group around it.
public enum DaemonRunner {
    /// Builds the aggregation core for the settings: ``EngineCore`` over `TallyEngine.Engine`.
    public static func makeCore(_ settings: RunSettings, _ logger: Logger) throws(ConfigError) -> any AggregationCore {
        try EngineCore(settings: settings, logger: logger)
    }

    /// Runs until SIGTERM/SIGINT; returns after the graceful shutdown.
    /// - Throws: ``ConfigError`` / ``DaemonError`` (mapped to exit 2 or 1 by the executable).
    public static func run(settings: RunSettings, configPath: String?) async throws {
        LoggingSystem.bootstrapOnce()
        let logger = Logger(label: "tally")
        let core = try makeCore(settings, logger)
        let daemon = try Daemon(settings: settings, core: core, logger: logger)
        let operations = try Operations(settings: settings, logger: logger)
        operations.attach(to: daemon)
        try daemon.start()
        let group = ServiceGroup(configuration: .init(
            services: [DaemonService(daemon: daemon)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        operations.shutdown()
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
