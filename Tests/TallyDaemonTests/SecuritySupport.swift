import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

/// Helpers of the security tests, in a namespace so they never clash with other suites' helpers.
enum SecuritySupport {
    /// A fresh private directory under the temp dir.
    static func tempDir(_ tag: String = "sec") throws -> String {
        let path = NSTemporaryDirectory() + "tally-\(tag)-\(UUID().uuidString.prefix(12))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs blocking code on a dedicated thread (never on the cooperative pool).
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.start()
        }
    }

    /// `Tests/Security/zmq_peer.py`, found from this file's path.
    static let peerScript: String = {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Security/zmq_peer.py").path
    }()

    struct ProcessResult: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `python3 zmq_peer.py args...` to completion. A missing pyzmq fails the test with a
    /// message saying how to install it (exit 4 from the script).
    static func peer(_ args: [String]) async throws -> ProcessResult {
        let result = try await onThread { () throws -> ProcessResult in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", peerScript] + args
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let o = out.fileHandleForReading.readDataToEndOfFile()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return ProcessResult(status: process.terminationStatus,
                                 stdout: String(decoding: o, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                                 stderr: String(decoding: e, as: UTF8.self))
        }
        if result.status == 4 {
            Issue.record("pyzmq is missing: `python3 -m pip install pyzmq` (\(result.stderr))")
        }
        return result
    }

    /// A CURVE server setup: server pair, an authorized-keys dir with the given client certs
    /// (each written with its secret beside it in `clientDir`), and a started `Security`.
    struct Setup {
        let context: Context
        let security: Security
        let server: Certificate
        let clientDir: String
        let keysDir: String

        func secretPath(_ name: String) -> String { clientDir + "/" + name + ".key_secret" }

        func close() {
            security.stop()
            context.shutdown()
        }
    }

    /// Generates a server and `clients` (name → roles/sources), authorizes them, starts security.
    static func setup(clients: [(String, Roles, [String]?)], unauthorized: [String] = []) throws -> Setup {
        let base = try tempDir("curve")
        let serverDir = base + "/server", clientDir = base + "/clients", keysDir = base + "/authorized"
        try FileManager.default.createDirectory(atPath: keysDir, withIntermediateDirectories: true)
        let server = try Certificate.generate(name: "server")
        let paths = try server.write(toDirectory: serverDir)
        for (name, roles, sources) in clients {
            let cert = try Certificate.generate(name: name, roles: roles, sources: sources)
            let p = try cert.write(toDirectory: clientDir)
            try FileManager.default.copyItem(atPath: p.publicPath, toPath: keysDir + "/" + name + ".key")
        }
        for name in unauthorized {
            try Certificate.generate(name: name).write(toDirectory: clientDir)
        }
        let context = try Context()
        let security = try Security.start(
            options: SecurityOptions(curveSecret: paths.secretPath, authorizedKeys: keysDir),
            context: context, logger: .init(label: "test.security"))
        return Setup(context: context, security: security, server: server, clientDir: clientDir, keysDir: keysDir)
    }

    /// A Swift CURVE client socket with `cert`'s keys (or none) expecting `serverKey`.
    static func client(_ context: Context, _ type: SocketType, serverKey: CurveKey, cert: Certificate?) throws -> Socket {
        let s = try Socket(context, type)
        try s.set(.linger, 0)
        try s.set(.receiveTimeout, 3000)
        try s.set(.sendTimeout, 3000)
        if let cert, let secret = cert.secretKey {
            try s.set(.curveServerKey, serverKey)
            try s.set(.curvePublicKey, cert.publicKey)
            try s.set(.curveSecretKey, secret)
        }
        return s
    }
}
