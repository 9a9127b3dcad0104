import Glibc
import Testing

// MARK: - Support

/// Runs the deployment artefacts the way an operator or CI does: real `systemd-analyze`, real `bash`.
enum DeploySupport {
    /// The repository root, from this file's location (Tests/TallyDaemonTests/DeployTests.swift).
    static let repository: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static func path(_ relative: String) -> String { repository + "/" + relative }

    struct Outcome {
        let status: Int32
        let output: String
    }

    /// Runs `command` through `/bin/sh -c`, stdout and stderr together.
    static func run(_ command: String) -> Outcome {
        guard let pipe = popen(command + " 2>&1", "r") else { return Outcome(status: -1, output: "popen failed") }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = fread(&buffer, 1, buffer.count, pipe)
            if count <= 0 { break }
            output.append(contentsOf: buffer[0..<count])
        }
        let raw = pclose(pipe)
        let status = (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
        return Outcome(status: status, output: String(decoding: output, as: UTF8.self))
    }

    static func quote(_ text: String) -> String { "'" + text.replacingQuotes() + "'" }

    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/tally-deploy-XXXXXX".utf8CString)
        return String(cString: try #require(mkdtemp(&template)))
    }

    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        let file = try #require(fopen(path, "w"))
        _ = Array(text.utf8).withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
        chmod(path, mode)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// A copy of the unit whose ExecStart points at an executable that exists, since `verify`
    /// checks that the command is executable and a build machine has no /usr/local/bin/tally.
    static func unitWithExistingBinary(in directory: String) throws -> String {
        let binary = directory + "/tally"
        try write(binary, "#!/bin/sh\nexit 0\n", mode: 0o755)
        let unit = try #require(read(path("Deploy/tally.service")))
        #expect(unit.contains("ExecStart=/usr/local/bin/tally run --config /etc/tally/tally.yaml"))
        let copy = directory + "/tally.service"
        try write(copy, unit.replacingOccurrences(of: "/usr/local/bin/tally", with: binary))
        return copy
    }

    /// The "Overall exposure level for X: 1.3 OK" figure.
    static func exposure(in output: String) -> Double? {
        guard let line = output.split(separator: "\n").first(where: { $0.contains("Overall exposure level") }),
            let colon = line.lastIndex(of: ":")
        else { return nil }
        return line[line.index(after: colon)...].split(separator: " ").first.flatMap { Double($0) }
    }
}

extension String {
    fileprivate func replacingQuotes() -> String {
        split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''")
    }

    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

// MARK: - The unit

// Not skipped when systemd-analyze is missing: .ci/run installs the `systemd` package, and a skipped
// suite would hide a broken CI machine. The failure output then says "systemd-analyze: not found".
@Suite("systemd unit")
struct DeployUnitTests {
    @Test("systemd-analyze verify accepts the unit without a single warning")
    func verify() throws {
        let directory = try DeploySupport.temporaryDirectory()
        defer { _ = DeploySupport.run("rm -rf \(DeploySupport.quote(directory))") }
        let unit = try DeploySupport.unitWithExistingBinary(in: directory)
        let outcome = DeploySupport.run("systemd-analyze verify \(DeploySupport.quote(unit))")
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.output.isEmpty, "verify warned: \(outcome.output)")
    }

    @Test("verify catches a mistyped directive, so the test above can fail")
    func verifyCatchesTypos() throws {
        let directory = try DeploySupport.temporaryDirectory()
        defer { _ = DeploySupport.run("rm -rf \(DeploySupport.quote(directory))") }
        let unit = try DeploySupport.unitWithExistingBinary(in: directory)
        let text = try #require(DeploySupport.read(unit))
        try DeploySupport.write(unit, text.replacingOccurrences(of: "WatchdogSec=", with: "WatchdogSecc="))
        let outcome = DeploySupport.run("systemd-analyze verify \(DeploySupport.quote(unit))")
        #expect(outcome.output.contains("Unknown key"))
    }

    @Test("systemd-analyze security --offline rates the unit 2.0 or better")
    func securityRating() throws {
        let outcome = DeploySupport.run(
            "systemd-analyze security --offline=true --no-pager \(DeploySupport.quote(DeploySupport.path("Deploy/tally.service")))")
        let exposure = try #require(DeploySupport.exposure(in: outcome.output), "no exposure line in: \(outcome.output)")
        #expect(exposure <= 2.0, "exposure \(exposure):\n\(outcome.output)")
        print("systemd-analyze security --offline=true Deploy/tally.service: exposure \(exposure)")
    }

    @Test("The unit declares the lifecycle the daemon implements")
    func lifecycleDirectives() throws {
        let unit = try #require(DeploySupport.read(DeploySupport.path("Deploy/tally.service")))
        let lines = Set(unit.split(separator: "\n").map(String.init))
        for directive in [
            "Type=notify", "NotifyAccess=main", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=30s",
            "Restart=on-failure", "StateDirectory=tally", "StateDirectoryMode=0700", "ConfigurationDirectory=tally",
            "LimitNOFILE=65536", "UMask=0077", "User=tally", "MemoryDenyWriteExecute=yes",
        ] {
            #expect(lines.contains(directive), "missing \(directive)")
        }
        // The stop timeout must leave room for the daemon's own graceful shutdown (tally.yaml: 20s).
        let stop = try #require(lines.first { $0.hasPrefix("TimeoutStopSec=") })
        let seconds = try #require(Int(stop.dropFirst("TimeoutStopSec=".count).dropLast()))
        let config = try #require(DeploySupport.read(DeploySupport.path("Deploy/tally.yaml")))
        #expect(config.contains("\nshutdown-timeout: 20s\n"))
        #expect(seconds > 20)
    }
}

// MARK: - The installer

@Suite("install.sh and uninstall.sh under a staging prefix")
struct DeployInstallTests {
    static let installer = DeploySupport.path("Deploy/install.sh")
    static let uninstaller = DeploySupport.path("Deploy/uninstall.sh")

    /// A staging root, a stand-in binary (the layout test does not run it) and a pipelines directory.
    struct Stage {
        let directory: String
        var root: String { directory + "/root" }

        init() throws {
            directory = try DeploySupport.temporaryDirectory()
            try DeploySupport.write(directory + "/tally", "#!/bin/sh\necho tally\n", mode: 0o755)
            _ = DeploySupport.run("mkdir -p \(DeploySupport.quote(directory + "/pipelines"))")
            try DeploySupport.write(directory + "/pipelines/national-dx.yaml", "pipeline: national-dx\n")
            try DeploySupport.write(directory + "/pipelines/README.md", "not a pipeline\n")
        }

        func install(_ extra: String = "") -> DeploySupport.Outcome {
            DeploySupport.run(
                "bash \(DeploySupport.quote(installer)) --prefix \(DeploySupport.quote(root)) --no-start "
                    + "--binary \(DeploySupport.quote(directory + "/tally")) "
                    + "--pipelines \(DeploySupport.quote(directory + "/pipelines")) \(extra)")
        }

        /// Every file under the root with its mode and checksum, to compare two installs.
        func fingerprint() -> String {
            DeploySupport.run(
                "cd \(DeploySupport.quote(root)) && find . -printf '%y %m %p\\n' | sort && find . -type f -exec sha256sum {} + | sort"
            ).output
        }

        func cleanUp() { _ = DeploySupport.run("rm -rf \(DeploySupport.quote(directory))") }
    }

    @Test("install.sh --prefix --no-start lays out binary, unit, user, config, pipelines and docs")
    func layout() throws {
        let stage = try Stage()
        defer { stage.cleanUp() }
        let outcome = stage.install()
        #expect(outcome.status == 0, "\(outcome.output)")
        let expected: [(String, String)] = [
            ("usr/local/bin/tally", "755"), ("etc/systemd/system/tally.service", "644"),
            ("etc/sysusers.d/tally.conf", "644"), ("etc/tally/tally.yaml", "644"),
            ("etc/tally/pipelines/national-dx.yaml", "644"), ("usr/local/share/doc/tally/README.md", "644"),
        ]
        for (file, mode) in expected {
            let path = stage.root + "/" + file
            #expect(DeploySupport.exists(path), "\(file) missing")
            #expect(DeploySupport.run("stat -c %a \(DeploySupport.quote(path))").output == mode + "\n", "\(file) mode")
        }
        #expect(DeploySupport.exists(stage.root + "/etc/tally/authorized"))
        #expect(!DeploySupport.exists(stage.root + "/etc/tally/pipelines/README.md"))
        #expect(DeploySupport.read(stage.root + "/etc/tally/tally.yaml") == DeploySupport.read(DeploySupport.path("Deploy/tally.yaml")))
        #expect(DeploySupport.read(stage.root + "/etc/systemd/system/tally.service")
            == DeploySupport.read(DeploySupport.path("Deploy/tally.service")))
    }

    @Test("A second install changes nothing at all")
    func idempotent() throws {
        let stage = try Stage()
        defer { stage.cleanUp() }
        #expect(stage.install().status == 0)
        let first = stage.fingerprint()
        let again = stage.install()
        #expect(again.status == 0)
        #expect(!again.output.contains("installed "), "second run installed something: \(again.output)")
        #expect(stage.fingerprint() == first)
    }

    @Test("An operator's edited config and pipeline survive an upgrade; the new defaults land beside them")
    func operatorEditsSurvive() throws {
        let stage = try Stage()
        defer { stage.cleanUp() }
        #expect(stage.install().status == 0)
        let config = stage.root + "/etc/tally/tally.yaml"
        let edited = (DeploySupport.read(config) ?? "") + "snapshot-interval: 250ms\n"
        try DeploySupport.write(config, edited)
        try DeploySupport.write(stage.root + "/etc/tally/pipelines/national-dx.yaml", "pipeline: edited\n")
        // The upgrade brings a new binary.
        try DeploySupport.write(stage.directory + "/tally", "#!/bin/sh\necho tally 2\n", mode: 0o755)
        let upgrade = stage.install()
        #expect(upgrade.status == 0, "\(upgrade.output)")
        #expect(DeploySupport.read(config) == edited)
        #expect(DeploySupport.read(config + ".dist") == DeploySupport.read(DeploySupport.path("Deploy/tally.yaml")))
        #expect(DeploySupport.read(stage.root + "/etc/tally/pipelines/national-dx.yaml") == "pipeline: edited\n")
        #expect(DeploySupport.read(stage.root + "/usr/local/bin/tally") == "#!/bin/sh\necho tally 2\n")
        // ... and a third run is quiet again.
        let fingerprint = stage.fingerprint()
        #expect(stage.install().status == 0)
        #expect(stage.fingerprint() == fingerprint)
    }

    @Test("Bad options are usage errors (exit 2) that say what is wrong")
    func usageErrors() throws {
        let outcome = DeploySupport.run("bash \(DeploySupport.quote(Self.installer)) --frobnicate")
        #expect(outcome.status == 2)
        #expect(outcome.output.contains("unknown option '--frobnicate'"))
        let missing = DeploySupport.run(
            "bash \(DeploySupport.quote(Self.installer)) --prefix /tmp/nowhere-\(getpid()) --binary /nonexistent/tally")
        #expect(missing.status == 1)
        #expect(missing.output.contains("binary '/nonexistent/tally' does not exist"))
    }

    @Test("uninstall.sh keeps configuration and state unless --purge")
    func uninstall() throws {
        let stage = try Stage()
        defer { stage.cleanUp() }
        #expect(stage.install().status == 0)
        _ = DeploySupport.run("mkdir -p \(DeploySupport.quote(stage.root + "/var/lib/tally"))")
        let removed = DeploySupport.run("bash \(DeploySupport.quote(Self.uninstaller)) --prefix \(DeploySupport.quote(stage.root))")
        #expect(removed.status == 0, "\(removed.output)")
        #expect(!DeploySupport.exists(stage.root + "/usr/local/bin/tally"))
        #expect(!DeploySupport.exists(stage.root + "/etc/systemd/system/tally.service"))
        #expect(DeploySupport.exists(stage.root + "/etc/tally/tally.yaml"))
        #expect(DeploySupport.exists(stage.root + "/var/lib/tally"))
        let purged = DeploySupport.run(
            "bash \(DeploySupport.quote(Self.uninstaller)) --prefix \(DeploySupport.quote(stage.root)) --purge")
        #expect(purged.status == 0)
        #expect(!DeploySupport.exists(stage.root + "/etc/tally"))
        #expect(!DeploySupport.exists(stage.root + "/var/lib/tally"))
    }
}

// MARK: - Confinement at run time

/// Whether the run-time confinement check can run here: python3-seccomp for the system python,
/// pyzmq for the default python3, and a C compiler for the MDWE launcher.
private let confinementToolsPresent: Bool =
    DeploySupport.run("/usr/bin/python3 -c 'import seccomp' && python3 -c 'import zmq' && command -v cc").status == 0

@Suite(
    "The unit's confinement tolerates libzmq",
    .enabled(if: confinementToolsPresent, "needs python3-seccomp (apt), pyzmq and cc; .ci/run should install python3-seccomp"))
struct DeployConfinementTests {
    /// A PUSH→PULL round trip over TCP through libzmq (as bundled by pyzmq), which starts I/O threads.
    static let zmqRoundTrip = """
        import zmq
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL); pull.bind("tcp://127.0.0.1:*")
        push = ctx.socket(zmq.PUSH); push.connect(pull.getsockopt(zmq.LAST_ENDPOINT).decode())
        push.send(b"ok"); pull.RCVTIMEO = 5000
        print("zmq-" + pull.recv().decode())
        ctx.destroy(linger=0)
        """

    static func roundTrip(unit: String, directory: String) throws -> DeploySupport.Outcome {
        let script = directory + "/round_trip.py"
        try DeploySupport.write(script, zmqRoundTrip)
        let launcher = directory + "/mdwe"
        let built = DeploySupport.run(
            "cc -O2 -o \(DeploySupport.quote(launcher)) \(DeploySupport.quote(DeploySupport.path("Deploy/hardening/mdwe.c")))")
        try #require(built.status == 0, "\(built.output)")
        return DeploySupport.run(
            "/usr/bin/python3 \(DeploySupport.quote(DeploySupport.path("Deploy/hardening/sysfilter.py"))) "
                + "\(DeploySupport.quote(unit)) \(DeploySupport.quote(launcher)) \"$(command -v python3)\" "
                + DeploySupport.quote(script))
    }

    @Test("libzmq runs under the unit's system-call filter with W+X memory refused")
    func libzmqUnderTheFilter() throws {
        let directory = try DeploySupport.temporaryDirectory()
        defer { _ = DeploySupport.run("rm -rf \(DeploySupport.quote(directory))") }
        let outcome = try Self.roundTrip(unit: DeploySupport.path("Deploy/tally.service"), directory: directory)
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.output.contains("mdwe: W+X mmap refused (MDWE active)"))
        #expect(outcome.output.contains("zmq-ok"), "\(outcome.output)")
    }

    @Test("Filtering @resources would make libzmq abort, which is why the unit does not")
    func resourcesFilterBreaksLibzmq() throws {
        let directory = try DeploySupport.temporaryDirectory()
        defer { _ = DeploySupport.run("rm -rf \(DeploySupport.quote(directory))") }
        let unit = try #require(DeploySupport.read(DeploySupport.path("Deploy/tally.service")))
        let stricter = directory + "/stricter.service"
        try DeploySupport.write(stricter, unit + "SystemCallFilter=~@resources\n")
        let outcome = try Self.roundTrip(unit: stricter, directory: directory)
        #expect(outcome.status != 0)
        #expect(!outcome.output.contains("zmq-ok"))
        #expect(outcome.output.contains("Operation not permitted (src/thread.cpp"), "\(outcome.output)")
    }
}
