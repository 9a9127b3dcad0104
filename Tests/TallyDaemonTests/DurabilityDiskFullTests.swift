import Foundation
import Testing
@testable import TallyDaemon

// MARK: - A real full disk: a small tmpfs

/// Mounts a tmpfs of a given size on a fresh temp directory. Needs mount(2) (root or
/// CAP_SYS_ADMIN); `available` probes once so the test is reported as skipped, with the reason,
/// where it cannot run — never silently passed.
struct SmallTmpfs {
    let directory: TempDirectory

    static let available: Bool = {
        guard let probe = SmallTmpfs(size: "64k") else { return false }
        probe.unmount()
        return true
    }()

    init?(size: String) {
        let dir = TempDirectory("tmpfs")
        guard mount("tmpfs", dir.path, "tmpfs", 0, "size=\(size),mode=0700") == 0 else {
            dir.remove()
            return nil
        }
        directory = dir
    }

    func unmount() {
        _ = umount2(directory.path, Int32(MNT_DETACH))
        directory.remove()
    }
}

@Suite("Disk full")
struct DurabilityDiskFullTests {
    /// Seven 1 KB acknowledged batches: one group-commit call.
    static func call(_ n: Int) -> [LogEntry] {
        (0..<7).map { i in
            .batch(producer: Array("p".utf8), sequence: UInt64(n * 7 + i), payload: [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: 1000))
        }
    }

    /// Appends and syncs calls until one fails; returns what was appended and the failure.
    static func fill(_ log: WriteAheadLog) -> ([LogEntry], DurabilityError?) {
        var appended: [LogEntry] = []
        for n in 0..<1000 {
            let result = Result { () throws(DurabilityError) in
                _ = try log.append(call(n))
                try log.sync()
            }
            if case .failure(let error) = result { return (appended, error) }
            appended += call(n)
        }
        return (appended, nil)
    }

    @Test("on a full disk append fails, nothing half-written is replayed, and appends succeed again when space returns",
          .enabled(if: SmallTmpfs.available, "needs mount(2) of a tmpfs (run as root or with CAP_SYS_ADMIN)"))
    func diskFullAndRecovery() throws {
        let fs = try #require(SmallTmpfs(size: "256k"))
        defer { fs.unmount() }
        let filler = fs.directory.file("filler")
        try writeFile(filler, [UInt8](repeating: 0xAB, count: 64 * 1024))
        let stateDir = fs.directory.file("state")

        var options = WriteAheadLog.Options()
        options.maxSegmentSize = 48 * 1024
        let log = try WriteAheadLog(directory: stateDir, options: options)
        let store = try CheckpointStore(directory: stateDir)
        try store.write(lsn: 0, engineState: [1, 2, 3], producers: ProducerTable(), snapshotSeq: 1)

        let call = Self.call
        let (filled, failure) = Self.fill(log)
        var appended = filled
        let error = try #require(failure, "the 256 KiB tmpfs never filled up")
        #expect(error.isOutOfSpace, "\(error)")
        #expect(log.lastLSN == LSN(appended.count))
        #expect(throws: DurabilityError.self, "still full") { try log.append(call(9999)) }
        #expect(log.lastLSN == LSN(appended.count), "a failed call appends nothing")

        // A checkpoint cannot be written either; the old one stays and no temp file is left.
        #expect(throws: DurabilityError.self) {
            try store.write(lsn: 5, engineState: [UInt8](repeating: 1, count: 200_000), producers: ProducerTable(), snapshotSeq: 2)
        }
        #expect(try store.loadNewest().checkpoint?.lsn == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: stateDir).allSatisfy { !$0.hasSuffix(".tmp") })

        // What a restart would see: exactly the appended records, no torn tail to cut.
        do {
            let reader = try WriteAheadLog(directory: stateDir, options: options)
            #expect(reader.tailRepair == nil, "the failed write was rolled back, not left torn")
            #expect(try replayAll(reader).map(\.1) == appended)
        }

        // Space returns.
        try FileManager.default.removeItem(atPath: filler)
        let range = try #require(try log.append(call(5000)))
        try log.sync()
        #expect(range == LSN(appended.count + 1)...LSN(appended.count + 7))
        appended += call(5000)
        #expect(try replayAll(log).map(\.1) == appended)
        let reopened = try WriteAheadLog(directory: stateDir, options: options)
        #expect(reopened.tailRepair == nil)
        #expect(reopened.lastLSN == LSN(appended.count))
    }
}
