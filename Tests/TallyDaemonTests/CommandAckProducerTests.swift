import Foundation
import Synchronization
import Testing
import ZeroMQ
@testable import TallyDaemon

private typealias F = DaemonFixture

// MARK: - The acknowledged client with a window (tally send --ack, simulate --ack, bench --ack)

@Suite("Acknowledged producer with batches in flight")
struct CommandAckProducerTests {
    /// A bare ROUTER on a free port: stands for a daemon whose answers the test decides.
    static func bareRouter(_ context: Context) throws -> (Socket, String) {
        let router = try Socket(context, .router)
        try router.set(.receiveTimeout, 5000)
        try router.bind("tcp://127.0.0.1:*")
        return (router, try router.lastEndpoint)
    }

    @Test("tally send --ack with a window of 4 gets every batch applied once and reports the daemon's counts")
    func sendWithWindow() throws {
        let dir = F.temporaryDirectory("sendwin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try F.start(F.settings(stateDir: dir))
        let context = try Context()
        defer { F.stop(daemon); context.shutdown() }
        var options = Sender.Options(endpoint: try #require(daemon.boundEndpoints.ingestAck))
        options.acknowledged = true
        options.batch = 10
        options.window = 4
        options.producerID = "send-window"
        let events = (0..<95).map { Array(F.payment($0, "sw").utf8) } + [Array(#"{"specversion":"1.0"}"#.utf8)]
        let report = try Sender(options: options).send(EventInput.frames(events, batch: 10))
        #expect(report.frames == 10)
        #expect(report.accepted == 95)
        #expect(report.rejected == 1, "the invalid event is reported in its batch's status")
        let snap = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 95)
        #expect(try F.value(snap, "dvc.online_payments") == 95)
    }

    @Test("batches refused rate_limited inside a window are re-sent by themselves and each applied once")
    func retryableErrorsInsideTheWindow() throws {
        var s = F.settings(stateDir: nil)
        s.rateLimit = RateLimit(eventsPerSecond: 400, burst: 50)
        let daemon = try F.start(s)
        let context = try Context()
        defer { F.stop(daemon); context.shutdown() }
        let producer = try AckProducer(context: context, endpoint: try #require(daemon.boundEndpoints.ingestAck),
                                       producer: "limited", window: 4, timeout: .seconds(5), retries: 30)
        defer { producer.close() }
        var done: [AckProducer.Completion] = []
        for k in 0..<6 { done += try producer.send(F.paymentBatch(0..<50, "rl\(k)"), tag: k) }
        done += try producer.finish()
        #expect(done.map(\.tag).sorted() == Array(0..<6))
        for d in done { #expect((d.status["accepted"] as? Int) == 50, "batch \(d.tag): \(d.status)") }
        #expect(producer.resends > 0, "the burst of 50 cannot take 4 batches of 50 at once: some were refused and re-sent")
        let snap = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 300)
        #expect(try F.value(snap, "dvc.online_payments") == 300)
    }

    @Test("on a silence it reconnects and re-sends every unanswered batch, in order, with the same sequences")
    func lazyPirateResendsTheWindow() throws {
        let context = try Context()
        defer { context.shutdown() }
        // The ROUTER stands for a daemon whose first connection dies with the requests in it.
        let (router, endpoint) = try Self.bareRouter(context)
        let producer = try AckProducer(context: context, endpoint: endpoint, producer: "pirate", window: 3,
                                       timeout: .milliseconds(300), retries: 3, firstSequence: 41)
        defer { producer.close() }
        for k in 0..<3 { #expect(try producer.send(Array("[]".utf8), tag: k).isEmpty) }
        final class Outcome: @unchecked Sendable {   // written by the worker before `fire`, read after
            let producer: AckProducer
            var result: Result<[AckProducer.Completion], any Error>?
            init(_ p: AckProducer) { producer = p }
        }
        let outcome = Outcome(producer)
        let finished = spawnThread(name: "ack-finish") { outcome.result = Result { try outcome.producer.finish() } }
        var first: [(id: [UInt8], seq: String)] = []
        for _ in 0..<3 {
            let m = try #require(try router.receiveMultipart())
            first.append((m[0].bytes, m[2].string))
        }
        #expect(first.map(\.seq) == ["42", "43", "44"])   // not answered: the producer hears nothing
        var second: [(id: [UInt8], seq: String)] = []
        for _ in 0..<3 {
            let m = try #require(try router.receiveMultipart(), "no re-send after the silence")
            second.append((m[0].bytes, m[2].string))
        }
        #expect(second.map(\.seq) == ["42", "43", "44"], "the same sequences, in order")
        #expect(second[0].id != first[0].id, "on a new connection (a new socket)")
        for r in second {
            try router.sendMultipart([r.id, Array(r.seq.utf8), Array(#"{"accepted":0,"rejected":[]}"#.utf8)])
        }
        #expect(finished.waitBlocking(timeout: .seconds(10)))
        let done = try #require(outcome.result).get()
        #expect(done.map(\.sequence) == [42, 43, 44])
        #expect(producer.resends == 3)
    }

    @Test("a stuck batch holds the window: nothing window or more sequences past it is sent until it is answered")
    func windowIsAnchoredAtTheOldestUnanswered() throws {
        let context = try Context()
        defer { context.shutdown() }
        let (router, endpoint) = try Self.bareRouter(context)
        let producer = try AckProducer(context: context, endpoint: endpoint, producer: "stuck", window: 3,
                                       timeout: .seconds(20), retries: 2, firstSequence: 0)
        defer { producer.close() }
        for k in 0..<3 { _ = try producer.send(Array("[]".utf8), tag: k) }
        var peer: [UInt8] = []
        for expected in ["1", "2", "3"] {
            let m = try #require(try router.receiveMultipart())
            #expect(m[2].string == expected)
            peer = m[0].bytes
        }
        func answer(_ q: String) throws { try router.sendMultipart([peer, Array(q.utf8), Array(#"{"accepted":0,"rejected":[]}"#.utf8)]) }
        try answer("2")   // 1 stays unanswered; 2 and 3 complete
        try answer("3")
        final class Box: @unchecked Sendable {
            let producer: AckProducer
            var tags: [Int] = []
            init(_ p: AckProducer) { producer = p }
        }
        let box = Box(producer)
        let sent = spawnThread(name: "ack-send") { box.tags = ((try? box.producer.send(Array("[]".utf8), tag: 3)) ?? []).map(\.tag) }
        try router.set(.receiveTimeout, 400)
        #expect(try router.receiveMultipart() == nil, "sequence 4 is 3 past the unanswered 1: it must wait")
        #expect(!sent.isFired)
        try answer("1")
        try router.set(.receiveTimeout, 5000)
        let m = try #require(try router.receiveMultipart(), "answering 1 opens the window")
        #expect(m[2].string == "4")
        #expect(sent.waitBlocking(timeout: .seconds(5)))
        #expect(box.tags.sorted() == [0, 1, 2])
    }

    @Test("a window outside 1...16 is a usage error")
    func windowBounds() throws {
        let context = try Context()
        defer { context.shutdown() }
        #expect(throws: CommandFailure.self) { try AckProducer(context: context, endpoint: "tcp://127.0.0.1:1", producer: "p", window: 17) }
        #expect(throws: CommandFailure.self) { try AckProducer(context: context, endpoint: "tcp://127.0.0.1:1", producer: "p", window: 0) }
    }
}
