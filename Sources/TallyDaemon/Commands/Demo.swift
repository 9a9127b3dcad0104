public import Logging
import Synchronization
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Demo

/// `tally demo`: the daemon in-process on loopback with a temporary state directory, a feeder
/// and the live table; Ctrl-C (or SIGTERM) stops all three cleanly and removes the state.
///
/// The feeder sends an events file (`--events`, e.g. the bench's generated stream) through the
/// fire-and-forget path in batches. The national simulator (`tally simulate`) is not in this build
/// yet; when it lands, the feeder runs it instead when no file is given.
public enum Demo {
    public struct Options: Sendable {
        public var pipeline: String
        public var events: String?
        public var batch = 100
        public var snapshotInterval: Duration = .milliseconds(500)
        /// Exit after this long (tests, recordings); nil = until Ctrl-C.
        public var duration: Duration?
        public var json = false
        public init(pipeline: String) { self.pipeline = pipeline }
    }

    /// Runs the demo until Ctrl-C/SIGTERM or `duration`.
    /// - Throws: ``ConfigError`` for a bad pipeline, ``DaemonError`` if the daemon cannot start.
    public static func run(_ options: Options) async throws {
        var quiet = Logger(label: "tally-demo")
        quiet.logLevel = .error   // the table owns the terminal
        let dir = try makeTemporaryDirectory()
        defer { removeFlatDirectory(dir) }
        var s = RunSettings(pipelinePath: options.pipeline, stateDirectory: dir)
        s.ingest = ["tcp://127.0.0.1:*"]
        s.ingestAck = "tcp://127.0.0.1:*"
        s.publish = "tcp://127.0.0.1:*"
        s.snapshotService = "tcp://127.0.0.1:*"
        s.snapshotInterval = options.snapshotInterval
        let core = try EngineCore(settings: s, logger: quiet)
        let daemon = try Daemon(settings: s, core: core, logger: quiet)
        try daemon.start()
        let endpoints = daemon.boundEndpoints
        let stopBox = StopBox()

        if let file = options.events {
            let ingest = endpoints.ingest[0]
            spawnThread(name: "tally-demo-feeder") {
                do {
                    let events = try Sender.readEvents(files: [file])
                    var o = Sender.Options(endpoint: ingest)
                    o.batch = options.batch
                    _ = try Sender(options: o).send(EventInput.frames(events, batch: options.batch))
                } catch {
                    printStandardError("tally demo: cannot feed \(file): \(error)")
                }
            }
        } else {
            printStandardError("tally demo: no simulator in this build yet; feed it with: tally send --to \(endpoints.ingest[0]) --batch 100 FILE (or pass --events FILE)")
        }
        var wo = Watcher.Options(from: endpoints.publish)
        wo.service = endpoints.snapshotService
        wo.json = options.json
        wo.duration = options.duration
        let title = "Tally demo: \(daemon.pipelineName) (ingest \(endpoints.ingest[0]), Ctrl-C stops)"
        let watchOptions = wo
        let watcherDone = spawnThread(name: "tally-demo-watch") {
            var watcher = Watcher(options: watchOptions)
            watcher.title = title
            watcher.shouldStop = { stopBox.flag.load(ordering: .acquiring) }
            do { try watcher.run() } catch { printStandardError("tally demo: \(error)") }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
                    stopBox.flag.store(true, ordering: .releasing)
                    return
                }
            }
            group.addTask { await watcherDone.wait() }
            await group.next()
            stopBox.flag.store(true, ordering: .releasing)
            group.cancelAll()
        }
        await watcherDone.wait()
        daemon.requestStop()
        await daemon.stopped.wait()
    }

    private final class StopBox: Sendable {
        let flag = Atomic<Bool>(false)
    }

    static func makeTemporaryDirectory() throws(DaemonError) -> String {
        let base = (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp") + "/tally-demo-XXXXXX"
        var template = Array(base.utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw .runtime("cannot create a temporary state directory under \(base): \(String(cString: strerror(errno)))")
        }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes a state directory (flat: segments, checkpoints, lease, lock) and itself.
    static func removeFlatDirectory(_ path: String) {
        guard let d = opendir(path) else { return }
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            unlink(path + "/" + name)
        }
        closedir(d)
        rmdir(path)
    }
}

func printStandardError(_ text: String) {
    var bytes = Array((text.hasSuffix("\n") ? text : text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
