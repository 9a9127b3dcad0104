// Wires swift-metrics to swift-prometheus for the whole process, so every library that reports
// through swift-metrics (and the daemon's own ad-hoc metrics) lands in the registry that `/metrics`
// serves, next to `TallyMetrics`.
import CoreMetrics
import Prometheus
import Synchronization

// MARK: - Bootstrap

/// Process-wide metrics set-up.
public enum MetricsBootstrap {
    private static let bootstrapped = Mutex<TallyMetrics?>(nil)

    /// Creates the registry and `TallyMetrics`, and bootstraps `MetricsSystem` with a
    /// `PrometheusMetricsFactory` over the same registry. swift-metrics may be bootstrapped only once per
    /// process, so a second call returns the first call's metrics (the daemon calls it once in `run`;
    /// tests build their own `TallyMetrics(registry:version:)` and never call this).
    /// - Complexity: O(number of metrics), once.
    public static func bootstrap(version: String, labelLimit: Int = 1_000) -> TallyMetrics {
        bootstrapped.withLock { existing in
            if let existing { return existing }
            let registry = PrometheusCollectorRegistry()
            let metrics = TallyMetrics(registry: registry, version: version, labelLimit: labelLimit)
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            existing = metrics
            return metrics
        }
    }
}
