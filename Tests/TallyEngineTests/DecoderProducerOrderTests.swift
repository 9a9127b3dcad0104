import TallyEngine
import Testing

// MARK: - The envelope in producer order

/// The scanner matches an event that starts `{"specversion":"1.0","id":"…","source":"…",
/// "type":"…","datacontenttype":"application/json","time":"…","data":{` (how producers write
/// it) with a few wide compares, and hands over to the general member loop at the first
/// difference. A space after the opening `{` sends the whole event through the general loop,
/// so every test here decodes each frame both ways and expects the same outcome: the same
/// event (fields, time, dedup key), or the same rejection with the same message.
@Suite("Decoder: the envelope in producer order")
struct DecoderProducerOrderTests {
    /// The frame with a space after each event's `{`: the general path's input.
    static func general(_ json: String) -> String {
        json.replacingOccurrences(of: "{\"specversion\"", with: "{ \"specversion\"")
    }

    /// Decodes `json` as written and through the general path, and expects the same result.
    /// Frame-level rejections carry byte offsets (shifted by the inserted spaces): their codes
    /// must match.
    @discardableResult
    static func expectSame(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) -> DecodedFrame {
        var a = EventDecoder(), b = EventDecoder()
        return expectSame(json, &a, &b, sourceLocation: sourceLocation)
    }

    /// ``expectSame(_:sourceLocation:)`` with the two decoders given (reused across frames).
    @discardableResult
    static func expectSame(_ json: String, _ a: inout EventDecoder, _ b: inout EventDecoder,
                           sourceLocation: SourceLocation = #_sourceLocation) -> DecodedFrame {
        let fast = decodeFrame(Array(json.utf8), decoder: &a)
        let slow = decodeFrame(Array(general(json).utf8), decoder: &b)
        if fast.frame != nil || slow.frame != nil {
            #expect(fast.frame?.code == slow.frame?.code, "\(json)", sourceLocation: sourceLocation)
        } else {
            #expect(fast.outcomes == slow.outcomes, "\(json)", sourceLocation: sourceLocation)
            #expect(fast.indices == slow.indices, "\(json)", sourceLocation: sourceLocation)
        }
        return fast
    }

    /// A valid `data` object for a catalog type: every field, in catalog order, with a value of
    /// its kind (the first allowed value of an enumeration).
    static func data(_ type: Catalog.EventType) -> String {
        "{" + dataMembers(type).map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    /// ``data(_:)``'s members as (name, value text).
    static func dataMembers(_ type: Catalog.EventType) -> [(String, String)] {
        type.fields.map { f -> (String, String) in
            let v: String
            switch f.kind {
            case .string(let allowed): v = "\"\(allowed?.first ?? "v-\(f.name)")\""
            case .int: v = "42"
            case .number: v = "12.5"
            case .bool: v = "true"
            case .stringArray: v = "[\"a\",\"b\"]"
            }
            return (f.name, v)
        }
    }

    static let types = Catalog.v1.types.map(\.name)

    @Test("every catalog type decodes the same in producer order and through the general path", arguments: types)
    func everyType(_ name: String) throws {
        let type = try #require(Catalog.v1.types.first { $0.name == name })
        let e = DecoderEventText(type: name, data: Self.data(type))
        let frame = Self.expectSame(e.json)
        let o = try #require(frame.only)
        switch o {
        case .event(let t, _, let source, let id, let fields, _):
            #expect(t == name && source == "/ndxp/gw-01" && id == "e-1")
            #expect(fields.allSatisfy { $0 != .absent }, "\(fields)")
        case .balance(_, let v, _, _, _):
            #expect(v == 12.5)
        default:
            Issue.record("\(name): \(o)")
        }
        // The same event inside a batch, next to itself with another id.
        var other = e
        other["id"] = "\"e-2\""
        Self.expectSame("[" + e.json + "," + other.json + "]")
    }

    @Test("a missing or null required field is named, the first in catalog order", arguments: types)
    func requiredFields(_ name: String) throws {
        let type = try #require(Catalog.v1.types.first { $0.name == name })
        let members = Self.dataMembers(type)
        let required = type.fields.indices.filter { type.fields[$0].required }
        for (k, i) in required.enumerated() {
            for (renamed, value, how) in [(true, members[i].1, "is missing"), (false, "null", "is null")] {
                var m = members
                m[i] = (renamed ? "x-" + m[i].0 : m[i].0, value)
                // A later required field missing too: this one is still the one named.
                if k + 1 < required.count { m[required[k + 1]].0 = "y-" + m[required[k + 1]].0 }
                let data = "{" + m.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
                let e = DecoderEventText(type: name, data: data)
                let r = Self.expectSame(e.json).only?.reason
                #expect(r == RejectReason(code: .missingField, message: "data.\(members[i].0): required field \(how)"), "\(e.json)")
            }
        }
    }

    @Test("every order of the seven members decodes to the same event")
    func everyOrder() throws {
        let canonical = try #require(decodeFrame(DecoderEventText().json).only)
        let members = DecoderEventText().members
        var count = 0
        var a = EventDecoder(), b = EventDecoder()
        func permute(_ done: [(String, String)], _ rest: [(String, String)]) {
            if rest.isEmpty {
                var e = DecoderEventText()
                e.members = done
                #expect(Self.expectSame(e.json, &a, &b).only == canonical, "\(e.json)")
                count += 1
                return
            }
            for i in rest.indices {
                var r = rest
                let m = r.remove(at: i)
                permute(done + [m], r)
            }
        }
        permute([], members)
        #expect(count == 5040)
    }

    @Test("whitespace anywhere between the tokens decodes to the same event")
    func whitespace() throws {
        let json = DecoderEventText().json
        let canonical = try #require(decodeFrame(json).only)
        // Every byte position outside strings (a space inside a string would change the value).
        var inString = false, escaped = false
        var positions: [String.Index] = []
        for i in json.indices {
            let c = json[i]
            if inString {
                if escaped {
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else if c == "\"" {
                    inString = false
                    positions.append(json.index(after: i))
                }
                continue
            }
            if c == "\"" {
                inString = true
                continue
            }
            positions.append(json.index(after: i))
        }
        #expect(positions.count > 40)
        for at in positions {
            for space in [" ", "\n", "\t\r "] {
                var j = json
                j.insert(contentsOf: space, at: at)
                #expect(Self.expectSame(j).only == canonical, "\(j)")
            }
        }
    }

    @Test("escapes in the envelope's strings decode as the general path decodes them",
          arguments: [("id", "\"e\\u002d1\""), ("id", "\"e\\\"1\""), ("source", "\"\\/ndxp\\/gw-01\""),
                      ("type", "\"ndxp\\u002etransaction\""), ("specversion", "\"1\\u002e0\""),
                      ("datacontenttype", "\"application\\/json\""), ("time", "\"2024-04-30T23:59:59.123\\u002b07:00\""),
                      ("id", "\"é-1\""), ("source", "\"/ndxp/gw-\\u00e9\"")])
    func escapes(_ name: String, _ value: String) {
        var e = DecoderEventText()
        e[name] = value
        let frame = Self.expectSame(e.json)
        if case .event? = frame.only {} else { Issue.record("\(e.json): \(frame.outcomes)") }
    }

    @Test("near misses of each expected member get the general path's outcome",
          arguments: [
              ("specversion", "\"1.1\""), ("specversion", "\"1.0 \""), ("specversion", "\"1.00\""), ("specversion", "1.0"),
              ("specversion", "null"), ("id", "\"\""), ("id", "7"), ("id", "{\"a\":1}"), ("source", "\"\""),
              ("source", "[\"/x\"]"), ("type", "\"\""), ("type", "\"no.such.type\""), ("type", "\"tally.balance\""),
              ("type", "true"), ("datacontenttype", "\"application/json;charset=utf-8\""),
              ("datacontenttype", "\"application/json \""), ("datacontenttype", "\"text/plain\""),
              ("datacontenttype", "\"application/jso\""), ("datacontenttype", "null"),
              ("time", "\"2024-04-30T23:59:59+07:00\""), ("time", "\"2024-02-30T23:59:59.123+07:00\""),
              ("time", "\"2024-04-30\""), ("time", "1714496399"), ("data", "null"), ("data", "[]"), ("data", "{}"),
              ("data", "{\"endpoint\":\"cp-1\"}"), ("data", "{\"status\":\"ok\",\"endpoint\":\"cp-1\",\"consumer\":\"c\",\"provider\":\"p\"}"),
          ])
    func nearMisses(_ name: String, _ value: String) {
        var e = DecoderEventText()
        e[name] = value
        Self.expectSame(e.json)
        // And with the member moved to the end, and removed.
        var moved = e
        moved[name] = nil
        moved[name] = value
        Self.expectSame(moved.json)
        var removed = e
        removed[name] = nil
        Self.expectSame(removed.json)
    }

    @Test("envelope strings longer than the limit are too_large, as through the general path",
          arguments: ["id", "source", "type"])
    func overLimit(_ name: String) {
        var limits = DecodeLimits()
        limits.maxStringLength = 16  // the longest other envelope string, "ndxp.transaction"
        var e = DecoderEventText()
        e[name] = "\"0123456789abcdefg\""
        let fast = decodeFrame(e.json, limits: limits).only?.reason
        let slow = decodeFrame(Self.general(e.json), limits: limits).only?.reason
        #expect(fast == RejectReason(code: .tooLarge, message: "\(name): a string longer than 16 bytes"))
        #expect(fast == slow)
    }

    @Test("keys that share a prefix with an expected key are not taken for it",
          arguments: ["specversions", "specversio", "ids", "i", "sources", "sourc", "types", "typ", "timezone",
                      "tim", "datacontenttypes", "datacontent", "datas", "dat", "Type", "ID"])
    func sharedPrefixes(_ key: String) {
        for replaced in ["specversion", "id", "source", "type", "datacontenttype", "time", "data"] {
            var e = DecoderEventText()
            if let i = e.members.firstIndex(where: { $0.0 == replaced }) { e.members[i].0 = key }
            Self.expectSame(e.json)
            // The look-alike as an extra member right after the real one.
            var extra = DecoderEventText()
            if let i = extra.members.firstIndex(where: { $0.0 == replaced }) {
                extra.members.insert((key, extra.members[i].1), at: i + 1)
            }
            // The look-alike is an extension (or an unknown member): ignored.
            let o = Self.expectSame(extra.json).only
            if case .event? = o {} else { Issue.record("\(extra.json): \(String(describing: o))") }
        }
    }

    @Test("duplicates and members after data get the general path's outcome")
    func duplicatesAndExtensions() {
        let base = DecoderEventText().json
        let tail = String(base.dropLast())
        for extra in [",\"id\":\"e-2\"", ",\"specversion\":\"1.0\"", ",\"data\":{}", ",\"time\":\"2024-04-30T23:59:59.123+07:00\"",
                      ",\"datacontenttype\":\"application/json\"", ",\"subject\":\"s\"", ",\"ext\":[1,{\"a\":null}]",
                      ",\"source\":\"/x\",\"type\":\"ndxp.transaction\"", " ", ",", ",}", "\"x\""] {
            Self.expectSame(tail + extra + "}")
        }
    }

    @Test("every truncation of a frame is rejected as through the general path")
    func truncations() {
        let one = DecoderEventText().json
        var two = DecoderEventText()
        two["id"] = "\"e-2\""
        let batch = "[" + one + "," + two.json + "]"
        for json in [one, batch] {
            let bytes = Array(json.utf8)
            for n in 0..<bytes.count {
                let cut = String(decoding: bytes[0..<n], as: UTF8.self)
                let fast = decodeFrame(cut)
                let slow = decodeFrame(Self.general(cut))
                #expect(fast.frame != nil, "\(cut)")
                #expect(fast.frame?.code == slow.frame?.code, "\(cut)")
            }
        }
    }

    @Test("one decoder reused across frames in and out of producer order gives each frame's own result")
    func reusedDecoder() {
        var d = EventDecoder()
        var e = DecoderEventText()
        let frames: [String] = (0..<40).map { i in
            e["id"] = "\"e-\(i)\""
            e["time"] = "\"2024-04-30T23:\(10 + i % 50):59.123+07:00\""
            let j = e.json
            return i % 3 == 0 ? Self.general(j) : i % 3 == 1 ? j : "[" + j + "]"
        }
        for f in frames {
            let reused = decodeFrame(Array(f.utf8), decoder: &d)
            let fresh = decodeFrame(Self.general(f))
            #expect(reused.frame == nil && reused.outcomes == fresh.outcomes, "\(f)")
        }
    }
}
