import Foundation
import Testing

// MARK: - Running the pyzmq script against the built binary

/// The repository root (this file is `Tests/TallyDaemonTests/IntegrationCurveTests.swift`).
private let curveProjectRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Why the CURVE end-to-end test could not run at all (as opposed to a failed assertion).
private struct CurveScriptUnavailable: Error, CustomStringConvertible {
    let description: String
}

/// The built `tally` binary: next to the test bundle, or `.build/debug/tally`.
///
/// The test target depends on the `TallyDaemon` library only, so SwiftPM does not build the
/// executable for `swift build --build-tests`: it must be built first (`swift build --product tally`),
/// exactly as for the other end-to-end wrappers.
private func curveTallyExecutable() throws -> String {
    let candidates = [Bundle.main.bundleURL.appendingPathComponent("tally"),
                      curveProjectRoot.appendingPathComponent(".build/debug/tally")]
    guard let exe = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw CurveScriptUnavailable(description: "the tally binary is not built: run 'swift build --product tally' first")
    }
    return exe.path
}

/// Runs `python3 Tests/Integration/curve_e2e.py TALLY PROJECT`; returns its status and merged output.
///
/// Exit codes of the script: 0 pass, 1 an assertion failed (printed with the daemon's log),
/// 3 pyzmq is not installed.
/// - Complexity: one daemon process and about a dozen pyzmq sockets; about 10 s of wall time,
///   most of it the silence windows in which refused clients must receive nothing.
private func runCurveScript() throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", curveProjectRoot.appendingPathComponent("Tests/Integration/curve_e2e.py").path,
                   try curveTallyExecutable(), curveProjectRoot.path]
    p.currentDirectoryURL = curveProjectRoot.appendingPathComponent("Tests/Integration")
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

// MARK: - Tests

@Suite("tally run with CURVE on every endpoint, end to end (built binary, pyzmq peers)", .serialized)
struct IntegrationCurveTests {
    @Test("only authorized keys write, read snapshots and are answered; another agency's source is rejected; SIGTERM exits 0",
          .timeLimit(.minutes(3)))
    func curveOnEveryEndpoint() throws {
        let (status, output) = try runCurveScript()
        try #require(status != 3, "pyzmq is missing: install it with 'pip install pyzmq'\n\(output)")
        #expect(status == 0, "curve_e2e.py exited \(status):\n\(output)")
        #expect(output.contains("curve_e2e: ok"), "\(output)")
    }
}
