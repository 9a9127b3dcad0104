import Foundation
import Testing
import ZeroMQ

// MARK: - Threads

/// Runs blocking ZeroMQ code on a dedicated thread and awaits its result, so no test blocks
/// Swift concurrency's cooperative pool on a ZeroMQ call.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

// MARK: - Transports

/// The transports every pattern is tested over.
enum Transport: String, CaseIterable, CustomStringConvertible, Sendable {
    case inproc, ipc, tcp

    var description: String { rawValue }

    /// A fresh endpoint to bind: a unique inproc name, a unique ipc path in the temp dir, or an
    /// ephemeral loopback port (read back with `lastEndpoint`).
    func freshBindEndpoint() -> String {
        let id = UUID().uuidString.prefix(13)
        switch self {
        case .inproc: return "inproc://test-\(id)"
        case .ipc: return "ipc://\(ipcDirectory)/\(id).sock"
        case .tcp: return "tcp://127.0.0.1:*"
        }
    }
}

/// A private directory for ipc socket files (short: ipc paths are limited to ~107 bytes).
let ipcDirectory: String = {
    let path = "/tmp/zmq-tests-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}()

/// Binds `socket` to a fresh endpoint of `transport` and returns the endpoint peers connect to.
func bindFresh(_ socket: Socket, _ transport: Transport) throws -> String {
    try socket.bind(transport.freshBindEndpoint())
    return try socket.lastEndpoint
}

/// A socket with a receive timeout, so a failing test fails instead of hanging.
func makeSocket(_ context: Context, _ type: SocketType, timeout: Int32 = 5000) throws -> Socket {
    let socket = try Socket(context, type)
    try socket.set(.receiveTimeout, timeout)
    try socket.set(.sendTimeout, timeout)
    return socket
}

/// The parts of a multipart message as strings.
func strings(_ parts: [Message]?) -> [String]? { parts?.map(\.string) }

/// Bytes of a string.
func b(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Publishes `probe` on `pub` until `sub` receives it (the subscription has reached the
/// publisher), then drains; avoids the slow-joiner loss that would make a PUB/SUB test flaky.
func awaitSubscription(pub: Socket, sub: Socket, probe: [UInt8], attempts: Int = 200) throws {
    let saved = try sub.get(.receiveTimeout)
    try sub.set(.receiveTimeout, 20)
    defer { try? sub.set(.receiveTimeout, saved) }
    for _ in 0..<attempts {
        try pub.send(probe)
        if try sub.receive() != nil {
            while try sub.receive(flags: .dontWait) != nil {}
            return
        }
    }
    Issue.record("the subscription never reached the publisher")
}
