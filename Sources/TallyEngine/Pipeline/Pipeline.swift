import Foundation
import Yams

// MARK: - Pipeline

/// A validated, compiled pipeline: indicators with their filters, windows and shapes resolved
/// against the event ``Catalog``.
///
/// Build one with ``load(path:catalog:)`` or ``parse(yaml:file:catalog:)``; both throw a
/// ``PipelineError`` holding every diagnostic. The language is documented in
/// `Pipelines/README.md`.
public struct Pipeline: Sendable {
    public let name: String
    /// The file the pipeline came from (as given), used in diagnostics.
    public let file: String
    /// IANA time-zone identifier of calendar windows.
    public let timeZoneIdentifier: String
    /// Reference constants, in file order.
    public let constants: [(name: String, value: Double)]
    public let indicators: [IndicatorDefinition]
    let tables: [TableDefinition]
    public let catalog: Catalog

    /// The position of an indicator by id.
    public func indicatorIndex(_ id: String) -> Int? { indicators.firstIndex { $0.id == id } }

    /// Reads and compiles a pipeline file.
    /// - Throws: ``PipelineError`` with every problem (an unreadable file is one diagnostic).
    public static func load(path: String, catalog: Catalog = .v1) throws(PipelineError) -> Pipeline {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PipelineError(diagnostics: [Diagnostic(file: path, line: 0, column: 0,
                message: "cannot read the pipeline file; check the path and its permissions")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw PipelineError(diagnostics: [Diagnostic(file: path, line: 0, column: 0,
                message: "the pipeline file is not valid UTF-8; save it as UTF-8")])
        }
        return try parse(yaml: text, file: path, catalog: catalog)
    }

    /// Compiles pipeline text.
    /// - Parameter file: the name used in diagnostics.
    /// - Throws: ``PipelineError`` with every problem found.
    public static func parse(yaml: String, file: String = "<pipeline>", catalog: Catalog = .v1) throws(PipelineError) -> Pipeline {
        var compiler = PipelineCompiler(file: file, catalog: catalog)
        let result = compiler.compile(yaml: yaml)
        if !compiler.diagnostics.isEmpty || result == nil {
            let sorted = compiler.diagnostics.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
            throw PipelineError(diagnostics: sorted)
        }
        return result!
    }

    /// What `tally check FILE` prints: every diagnostic of the file, empty when it is valid.
    /// The CLI prints each as `file:line:col: error: msg` and exits 2 when any.
    public static func check(path: String, catalog: Catalog = .v1) -> [Diagnostic] {
        do {
            _ = try load(path: path, catalog: catalog)
            return []
        } catch {
            return error.diagnostics
        }
    }
}

// MARK: - Compiler

/// Turns YAML into a ``Pipeline``, collecting diagnostics instead of stopping at the first.
struct PipelineCompiler {
    let file: String
    public let catalog: Catalog
    var diagnostics: [Diagnostic] = []

    init(file: String, catalog: Catalog) {
        self.file = file
        self.catalog = catalog
    }

    // MARK: Helpers

    mutating func error(_ node: Node?, _ message: String) {
        let mark = node?.mark
        diagnostics.append(Diagnostic(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, message: message))
    }

    static func mapping(_ node: Node) -> [(key: String, keyNode: Node, value: Node)]? {
        guard case .mapping(let m) = node else { return nil }
        return m.map { (key: $0.key.scalar?.string ?? "", keyNode: $0.key, value: $0.value) }
    }

    mutating func expectMapping(_ node: Node, _ what: String) -> [(key: String, keyNode: Node, value: Node)]? {
        guard let m = Self.mapping(node) else {
            error(node, "\(what) must be a mapping (`key: value` lines)")
            return nil
        }
        return m
    }

    mutating func checkKeys(_ m: [(key: String, keyNode: Node, value: Node)], allowed: [String], in what: String) {
        for entry in m where !allowed.contains(entry.key) {
            error(entry.keyNode, "unknown key '\(entry.key)' in \(what)\(Suggest.didYouMean(entry.key, in: allowed)); valid keys: \(allowed.joined(separator: ", "))")
        }
    }

    mutating func scalarString(_ node: Node, _ what: String) -> String? {
        guard let s = node.scalar?.string else {
            error(node, "\(what) must be a single value, not a list or mapping")
            return nil
        }
        return s
    }

    /// A scalar or a list of scalars.
    mutating func stringList(_ node: Node, _ what: String) -> [(String, Node)]? {
        if let s = node.scalar?.string { return [(s, node)] }
        if case .sequence(let seq) = node {
            var out: [(String, Node)] = []
            for item in seq {
                guard let s = item.scalar?.string else {
                    error(item, "each item of \(what) must be a single value")
                    continue
                }
                out.append((s, item))
            }
            return out
        }
        error(node, "\(what) must be a value or a list of values")
        return nil
    }

    // MARK: Top level

    mutating func compile(yaml: String) -> Pipeline? {
        let root: Node
        if let deep = NestingGuard.firstTooDeep(yaml) {
            var message = "the YAML nests deeper than \(NestingGuard.limit) levels here; a pipeline needs only a few: flatten it"
            if let q = deep.openQuote {
                message += " (brackets after the quote opened at line \(q.line), column \(q.column) count too: close that quote if it is not meant to open one)"
            }
            diagnostics.append(Diagnostic(file: file, line: deep.line, column: deep.column, message: message))
            return nil
        }
        do {
            guard let r = try Yams.compose(yaml: yaml) else {
                diagnostics.append(Diagnostic(file: file, line: 1, column: 1, message: "the pipeline file is empty; start with `pipeline: NAME` and `indicators:`"))
                return nil
            }
            root = r
        } catch let e as YamlError {
            diagnostics.append(Self.yamlDiagnostic(e, file: file))
            return nil
        } catch {
            diagnostics.append(Diagnostic(file: file, line: 1, column: 1, message: "not YAML: \(error)"))
            return nil
        }
        guard let top = expectMapping(root, "the pipeline") else { return nil }
        checkKeys(top, allowed: ["pipeline", "timezone", "constants", "tables", "indicators"], in: "the pipeline")
        duplicateKeys(top)

        var name = ""
        if let n = top.first(where: { $0.key == "pipeline" }) {
            if let s = scalarString(n.value, "`pipeline`") {
                if s.isEmpty || !s.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 || $0 == 95 }) {
                    error(n.value, "the pipeline name '\(s)' may only hold a-z, 0-9, '.', '-', '_' (it becomes the topic `snapshot.<name>`)")
                }
                name = s
            }
        } else {
            error(root, "missing `pipeline: NAME` (e.g. `pipeline: national-dx`)")
        }

        var zone = "Asia/Ho_Chi_Minh"
        if let z = top.first(where: { $0.key == "timezone" }), let s = scalarString(z.value, "`timezone`") {
            if TimeZone(identifier: s) == nil {
                error(z.value, "unknown time zone '\(s)'\(Suggest.didYouMean(s, in: TimeZone.knownTimeZoneIdentifiers)); write an IANA name such as Asia/Ho_Chi_Minh")
            } else {
                zone = s
            }
        }

        var constants: [(name: String, value: Double)] = []
        if let c = top.first(where: { $0.key == "constants" }), let m = expectMapping(c.value, "`constants`") {
            duplicateKeys(m)
            for entry in m {
                guard let s = entry.value.scalar?.string, let v = Double(s), v.isFinite else {
                    error(entry.value, "constant '\(entry.key)' must be a number (e.g. `provinces: 63`)")
                    continue
                }
                constants.append((entry.key, v))
            }
        }

        var tables: [TableDefinition] = []
        var tableNodes: [String: Int] = [:]
        if let t = top.first(where: { $0.key == "tables" }), let m = expectMapping(t.value, "`tables`") {
            duplicateKeys(m)
            for entry in m {
                if let table = compileTable(name: entry.key, node: entry.value) {
                    tableNodes[entry.key] = tables.count
                    tables.append(table)
                }
            }
        }

        guard let ind = top.first(where: { $0.key == "indicators" }) else {
            error(root, "missing `indicators:` (a list of indicators, each starting with `- id: ...`)")
            return nil
        }
        guard case .sequence(let itemSeq) = ind.value else {
            error(ind.value, "`indicators` must be a list; start each indicator with `- id: ...`")
            return nil
        }

        let items = Array(itemSeq)
        // First pass: ids, so derived indicators and `of: {indicator:}` may refer forward.
        var ids: [String: Int] = [:]
        for (i, item) in items.enumerated() {
            guard let m = Self.mapping(item), let idEntry = m.first(where: { $0.key == "id" }),
                  let id = idEntry.value.scalar?.string else { continue }
            if ids[id] != nil {
                error(idEntry.value, "duplicate indicator id '\(id)'; every id must be unique")
            } else {
                ids[id] = i
            }
        }
        var scope = Scope(constants: constants, tables: tables, tableIndex: tableNodes, ids: ids)
        var indicators: [IndicatorDefinition?] = []
        for item in items {
            indicators.append(compileIndicator(item, scope: &scope))
        }
        checkReferences(items: items, indicators: indicators)
        guard diagnostics.isEmpty, !name.isEmpty else { return nil }
        return Pipeline(name: name, file: file, timeZoneIdentifier: zone, constants: constants,
                        indicators: indicators.map { $0! }, tables: tables, catalog: catalog)
    }

    static func yamlDiagnostic(_ e: YamlError, file: String) -> Diagnostic {
        switch e {
        case .scanner(let ctx, let problem, let mark, _), .parser(let ctx, let problem, let mark, _), .composer(let ctx, let problem, let mark, _):
            return Diagnostic(file: file, line: mark.line, column: mark.column,
                              message: "YAML syntax: \(ctx.map { "\($0.description) " } ?? "")\(problem)")
        default:
            return Diagnostic(file: file, line: 1, column: 1, message: "YAML: \(e)")
        }
    }

    mutating func duplicateKeys(_ m: [(key: String, keyNode: Node, value: Node)]) {
        var seen = Set<String>()
        for e in m where !seen.insert(e.key).inserted {
            error(e.keyNode, "duplicate key '\(e.key)'; remove one of them")
        }
    }

    struct Scope {
        let constants: [(name: String, value: Double)]
        let tables: [TableDefinition]
        let tableIndex: [String: Int]
        let ids: [String: Int]
        func constant(_ n: String) -> Double? { constants.first { $0.name == n }?.value }
    }

    // MARK: Types and fields

    mutating func resolveTypes(_ node: Node, _ what: String) -> [Int]? {
        guard let list = stringList(node, what) else { return nil }
        var out: [Int] = []
        var ok = true
        for (name, n) in list {
            if let t = catalog.typeIndex(name) {
                if !out.contains(t) { out.append(t) }
            } else {
                ok = false
                let near = Suggest.nearest(name, in: catalog.types.map(\.name))
                error(n, "unknown event type '\(name)'" + (near.map { "; did you mean '\($0)'?" } ?? "; the catalog types are: \(catalog.types.map(\.name).joined(separator: ", "))"))
            }
        }
        if list.isEmpty {
            error(node, "\(what) is empty; name at least one event type")
            return nil
        }
        return ok ? out : nil
    }

    /// Resolves a field name across the types of a source.
    mutating func resolveField(_ name: String, node: Node, types: [Int]) -> FieldSlots? {
        var slots: [Int] = []
        var kind: Catalog.FieldKind?
        for t in types {
            let ty = catalog.types[t]
            if let s = ty.fieldIndex(name) {
                slots.append(s)
                if kind == nil { kind = ty.fields[s].kind }
            } else {
                slots.append(-1)
            }
        }
        guard let k = kind else {
            var fields: [String] = []
            for t in types { for f in catalog.types[t].fields where !fields.contains(f.name) { fields.append(f.name) } }
            let typeNames = types.map { catalog.types[$0].name }.joined(separator: ", ")
            error(node, "unknown field '\(name)' for \(typeNames)\(Suggest.didYouMean(name, in: fields)); its fields are: \(fields.joined(separator: ", "))")
            return nil
        }
        return FieldSlots(name: name, slots: slots, kind: k)
    }

    // MARK: Tables

    mutating func compileTable(name: String, node: Node) -> TableDefinition? {
        guard let m = expectMapping(node, "table '\(name)'") else { return nil }
        checkKeys(m, allowed: ["events", "key"], in: "table '\(name)'")
        guard let ev = m.first(where: { $0.key == "events" }) else {
            error(node, "table '\(name)' needs `events: TYPE` (the event types whose latest version per key it keeps)")
            return nil
        }
        guard let types = resolveTypes(ev.value, "`events`") else { return nil }
        var key: FieldSlots?
        if let k = m.first(where: { $0.key == "key" }), let kname = scalarString(k.value, "`key`") {
            guard let f = resolveField(kname, node: k.value, types: types) else { return nil }
            if f.slots.contains(-1) {
                error(k.value, "key field '\(kname)' must exist in every type of the table")
                return nil
            }
            switch f.kind {
            case .string, .int: break
            default:
                error(k.value, "key field '\(kname)' must be a `str` or `int` field")
                return nil
            }
            key = f
        }
        return TableDefinition(name: name, types: types, key: key)
    }

    // MARK: Indicators

    static let indicatorKeys = ["id", "title", "unit", "decimals", "events", "table", "derive", "where", "aggregate",
                                "share", "over", "of", "by", "divide_by", "window"]
    static let aggregates = ["count", "sum(FIELD)", "min(FIELD)", "max(FIELD)", "distinct(FIELD)"]

    mutating func compileIndicator(_ node: Node, scope: inout Scope) -> IndicatorDefinition? {
        guard let m = expectMapping(node, "an indicator") else { return nil }
        checkKeys(m, allowed: Self.indicatorKeys, in: "an indicator")
        duplicateKeys(m)
        func entry(_ k: String) -> (key: String, keyNode: Node, value: Node)? { m.first { $0.key == k } }
        guard let idE = entry("id"), let id = scalarString(idE.value, "`id`") else {
            error(node, "an indicator needs `id: ...` (e.g. `id: ndxp.endpoints`)")
            return nil
        }
        if id.isEmpty { error(idE.value, "`id` must not be empty") }
        let title = entry("title").flatMap { $0.value.scalar?.string } ?? id
        var unit = ""
        if let u = entry("unit"), let s = scalarString(u.value, "`unit`") { unit = s } else {
            error(node, "indicator '\(id)' needs `unit: ...` (count, %, VND, USD, ...)")
        }
        var decimals = 2
        if let d = entry("decimals") {
            if let s = d.value.scalar?.string, let v = Int(s), (0...9).contains(v) { decimals = v } else {
                error(d.value, "`decimals` must be an integer from 0 to 9")
            }
        }
        var divideBy: Double?
        if let d = entry("divide_by"), let s = scalarString(d.value, "`divide_by`") {
            if let v = Double(s), v != 0, v.isFinite { divideBy = v } else if let c = scope.constant(s), c != 0 { divideBy = c } else {
                error(d.value, "`divide_by` must be a non-zero number or a constant name (\(scope.constants.map(\.name).joined(separator: ", ")))")
            }
        }

        let sources = ["events", "table", "derive"].filter { entry($0) != nil }
        if sources.count != 1 {
            error(sources.count == 0 ? idE.value : entry(sources[1])!.keyNode,
                  "indicator '\(id)' needs exactly one of `events: TYPE`, `table: NAME` or `derive: {OP: ID}`")
            return nil
        }

        if let d = entry("derive") {
            for k in ["where", "aggregate", "share", "over", "by", "window", "of"] {
                if let e = entry(k) { error(e.keyNode, "`\(k)` does not apply to a derived indicator; it takes the shape of the indicator it derives from") }
            }
            guard let dm = expectMapping(d.value, "`derive`"), dm.count == 1 else {
                if Self.mapping(d.value)?.count ?? 1 != 1 { error(d.value, "`derive` takes exactly one operation: \(DerivedOp.allCases.map(\.rawValue).joined(separator: ", "))") }
                return nil
            }
            guard let op = DerivedOp(rawValue: dm[0].key) else {
                error(dm[0].keyNode, "unknown derivation '\(dm[0].key)'\(Suggest.didYouMean(dm[0].key, in: DerivedOp.allCases.map(\.rawValue))); valid: \(DerivedOp.allCases.map(\.rawValue).joined(separator: ", "))")
                return nil
            }
            guard let ref = scalarString(dm[0].value, "the derived indicator's reference") else { return nil }
            guard let idx = scope.ids[ref] else {
                error(dm[0].value, "unknown indicator '\(ref)'\(Suggest.didYouMean(ref, in: Array(scope.ids.keys)))")
                return nil
            }
            return IndicatorDefinition(id: id, title: title, unit: unit, decimals: decimals, kind: .derived(op, idx), of: nil, divideBy: divideBy)
        }

        // Source.
        let source: SourceSpec
        let types: [Int]
        if let e = entry("events") {
            guard let t = resolveTypes(e.value, "`events`") else { return nil }
            source = .events(t)
            types = t
        } else {
            let e = entry("table")!
            guard let name = scalarString(e.value, "`table`") else { return nil }
            guard let ti = scope.tableIndex[name] else {
                error(e.value, "unknown table '\(name)'\(Suggest.didYouMean(name, in: Array(scope.tableIndex.keys))); declare it under `tables:`")
                return nil
            }
            source = .table(ti)
            types = scope.tables[ti].types
            if let w = entry("window") {
                error(w.keyNode, "`window` does not apply to a table: a table is evaluated as of the clock T (latest row per key)")
            }
        }
        let isEvents: Bool = { if case .events = source { return true } else { return false } }()

        var ok = true
        var yearField: FieldSlots?
        var whereConds: [Condition] = []
        if let w = entry("where") {
            if let c = compileFilter(w.value, types: types, allowYear: isEvents, yearField: &yearField) { whereConds = c } else { ok = false }
        }

        // Aggregate.
        guard let aggE = entry("aggregate"), let aggText = scalarString(aggE.value, "`aggregate`") else {
            error(idE.value, "indicator '\(id)' needs `aggregate:` (\(Self.aggregates.joined(separator: ", ")))")
            return nil
        }
        var distinct: FieldSlots?
        var measure = Measure.count
        switch parseAggregate(aggText, node: aggE.value, types: types) {
        case .none: return nil
        case .some(.distinct(let f)): distinct = f
        case .some(.measure(let m)): measure = m
        }

        var window = WindowSpec.cumulative
        if let w = entry("window"), let s = scalarString(w.value, "`window`") {
            if let parsed = parseWindow(s, node: w.value) { window = parsed } else { ok = false }
        }
        if distinct != nil, case .last = window {
            error(entry("window")!.value, "distinct(...) supports `cumulative`, to-date calendar windows and trailing durations, not `\(window.canonical)`")
            ok = false
        }

        var channels = [Channel(filter: whereConds, measure: measure)]
        var shape = Shape.plain
        if let s = entry("share") {
            if distinct != nil { error(s.keyNode, "`share` does not apply to distinct(...); count a table's rows instead"); ok = false }
            var yf: FieldSlots?
            if let c = compileFilter(s.value, types: types, allowYear: false, yearField: &yf) {
                channels.append(Channel(filter: whereConds + c, measure: measure))
                shape = .share
            } else { ok = false }
        }
        if let o = entry("over") {
            if shape != .plain { error(o.keyNode, "use either `share` or `over`, not both"); ok = false }
            if distinct != nil { error(o.keyNode, "`over` does not apply to distinct(...)"); ok = false }
            if let s = scalarString(o.value, "`over`") {
                switch parseAggregate(s, node: o.value, types: types) {
                case .some(.measure(let m)):
                    channels.append(Channel(filter: whereConds, measure: m))
                    shape = .over
                case .some(.distinct):
                    error(o.value, "`over` takes count, sum(FIELD), min(FIELD) or max(FIELD)"); ok = false
                case .none: ok = false
                }
            }
        }
        if measure.isMinMax || channels.contains(where: { $0.measure.isMinMax }), case .trailing = window {
            // supported: min/max over trailing windows scan the ring.
        }

        var of: OfSpec?
        if let o = entry("of") {
            of = compileOf(o.value, scope: scope, types: types, channels: &channels, distinct: distinct)
            if of == nil { ok = false }
        }
        var ofChannel: Int?
        if case .channel(let c) = of { ofChannel = c }

        var by: FieldSlots?
        if let b = entry("by"), let s = scalarString(b.value, "`by`") {
            if let f = resolveField(s, node: b.value, types: types) {
                if case .stringArray = f.kind { error(b.value, "`by` needs a `str`, `int` or `bool` field; '\(s)' is a list"); ok = false }
                else if case .number = f.kind { error(b.value, "`by` needs a `str`, `int` or `bool` field; '\(s)' is a number"); ok = false }
                by = f
            } else { ok = false }
        }

        var integral = shape == .plain && divideBy == nil
        if integral, distinct == nil {
            switch measure {
            case .count: break
            case .sum(let f), .min(let f), .max(let f): integral = f.kind == .int
            }
        }
        guard ok else { return nil }
        let agg = AggregateDefinition(source: source, types: types, window: window, by: by, yearPartition: yearField,
                                      distinct: distinct, channels: channels, shape: shape, ofChannel: ofChannel, integral: integral)
        return IndicatorDefinition(id: id, title: title, unit: unit, decimals: decimals, kind: .aggregate(agg), of: of, divideBy: divideBy)
    }

    enum ParsedAggregate { case measure(Measure), distinct(FieldSlots) }

    mutating func parseAggregate(_ text: String, node: Node, types: [Int]) -> ParsedAggregate? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "count" { return .measure(.count) }
        guard let open = t.firstIndex(of: "("), t.hasSuffix(")") else {
            error(node, "unknown aggregate '\(t)'\(Suggest.didYouMean(t, in: ["count", "sum", "min", "max", "distinct"])); valid aggregates: \(Self.aggregates.joined(separator: ", "))")
            return nil
        }
        let fn = String(t[..<open]).trimmingCharacters(in: .whitespaces)
        let arg = String(t[t.index(after: open)..<t.index(before: t.endIndex)]).trimmingCharacters(in: .whitespaces)
        guard ["sum", "min", "max", "distinct"].contains(fn) else {
            error(node, "unknown aggregate '\(fn)(...)'\(Suggest.didYouMean(fn, in: ["sum", "min", "max", "distinct"])); valid aggregates: \(Self.aggregates.joined(separator: ", "))")
            return nil
        }
        guard let f = resolveField(arg, node: node, types: types) else { return nil }
        if fn == "distinct" {
            switch f.kind {
            case .string, .int: return .distinct(f)
            default:
                error(node, "distinct(\(arg)) needs a `str` or `int` field")
                return nil
            }
        }
        guard f.kind == .int || f.kind == .number else {
            error(node, "\(fn)(\(arg)) needs an `int` or `num` field; '\(arg)' is not a number (use count with a `where` filter instead)")
            return nil
        }
        switch fn {
        case "sum": return .measure(.sum(f))
        case "min": return .measure(.min(f))
        default: return .measure(.max(f))
        }
    }

    mutating func parseWindow(_ text: String, node: Node) -> WindowSpec? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [String: CalendarUnit] = ["day": .day, "month": .month, "quarter": .quarter, "year": .year]
        if t == "cumulative" { return .cumulative }
        if let u = units[t] { return .toDate(u) }
        if t.hasPrefix("last "), let u = units[String(t.dropFirst(5)).trimmingCharacters(in: .whitespaces)] { return .last(u) }
        let digits = t.prefix { $0.isASCII && $0.isNumber }
        let rest = t.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        let scale: [String: Micros] = ["s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000]
        if !digits.isEmpty, let n = Int64(digits) {
            if let s = scale[rest], n > 0 { return .trailing(n * s) }
            let guesses: [String: String] = ["hr": "h", "hrs": "h", "hour": "h", "hours": "h", "day": "d", "days": "d",
                                             "min": "m", "mins": "m", "minute": "m", "minutes": "m", "sec": "s", "secs": "s",
                                             "second": "s", "seconds": "s", "H": "h", "D": "d", "M": "m", "S": "s"]
            if let u = guesses[rest] ?? Suggest.nearest(rest, in: ["s", "m", "h", "d"]), n > 0 {
                error(node, "unknown window '\(t)'; did you mean \(n)\(u)? (durations are a number and s, m, h or d)")
            } else {
                error(node, "unknown window '\(t)'; a duration is a positive number and s, m, h or d (e.g. 24h, 30d)")
            }
            return nil
        }
        let all = ["cumulative", "day", "month", "quarter", "year", "last day", "last month", "last quarter", "last year"]
        let aliases = ["ytd": "year", "mtd": "month", "qtd": "quarter", "today": "day", "all": "cumulative"]
        let hint = aliases[t].map { " (did you mean '\($0)'?)" } ?? Suggest.didYouMean(t, in: all)
        error(node, "unknown window '\(t)'\(hint); valid: \(all.joined(separator: ", ")), or a duration such as 24h, 30d")
        return nil
    }

    // MARK: Filters

    mutating func compileFilter(_ node: Node, types: [Int], allowYear: Bool, yearField: inout FieldSlots?) -> [Condition]? {
        guard let m = expectMapping(node, "a filter") else { return nil }
        duplicateKeys(m)
        var out: [Condition] = []
        var ok = true
        for entry in m {
            if entry.key == "$type" {
                guard let list = stringList(entry.value.mapping.flatMap { mm in mm.first { $0.key.scalar?.string == "in" }?.value } ?? entry.value, "`$type`") else { ok = false; continue }
                var positions: [Int] = []
                for (name, n) in list {
                    guard let ti = catalog.typeIndex(name) else {
                        error(n, "unknown event type '\(name)'\(Suggest.didYouMean(name, in: catalog.types.map(\.name)))"); ok = false; continue
                    }
                    guard let pos = types.firstIndex(of: ti) else {
                        error(n, "'\(name)' is not one of this source's types (\(types.map { catalog.types[$0].name }.joined(separator: ", ")))"); ok = false; continue
                    }
                    positions.append(pos)
                }
                out.append(.typeIn(positions))
                continue
            }
            guard let f = resolveField(entry.key, node: entry.keyNode, types: types) else { ok = false; continue }
            if let s = entry.value.scalar?.string, s == "$year" {
                guard allowYear else { error(entry.value, "`$year` is only allowed in the `where` of an `events:` indicator"); ok = false; continue }
                guard f.kind == .int else { error(entry.value, "`$year` compares with an `int` field; '\(f.name)' is not one"); ok = false; continue }
                yearField = f
                continue
            }
            if entry.value.scalar != nil {
                if let l = literal(entry.value, field: f) { out.append(.equals(f, l)) } else { ok = false }
                continue
            }
            guard let ops = Self.mapping(entry.value) else {
                error(entry.value, "a condition is `field: value` or `field: {in: [...]}`, `{gt: n}`, `{present: true}`, `{contains: v}`..."); ok = false; continue
            }
            let valid = ["eq", "ne", "in", "gt", "gte", "lt", "lte", "present", "contains"]
            for op in ops {
                switch op.key {
                case "eq", "ne":
                    if let l = literal(op.value, field: f) { out.append(op.key == "eq" ? .equals(f, l) : .notEquals(f, l)) } else { ok = false }
                case "in":
                    guard case .sequence(let seq) = op.value else { error(op.value, "`in` takes a list, e.g. `{in: [full, partial]}`"); ok = false; continue }
                    var ls: [Literal] = []
                    for item in seq { if let l = literal(item, field: f) { ls.append(l) } else { ok = false } }
                    out.append(.oneOf(f, ls))
                case "gt", "gte", "lt", "lte":
                    guard f.kind == .int || f.kind == .number else { error(op.keyNode, "`\(op.key)` compares numbers; '\(f.name)' is not an `int` or `num` field"); ok = false; continue }
                    guard let s = op.value.scalar?.string, let v = Double(s) else { error(op.value, "`\(op.key)` takes a number"); ok = false; continue }
                    out.append(.compare(f, CompareOp(rawValue: UInt8(valid.firstIndex(of: op.key)! - 3))!, v))
                case "present":
                    guard let s = op.value.scalar?.string, let b = Bool(s) else { error(op.value, "`present` takes true or false"); ok = false; continue }
                    out.append(.present(f, b))
                case "contains":
                    guard f.kind == .stringArray else { error(op.keyNode, "`contains` applies to a list field ([str]); '\(f.name)' is not one (use `\(f.name): value`)"); ok = false; continue }
                    guard let s = op.value.scalar?.string else { error(op.value, "`contains` takes a single string"); ok = false; continue }
                    out.append(.contains(f, s))
                default:
                    error(op.keyNode, "unknown condition '\(op.key)'\(Suggest.didYouMean(op.key, in: valid)); valid: \(valid.joined(separator: ", "))"); ok = false
                }
            }
        }
        return ok ? out : nil
    }

    /// A filter literal checked against the field's catalog type.
    mutating func literal(_ node: Node, field f: FieldSlots) -> Literal? {
        guard let s = node.scalar?.string else { error(node, "expected a single value for '\(f.name)'"); return nil }
        switch f.kind {
        case .string(let allowed):
            if let allowed, !allowed.contains(s) {
                error(node, "'\(s)' is not a value of '\(f.name)'\(Suggest.didYouMean(s, in: allowed)); valid values: \(allowed.joined(separator: ", "))")
                return nil
            }
            return .string(s)
        case .stringArray:
            error(node, "'\(f.name)' is a list; use `\(f.name): {contains: \(s)}`")
            return nil
        case .int:
            guard let v = Int64(s) else { error(node, "'\(f.name)' is an integer field; '\(s)' is not an integer"); return nil }
            return .int(v)
        case .number:
            guard let v = Double(s) else { error(node, "'\(f.name)' is a number field; '\(s)' is not a number"); return nil }
            return .number(v)
        case .bool:
            guard let v = Bool(s) else { error(node, "'\(f.name)' is a boolean field; write true or false, not '\(s)'"); return nil }
            return .bool(v)
        }
    }

    // MARK: of

    mutating func compileOf(_ node: Node, scope: Scope, types: [Int], channels: inout [Channel], distinct: FieldSlots?) -> OfSpec? {
        if let s = node.scalar?.string {
            if let v = Double(s), v.isFinite { return .constant(v) }
            error(node, "`of` takes a number, `{constant: NAME}`, `{indicator: ID}` or `{where: FILTER}`")
            return nil
        }
        guard let m = expectMapping(node, "`of`"), m.count == 1 else {
            error(node, "`of` takes exactly one of `{constant: NAME}`, `{indicator: ID}`, `{where: FILTER}`")
            return nil
        }
        let e = m[0]
        switch e.key {
        case "constant":
            guard let n = scalarString(e.value, "the constant name") else { return nil }
            guard let v = scope.constant(n) else {
                error(e.value, "unknown constant '\(n)'\(Suggest.didYouMean(n, in: scope.constants.map(\.name))); declare it under `constants:`")
                return nil
            }
            return .constant(v)
        case "indicator":
            guard let n = scalarString(e.value, "the indicator id") else { return nil }
            guard let i = scope.ids[n] else {
                error(e.value, "unknown indicator '\(n)'\(Suggest.didYouMean(n, in: Array(scope.ids.keys)))")
                return nil
            }
            return .indicator(i)
        case "where":
            if distinct != nil { error(e.keyNode, "`of: {where: ...}` counts events or rows; it does not combine with distinct(...)"); return nil }
            var yf: FieldSlots?
            guard let c = compileFilter(e.value, types: types, allowYear: false, yearField: &yf) else { return nil }
            channels.append(Channel(filter: c, measure: .count))
            return .channel(channels.count - 1)
        default:
            error(e.keyNode, "unknown `of` form '\(e.key)'\(Suggest.didYouMean(e.key, in: ["constant", "indicator", "where"])); valid: constant, indicator, where")
            return nil
        }
    }

    // MARK: References

    /// Cycles between derived indicators and `of: {indicator:}` references; derivations that
    /// cannot be evaluated in the past.
    mutating func checkReferences(items: [Node], indicators: [IndicatorDefinition?]) {
        func refs(_ i: Int) -> [Int] {
            guard let d = indicators[i] else { return [] }
            var r: [Int] = []
            if case .derived(_, let t) = d.kind { r.append(t) }
            if case .indicator(let t) = d.of { r.append(t) }
            return r
        }
        var state = [UInt8](repeating: 0, count: indicators.count) // 0 new, 1 on stack, 2 done
        var reported = Set<Int>()
        func visit(_ i: Int, _ path: [Int]) -> [Int]? {
            if state[i] == 2 { return nil }
            if state[i] == 1 { return Array(path[path.firstIndex(of: i)!...]) + [i] }
            state[i] = 1
            for r in refs(i) { if let c = visit(r, path + [i]) { return c } }
            state[i] = 2
            return nil
        }
        for i in indicators.indices where state[i] == 0 {
            if let cycle = visit(i, []), !reported.contains(cycle[0]) {
                cycle.forEach { reported.insert($0) }
                let names = cycle.compactMap { indicators[$0]?.id }.joined(separator: " → ")
                error(Self.mapping(items[cycle[0]])?.first { $0.key == "id" }?.value ?? items[cycle[0]],
                      "cycle between indicators: \(names); a derived indicator must not depend on itself")
                for j in cycle { state[j] = 2 }
            }
        }
        for (i, d) in indicators.enumerated() {
            guard let d, case .derived(let op, let t) = d.kind, let target = indicators[t] else { continue }
            let node = Self.mapping(items[i])?.first { $0.key == "derive" }?.value ?? items[i]
            if op == .share, target.of == nil {
                error(node, "`share` divides '\(target.id)' by its `of`, but it has none; add `of:` to '\(target.id)'")
            }
            if case .aggregate(let a) = target.kind, op != .share, a.distinct == nil,
               a.channels.contains(where: { $0.measure.isMinMax }), a.window == .cumulative || { if case .trailing = a.window { return true } else { return false } }() {
                error(node, "'\(target.id)' is a min/max over a cumulative or trailing window, which cannot be evaluated a year ago; use a calendar window")
            }
        }
    }
}
