import Foundation
import Testing
import ZeroMQ

// MARK: - Z85 and keys

@Suite("Z85 and CURVE keys")
struct KeyTests {
    @Test("Z85 encodes the RFC 32 test vector as HelloWorld and decodes it back")
    func rfc32Vector() throws {
        let bytes: [UInt8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]
        #expect(try Z85.encode(bytes) == "HelloWorld")
        #expect(try Z85.decode("HelloWorld") == bytes)
    }

    @Test("Z85 round-trips every byte value")
    func roundTrip() throws {
        let bytes = (0..<256).map { UInt8($0) }
        let text = try Z85.encode(bytes)
        #expect(text.count == 320)
        #expect(try Z85.decode(text) == bytes)
        #expect(try Z85.encode([]) == "")
    }

    @Test("Z85 rejects lengths that are not a multiple of 4 or 5, and foreign characters")
    func rejects() {
        #expect(throws: ZMQError.invalidArgument) { try Z85.encode([1, 2, 3]) }
        #expect(throws: ZMQError.invalidArgument) { try Z85.decode("Hell") }
        #expect(throws: ZMQError.invalidArgument) { try Z85.decode("Hell\u{7F}") }
        #expect(throws: ZMQError.invalidArgument) { try Z85.decode("Hell~") }
        #expect(throws: ZMQError.invalidArgument) { try CurveKey(bytes: [1, 2, 3]) }
        #expect(throws: ZMQError.invalidArgument) { try CurveKey(z85: "HelloWorld") }
    }

    @Test("the public key derives from the secret key (the zmq_curve documentation's server pair)")
    func derivation() throws {
        let secret = try CurveKey(z85: "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6")
        let pair = try CurveKeyPair(secretKey: secret)
        #expect(pair.publicKey.z85 == "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
        #expect(pair.publicKey.bytes.count == 32)
    }

    @Test("generated pairs are 32-byte keys whose public half derives from the secret")
    func generate() throws {
        let a = try CurveKeyPair.generate()
        let b = try CurveKeyPair.generate()
        #expect(a.publicKey != b.publicKey)
        #expect(a.secretKey.bytes.count == 32)
        #expect(try CurveKeyPair(secretKey: a.secretKey).publicKey == a.publicKey)
        #expect(try CurveKey(z85: a.publicKey.z85) == a.publicKey)
    }
}

// MARK: - CURVE end to end

@Suite("CURVE security")
struct CurveTests {
    /// A CURVE PULL server with a monitor, and a PUSH client trusting `serverKey`.
    private func exchange(clientTrusts serverKey: (CurveKeyPair) -> CurveKey) throws -> (delivered: Message?, event: MonitorEvent?) {
        let context = try Context()
        let server = try CurveKeyPair.generate()
        let client = try CurveKeyPair.generate()

        let pull = try makeSocket(context, .pull, timeout: 1000)
        try pull.set(.curveServer, true)
        try pull.set(.curveSecretKey, server.secretKey)
        let monitorEndpoint = "inproc://monitor-\(UUID().uuidString)"
        try pull.monitor([.handshakeSucceeded, .handshakeFailed], endpoint: monitorEndpoint)
        let monitor = try MonitorReceiver(context: context, endpoint: monitorEndpoint)
        let endpoint = try bindFresh(pull, .tcp)

        let push = try makeSocket(context, .push)
        try push.set(.curveServerKey, serverKey(server))
        try push.set(.curvePublicKey, client.publicKey)
        try push.set(.curveSecretKey, client.secretKey)
        try push.connect(endpoint)
        try push.send(Array("secret payload".utf8))

        let event = try monitor.waitFor([.handshakeSucceeded, .handshakeFailed], timeoutMilliseconds: 5000)
        return (try pull.receive(), event)
    }

    @Test("a client with the right server key connects and its message arrives")
    func rightKey() async throws {
        let (delivered, event) = try await onThread { try exchange { $0.publicKey } }
        #expect(event?.event == .handshakeSucceeded)
        #expect(delivered?.string == "secret payload")
    }

    @Test("a client with a wrong server key fails the handshake and delivers nothing")
    func wrongKey() async throws {
        let impostor = try CurveKeyPair.generate().publicKey
        let (delivered, event) = try await onThread { try exchange { _ in impostor } }
        let failed = try #require(event)
        #expect(MonitorEvents.handshakeFailed.contains(failed.event), "got \(failed)")
        #expect(delivered == nil)
    }
}

// MARK: - Monitor

@Suite("Socket monitor")
struct MonitorTests {
    @Test("a monitor reports connected, then disconnected when the peer goes away")
    func connectDisconnect() async throws {
        try await onThread {
            let context = try Context()
            let server = try Socket(context, .router)
            let endpoint = try bindFresh(server, .tcp)

            let client = try Socket(context, .dealer)
            let monitorEndpoint = "inproc://monitor-\(UUID().uuidString)"
            try client.monitor([.connected, .disconnected], endpoint: monitorEndpoint)
            let monitor = try MonitorReceiver(context: context, endpoint: monitorEndpoint)
            try client.connect(endpoint)

            let connected = try #require(try monitor.waitFor(.connected, timeoutMilliseconds: 5000))
            #expect(connected.endpoint == endpoint)
            server.close()
            let disconnected = try #require(try monitor.waitFor(.disconnected, timeoutMilliseconds: 5000))
            #expect(disconnected.endpoint == endpoint)
        }
    }

    @Test("a bound socket's monitor reports listening and accepted")
    func listeningAccepted() async throws {
        try await onThread {
            let context = try Context()
            let server = try Socket(context, .pull)
            let monitorEndpoint = "inproc://monitor-\(UUID().uuidString)"
            try server.monitor(.all, endpoint: monitorEndpoint)
            let monitor = try MonitorReceiver(context: context, endpoint: monitorEndpoint)
            let endpoint = try bindFresh(server, .tcp)
            #expect(try monitor.waitFor(.listening, timeoutMilliseconds: 5000)?.endpoint == endpoint)
            let client = try Socket(context, .push)
            try client.connect(endpoint)
            #expect(try monitor.waitFor(.accepted, timeoutMilliseconds: 5000) != nil)
        }
    }
}

// MARK: - Poller and readiness

@Suite("Poller and readiness")
struct PollerTests {
    @Test("the poller reports a socket readable only once a message is queued")
    func socketReadiness() async throws {
        try await onThread {
            let context = try Context()
            let pull = try Socket(context, .pull)
            let push = try Socket(context, .push)
            try push.connect(try bindFresh(pull, .inproc))

            var poller = Poller()
            let index = poller.add(pull, .pollIn)
            #expect(try poller.poll(timeoutMilliseconds: 0) == 0)
            #expect(poller.revents(index).isEmpty)
            #expect(!(try pull.events).contains(.pollIn))

            try push.send(Array("ready".utf8))
            #expect(try poller.poll(timeoutMilliseconds: 5000) == 1)
            #expect(poller.revents(index).contains(.pollIn))
            #expect(try pull.events.contains(.pollIn))
            #expect(try push.events.contains(.pollOut))
            #expect(try pull.fileDescriptor >= 0)
            #expect(try pull.receive(flags: .dontWait)?.string == "ready")
        }
    }

    @Test("the poller watches plain file descriptors next to sockets")
    func fileDescriptors() async throws {
        try await onThread {
            let context = try Context()
            let pull = try Socket(context, .pull)
            _ = try bindFresh(pull, .inproc)
            var fds: [Int32] = [0, 0]
            #expect(pipe(&fds) == 0)
            defer { close(fds[0]); close(fds[1]) }

            var poller = Poller()
            let socketIndex = poller.add(pull, .pollIn)
            let pipeIndex = poller.add(fileDescriptor: fds[0], .pollIn)
            #expect(try poller.poll(timeoutMilliseconds: 10) == 0)
            #expect(write(fds[1], "x", 1) == 1)
            #expect(try poller.poll(timeoutMilliseconds: 5000) == 1)
            #expect(poller.revents(pipeIndex) == .pollIn)
            #expect(poller.revents(socketIndex).isEmpty)
        }
    }

    @Test("a context shutdown wakes a thread blocked in poll")
    func shutdownWakesPoll() async throws {
        let context = try Context()
        let pull = try Socket(context, .pull)
        _ = try bindFresh(pull, .inproc)
        async let outcome = onThread { () -> ZMQError? in
            var poller = Poller()
            poller.add(pull, .pollIn)
            do throws(ZMQError) {
                _ = try poller.poll(timeoutMilliseconds: -1)
                return nil
            } catch {
                return error
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        context.shutdown()
        #expect(try await outcome == .terminated)
    }
}

// MARK: - Proxy

@Suite("Proxy")
struct ProxyTests {
    @Test("a proxy on its own thread forwards PUSH to PULL and stops on shutdown")
    func forwards() async throws {
        let context = try Context()
        let front = try Socket(context, .pull)
        let back = try Socket(context, .push)
        let inbound = try bindFresh(front, .inproc)
        let outbound = try bindFresh(back, .inproc)
        // The proxy thread is started synchronously (not as an `async let` child task) so the test
        // does not depend on the cooperative pool having a free thread while other suites run.
        let stopped = ProxyOutcome()
        let proxyThread = Thread {
            do throws(ZMQError) {
                try Proxy.run(frontend: front, backend: back)
                stopped.finish(nil)
            } catch {
                stopped.finish(error)
            }
        }
        proxyThread.start()
        let received = try await onThread { () -> String? in
            let producer = try makeSocket(context, .push)
            let consumer = try makeSocket(context, .pull)
            try producer.connect(inbound)
            try consumer.connect(outbound)
            try producer.send(Array("via proxy".utf8))
            return try consumer.receive()?.string
        }
        #expect(received == "via proxy")
        context.shutdown()
        #expect(stopped.wait(seconds: 10) == .terminated)
    }
}

/// The proxy thread's result, handed over under a condition variable.
private final class ProxyOutcome: @unchecked Sendable {
    private let condition = NSCondition()
    private var done = false
    private var error: ZMQError?

    func finish(_ error: ZMQError?) {
        condition.lock()
        self.error = error
        done = true
        condition.broadcast()
        condition.unlock()
    }

    /// The error the proxy stopped with, or nil if it returned normally or did not stop in time.
    func wait(seconds: Double) -> ZMQError? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !done { if !condition.wait(until: deadline) { return nil } }
        return error
    }
}
