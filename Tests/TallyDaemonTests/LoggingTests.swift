import Glibc
import Logging
import Synchronization
import Testing
@testable import TallyDaemon

// MARK: - Support

/// Collects the lines a handler writes, as the journal would receive them.
final class CapturedLines: Sendable {
    private let lines = Mutex<[String]>([])
    var sink: LogSink { LogSink { [self] bytes in lines.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } } }
    var all: [String] { lines.withLock { $0 } }
}

/// A monotonic clock the test moves by hand.
final class ManualClock: Sendable {
    private let value = Atomic<UInt64>(1_000_000_000)
    func now() -> UInt64 { value.load(ordering: .relaxed) }
    func advance(microseconds: UInt64) { value.add(microseconds, ordering: .relaxed) }
}

func capturedLogger(_ label: String, format: LogFormat, level: Logger.Level = .info) -> (Logger, CapturedLines) {
    let captured = CapturedLines()
    let logger = Logger(label: label) { label in
        JournalLogHandler(label: label, level: level, format: format, sink: captured.sink)
    }
    return (logger, captured)
}

// MARK: - Handler

@Suite("journald log handler")
struct LoggingHandlerTests {
    @Test("Under journald a record is one line with its syslog priority prefix and sorted metadata")
    func journalFormat() {
        var (logger, captured) = capturedLogger("tally.daemon", format: .journal)
        logger[metadataKey: "pipeline"] = "national-dx"
        logger.warning("reload failed", metadata: ["file": "/etc/tally/pipelines/a b.yaml", "line": "12"])
        logger.info("ready")
        logger.critical("cannot open state dir")
        logger.debug("invisible at info level")
        #expect(captured.all == [
            "<4>tally.daemon: reload failed file=\"/etc/tally/pipelines/a b.yaml\" line=12 pipeline=national-dx\n",
            "<6>tally.daemon: ready pipeline=national-dx\n",
            "<2>tally.daemon: cannot open state dir pipeline=national-dx\n",
        ])
    }

    @Test("Outside journald a line carries an RFC 3339 UTC timestamp and the level name")
    func plainFormat() {
        let line = JournalLogHandler.line(
            level: .error, label: "tally.wal", message: "fsync failed", metadata: ["errno": "5"], format: .plain,
            wallClock: timespec(tv_sec: 1_714_496_399, tv_nsec: 123_456_789))
        #expect(String(decoding: line, as: UTF8.self) == "2024-04-30T16:59:59.123Z error tally.wal: fsync failed errno=5\n")
        let (logger, captured) = capturedLogger("t", format: .plain)
        logger.info("hello")
        let text = try! #require(captured.all.first)
        #expect(text.hasSuffix(" info t: hello\n"))
        #expect(text.count == "2024-04-30T16:59:59.123Z info t: hello\n".count)
    }

    @Test("Newlines, quotes and nested metadata never break the one-line-per-record rule")
    func escaping() {
        let line = String(decoding: JournalLogHandler.line(
            level: .notice, label: "x", message: "two\nlines",
            metadata: [
                "quote": "say \"hi\"", "empty": "", "equals": "a=b",
                "list": .array(["1", "2"]), "map": .dictionary(["k": "v"]),
            ], format: .journal), as: UTF8.self)
        #expect(line == #"<5>x: two\nlines empty="" equals="a=b" list=[1,2] map="{k=v}" quote="say \"hi\"""# + "\n")
        #expect(line.filter { $0 == "\n" }.count == 1)
    }

    @Test("Priorities follow syslog: debug 7 through critical 2")
    func priorities() {
        #expect([Logger.Level.trace, .debug, .info, .notice, .warning, .error, .critical]
            .map(JournalLogHandler.priority(of:)) == [7, 7, 6, 5, 4, 3, 2])
    }

    @Test("JOURNAL_STREAM selects journal format only when it matches stderr's device and inode")
    func detection() {
        var status = stat()
        #expect(fstat(2, &status) == 0)
        let matching = "\(status.st_dev):\(status.st_ino)"
        #expect(LogFormat.detect(environment: ["JOURNAL_STREAM": matching]) == .journal)
        #expect(LogFormat.detect(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino &+ 1)"]) == .plain)
        #expect(LogFormat.detect(environment: ["JOURNAL_STREAM": "garbage"]) == .plain)
        #expect(LogFormat.detect(environment: [:]) == .plain)
    }
}

// MARK: - Rate limiting

@Suite("Rate-limited warnings for bad input")
struct LoggingRateLimitTests {
    @Test("A token bucket allows its burst, then refills at its rate on the injected clock")
    func tokenBucket() {
        var bucket = TokenBucket(capacity: 3, refillPerSecond: 2, now: 0)
        let burst = (0..<5).map { _ in bucket.take(now: 0) }
        #expect(burst == [true, true, true, false, false])
        let early = bucket.take(now: 499_999)
        let onTime = bucket.take(now: 500_000)
        let again = bucket.take(now: 500_001)
        #expect(!early)
        #expect(onTime)
        #expect(!again)
        let refilled = (0..<4).map { _ in bucket.take(now: 100_000_000) }
        #expect(refilled == [true, true, true, false], "a long pause refills only up to the capacity")
    }

    @Test("A flood of one reason writes the burst, then a summary of what was suppressed")
    func floodIsSummarised() {
        let (logger, captured) = capturedLogger("tally.ingest", format: .journal)
        let clock = ManualClock()
        let limiter = RateLimitedLogger(logger: logger, burst: 10, perSecond: 10, clock: { clock.now() })
        var written = 0
        for index in 0..<1_000 {
            if limiter.warning(reason: "invalid_json", "rejected payload", metadata: ["index": "\(index)"]) { written += 1 }
        }
        #expect(written == 10)
        #expect(captured.all.count == 10)
        #expect(captured.all.first == "<4>tally.ingest: rejected payload index=0 reason=invalid_json\n")

        clock.advance(microseconds: 100_000)  // one token back
        #expect(limiter.warning(reason: "invalid_json", "rejected payload"))
        #expect(Array(captured.all.suffix(2)) == [
            "<4>tally.ingest: suppressed 990 similar messages reason=invalid_json suppressed=990\n",
            "<4>tally.ingest: rejected payload reason=invalid_json\n",
        ])
    }

    @Test("Each reason has its own budget")
    func reasonsAreIndependent() {
        let (logger, captured) = capturedLogger("x", format: .journal)
        let clock = ManualClock()
        let limiter = RateLimitedLogger(logger: logger, burst: 2, perSecond: 1, clock: { clock.now() })
        for _ in 0..<5 {
            limiter.warning(reason: "bad_time", "bad time")
            limiter.warning(reason: "wrong_type", "wrong type")
        }
        #expect(captured.all.filter { $0.contains("bad time") }.count == 2)
        #expect(captured.all.filter { $0.contains("wrong type") }.count == 2)
    }

    @Test("flushSuppressed reports a burst that simply stopped, once")
    func flushReportsStoppedBursts() {
        let (logger, captured) = capturedLogger("x", format: .journal)
        let clock = ManualClock()
        let limiter = RateLimitedLogger(logger: logger, burst: 1, perSecond: 1, clock: { clock.now() })
        for _ in 0..<4 { limiter.warning(reason: "late", "late event") }
        clock.advance(microseconds: 5_000_000)
        #expect(limiter.flushSuppressed() == 1)
        #expect(captured.all.last == "<4>x: suppressed 3 similar messages reason=late suppressed=3\n")
        #expect(limiter.flushSuppressed() == 0)
        #expect(captured.all.count == 2)
    }

    @Test("A suppressed message is never formatted")
    func suppressedMessagesCostNoFormatting() {
        let (logger, _) = capturedLogger("x", format: .journal)
        let limiter = RateLimitedLogger(logger: logger, burst: 1, perSecond: 1, clock: { 0 })
        let evaluations = Atomic<Int>(0)
        func expensive() -> Logger.Message {
            evaluations.add(1, ordering: .relaxed)
            return "expensive"
        }
        for _ in 0..<100 { limiter.warning(reason: "r", expensive()) }
        #expect(evaluations.load(ordering: .relaxed) == 1)
    }

    @Test("Reasons beyond the cap share one budget, so hostile input cannot grow the table")
    func reasonTableIsBounded() {
        let (logger, captured) = capturedLogger("x", format: .journal)
        let limiter = RateLimitedLogger(logger: logger, burst: 1, perSecond: 1, maxReasons: 4, clock: { 0 })
        for index in 0..<100 { limiter.warning(reason: "reason-\(index)", "m") }
        #expect(captured.all.count == 4)  // three own reasons and the shared "other" bucket
    }

    @Test("Below the logger's level nothing is written and nothing counted")
    func levelRespected() {
        let (logger, captured) = capturedLogger("x", format: .journal, level: .error)
        let limiter = RateLimitedLogger(logger: logger, clock: { 0 })
        #expect(!limiter.warning(reason: "r", "w"))
        #expect(limiter.flushSuppressed() == 0)
        #expect(captured.all.isEmpty)
    }
}
