import Foundation
import Testing
@testable import TallyDaemon

// MARK: - Truncation split in two: detach on the log's owner, unlink on the checkpoint thread

@Suite("Write-ahead log: segments detached behind a checkpoint, deleted elsewhere")
struct DurabilityDetachTests {
    @Test("detaching forgets exactly the covered segments, leaves their files, and the log appends, syncs and replays on")
    func detachThenRemove() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let all = (0..<400).map(DurabilityLogTests.sampleEntry)
        let log = try WriteAheadLog(directory: dir.path, options: DurabilityLogTests.smallOptions())
        for chunk in stride(from: 0, to: 300, by: 10) { _ = try log.append(Array(all[chunk..<chunk + 10])) }
        try log.sync()
        let before = try walSegmentFiles(dir.path)
        #expect(before.count > 5)

        let through: LSN = 150
        let detached = log.detachSegments(through: through)
        #expect(!detached.isEmpty)
        #expect(detached == Array(before.prefix(detached.count)).map { dir.file($0) }, "oldest first")
        #expect(log.firstLSN <= through + 1, "the record after the checkpoint is still in the log")
        #expect(log.firstLSN > 1)
        #expect(try walSegmentFiles(dir.path) == before, "no file is touched by the bookkeeping")
        #expect(log.detachSegments(through: through).isEmpty, "idempotent")

        // The owner goes on: appends across more rolls, a sync, replay after the checkpoint.
        for chunk in stride(from: 300, to: 400, by: 10) { _ = try log.append(Array(all[chunk..<chunk + 10])) }
        try log.sync()
        let tail = try walReplayAll(log, after: through)
        #expect(tail.map(\.0) == (151...400).map { LSN($0) })
        #expect(tail.map(\.1) == Array(all[150...]))

        // The checkpoint thread deletes them, oldest first, and fsyncs the directory.
        guard case .segmentsRemoved(let n, error: nil) = CheckpointWriter.remove(detached, directory: dir.path) else {
            Issue.record("removal failed")
            return
        }
        #expect(n == detached.count)
        #expect(try walSegmentFiles(dir.path).count == log.segmentCount, "what is on disk is what the log lists")
        try log.close()

        let reopened = try WriteAheadLog(directory: dir.path, options: DurabilityLogTests.smallOptions())
        #expect(reopened.firstLSN == log.firstLSN)
        #expect(reopened.lastLSN == 400)
        #expect(try walReplayAll(reopened, after: through).map(\.0) == (151...400).map { LSN($0) })
    }

    @Test("a deletion that fails stops there, so the segments left on disk stay contiguous")
    func removalStopsAtFirstFailure() throws {
        let dir = WALTempDirectory()
        defer { dir.remove() }
        let names = ["wal-a.log", "sub", "wal-c.log"]
        FileManager.default.createFile(atPath: dir.file(names[0]), contents: Data([1]))
        try FileManager.default.createDirectory(atPath: dir.file("sub"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir.file("sub/x"), contents: Data([1]))   // unlink(2) of a directory fails
        FileManager.default.createFile(atPath: dir.file(names[2]), contents: Data([1]))
        guard case .segmentsRemoved(let n, let error) = CheckpointWriter.remove(names.map(dir.file), directory: dir.path) else {
            Issue.record("unexpected outcome")
            return
        }
        #expect(n == 1)
        #expect(error != nil)
        #expect(!FileManager.default.fileExists(atPath: dir.file(names[0])))
        #expect(FileManager.default.fileExists(atPath: dir.file(names[2])), "nothing after the failure is deleted")
    }
}
