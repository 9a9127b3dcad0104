import Foundation
import Testing
import ZeroMQ
@testable import TallyDaemon

// MARK: - Disk full at daemon level (a small tmpfs state directory)

@Suite("Daemon on a full disk", .serialized)
struct DaemonDiskFullTests {
    typealias F = DaemonFixture

    /// Fills the file system of `dir` with `filler` until ENOSPC. - Returns: bytes written.
    private func fill(_ path: String) -> Int {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x55, count: 4096)
        var total = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            total += n
        }
        // Single bytes too: leave not even a partial block.
        var one: UInt8 = 0
        while write(fd, &one, 1) == 1 { total += 1 }
        return total
    }

    private func send(_ dealer: Socket, _ sequence: Int, _ batch: [UInt8]) throws -> String {
        try dealer.sendMultipart([[], Array("disk-producer".utf8), Array(String(sequence).utf8), batch])
        let reply = try #require(try dealer.receiveMultipart(), "no answer to sequence \(sequence)")
        #expect(reply.filter { $0.count > 0 }.first?.string == String(sequence))
        return try #require(reply.last).string
    }

    @Test("acknowledged batches get storage_unavailable while the disk is full, nothing is applied, and after space returns they count exactly once",
          .enabled(if: WALSmallTmpfs.available, "needs mount(2) of a tmpfs (root or CAP_SYS_ADMIN); run the suite as root to include it"))
    func diskFullThenRecovered() throws {
        let tmpfs = try #require(WALSmallTmpfs(size: "2m"))
        defer { tmpfs.unmount() }
        let stateDir = tmpfs.directory.path + "/state"
        var s = F.settings(stateDir: stateDir)
        s.checkpointInterval = .seconds(3600)
        let daemon = try F.start(s)
        defer { F.stop(daemon) }
        let context = try Context()
        let e = daemon.boundEndpoints
        let dealer = try Socket(context, .dealer)
        try dealer.set(.receiveTimeout, 5000)
        try dealer.connect(try #require(e.ingestAck))
        func batch(_ tag: String) -> [UInt8] { Array("[\((0..<20).map { F.payment($0, tag) }.joined(separator: ","))]".utf8) }

        #expect(try send(dealer, 1, batch("before")).contains(#""accepted":20"#))
        _ = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 20)

        let filler = tmpfs.directory.path + "/filler"
        #expect(fill(filler) > 0)
        for attempt in 0..<3 {
            let reply = try send(dealer, 2, batch("during"))
            #expect(reply.contains("storage_unavailable"), "attempt \(attempt): \(reply)")
            #expect(reply.contains(#""accepted":0"#))
        }
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try F.value(F.ask(context, e.snapshotService), "dvc.online_payments") == 20, "nothing of a refused batch is applied")
        #expect(daemon.stats.withLock { $0.storageErrors } >= 3)

        unlink(filler)
        let accepted = try send(dealer, 2, batch("during"))
        #expect(accepted.contains(#""accepted":20"#), "\(accepted)")
        #expect(try send(dealer, 2, batch("during")) == accepted, "a re-send is answered again, applied zero more times")
        let snap = try F.waitFor(context, e.snapshotService, "dvc.online_payments", 40)
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try F.value(snap, "dvc.online_payments") == 40)
        #expect(try F.value(F.ask(context, e.snapshotService), "dvc.online_payments") == 40)
        #expect(try F.value(F.ask(context, e.snapshotService), "dvc.online_payments_vnd") == 40 * 500)

        // And after a restart from that state directory: still exactly once.
        F.stop(daemon)
        let again = try F.start(s)
        defer { F.stop(again) }
        #expect(try F.value(F.ask(context, again.boundEndpoints.snapshotService), "dvc.online_payments") == 40)
    }
}
