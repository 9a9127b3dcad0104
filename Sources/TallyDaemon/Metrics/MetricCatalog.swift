// Every metric Tally exports, with its Prometheus name, type, labels and help text, in one table.
// The table is the single source of truth: `TallyMetrics` creates the collectors from it (the
// registry insists a name always has the same help text), and `Deploy/README.md` documents it.

// MARK: - Catalog

/// One exported metric family.
public struct MetricDefinition: Sendable, Hashable {
    /// The Prometheus kind of a family.
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    /// Full Prometheus name (`tally_…`, unit suffix, `_total` for counters).
    public let name: String
    public let kind: Kind
    /// Label names, in the order the family uses them (empty for an unlabeled family).
    public let labels: [String]
    /// `# HELP` text.
    public let help: String
}

/// The catalog of Tally's metrics.
public enum MetricCatalog {
    public static let eventsReceived = MetricDefinition(
        name: "tally_events_received_total", kind: .counter, labels: [],
        help: "Events taken off the ingest sockets (each element of a batch counts), before validation.")
    public static let eventsAccepted = MetricDefinition(
        name: "tally_events_accepted_total", kind: .counter, labels: [],
        help: "Events that passed validation and were applied to the pipeline.")
    public static let eventsRejected = MetricDefinition(
        name: "tally_events_rejected_total", kind: .counter, labels: ["reason", "source"],
        help: "Payloads or events rejected, by reason code and CloudEvents source (source capped; see README).")
    public static let eventsDuplicate = MetricDefinition(
        name: "tally_events_duplicate_total", kind: .counter, labels: [],
        help: "Events ignored because their source+id was already applied.")
    public static let eventsLate = MetricDefinition(
        name: "tally_events_late_total", kind: .counter, labels: [],
        help: "Events older than every window that could still hold them.")
    public static let eventsUnrouted = MetricDefinition(
        name: "tally_events_unrouted_total", kind: .counter, labels: ["type", "source"],
        help: "Valid events whose type no indicator of the pipeline uses, by type and source (both capped).")
    public static let ingestBytes = MetricDefinition(
        name: "tally_ingest_bytes_total", kind: .counter, labels: [],
        help: "Payload bytes received on the ingest sockets.")
    public static let ingestBatchEvents = MetricDefinition(
        name: "tally_ingest_batch_events", kind: .histogram, labels: [],
        help: "Events per ingest frame (1 for a single event, n for a JSON array).")
    public static let engineLag = MetricDefinition(
        name: "tally_engine_lag_seconds", kind: .gauge, labels: [],
        help: "Seconds from taking the oldest frame of the last drain off its socket to the end of applying it (WAL append and fsync included).")
    public static let walFsync = MetricDefinition(
        name: "tally_wal_fsync_seconds", kind: .histogram, labels: [],
        help: "Latency of each write-ahead-log fsync.")
    public static let checkpointDuration = MetricDefinition(
        name: "tally_checkpoint_duration_seconds", kind: .histogram, labels: [],
        help: "Time from the start of a checkpoint's capture to its file being durable (capture on the engine thread, then checksum, write, fsync, rename on the checkpoint thread).")
    public static let checkpointCapture = MetricDefinition(
        name: "tally_checkpoint_capture_seconds", kind: .histogram, labels: [],
        help: "Time the engine thread spends capturing one checkpoint (log fsync + state serialization): the only part of a checkpoint that pauses ingest.")
    public static let checkpointBytes = MetricDefinition(
        name: "tally_checkpoint_bytes", kind: .gauge, labels: [],
        help: "Size of the newest checkpoint file.")
    public static let snapshotsPublished = MetricDefinition(
        name: "tally_snapshots_published_total", kind: .counter, labels: [],
        help: "Snapshots published on the PUB socket since start.")
    public static let snapshotSeq = MetricDefinition(
        name: "tally_snapshot_seq", kind: .gauge, labels: [],
        help: "seq of the latest published snapshot (survives restarts).")
    public static let subscribersConnected = MetricDefinition(
        name: "tally_subscribers_connected", kind: .gauge, labels: [],
        help: "Peers connected to the PUB socket (socket monitor).")
    public static let producersConnected = MetricDefinition(
        name: "tally_producers_connected", kind: .gauge, labels: [],
        help: "Peers connected to the ingest sockets (socket monitor).")
    public static let handshakeFailures = MetricDefinition(
        name: "tally_handshake_failures_total", kind: .counter, labels: ["endpoint"],
        help: "Failed ZMTP/CURVE handshakes and ZAP refusals, by endpoint.")
    public static let reloads = MetricDefinition(
        name: "tally_reloads_total", kind: .counter, labels: ["result"],
        help: "SIGHUP reloads, by result (success or failure; a failure keeps the running configuration).")
    public static let buildInfo = MetricDefinition(
        name: "tally_build_info", kind: .gauge, labels: ["version"],
        help: "Always 1; the label carries the running version.")

    /// Every metric, in documentation order.
    public static let all: [MetricDefinition] = [
        eventsReceived, eventsAccepted, eventsRejected, eventsDuplicate, eventsLate, eventsUnrouted,
        ingestBytes, ingestBatchEvents, engineLag, walFsync, checkpointDuration, checkpointCapture, checkpointBytes,
        snapshotsPublished, snapshotSeq, subscribersConnected, producersConnected, handshakeFailures,
        reloads, buildInfo,
    ]
}
