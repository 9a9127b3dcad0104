import Glibc
import Testing
@testable import TallyDaemon

// MARK: - A real receiving end

/// The systemd side of sd_notify: a bound AF_UNIX datagram socket (path or abstract), read with a
/// receive timeout so a missing datagram fails the test instead of hanging it.
final class NotifyReceiver {
    let descriptor: Int32
    let environmentValue: String
    private let path: String?

    /// A socket file in a fresh temporary directory.
    init() throws {
        var template = Array("/tmp/tally-notify-XXXXXX".utf8CString)
        let directory = try #require(mkdtemp(&template))
        let path = String(cString: directory) + "/notify"
        self.path = path
        self.environmentValue = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try Self.bind(descriptor, address: .path(path))
    }

    /// An abstract-namespace socket with a unique name.
    init(abstractName: String) throws {
        self.path = nil
        self.environmentValue = "@" + abstractName
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try Self.bind(descriptor, address: .abstract(abstractName))
    }

    private static func bind(_ fd: Int32, address: NotifyAddress) throws {
        #expect(fd >= 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = try address.withSocketAddress { pointer, length in Glibc.bind(fd, pointer, length) }
        try #require(result == 0, "bind failed: errno \(errno)")
    }

    deinit {
        close(descriptor)
        if let path {
            unlink(path)
            rmdir(String(path.dropLast("/notify".count)))
        }
    }

    /// The next datagram as text, or nil after the 5 s receive timeout.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// Every datagram already queued, without waiting.
    func drainPending() -> [String] {
        var result: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count >= 0 else { return result }
            result.append(String(decoding: buffer[0..<count], as: UTF8.self))
        }
    }
}

// MARK: - Notifier

@Suite("sd_notify over a real unix datagram socket")
struct SystemdNotifierTests {
    @Test("Without NOTIFY_SOCKET the notifier is disabled and every call is a silent no-op")
    func disabledWithoutSocket() throws {
        let notifier = try SystemdNotifier(environment: [:])
        #expect(!notifier.isEnabled)
        try notifier.ready(status: "ignored")
        try notifier.watchdog()
        try notifier.stopping()
        #expect(try SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]).isEnabled == false)
    }

    @Test("The lifecycle sequence READY, STATUS, RELOADING with MONOTONIC_USEC, READY, STOPPING arrives in order")
    func lifecycleSequence() throws {
        let receiver = try NotifyReceiver()
        let notifier = try SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.environmentValue])
        #expect(notifier.address == .path(receiver.environmentValue))

        try notifier.ready(status: "recovered seq 41")
        try notifier.status("1,204 events/s · seq 42 · 3 producers")
        let before = MonotonicClock.microseconds()
        try notifier.reloading()
        let after = MonotonicClock.microseconds()
        try notifier.ready()
        try notifier.extendTimeout(microseconds: 90_000_000)
        try notifier.stopping()

        #expect(receiver.receive() == "READY=1\nSTATUS=recovered seq 41\n")
        #expect(receiver.receive() == "STATUS=1,204 events/s · seq 42 · 3 producers\n")
        let reloading = try #require(receiver.receive())
        let lines = reloading.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first == "RELOADING=1")
        let stamp = try #require(lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil })
        #expect(stamp >= before && stamp <= after, "MONOTONIC_USEC must be CLOCK_MONOTONIC at the reload")
        #expect(receiver.receive() == "READY=1\n")
        #expect(receiver.receive() == "EXTEND_TIMEOUT_USEC=90000000\n")
        #expect(receiver.receive() == "STOPPING=1\n")
        #expect(receiver.drainPending().isEmpty)
    }

    @Test("An abstract-namespace @name address receives the datagram")
    func abstractNamespace() throws {
        let name = "tally-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let receiver = try NotifyReceiver(abstractName: name)
        let notifier = try SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name])
        #expect(notifier.address == .abstract(name))
        try notifier.ready()
        #expect(receiver.receive() == "READY=1\n")
    }

    @Test("A newline in STATUS cannot forge a second assignment")
    func statusNewlinesAreNeutralised() throws {
        let receiver = try NotifyReceiver()
        let notifier = try SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.environmentValue])
        try notifier.status("bad\nREADY=1")
        #expect(receiver.receive() == "STATUS=bad READY=1\n")
    }

    @Test("An unsupported or oversized NOTIFY_SOCKET is a typed error naming the value")
    func badAddresses() throws {
        #expect(throws: NotifyError.unsupportedAddress("vsock:2:1234")) {
            try SystemdNotifier(environment: ["NOTIFY_SOCKET": "vsock:2:1234"])
        }
        let long = "/" + String(repeating: "x", count: 200)
        let notifier = try SystemdNotifier(environment: ["NOTIFY_SOCKET": long])
        #expect(throws: NotifyError.addressTooLong(long)) { try notifier.ready() }
    }

    @Test("Sending to a socket nobody listens on reports the failing call")
    func sendFailureIsTyped() throws {
        let notifier = try SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent-dir/notify"])
        do {
            try notifier.ready()
            Issue.record("sending to a missing socket must fail")
        } catch let error {
            guard case .systemCall(let failure) = error else { Issue.record("unexpected \(error)"); return }
            #expect(failure.call == "sendto")
            #expect(failure.errno == ENOENT)
        }
    }
}

// MARK: - Watchdog

@Suite("Watchdog policy and pacing")
struct SystemdWatchdogTests {
    @Test("WATCHDOG_USEC gives a ping interval of half the timeout")
    func policyFromEnvironment() {
        let policy = WatchdogPolicy.fromEnvironment(["WATCHDOG_USEC": "30000000"], processID: 77)
        #expect(policy?.timeoutMicroseconds == 30_000_000)
        #expect(policy?.pingIntervalMicroseconds == 15_000_000)
        #expect(WatchdogPolicy.fromEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "77"], processID: 77) != nil)
    }

    @Test("The watchdog is off when unset, malformed, zero, or meant for another PID")
    func policyDisabled() {
        #expect(WatchdogPolicy.fromEnvironment([:], processID: 1) == nil)
        #expect(WatchdogPolicy.fromEnvironment(["WATCHDOG_USEC": "soon"], processID: 1) == nil)
        #expect(WatchdogPolicy.fromEnvironment(["WATCHDOG_USEC": "0"], processID: 1) == nil)
        #expect(WatchdogPolicy.fromEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "2"], processID: 1) == nil)
    }

    @Test("Ticks ping at once, then exactly every half-timeout on an injected monotonic clock")
    func pacing() throws {
        let receiver = try NotifyReceiver()
        let notifier = try SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.environmentValue])
        var pinger = WatchdogPinger(notifier: notifier, policy: WatchdogPolicy(timeoutMicroseconds: 30_000_000))
        let start: UInt64 = 1_000_000_000
        var sentAt: [UInt64] = []
        // An engine loop iterating every 100 ms for 61 s of simulated time.
        for step in 0...610 {
            let now = start + UInt64(step) * 100_000
            if try pinger.tick(nowMonotonic: now) { sentAt.append(now - start) }
        }
        #expect(sentAt == [0, 15_000_000, 30_000_000, 45_000_000, 60_000_000])
        let pings = receiver.drainPending()
        #expect(pings == Array(repeating: "WATCHDOG=1\n", count: 5))
        #expect(pinger.microsecondsUntilDue(nowMonotonic: start + 61_000_000) == 14_000_000)
        #expect(pinger.microsecondsUntilDue(nowMonotonic: start + 80_000_000) == 0)
    }

    @Test("A stuck loop stops pinging: no tick, no datagram")
    func stuckLoopStopsPinging() throws {
        let receiver = try NotifyReceiver()
        let notifier = try SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.environmentValue])
        var pinger = WatchdogPinger(notifier: notifier, policy: WatchdogPolicy(timeoutMicroseconds: 2_000_000))
        #expect(try pinger.tick(nowMonotonic: 10))
        // The loop stalls for 5 s (no ticks); the next tick after it pings once, not once per missed interval.
        #expect(try pinger.tick(nowMonotonic: 5_000_010))
        #expect(try !pinger.tick(nowMonotonic: 5_000_011))
        #expect(receiver.drainPending().count == 2)
    }

    @Test("Without a watchdog or a notify socket, tick never sends")
    func pingerDisabled() throws {
        var noPolicy = WatchdogPinger(notifier: try SystemdNotifier(environment: [:]), policy: nil)
        #expect(try !noPolicy.tick(nowMonotonic: 1))
        #expect(noPolicy.microsecondsUntilDue(nowMonotonic: 1) == nil)
        var noSocket = WatchdogPinger(notifier: .disabled, policy: WatchdogPolicy(timeoutMicroseconds: 10))
        #expect(try !noSocket.tick(nowMonotonic: 1))
    }
}
