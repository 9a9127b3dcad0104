import Foundation
import Testing

/// Runs the built `tally` binary (`swift build` puts it next to the test bundle).
func runTally(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [Bundle.main.bundleURL.appendingPathComponent("tally"),
                      root.appendingPathComponent(".build/debug/tally")]
    guard let exe = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "the tally binary is not built: run 'swift build --product tally' first"])
    }
    let p = Process()
    p.executableURL = exe
    p.arguments = arguments
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite("tally command line: exit codes and messages")
struct CommandLineTests {
    @Test("a missing --pipeline exits 2 and says how to give one")
    func missingPipeline() throws {
        let r = try runTally(["run"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--pipeline is missing"))
        #expect(r.stderr.contains("Pipelines/national-dx.yaml"))
    }

    @Test("a bad flag value exits 2 naming the flag and the accepted forms")
    func badValue() throws {
        let r = try runTally(["run", "--pipeline", "p.yaml", "--snapshot-interval", "fast"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--snapshot-interval 'fast' is not a duration"))
    }

    @Test("argument-parser's validation errors exit 2, not 64, with a pointer to --help")
    func validation() throws {
        let r = try runTally(["send", "--batch", "0"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--batch must be between 1 and 100000"))
        #expect(r.stderr.contains("--help"))
        let unknown = try runTally(["frobnicate"])
        #expect(unknown.status == 2)
    }

    @Test("--help on every command exits 0")
    func help() throws {
        for command in ["run", "send", "watch"] {
            let r = try runTally([command, "--help"])
            #expect(r.status == 0, "\(command) --help")
            #expect(r.stdout.contains("USAGE"), "\(command) --help")
        }
    }
}
