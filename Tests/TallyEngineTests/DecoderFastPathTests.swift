import TallyEngine
import Testing

// MARK: - In-place shortcuts for the usual attribute values

/// The decoder reads `"1.0"`, `"application/json"` and `time` strings of 29 and 24 bytes in
/// place instead of scanning them as strings first. These tests put the shortcuts next to
/// near misses, in every position of the event (time last, so it ends near the frame's end),
/// and check each outcome against the general path's: the same event or the same rejection.
@Suite("Decoder: in-place attribute shortcuts")
struct DecoderFastPathTests {
    /// The event with `time` moved to the end (the shortcut needs bytes after the string).
    static func timeLast(_ value: String) -> DecoderEventText {
        var e = DecoderEventText()
        e["time"] = nil
        e["time"] = value
        return e
    }

    @Test("times of the usual shapes decode to the instant the RFC 3339 parser gives, wherever they stand",
          arguments: ["2024-04-30T23:59:59.123+07:00", "2024-04-30T16:59:59.123Z", "2024-04-30T16:59:59.123z",
                      "2024-04-30T23:59:59.123-07:00", "2024-12-31T23:59:60.999+00:00", "2024-04-30 23:59:59.123+07:00"])
    func usualShapes(_ time: String) throws {
        let expected = try #require(RFC3339.parse(UnsafeBufferPointer(start: time, count: time.utf8.count)))
        for var e in [DecoderEventText(), Self.timeLast("\"\(time)\"")] {
            e["time"] = "\"\(time)\""
            let o = try #require(decodeFrame(e.json).only)
            guard case .event(_, let t, _, _, _, _) = o else {
                Issue.record("\(time): expected an event, got \(o)")
                continue
            }
            #expect(t == expected, "\(time)")
        }
    }

    @Test("near misses of the usual shapes get the general path's outcome",
          arguments: ["\"2024-02-30T10:00:00.000+07:00\"",   // 29 bytes, no such day
                      "\"2024-04-30T10:00:00.000+07:0\"",    // 28: a quote where the shortcut looks for none
                      "\"2024-04-30T10:00:00.0000+07:00\"",  // 30
                      "\"2024-04-30T10:00:00.000+07:00\\u0022\"", // an escaped quote after a valid prefix
                      "\"2024-04-30T10:00:00.000\\\"+07:00\"", // an escaped quote inside
                      "\"2024-04-30T10:00:00Z\"", "\"2024-04-30T10:00:00.123456+07:00\"", "\"2024-04-30T10:00:00.00Z\""])
    func nearMisses(_ value: String) throws {
        for e in [{ var x = DecoderEventText(); x["time"] = value; return x }(), Self.timeLast(value)] {
            let o = try #require(decodeFrame(e.json).only)
            let inner = value.dropFirst().dropLast()
            let unescaped = !inner.contains("\\")
            let parsed = unescaped ? String(inner).withCString { RFC3339.parse(UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: inner.utf8.count)) } : nil
            switch o {
            case .event(_, let t, _, _, _, _):
                #expect(parsed == t, "\(value) decoded to \(t)")
            case .rejected(let r):
                #expect(parsed == nil, "\(value) rejected but parses")
                #expect(r.code == .badTime)
                #expect(r.message.contains(Self.quoted(inner)), "\(r.message)")
            default:
                Issue.record("\(value): unexpected \(o)")
            }
        }
    }

    /// How the decoder quotes a value in a message (raw bytes, at most 64).
    static func quoted(_ s: Substring) -> String {
        "\"" + s.replacingOccurrences(of: "\\u0022", with: "\"").replacingOccurrences(of: "\\\"", with: "\"") + "\""
    }

    @Test("specversion and datacontenttype near misses are rejected as before",
          arguments: [("specversion", "\"1.0 \"", "specversion"), ("specversion", "\"1.\\u0030\"", nil),
                      ("datacontenttype", "\"application/jsoN\"", "datacontenttype"),
                      ("datacontenttype", "\"application/json\\u0020\"", nil),
                      ("datacontenttype", "\"application/json;\"", nil)])
    func envelopeNearMisses(_ name: String, _ value: String, _ rejectedAs: String?) throws {
        var e = DecoderEventText()
        e[name] = value
        let r = decodeRejection(e)
        if let rejectedAs {
            #expect(r?.message.hasPrefix("\(rejectedAs):") == true, "\(value): \(String(describing: r))")
        } else {
            #expect(r == nil, "\(value): \(String(describing: r))")
        }
    }
}
