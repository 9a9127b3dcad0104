import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

private typealias F = DaemonFixture

// MARK: - Several acknowledged batches in flight per producer

@Suite("Acknowledged ingest with several batches in flight per producer")
struct DaemonAckWindowTests {
    /// Receives one reply `[sequence, status]` (DEALER: an empty delimiter first).
    static func reply(_ dealer: Socket) throws -> (sequence: String, status: String) {
        let parts = try #require(try dealer.receiveMultipart(), "no answer within the receive timeout")
        return (parts[parts.count - 2].string, parts.last!.string)
    }

    @Test("a window of batches sent without waiting is answered in order, each applied once, a duplicate in the window answered twice")
    func pipelinedBatches() throws {
        let dir = F.temporaryDirectory("ackwin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try F.start(F.settings(stateDir: dir))
        let context = try Context()
        defer { F.stop(daemon); context.shutdown() }
        let dealer = try Socket(context, .dealer)
        try dealer.set(.receiveTimeout, 5000)
        try dealer.connect(try #require(daemon.boundEndpoints.ingestAck))
        defer { dealer.close() }
        let sequences = [101, 102, 103, 103, 104, 105, 106, 107]   // 103 twice: a re-send while the first is in flight
        for q in sequences {
            try dealer.sendMultipart([[], Array("win".utf8), Array(String(q).utf8), F.paymentBatch(0..<10, "w\(q)")])
        }
        var answers: [(String, String)] = []
        for _ in sequences { answers.append(try Self.reply(dealer)) }
        #expect(answers.map(\.0) == sequences.map(String.init), "replies come in the order the batches were sent")
        for (q, status) in answers { #expect(status.contains(#""accepted":10"#), "\(q): \(status)") }
        let snap = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 70)
        #expect(try F.value(snap, "dvc.online_payments") == 70)
    }

    @Test("a batch refused with retry and overtaken by a later durable batch is applied when re-sent, once, also after a restart")
    func overtakenBatchIsNotLost() throws {
        let dir = F.temporaryDirectory("ackgap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var s = F.settings(stateDir: dir)
        s.rateLimit = RateLimit(eventsPerSecond: 20, burst: 50)
        var daemon = try F.start(s)
        let context = try Context()
        defer { context.shutdown() }
        func dealer(_ d: Daemon) throws -> Socket {
            let sock = try Socket(context, .dealer)
            try sock.set(.receiveTimeout, 5000)
            try sock.set(.linger, 0)
            try sock.connect(try #require(d.boundEndpoints.ingestAck))
            return sock
        }
        var sock = try dealer(daemon)
        func send(_ q: Int) throws -> String {
            try sock.sendMultipart([[], Array("agency".utf8), Array(String(q).utf8), F.paymentBatch(0..<50, "g\(q)")])
            let (seq, status) = try Self.reply(sock)
            #expect(seq == String(q))
            return status
        }
        #expect(try send(1).contains(#""accepted":50"#))
        #expect(try send(2).contains(#""reason":"rate_limited""#), "the bucket is empty: refused, recorded nowhere")
        Thread.sleep(forTimeInterval: 2.7)   // 50 tokens back at 20/s
        #expect(try send(3).contains(#""accepted":50"#), "the next batch in flight behind 2 is made durable first")
        Thread.sleep(forTimeInterval: 2.7)
        let resent = try send(2)
        #expect(resent.contains(#""accepted":50"#), "2 was never durable: its re-send is applied, not answered already_applied: \(resent)")
        #expect(try send(2).contains(#""already_applied":true"#), "and never applied twice")
        #expect(try send(3).contains(#""accepted":50"#), "the newest batch's own reply is kept")
        let snap = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 150)
        #expect(try F.value(snap, "dvc.online_payments") == 150)
        sock.close()
        F.stop(daemon)

        // The window is in the checkpoint: after a restart, 2 and 3 are still known durable.
        daemon = try F.start(s)
        defer { F.stop(daemon) }
        sock = try dealer(daemon)
        defer { sock.close() }
        #expect(try send(2).contains(#""already_applied":true"#))
        #expect(try send(1).contains(#""already_applied":true"#))
        let after = try F.waitFor(context, daemon.boundEndpoints.snapshotService, "dvc.online_payments", 150)
        #expect(try F.value(after, "dvc.online_payments") == 150)
    }
}
