// MARK: - Reload with backfill

extension Engine {
    /// Switches to `newPipeline` like ``reconfigure(to:)`` (unchanged aggregates and tables keep
    /// their state), and fills every indicator that would start empty from `donor`: an engine on
    /// the same new pipeline into which the caller replayed the history it still has (the daemon:
    /// the retained write-ahead log).
    ///
    /// Why a donor instead of replaying into `self`: replaying into the live engine would count
    /// the kept indicators twice; a separate engine sees each retained event once, and only its
    /// fresh aggregates are taken. Interned strings differ between two engines, so group keys,
    /// distinct values and table rows are re-interned here.
    ///
    /// What an added indicator then holds: exactly what the donor saw. When the log was truncated
    /// behind a checkpoint, events older than the retained log are not in it (documented for
    /// operators); balances of fresh indicators come from the donor when `self` has none.
    /// - Precondition: `donor.pipeline` is `newPipeline` (same indicators in the same order).
    /// - Complexity: O(indicators + cells and rows of the fresh aggregates in `donor`);
    ///   memory: the donor's state, released by the caller afterwards.
    @discardableResult
    public func reconfigure(to newPipeline: Pipeline, backfillFrom donor: Engine) -> ReconfigureReport {
        let report = reconfigure(to: newPipeline)
        let fresh = Set(report.fresh)
        guard !fresh.isEmpty else { return report }
        var remap = [Int32](repeating: -1, count: donor.interner.count)
        func map(_ id: Int32) -> Int32 {
            guard id >= 0, Int(id) < remap.count else { return id }
            if remap[Int(id)] < 0 { remap[Int(id)] = interner.intern(donor.interner.view(id)) }
            return remap[Int(id)]
        }
        // Event aggregators: same index in both engines (same pipeline), same canonical definition.
        for (i, a) in aggregators.enumerated() {
            guard let a, fresh.contains(pipeline.indicators[i].id), i < donor.aggregators.count,
                  let source = donor.aggregators[i], source.canonical == a.canonical else { continue }
            let keys = source.cellKeys.map { key -> Int64 in
                let group = (key >> 32) - 1
                guard group >= 0 else { return key }
                return (Int64(map(Int32(truncatingIfNeeded: group))) + 1) << 32 | (key & 0xFFFF_FFFF)
            }
            let distinct = source.distinctCells.map { d -> DistinctCell in
                var out = DistinctCell()
                out.maxFirst = d.maxFirst
                out.values.reserveCapacity(d.values.count)
                for (v, firstLast) in d.values { out.values[map(v)] = firstLast }
                return out
            }
            a.adopt(cells: source.cells, keys: keys, distinct: distinct)
        }
        // Tables that are new (a kept table already rebuilt its aggregates from its own rows).
        for t in tables where t.rows.isEmpty && t.aggregates.contains(where: { fresh.contains(pipeline.indicators[$0.indicator].id) }) {
            guard let source = donor.tables.first(where: { $0.canonical == t.canonical }), !source.rows.isEmpty else { continue }
            var rows: [Row] = []
            rows.reserveCapacity(source.rows.count)
            for r in source.rows {
                let versions = r.versions.map { v -> RowVersion in
                    var copy = RowVersion(time: v.time, seq: v.seq, pos: v.pos, count: v.count)
                    for f in 0..<v.count { copy.set(f, v.field(f, donor.interner), interner) }
                    return copy
                }
                rows.append(Row(key: r.key < 0 ? r.key : map(r.key), latest: versions[versions.count - 1], older: Array(versions.dropLast())))
            }
            t.rows = rows
            t.index = Dictionary(uniqueKeysWithValues: rows.enumerated().map { ($1.key, Int32($0)) })
            t.maxTime = source.maxTime
            t.rebuildAggregates(interner: interner)
        }
        for id in fresh where balances[id] == nil {
            if let b = donor.balances[id] { balances[id] = b }
        }
        return report
    }
}
