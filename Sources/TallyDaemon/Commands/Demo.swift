public import Logging
public import TallyEngine
import Foundation
import Synchronization
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Demo

/// `tally demo`: the daemon in-process on free loopback ports with a temporary state directory,
/// the national simulator feeding it (or an events file), and the live table with an "expected"
/// column from `SimulationProfile.expectedReport(scale:)`. Ctrl-C (or SIGTERM) stops all three
/// cleanly and removes the state. When the stream is complete the final table stays up.
public enum Demo {
    public struct Options: Sendable {
        /// The pipeline; nil = find `Pipelines/national-dx.yaml` (see ``findPipeline(_:)``).
        public var pipeline: String?
        /// An events file to feed instead of the simulator.
        public var events: String?
        public var profile: SimulationProfile = .april2024
        /// Simulator scale: 0.001 is ~138k events, ~10-20 s on 2 cores.
        public var scale = 0.001
        /// Events per second; nil = spread the stream over ~12 s (the table visibly fills up).
        public var rate: Int?
        /// Send as fast as the daemon takes them.
        public var max = false
        public var batch = 100
        public var snapshotInterval: Duration = .milliseconds(500)
        /// Exit after this long (tests, recordings); nil = until Ctrl-C.
        public var duration: Duration?
        /// Exit once a snapshot showing the whole stream was shown (tests).
        public var untilComplete = false
        public var json = false
        public init(pipeline: String? = nil) { self.pipeline = pipeline }
    }

    /// Finds the national pipeline when none is given: `Pipelines/national-dx.yaml` under the
    /// current directory, then next to the executable's checkout (`.build/<config>/tally` →
    /// `../../Pipelines`), then the installed `/etc/tally/pipelines`.
    /// - Throws: ``ConfigError`` listing where it looked.
    public static func findPipeline(_ given: String?) throws(ConfigError) -> String {
        if let given { return given }
        var candidates = [FileManager.default.currentDirectoryPath + "/Pipelines/national-dx.yaml"]
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for up in 0...3 {
            var dir = exe
            for _ in 0..<up { dir.deleteLastPathComponent() }
            candidates.append(dir.appendingPathComponent("Pipelines/national-dx.yaml").path)
        }
        candidates.append("/etc/tally/pipelines/national-dx.yaml")
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) { return found }
        throw ConfigError(setting: "--pipeline", value: "(not given)", problem: "Pipelines/national-dx.yaml was not found in \(candidates.joined(separator: ", "))",
                          fix: "run from the Tally checkout, or pass --pipeline FILE")
    }

    /// Runs until Ctrl-C/SIGTERM, `duration`, or (with `untilComplete`) the complete stream shown.
    /// - Throws: ``ConfigError`` for a bad pipeline, ``DaemonError`` if the daemon cannot start,
    ///   ``CommandFailure`` for a scale out of range.
    public static func run(_ options: Options) async throws {
        var quiet = Logger(label: "tally-demo")
        quiet.logLevel = .error   // the table owns the terminal
        let pipeline = try findPipeline(options.pipeline)
        var feeder: SimulationFeeder?
        var total = 0
        if options.events == nil {
            var fo = SimulationFeeder.Options(profile: options.profile, scale: options.scale, endpoint: "")
            fo.batch = options.batch
            fo.progress = false
            let f = SimulationFeeder(options: fo)
            total = try f.totalEvents()
            feeder = f
        }
        let dir = try makeTemporaryDirectory()
        defer { removeFlatDirectory(dir) }
        let s = loopbackSettings(pipeline: pipeline, stateDirectory: dir, snapshotInterval: options.snapshotInterval)
        let core = try EngineCore(settings: s, logger: quiet)
        let daemon = try Daemon(settings: s, core: core, logger: quiet)
        try daemon.start()
        let endpoints = daemon.boundEndpoints
        let stopBox = StopBox()

        let fed = Completion()
        if let file = options.events {
            let ingest = endpoints.ingest[0]
            spawnThread(name: "tally-demo-feeder") {
                defer { fed.fire() }
                do {
                    let events = try Sender.readEvents(files: [file])
                    stopBox.total.store(events.count, ordering: .releasing)
                    var o = Sender.Options(endpoint: ingest)
                    o.batch = options.batch
                    _ = try Sender(options: o).send(EventInput.frames(events, batch: options.batch))
                } catch {
                    printStandardError("tally demo: cannot feed \(file): \(error)")
                }
            }
        } else if var fo = feeder?.options {
            fo.endpoint = endpoints.ingest[0]
            fo.rate = options.max ? nil : (options.rate ?? Swift.max(1_000, total / 12))
            stopBox.total.store(total, ordering: .releasing)
            let f = SimulationFeeder(options: fo)
            spawnThread(name: "tally-demo-feeder") {
                defer { fed.fire() }
                do { try f.run(shouldStop: { stopBox.flag.load(ordering: .acquiring) }) } catch {
                    printStandardError("tally demo: the simulator stopped: \(error)")
                }
            }
        }
        var wo = Watcher.Options(from: endpoints.publish)
        wo.service = endpoints.snapshotService
        wo.json = options.json
        wo.duration = options.duration
        let title = "Tally demo: \(daemon.pipelineName), \(options.events ?? "simulator \(options.profile.name) x\(options.scale)") (Ctrl-C stops)"
        let watchOptions = wo
        let expected = options.events == nil ? options.profile.expectedReport(scale: options.scale).mapValues(\.value) : [:]
        let watcherDone = spawnThread(name: "tally-demo-watch") {
            var watcher = Watcher(options: watchOptions)
            watcher.title = title
            watcher.expected = expected
            watcher.shouldStop = { stopBox.flag.load(ordering: .acquiring) }
            do { try watcher.run() } catch { printStandardError("tally demo: \(error)") }
        }
        if options.untilComplete {
            // Complete = the feeder is done and the daemon applied every event it sent; then two
            // more snapshot intervals so the watcher shows a snapshot that includes all of them.
            spawnThread(name: "tally-demo-complete") {
                _ = fed.waitBlocking(timeout: .seconds(86_400))
                let want = stopBox.total.load(ordering: .acquiring)
                while !stopBox.flag.load(ordering: .acquiring), daemon.stats.withLock({ $0.events }) < want {
                    usleep(20_000)
                }
                let pause = options.snapshotInterval * 2 + .milliseconds(100)
                usleep(UInt32(pause.microseconds))
                stopBox.flag.store(true, ordering: .releasing)
            }
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
        await fed.wait()
        daemon.requestStop()
        await daemon.stopped.wait()
    }

    private final class StopBox: Sendable {
        let flag = Atomic<Bool>(false)
        /// Events the feeder will send (for `untilComplete`).
        let total = Atomic<Int>(0)
    }

    /// Settings for an in-process daemon on loopback: every endpoint on `tcp://127.0.0.1:*`
    /// (ports picked by the OS, read back from `boundEndpoints`), state in `stateDirectory`.
    /// Shared by `tally demo` and `tally bench`.
    static func loopbackSettings(pipeline: String, stateDirectory: String, snapshotInterval: Duration) -> RunSettings {
        var s = RunSettings(pipelinePath: pipeline, stateDirectory: stateDirectory)
        s.ingest = ["tcp://127.0.0.1:*"]
        s.ingestAck = "tcp://127.0.0.1:*"
        s.publish = "tcp://127.0.0.1:*"
        s.snapshotService = "tcp://127.0.0.1:*"
        s.snapshotInterval = snapshotInterval
        return s
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

func printStandardError(_ text: String, newline: Bool = true) {
    var bytes = Array((!newline || text.hasSuffix("\n") ? text : text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
