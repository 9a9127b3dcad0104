import Synchronization
import ZeroMQ

// MARK: - ConnectionMonitor

/// Counts the peers of the daemon's bound sockets from libzmq's socket monitor: subscribers on
/// the PUB socket, producers on the ingest sockets (PULL and the acknowledged ROUTER), and failed
/// handshakes (ZMTP or CURVE/ZAP) per endpoint, for `tally_subscribers_connected`,
/// `tally_producers_connected` and `tally_handshake_failures_total`.
///
/// Why a thread of its own: monitor events arrive on a PAIR socket per monitored socket; reading
/// them on the engine thread would add a poll item and work to the hot loop. Here they cost the
/// ingest path nothing: libzmq's I/O thread emits them, this thread counts them.
///
/// A peer counts from `ACCEPTED` until `DISCONNECTED` (a failed handshake also ends in
/// `DISCONNECTED`, so it is counted and uncounted: it shows only in the failures counter).
/// - Complexity: O(1) per connection event; memory O(monitored sockets).
final class ConnectionMonitor: @unchecked Sendable {
    enum Role { case subscriber, producer }

    private var receivers: [(MonitorReceiver, Role, String)] = []
    private let stopFlag = Atomic<Bool>(false)
    let subscribers = Atomic<Int>(0)
    let producers = Atomic<Int>(0)
    let handshakeFailures = Atomic<Int>(0)
    private let metrics: TallyMetrics?
    private var counter = 0

    init(metrics: TallyMetrics?) { self.metrics = metrics }

    /// Starts monitoring `socket` (call on the socket's owning thread, before it is handed over).
    func watch(_ socket: Socket, context: Context, role: Role, endpoint: String) throws(ZMQError) {
        counter += 1
        let address = "inproc://tally-monitor-\(ObjectIdentifier(self).hashValue)-\(counter)"
        try socket.monitor([.accepted, .disconnected, .handshakeFailed], endpoint: address)
        let receiver = try MonitorReceiver(context: context, endpoint: address)
        try receiver.socket.set(.linger, 0)
        receivers.append((receiver, role, endpoint))
    }

    /// Reads the monitors until ``stop()``; blocking, on its own thread.
    func run() {
        var poller = Poller()
        for r in receivers { poller.add(r.0.socket, .pollIn) }
        while !stopFlag.load(ordering: .acquiring) {
            guard (try? poller.poll(timeoutMilliseconds: 200)) != nil else { break }
            for (i, r) in receivers.enumerated() where poller.revents(i).contains(.pollIn) {
                while let event = try? r.0.next(flags: .dontWait) {
                    apply(event, role: r.1, endpoint: r.2)
                }
            }
        }
        for r in receivers { r.0.socket.close() }
    }

    private func apply(_ e: MonitorEvent, role: Role, endpoint: String) {
        if e.event.contains(.accepted) {
            if role == .subscriber { subscribers.add(1, ordering: .relaxed) } else { producers.add(1, ordering: .relaxed) }
        } else if e.event.contains(.disconnected) {
            if role == .subscriber { subscribers.subtract(1, ordering: .relaxed) } else { producers.subtract(1, ordering: .relaxed) }
        } else if !e.event.isDisjoint(with: .handshakeFailed) {
            handshakeFailures.add(1, ordering: .relaxed)
            metrics?.recordHandshakeFailure(endpoint: endpoint)
        }
        metrics?.subscribersConnected.set(Double(max(0, subscribers.load(ordering: .relaxed))))
        metrics?.producersConnected.set(Double(max(0, producers.load(ordering: .relaxed))))
    }

    func stop() { stopFlag.store(true, ordering: .releasing) }
}
