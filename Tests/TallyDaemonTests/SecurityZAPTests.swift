import Foundation
import Synchronization
import Testing
import TallyEngine
import ZeroMQ
@testable import TallyDaemon

@Suite("Security: CURVE endpoints behind the ZAP handler")
struct SecurityZAPTests {
    @Test("only an authorized producer key writes to a CURVE ingest socket, and its frames carry its User-Id")
    func swiftClientsOnIngest() async throws {
        let setup = try SecuritySupport.setup(
            clients: [("hanoi", .producer, ["/province/hanoi"]), ("reader", .subscriber, nil)],
            unauthorized: ["stranger"])
        defer { setup.close() }
        let rejections = Mutex<[HandshakeRejection]>([])
        setup.security.zap?.onReject { r in rejections.withLock { $0.append(r) } }

        let received = try await SecuritySupport.onThread { () throws -> [(String, String?)] in
            let pull = try Socket(setup.context, .pull)
            try pull.set(.linger, 0)
            try setup.security.configure(socket: pull, role: .ingest, monitorHandshakes: true)
            try pull.bind("tcp://127.0.0.1:*")
            let endpoint = try pull.lastEndpoint
            #expect(try pull.get(.mechanism) == 2)   // CURVE

            func load(_ name: String) throws -> Certificate { try Certificate.load(secretFile: setup.secretPath(name)) }
            var clients: [Socket] = []
            for (cert, payload) in [(try load("stranger"), "from-stranger"), (try load("reader"), "from-reader"),
                                    (nil, "from-nobody")] as [(Certificate?, String)] {
                let c = try SecuritySupport.client(setup.context, .push, serverKey: setup.server.publicKey, cert: cert)
                try c.connect(endpoint)
                _ = try c.send(payload, flags: .dontWait)
                clients.append(c)
            }
            // Let the refused handshakes happen before the good client connects.
            try pull.set(.receiveTimeout, 700)
            var got: [(String, String?)] = []
            if let early = try pull.receive() { got.append((early.string, early.property("User-Id"))) }

            let good = try SecuritySupport.client(setup.context, .push, serverKey: setup.server.publicKey, cert: try load("hanoi"))
            try good.connect(endpoint)
            _ = try good.send("from-hanoi")
            try pull.set(.receiveTimeout, 3000)
            if let m = try pull.receive() { got.append((m.string, m.property("User-Id"))) }
            try pull.set(.receiveTimeout, 300)
            while let m = try pull.receive() { got.append((m.string, m.property("User-Id"))) }
            for c in clients + [good] { c.close() }
            pull.close()
            return got
        }
        #expect(received.map(\.0) == ["from-hanoi"])
        #expect(received.first?.1 == "hanoi")
        #expect(setup.security.origin(forUserId: received.first?.1) == ["/province/hanoi"])
        let seen = rejections.withLock { $0 }
        #expect(seen.contains { $0.reason == .unknownKey && $0.domain == "ingest" })
        #expect(seen.contains { $0.reason == .wrongRole("reader") })
        #expect(seen.contains { $0.reason.code == "handshake_failed" && $0.publicKey == nil })   // the client with no key
        #expect(setup.security.rejectedHandshakes >= 3)
        #expect(seen.filter { $0.reason.code != "handshake_failed" }.allSatisfy { $0.publicKey != nil })
    }

    @Test("pyzmq clients with allowed, unknown, wrong-role and no keys against CURVE publish, snapshot and ingest endpoints")
    func pyzmqClientsOnEveryEndpoint() async throws {
        let setup = try SecuritySupport.setup(
            clients: [("reader", .subscriber, nil), ("hanoi", .producer, ["/province/hanoi"])],
            unauthorized: ["stranger"])
        defer { setup.close() }
        let stop = Atomic<Bool>(false)
        let ingested = Mutex<[String]>([])

        // The daemon side: PUB publishing, ROUTER answering, PULL collecting, on one thread.
        let endpoints = try await SecuritySupport.onThread { () throws -> [String] in
            let pub = try Socket(setup.context, .pub), router = try Socket(setup.context, .router)
            let pull = try Socket(setup.context, .pull)
            for (s, role) in [(pub, EndpointRole.publish), (router, .snapshot), (pull, .ingest)] {
                try s.set(.linger, 0)
                try setup.security.configure(socket: s, role: role)
                try s.bind("tcp://127.0.0.1:*")
            }
            let eps = [try pub.lastEndpoint, try router.lastEndpoint, try pull.lastEndpoint]
            let sockets = SocketsBox([pub, router, pull])
            let t = Thread {
                let (pub, router, pull) = (sockets.sockets[0], sockets.sockets[1], sockets.sockets[2])
                var poller = Poller()
                poller.add(router, .pollIn)
                poller.add(pull, .pollIn)
                var seq = 0
                while !stop.load(ordering: .relaxed) {
                    seq += 1
                    _ = try? pub.sendMultipart([Array("snapshot.test".utf8), Array("{\"seq\":\(seq)}".utf8)], flags: .dontWait)
                    guard (try? poller.poll(timeoutMilliseconds: 20)) ?? 0 > 0 else { continue }
                    if let req = try? router.receiveMultipart(flags: .dontWait) {
                        let who = req.last?.property("User-Id") ?? "?"
                        _ = try? router.sendMultipart([req[0].bytes, [], Array("snapshot-for:\(who)".utf8)])
                    }
                    while let m = try? pull.receive(flags: .dontWait) {
                        ingested.withLock { $0.append("\(m.property("User-Id") ?? "?"):\(m.string)") }
                    }
                }
                for s in sockets.sockets { s.close() }
            }
            t.start()
            return eps
        }
        defer { stop.store(true, ordering: .relaxed) }
        let key = setup.server.publicKey.z85
        let (pubEP, snapEP, ingestEP) = (endpoints[0], endpoints[1], endpoints[2])
        let reader = setup.secretPath("reader"), hanoi = setup.secretPath("hanoi"), stranger = setup.secretPath("stranger")

        async let subOK = SecuritySupport.peer(["sub", pubEP, key, reader, "4000"])
        async let subStranger = SecuritySupport.peer(["sub", pubEP, key, stranger, "1500"])
        async let subNone = SecuritySupport.peer(["sub", pubEP, key, "-", "1500"])
        async let subProducer = SecuritySupport.peer(["sub", pubEP, key, hanoi, "1500"])
        async let reqOK = SecuritySupport.peer(["req", snapEP, key, reader, "snapshot", "4000"])
        async let reqStranger = SecuritySupport.peer(["req", snapEP, key, stranger, "snapshot", "1500"])
        async let reqNone = SecuritySupport.peer(["req", snapEP, key, "-", "snapshot", "1500"])
        async let pushOK = SecuritySupport.peer(["push", ingestEP, key, hanoi, "event-from-hanoi"])
        async let pushStranger = SecuritySupport.peer(["push", ingestEP, key, stranger, "event-from-stranger"])
        async let pushReader = SecuritySupport.peer(["push", ingestEP, key, reader, "event-from-reader"])
        async let pushNone = SecuritySupport.peer(["push", ingestEP, key, "-", "event-from-nobody"])

        let ok = try await subOK
        #expect(ok.status == 0 && ok.stdout.hasPrefix("snapshot.test {\"seq\":"), "\(ok)")
        #expect(try await subStranger.status == 3)
        #expect(try await subNone.status == 3)
        #expect(try await subProducer.status == 3)
        let answered = try await reqOK
        #expect(answered.status == 0 && answered.stdout == "snapshot-for:reader", "\(answered)")
        #expect(try await reqStranger.status == 3)
        #expect(try await reqNone.status == 3)
        for p in [try await pushOK, try await pushStranger, try await pushReader, try await pushNone] {
            #expect(p.status == 0, "\(p.stderr)")
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(ingested.withLock { $0 } == ["hanoi:event-from-hanoi"])
        #expect(setup.security.rejectedHandshakes >= 5)
    }

    @Test("a key removed from --authorized-keys is refused at its next handshake after reload()")
    func reloadRevokes() async throws {
        let setup = try SecuritySupport.setup(clients: [("hanoi", .producer, nil)])
        defer { setup.close() }
        let before = setup.security.rejectedHandshakes
        try FileManager.default.removeItem(atPath: setup.keysDir + "/hanoi.key")
        #expect(setup.security.reload())
        let got = try await SecuritySupport.onThread { () throws -> String? in
            let pull = try Socket(setup.context, .pull)
            try pull.set(.linger, 0)
            try setup.security.configure(socket: pull, role: .ingest)
            try pull.bind("tcp://127.0.0.1:*")
            try pull.set(.receiveTimeout, 800)
            let c = try SecuritySupport.client(setup.context, .push, serverKey: setup.server.publicKey,
                                               cert: try Certificate.load(secretFile: setup.secretPath("hanoi")))
            try c.connect(try pull.lastEndpoint)
            _ = try c.send("after-revocation", flags: .dontWait)
            defer { c.close(); pull.close() }
            return try pull.receive()?.string
        }
        #expect(got == nil)
        #expect(setup.security.rejectedHandshakes > before)
        #expect(setup.security.origin(forUserId: "hanoi") == [])
    }
}

private final class SocketsBox: @unchecked Sendable {
    let sockets: [Socket]
    init(_ sockets: [Socket]) { self.sockets = sockets }
}

@Suite("Security: sources bound to keys")
struct SecuritySourceTests {
    static let pipelinePath: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Pipelines/national-dx.yaml").path

    static func event(id: String, source: String) -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"\#(source)","type":"ndxp.transaction","time":"2024-04-30T10:00:00+07:00","data":{"endpoint":"e","consumer":"c","provider":"p","status":"ok"}}"#
    }

    @Test("a producer key sending another agency's source over CURVE has those events rejected source_not_allowed")
    func forgedSourceRejected() async throws {
        let setup = try SecuritySupport.setup(clients: [("hanoi", .producer, ["/province/hanoi"]),
                                                        ("hcm", .producer, ["/province/hcm"])])
        defer { setup.close() }
        let batch = "[" + Self.event(id: "1", source: "/province/hanoi/dvc")
            + "," + Self.event(id: "2", source: "/province/hcm/dvc") + "]"

        // The daemon side: a CURVE PULL socket; frames go to the engine with the key's origin.
        let pull = try await SecuritySupport.onThread { () throws -> Socket in
            let pull = try Socket(setup.context, .pull)
            try pull.set(.linger, 0)
            try setup.security.configure(socket: pull, role: .ingest)
            try pull.bind("tcp://127.0.0.1:*")
            return pull
        }
        let endpoint = try pull.lastEndpoint

        let sent = try await SecuritySupport.peer(["push", endpoint, setup.server.publicKey.z85,
                                                   setup.secretPath("hanoi"), batch])
        #expect(sent.status == 0, "\(sent.stderr)")
        let frame = try await SecuritySupport.onThread { () throws -> (String, String?)? in
            try pull.set(.receiveTimeout, 3000)
            defer { pull.close() }
            return try pull.receive().map { ($0.string, $0.property("User-Id")) }
        }
        let (payload, userId) = try #require(frame)
        #expect(userId == "hanoi")

        let engine = Engine(pipeline: try Pipeline.load(path: Self.pipelinePath))
        let origin = Origin(sourcePrefixes: setup.security.origin(forUserId: userId))
        let report = engine.ingest(Array(payload.utf8), origin: origin)
        #expect(report.accepted == 1)
        #expect(report.rejected.map(\.index) == [1])
        #expect(report.rejected.first?.reason.code == .sourceNotAllowed)
    }
}
