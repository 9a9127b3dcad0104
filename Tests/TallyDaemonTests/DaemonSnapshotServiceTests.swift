import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

@Suite("Snapshot service on real sockets")
struct DaemonSnapshotServiceTests {
    /// A service thread bound to an ephemeral port, answering from `latest`.
    private func startService(_ latest: LatestSnapshot) throws -> (SnapshotService, String, Context) {
        let context = try Context()
        let router = try Socket(context, .router)
        try router.bind("tcp://127.0.0.1:*")
        let service = SnapshotService(socket: router, latest: latest, logger: .init(label: "test"))
        spawnThread(name: "test-snapshots") { service.run() }
        return (service, service.endpoint, context)
    }

    private func ask(_ socket: Socket, _ parts: [[UInt8]]) throws -> [String] {
        try socket.sendMultipart(parts)
        try socket.set(.receiveTimeout, 3000)
        let reply = try #require(try socket.receiveMultipart())
        return reply.map(\.string)
    }

    @Test("a DEALER sending [\"\", \"snapshot\"] (the benchmark's request) gets the latest snapshot after the delimiter")
    func dealerWithDelimiter() throws {
        let latest = LatestSnapshot()
        latest.set(seq: 7, json: Array(#"{"pipeline":"p","seq":7,"indicators":{}}"#.utf8))
        let (service, endpoint, context) = try startService(latest)
        defer { service.requestStop() }
        let dealer = try Socket(context, .dealer)
        try dealer.connect(endpoint)
        let reply = try ask(dealer, [[], Array("snapshot".utf8)])
        #expect(reply == ["", #"{"pipeline":"p","seq":7,"indicators":{}}"#])
        latest.set(seq: 8, json: Array(#"{"seq":8}"#.utf8))
        #expect(try ask(dealer, [[]]) == ["", #"{"seq":8}"#])
    }

    @Test("a REQ and a DEALER without delimiter are answered too")
    func reqAndBareDealer() throws {
        let latest = LatestSnapshot()
        latest.set(seq: 1, json: Array(#"{"seq":1}"#.utf8))
        let (service, endpoint, context) = try startService(latest)
        defer { service.requestStop() }
        let req = try Socket(context, .req)
        try req.connect(endpoint)
        #expect(try ask(req, [Array("snapshot".utf8)]) == [#"{"seq":1}"#])
        let dealer = try Socket(context, .dealer)
        try dealer.connect(endpoint)
        #expect(try ask(dealer, [Array("snapshot".utf8)]) == [#"{"seq":1}"#])
    }

    @Test("an unknown request gets an error object naming the valid requests, never silence")
    func unknownRequest() throws {
        let latest = LatestSnapshot()
        latest.set(seq: 1, json: Array(#"{"seq":1}"#.utf8))
        let (service, endpoint, context) = try startService(latest)
        defer { service.requestStop() }
        let dealer = try Socket(context, .dealer)
        try dealer.connect(endpoint)
        let reply = try ask(dealer, [[], Array("gimme".utf8)])
        #expect(reply.count == 2)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(reply[1].utf8)) as? [String: Any])
        #expect(obj["code"] as? String == "unknown_request")
        #expect((obj["error"] as? String)?.contains("'snapshot'") == true)
        #expect(service.errors.load(ordering: .relaxed) == 1)
    }
}
