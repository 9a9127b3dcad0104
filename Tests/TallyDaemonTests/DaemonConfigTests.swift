import Foundation
import Testing
@testable import TallyDaemon

@Suite("Run settings: durations, sizes, config file and flags")
struct DaemonConfigTests {
    @Test("durations accept ms, s, m, h and a bare number of seconds")
    func durations() throws {
        #expect(try DurationText.parse("250ms", setting: "x") == .milliseconds(250))
        #expect(try DurationText.parse("5s", setting: "x") == .seconds(5))
        #expect(try DurationText.parse("1m", setting: "x") == .seconds(60))
        #expect(try DurationText.parse("1.5s", setting: "x") == .milliseconds(1500))
        #expect(try DurationText.parse("2", setting: "x") == .seconds(2))
        #expect(DurationText.format(.milliseconds(250)) == "250ms")
    }

    @Test("a bad duration names the setting and the accepted forms")
    func badDuration() {
        #expect {
            try DurationText.parse("soon", setting: "--snapshot-interval")
        } throws: { error in
            "\(error)".contains("--snapshot-interval 'soon' is not a duration") && "\(error)".contains("250ms")
        }
    }

    @Test("byte sizes accept binary and decimal units")
    func sizes() throws {
        #expect(try ByteSizeText.parse("16MiB", setting: "x") == 16 << 20)
        #expect(try ByteSizeText.parse("64k", setting: "x") == 64 << 10)
        #expect(try ByteSizeText.parse("1000", setting: "x") == 1000)
        #expect(try ByteSizeText.parse("2MB", setting: "x") == 2_000_000)
        #expect(throws: ConfigError.self) { try ByteSizeText.parse("lots", setting: "x") }
    }

    @Test("defaults bind loopback on 7701-7704 with a 1s interval and 16 MiB frames")
    func defaults() throws {
        var flags = RunSettings.Partial()
        flags.pipeline = "p.yaml"
        let s = try flags.settings()
        #expect(s.ingest == ["tcp://127.0.0.1:7701"])
        #expect(s.ingestAck == "tcp://127.0.0.1:7702")
        #expect(s.publish == "tcp://127.0.0.1:7703")
        #expect(s.snapshotService == "tcp://127.0.0.1:7704")
        #expect(s.snapshotInterval == .seconds(1))
        #expect(s.maxMessageSize == 16 << 20)
    }

    @Test("the config file sets every key and the flags win over it")
    func fileAndFlags() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tally-cfg-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("tally.yaml").path
        try """
        pipeline: pipelines/national-dx.yaml
        state-dir: /var/lib/tally
        ingest: [tcp://127.0.0.1:9001, ipc:///tmp/x.sock]
        publish: tcp://127.0.0.1:9003
        snapshot-interval: 250ms
        max-message-size: 1MiB
        dead-letter: dead.jsonl
        clock: wall
        """.write(toFile: file, atomically: true, encoding: .utf8)
        var flags = RunSettings.Partial()
        flags.publish = "tcp://127.0.0.1:9999"
        let s = try RunSettings.resolve(configFile: file, flags: flags)
        #expect(s.pipelinePath == dir.path + "/pipelines/national-dx.yaml")
        #expect(s.stateDirectory == "/var/lib/tally")
        #expect(s.ingest == ["tcp://127.0.0.1:9001", "ipc:///tmp/x.sock"])
        #expect(s.publish == "tcp://127.0.0.1:9999")
        #expect(s.snapshotInterval == .milliseconds(250))
        #expect(s.maxMessageSize == 1 << 20)
        #expect(s.deadLetter == dir.path + "/dead.jsonl")
        #expect(s.clock == .wall)
    }

    @Test("an unknown config key is refused with the list of known keys")
    func unknownKey() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tally-cfg-\(UUID()).yaml").path
        try "pipeline: p.yaml\nsnapshot-intervall: 1s\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect {
            try RunSettings.resolve(configFile: file, flags: .init())
        } throws: { error in
            "\(error)".contains("snapshot-intervall") && "\(error)".contains("snapshot-interval")
        }
    }

    @Test("an endpoint given twice and a malformed endpoint are usage errors")
    func endpoints() {
        var flags = RunSettings.Partial()
        flags.pipeline = "p.yaml"
        flags.publish = "tcp://127.0.0.1:7701"
        #expect { try flags.settings() } throws: { "\($0)".contains("also given to --ingest") }
        flags.publish = "127.0.0.1:7703"
        #expect { try flags.settings() } throws: { "\($0)".contains("is not a ZeroMQ endpoint") }
    }
}
