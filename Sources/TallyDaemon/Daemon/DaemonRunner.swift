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
    /// - Parameter reread: re-resolves the settings on SIGHUP (the `--config` file under the same
    ///   flags); nil = the pipeline file is re-read from the same path.
    public static func run(settings: RunSettings, configPath: String?,
                           reread: (@Sendable () throws -> RunSettings)? = nil) async throws {
        LoggingSystem.bootstrapOnce()
        let logger = Logger(label: "tally")
        let core = try makeCore(settings, logger)
        let daemon = try Daemon(settings: settings, core: core, logger: logger)
        daemon.settingsReloader = reread
        let operations = try Operations(settings: settings, logger: logger)
        operations.attach(to: daemon)
        // Signals are trapped before anything is bound: a SIGTERM that arrives while recovering
        // or just after the snapshot service first answers must still mean a graceful stop.
        SignalBridge.install()
        spawnThread(name: "tally-signals") {
            while let signal = SignalBridge.next() {
                switch signal {
                case SIGHUP:
                    daemon.logger.info("SIGHUP: reloading the pipeline")
                    daemon.requestReload()
                default:
                    daemon.logger.info("shutting down: draining input, final snapshot", metadata: ["signal": "\(signal)"])
                    daemon.requestStop()
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
        try daemon.start()
        await daemon.stopped.wait()
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
