import Testing
import ZeroMQ

// MARK: - Every pattern, every transport

@Suite("Messaging patterns round-trip over inproc, ipc and tcp")
struct PatternTests {
    @Test("PUSH to PULL delivers single and multipart messages intact", arguments: Transport.allCases)
    func pushPull(_ transport: Transport) async throws {
        try await onThread {
            let context = try Context()
            let pull = try makeSocket(context, .pull)
            let push = try makeSocket(context, .push)
            try push.connect(try bindFresh(pull, transport))

            #expect(try push.send(b("one")))
            #expect(try push.sendMultipart([b("a"), [], b("ccc")]))
            #expect(try pull.receive()?.string == "one")
            let parts = try pull.receiveMultipart()
            #expect(strings(parts) == ["a", "", "ccc"])
            #expect(parts?.map(\.more) == [true, true, false])
        }
    }

    @Test("PUB to SUB delivers subscribed topics only, single and multipart", arguments: Transport.allCases)
    func pubSub(_ transport: Transport) async throws {
        try await onThread {
            let context = try Context()
            let pub = try makeSocket(context, .pub)
            let sub = try makeSocket(context, .sub)
            try sub.set(.subscribe, b("tally."))
            try sub.connect(try bindFresh(pub, transport))
            try awaitSubscription(pub: pub, sub: sub, probe: b("tally.probe"))

            try pub.send(b("other.ignored"))
            try pub.send(b("tally.one"))
            try pub.sendMultipart([b("tally.snapshot"), b("{\"seq\":1}")])
            #expect(try sub.receive()?.string == "tally.one")
            #expect(strings(try sub.receiveMultipart()) == ["tally.snapshot", "{\"seq\":1}"])
            #expect(try sub.receive(flags: .dontWait) == nil)
        }
    }

    @Test("XPUB receives the subscription message and then publishes to the SUB", arguments: Transport.allCases)
    func xpubSub(_ transport: Transport) async throws {
        try await onThread {
            let context = try Context()
            let xpub = try makeSocket(context, .xpub)
            let sub = try makeSocket(context, .sub)
            try sub.connect(try bindFresh(xpub, transport))
            try sub.set(.subscribe, b("snap"))

            let subscription = try #require(try xpub.receive())
            #expect(subscription.bytes == [1] + b("snap"))
            try xpub.sendMultipart([b("snap"), b("body")])
            #expect(strings(try sub.receiveMultipart()) == ["snap", "body"])

            try sub.set(.unsubscribe, b("snap"))
            #expect(try xpub.receive()?.bytes == [0] + b("snap"))
        }
    }

    @Test("ROUTER and DEALER exchange multipart messages addressed by routing id", arguments: Transport.allCases)
    func routerDealer(_ transport: Transport) async throws {
        try await onThread {
            let context = try Context()
            let router = try makeSocket(context, .router)
            let dealer = try makeSocket(context, .dealer)
            try dealer.set(.routingID, b("dealer-1"))
            try router.set(.routerMandatory, true)
            try dealer.connect(try bindFresh(router, transport))

            #expect(try dealer.send(b("single")))
            #expect(strings(try router.receiveMultipart()) == ["dealer-1", "single"])
            try dealer.sendMultipart([b("batch"), b("1"), b("2")])
            #expect(strings(try router.receiveMultipart()) == ["dealer-1", "batch", "1", "2"])

            try router.sendMultipart([b("dealer-1"), b("ack"), b("2")])
            #expect(strings(try dealer.receiveMultipart()) == ["ack", "2"])
            try router.sendMultipart([b("dealer-1"), b("solo")])
            #expect(try dealer.receive()?.string == "solo")
        }
    }

    @Test("REQ and REP alternate request and reply", arguments: Transport.allCases)
    func reqRep(_ transport: Transport) async throws {
        try await onThread {
            let context = try Context()
            let rep = try makeSocket(context, .rep)
            let req = try makeSocket(context, .req)
            try req.connect(try bindFresh(rep, transport))

            try req.send(b("ping"))
            #expect(try rep.receive()?.string == "ping")
            try rep.send(b("pong"))
            #expect(try req.receive()?.string == "pong")

            try req.sendMultipart([b("two"), b("parts")])
            #expect(strings(try rep.receiveMultipart()) == ["two", "parts"])
            try rep.sendMultipart([b("re"), b("ply")])
            #expect(strings(try req.receiveMultipart()) == ["re", "ply"])
        }
    }

    @Test("REQ talks to a ROUTER through the empty delimiter envelope", arguments: Transport.allCases)
    func reqRouter(_ transport: Transport) async throws {
        try await onThread {
            let context = try Context()
            let router = try makeSocket(context, .router)
            let req = try makeSocket(context, .req)
            try req.set(.routingID, b("req-7"))
            try req.connect(try bindFresh(router, transport))

            try req.sendMultipart([b("get"), b("snapshot")])
            #expect(strings(try router.receiveMultipart()) == ["req-7", "", "get", "snapshot"])
            try router.sendMultipart([b("req-7"), [], b("here")])
            #expect(try req.receive()?.string == "here")
        }
    }

    @Test("PAIR sockets talk both ways", arguments: Transport.allCases)
    func pair(_ transport: Transport) async throws {
        try await onThread {
            let context = try Context()
            let a = try makeSocket(context, .pair)
            let b_ = try makeSocket(context, .pair)
            try b_.connect(try bindFresh(a, transport))
            try a.send(b("to b"))
            #expect(try b_.receive()?.string == "to b")
            try b_.sendMultipart([b("to"), b("a")])
            #expect(strings(try a.receiveMultipart()) == ["to", "a"])
        }
    }
}

// MARK: - Messages

@Suite("Messages")
struct MessageTests {
    @Test("a zero-copy message from an array arrives byte for byte, small and large", arguments: [Transport.inproc, .tcp])
    func zeroCopy(_ transport: Transport) async throws {
        try await onThread {
            let context = try Context()
            let pull = try makeSocket(context, .pull)
            let push = try makeSocket(context, .push)
            try push.connect(try bindFresh(pull, transport))

            let large = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let message = Message(bytes: large)
            #expect(message.count == large.count)
            #expect(try push.send(message))
            #expect(message.count == 0)   // libzmq took the payload
            #expect(try push.send(Message(bytes: b("small"))))
            #expect(try push.send(Message(bytes: [])))

            let into = Message()
            #expect(try pull.receive(into: into))
            #expect(into.bytes == large)
            #expect(try pull.receive(into: into))
            #expect(into.string == "small")
            #expect(try pull.receive(into: into))
            #expect(into.count == 0)
        }
    }

    @Test("withUnsafeBytes reads the payload in place and copies match it")
    func inPlace() {
        let message = Message(string: "héllo")
        #expect(message.withUnsafeBytes { Array($0) } == Array("héllo".utf8))
        #expect(message.bytes == Array("héllo".utf8))
        #expect(message.string == "héllo")
        #expect(!message.more)
    }

    @Test("received messages carry socket metadata properties")
    func properties() async throws {
        try await onThread {
            let context = try Context()
            let pull = try makeSocket(context, .pull)
            let push = try makeSocket(context, .push)
            try push.connect(try bindFresh(pull, .tcp))
            try push.send(b("x"))
            let message = try #require(try pull.receive())
            #expect(message.property("Socket-Type") == "PUSH")
            #expect(message.property("Peer-Address") == "127.0.0.1")
            #expect(message.property("No-Such-Property") == nil)
        }
    }
}
