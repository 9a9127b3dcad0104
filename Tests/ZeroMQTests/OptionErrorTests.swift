import Foundation
import Testing
import ZeroMQ

// MARK: - Options

@Suite("Socket options")
struct OptionTests {
    @Test("options read back what was set")
    func readBack() throws {
        let context = try Context()
        let socket = try Socket(context, .dealer)
        #expect(try socket.get(.linger) == context.defaultLinger)
        try socket.set(.linger, 250)
        #expect(try socket.get(.linger) == 250)
        try socket.set(.sendHighWaterMark, 123)
        #expect(try socket.get(.sendHighWaterMark) == 123)
        try socket.set(.receiveHighWaterMark, 0)
        #expect(try socket.get(.receiveHighWaterMark) == 0)
        try socket.set(.maxMessageSize, 1 << 20)
        #expect(try socket.get(.maxMessageSize) == 1 << 20)
        try socket.set(.routingID, Array("producer-42".utf8))
        #expect(try socket.get(.routingID) == Array("producer-42".utf8))
        try socket.set(.immediate, true)
        #expect(try socket.get(.immediate) == true)
        try socket.set(.heartbeatInterval, 1000)
        try socket.set(.heartbeatTimeout, 3000)
        try socket.set(.heartbeatTTL, 6000)
        #expect(try socket.get(.heartbeatInterval) == 1000)
        #expect(try socket.get(.heartbeatTimeout) == 3000)
        #expect(try socket.get(.heartbeatTTL) == 6000)
        try socket.set(.receiveTimeout, 1500)
        try socket.set(.sendTimeout, 700)
        #expect(try socket.get(.receiveTimeout) == 1500)
        #expect(try socket.get(.sendTimeout) == 700)
        try socket.set(.zapDomain, "tally")
        #expect(try socket.get(.zapDomain) == "tally")
        try socket.set(.tcpKeepalive, 1)
        try socket.set(.tcpKeepaliveIdle, 60)
        try socket.set(.tcpKeepaliveInterval, 10)
        try socket.set(.tcpKeepaliveCount, 5)
        #expect(try socket.get(.tcpKeepalive) == 1)
        #expect(try socket.get(.tcpKeepaliveIdle) == 60)
        #expect(try socket.get(.tcpKeepaliveInterval) == 10)
        #expect(try socket.get(.tcpKeepaliveCount) == 5)
        try socket.set(.reconnectInterval, 50)
        try socket.set(.reconnectIntervalMax, 2000)
        #expect(try socket.get(.reconnectInterval) == 50)
        #expect(try socket.get(.reconnectIntervalMax) == 2000)
        try socket.set(.backlog, 512)
        #expect(try socket.get(.backlog) == 512)
        try socket.set(.ipv6, true)
        #expect(try socket.get(.ipv6) == true)
        try socket.set(.handshakeInterval, 5000)
        #expect(try socket.get(.handshakeInterval) == 5000)
        #expect(try socket.get(.type) == .dealer)
        #expect(try socket.get(.mechanism) == 0)
    }

    @Test("CURVE options read back the 32-byte keys that were set", .enabled(if: Context.has("curve")))
    func curveReadBack() throws {
        let context = try Context()
        let server = try Socket(context, .router)
        let pair = try CurveKeyPair.generate()
        try server.set(.curveSecretKey, pair.secretKey)
        try server.set(.curveServer, true)
        #expect(try server.get(.curveServer) == true)
        #expect(try server.get(.curveSecretKey) == pair.secretKey)
        #expect(try server.get(.mechanism) == 2)

        let client = try Socket(context, .dealer)
        try client.set(.curvePublicKey, pair.publicKey)
        try client.set(.curveServerKey, pair.publicKey)
        #expect(try client.get(.curvePublicKey) == pair.publicKey)
        #expect(try client.get(.curveServerKey) == pair.publicKey)
    }

    @Test("write-only options refuse to be read, naming the option")
    func writeOnly() throws {
        let context = try Context()
        let socket = try Socket(context, .sub)
        try socket.set(.subscribe, [])
        let error = #expect(throws: ZMQError.self) { try socket.get(.subscribe) }
        #expect(error == .invalidArgument)
        #expect(error?.description == "zmq_getsockopt(subscribe): Invalid argument")
    }

    @Test("an invalid option value is a typed error naming the option")
    func invalidValue() throws {
        let context = try Context()
        let socket = try Socket(context, .dealer)
        let error = #expect(throws: ZMQError.self) { try socket.set(.routingID, []) }
        #expect(error == .invalidArgument)
        #expect(error?.option == "routingID")
        #expect(error?.call == "zmq_setsockopt")
    }
}

// MARK: - Errors and would-block

@Suite("Errors and would-block")
struct ErrorTests {
    // Not ipc: libzmq 4.3 unlinks an existing ipc socket file and binds over it (no EADDRINUSE).
    @Test("binding an address in use fails with an error naming the endpoint", arguments: [Transport.tcp, .inproc])
    func addressInUse(_ transport: Transport) throws {
        let context = try Context()
        let first = try Socket(context, .pull)
        let endpoint = try bindFresh(first, transport)
        let second = try Socket(context, .pull)
        let error = #expect(throws: ZMQError.self) { try second.bind(endpoint) }
        #expect(error == .addressInUse)
        #expect(error?.endpoint == endpoint)
        #expect(error?.call == "zmq_bind")
        #expect(error?.description == "zmq_bind(\(endpoint)): Address already in use")
    }

    @Test("a malformed endpoint and an unknown transport are typed errors")
    func badEndpoints() throws {
        let context = try Context()
        let socket = try Socket(context, .push)
        #expect(throws: ZMQError.invalidArgument) { try socket.connect("tcp://no-port-here") }
        #expect(throws: ZMQError.protocolNotSupported) { try socket.bind("carrier-pigeon://coop") }
        let error = #expect(throws: ZMQError.self) { try socket.unbind("tcp://127.0.0.1:1") }
        #expect(error == .noSuchEndpoint)
    }

    @Test("a receive timeout returns no message instead of throwing")
    func receiveTimeout() async throws {
        try await onThread {
            let context = try Context()
            let pull = try makeSocket(context, .pull, timeout: 100)
            _ = try bindFresh(pull, .tcp)
            let start = ContinuousClock.now
            #expect(try pull.receive() == nil)
            #expect(try pull.receiveMultipart() == nil)
            #expect(try pull.receive(into: Message()) == false)
            #expect(ContinuousClock.now - start >= .milliseconds(250))
            #expect(try pull.receive(flags: .dontWait) == nil)
        }
    }

    @Test("a send that would block returns false instead of throwing")
    func sendWouldBlock() throws {
        let context = try Context()
        let push = try Socket(context, .push)   // no peer: nowhere to queue
        #expect(try push.send(Array("x".utf8), flags: .dontWait) == false)
        #expect(try push.sendMultipart([[1], [2]], flags: .dontWait) == false)
        try push.set(.sendTimeout, 50)
        #expect(try push.send(Array("x".utf8)) == false)
    }

    @Test("a ROUTER with routerMandatory reports an unknown peer as host unreachable")
    func routerMandatory() throws {
        let context = try Context()
        let router = try Socket(context, .router)
        try router.set(.routerMandatory, true)
        #expect(throws: ZMQError.hostUnreachable) { try router.sendMultipart([Array("nobody".utf8), [1]]) }
    }

    @Test("a REQ sending twice is refused by its state machine")
    func reqState() throws {
        let context = try Context()
        let rep = try Socket(context, .rep)
        let req = try Socket(context, .req)
        try req.connect(try bindFresh(rep, .inproc))
        try req.send(Array("1".utf8))
        #expect(throws: ZMQError.invalidState) { try req.send(Array("2".utf8)) }
    }

    @Test("a closed socket throws not-a-socket for every call, and close is idempotent")
    func closed() throws {
        let context = try Context()
        let socket = try Socket(context, .push)
        socket.close()
        socket.close()
        #expect(socket.isClosed)
        let error = #expect(throws: ZMQError.self) { try socket.send(Array("x".utf8)) }
        #expect(error == .notSocket)
        #expect(error?.call == "zmq_send")
        #expect(throws: ZMQError.notSocket) { try socket.bind("inproc://closed") }
        #expect(throws: ZMQError.notSocket) { try socket.get(.linger) }
    }

    @Test("errors compare by errno and describe themselves with the libzmq text")
    func errorShape() {
        let error = ZMQError(ZMQError.terminated.rawValue, call: "zmq_msg_recv")
        #expect(error == .terminated)
        #expect(error != .again)
        #expect(error.description == "zmq_msg_recv: Context was terminated")
        #expect(ZMQError.addressInUse.description == "Address already in use")
    }
}

// MARK: - Context

@Suite("Context")
struct ContextTests {
    @Test("the linked libzmq is 4.x with CURVE, and reports capabilities")
    func version() {
        #expect(Context.version.major == 4)
        #expect(Context.has("curve"))
        #expect(Context.has("ipc"))
        #expect(!Context.has("no-such-capability"))
    }

    @Test("a context shutdown wakes a receive blocked on another thread with terminated")
    func shutdownWakesReceive() async throws {
        let context = try Context()
        let pull = try Socket(context, .pull)   // no timeout: blocks until woken
        _ = try bindFresh(pull, .inproc)
        let started = DispatchSemaphore(value: 0)
        async let outcome = onThread { () -> ZMQError? in
            started.signal()
            do throws(ZMQError) {
                _ = try pull.receive()
                return nil
            } catch {
                return error
            }
        }
        started.wait()
        try await Task.sleep(for: .milliseconds(100))   // let it block in zmq_msg_recv
        context.shutdown()
        let error = try await outcome
        #expect(error == .terminated)
        // After shutdown, sockets still answer (with terminated) and new ones cannot be made.
        #expect(throws: ZMQError.terminated) { try pull.receive(flags: .dontWait) }
        #expect(throws: ZMQError.terminated) { try Socket(context, .push) }
    }

    @Test("a context with sockets that linger briefly terminates without hanging")
    func termination() async throws {
        try await onThread {
            let start = ContinuousClock.now
            do {
                let context = try Context(ioThreads: 2)
                let push = try Socket(context, .push)
                try push.connect("tcp://127.0.0.1:9")   // nobody there: messages stay queued
                try push.send(Array("stuck".utf8))
                try push.set(.linger, 100)
            } // socket, then context, deinit: zmq_ctx_term waits at most the linger
            #expect(ContinuousClock.now - start < .seconds(3))
        }
    }
}
