import Foundation
import Testing
@testable import TallyDaemon

// MARK: - tally bench (shape only: no timing assertions)

@Suite("tally bench on a tiny input")
struct CommandBenchTests {
    @Test("tally bench --events 2000 --json prints one object with every figure, all events accepted")
    func benchJSONShape() throws {
        let r = try runBuiltTally(["bench", "--events", "2000", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").last)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        for key in ["events_per_second", "latency_p50_ms", "latency_p99_ms", "latency_max_ms", "peak_rss_bytes",
                    "wal_bytes", "wal_bytes_per_event", "seconds", "batch", "producers", "acknowledged", "snapshot_interval_ms"] {
            #expect(obj[key] != nil, "missing \(key) in \(line)")
        }
        #expect((obj["events"] as? NSNumber)?.intValue == 2000)
        #expect(obj["curve"] as? Bool == false)
        #expect((obj["accepted"] as? NSNumber)?.intValue == 2000)
        #expect((obj["rejected"] as? NSNumber)?.intValue == 0)
        #expect(((obj["wal_bytes"] as? NSNumber)?.intValue ?? 0) > 2000 * 100, "every event went through the log")
    }

    @Test("tally bench --ack --producers 2 sends through the acknowledged path from two producers")
    func benchAcknowledged() throws {
        let r = try runBuiltTally(["bench", "--events", "2000", "--batch", "50", "--ack", "--producers", "2", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").last)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect((obj["accepted"] as? NSNumber)?.intValue == 2000)
        #expect(obj["acknowledged"] as? Bool == true)
    }

    @Test("tally bench --curve runs every endpoint over CURVE with generated keys and still counts every event")
    func benchCurve() throws {
        let r = try runBuiltTally(["bench", "--events", "2000", "--curve", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").last)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(obj["curve"] as? Bool == true)
        #expect((obj["accepted"] as? NSNumber)?.intValue == 2000)
        #expect((obj["rejected"] as? NSNumber)?.intValue == 0)

        let table = try runBuiltTally(["bench", "--events", "1000", "--curve", "--ack"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("CURVE on every endpoint"))
        let counts = table.stdout.split(separator: "\n").first { $0.hasPrefix("accepted / rejected") }
        #expect(counts?.hasSuffix(" 1,000 / 0") == true, "\(table.stdout)")
    }
}


@Suite("malloc tuning for the daemon")
struct MallocTuningTests {
    @Test("the fixed mmap threshold is set at start when the operator did not set GLIBC_TUNABLES")
    func appliesWithoutTunables() {
        if getenv("GLIBC_TUNABLES") == nil {
            #expect(MallocTuning.apply(), "mallopt(M_MMAP_THRESHOLD) refused \(MallocTuning.mmapThreshold)")
        } else {
            #expect(!MallocTuning.apply(), "the operator's GLIBC_TUNABLES must win")
        }
    }

    /// Resident memory of this process, KiB (`VmRSS`).
    static func residentKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test("after the tuning, the checkpoint thread's trim gives a freed burst of heap blocks back to the kernel",
          .enabled(if: getenv("GLIBC_TUNABLES") == nil, "the operator's GLIBC_TUNABLES turn the tuning off"))
    func trimReturnsAFreedBurst() {
        #expect(MallocTuning.apply())
        // 200 MB of blocks under the mmap threshold (on the heap, like libzmq's 28 KB messages),
        // each followed by a small block that stays: the freed burst is holes in the heap, which
        // free() cannot give back (only a free top shrinks the heap).
        var blocks: [UnsafeMutableRawPointer] = [], pins: [UnsafeMutableRawPointer] = []
        for _ in 0..<2_000 {
            let b = UnsafeMutableRawPointer.allocate(byteCount: 100_000, alignment: 16)
            b.initializeMemory(as: UInt8.self, repeating: 1, count: 100_000)
            blocks.append(b)
            pins.append(UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16))
        }
        defer { for p in pins { p.deallocate() } }
        // Measured from the burst's peak, not from after the free: daemon tests running in
        // parallel trim the heaps after their checkpoints too, and may return part of the burst
        // between the free and the trim here (CI saw a 62 MB drop across this trim alone).
        let peak = Self.residentKiB()
        for b in blocks { b.deallocate() }
        let nanos = MallocTuning.trimAfterCheckpoint()
        let after = Self.residentKiB()
        #expect(nanos > 0)
        #expect(peak - after > 100_000, "resident memory \(peak) KiB with the burst, \(after) KiB after its free and the trim")
    }
}
