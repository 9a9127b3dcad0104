/// The engine: events, pipelines, windows, aggregates, snapshots.
public enum TallyEngine {}
