import TallyEngine
import Testing

// MARK: - DecodedOutcome copies of decoder outcomes (views die when `decode` returns)

enum DecodedValue: Equatable, CustomStringConvertible {
    case absent
    case string(String)
    case int(Int64)
    case number(Double)
    case bool(Bool)
    case strings([String])

    init(_ v: FieldValue) {
        switch v {
        case .absent: self = .absent
        case .string(let s): self = .string(s.string)
        case .int(let i): self = .int(i)
        case .number(let d): self = .number(d)
        case .bool(let b): self = .bool(b)
        case .strings(let l): self = .strings(l.map(\.string))
        }
    }

    var description: String {
        switch self {
        case .absent: return "absent"
        case .string(let s): return "\"\(s)\""
        case .int(let i): return "\(i)"
        case .number(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        case .strings(let l): return "\(l)"
        }
    }
}

enum DecodedOutcome: Equatable {
    case event(type: String, time: Micros, source: String, id: String, fields: [DecodedValue], key: EventKey)
    case unrouted(type: String, source: String)
    case balance(indicator: String, value: Double, at: Micros, source: String, id: String)
    case rejected(RejectReason)

    init(_ o: DecodeOutcome, catalog: Catalog) {
        switch o {
        case .event(let e):
            self = .event(type: catalog.types[e.typeIndex].name, time: e.time, source: e.source.string, id: e.id.string,
                          fields: e.fields.map(DecodedValue.init), key: e.dedupKey)
        case .unrouted(let t, let s): self = .unrouted(type: t.string, source: s.string)
        case .balance(let i, let v, let at, let s, let id):
            self = .balance(indicator: i.string, value: v, at: at, source: s.string, id: id.string)
        case .rejected(let r): self = .rejected(r)
        }
    }

    var reason: RejectReason? {
        if case .rejected(let r) = self { return r }
        return nil
    }

    var fields: [DecodedValue]? {
        if case .event(_, _, _, _, let f, _) = self { return f }
        return nil
    }
}

struct DecodedFrame {
    var frame: RejectReason?
    var outcomes: [DecodedOutcome]
    var indices: [Int]

    /// The single outcome of a one-event frame.
    var only: DecodedOutcome? { frame == nil && outcomes.count == 1 ? outcomes[0] : nil }
}

func decodeFrame(_ bytes: [UInt8], decoder: inout EventDecoder) -> DecodedFrame {
    var out: [DecodedOutcome] = []
    var indices: [Int] = []
    let catalog = decoder.catalog
    let frame = bytes.withUnsafeBytes { raw in
        decoder.decode(raw) { i, o in
            indices.append(i)
            out.append(DecodedOutcome(o, catalog: catalog))
        }
    }
    return DecodedFrame(frame: frame, outcomes: out, indices: indices)
}

func decodeFrame(_ bytes: [UInt8], limits: DecodeLimits = .init()) -> DecodedFrame {
    var d = EventDecoder(limits: limits)
    return decodeFrame(bytes, decoder: &d)
}

func decodeFrame(_ text: String, limits: DecodeLimits = .init()) -> DecodedFrame {
    decodeFrame(Array(text.utf8), limits: limits)
}

// MARK: - Building events

/// A valid `ndxp.transaction` event as JSON text; `replacing` swaps whole members
/// (`"id":"e-1"` style fragments) and `data` replaces the data object's text.
struct DecoderEventText {
    var members: [(String, String)] = [
        ("specversion", "\"1.0\""), ("id", "\"e-1\""), ("source", "\"/ndxp/gw-01\""), ("type", "\"ndxp.transaction\""),
        ("datacontenttype", "\"application/json\""), ("time", "\"2024-04-30T23:59:59.123+07:00\""),
        ("data", "{\"endpoint\":\"cp-0794\",\"consumer\":\"ubnd-hn\",\"provider\":\"btp\",\"status\":\"ok\"}"),
    ]

    init() {}

    init(type: String, data: String) {
        self[ "type"] = "\"\(type)\""
        self["data"] = data
    }

    subscript(key: String) -> String? {
        get { members.first { $0.0 == key }?.1 }
        set {
            if let i = members.firstIndex(where: { $0.0 == key }) {
                if let v = newValue { members[i].1 = v } else { members.remove(at: i) }
            } else if let v = newValue {
                members.append((key, v))
            }
        }
    }

    var json: String { "{" + members.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}" }
}

func decodeRejection(_ e: DecoderEventText) -> RejectReason? { decodeFrame(e.json).only?.reason }
