import TallyEngine
import Testing

// MARK: - Envelope

@Suite("Decoder: CloudEvents envelope")
struct DecoderEnvelopeTests {
    @Test("a valid transaction decodes to its catalog type, time, source, id and fields")
    func validTransaction() throws {
        let o = try #require(decodeFrame(DecoderEventText().json).only)
        guard case .event(let type, let time, let source, let id, let fields, _) = o else {
            Issue.record("expected an event, got \(o)")
            return
        }
        #expect(type == "ndxp.transaction")
        #expect(time == 1_714_496_399_123_000)
        #expect(source == "/ndxp/gw-01")
        #expect(id == "e-1")
        #expect(fields == [.string("cp-0794"), .string("ubnd-hn"), .string("btp"), .string("ok")])
    }

    @Test("a missing required attribute is missing_attribute naming it",
          arguments: ["specversion", "id", "source", "type", "time"])
    func missingAttribute(_ name: String) throws {
        var e = DecoderEventText()
        e[name] = nil
        let r = try #require(decodeRejection(e))
        #expect(r.code == .missingAttribute)
        #expect(r.message.hasPrefix("\(name):"))
    }

    @Test("specversion other than \"1.0\" is bad_specversion", arguments: ["\"0.3\"", "\"1.00\"", "1.0", "null"])
    func badSpecversion(_ value: String) throws {
        var e = DecoderEventText()
        e["specversion"] = value
        let r = try #require(decodeRejection(e))
        #expect(r.code == .badSpecversion)
        #expect(r.message.hasPrefix("specversion:"))
    }

    @Test("id, source and type must be non-empty strings (bad_attribute naming the attribute)",
          arguments: [("id", "\"\""), ("id", "17"), ("source", "\"\""), ("source", "{}"), ("type", "\"\""), ("type", "null")])
    func badStringAttribute(_ name: String, _ value: String) throws {
        var e = DecoderEventText()
        e[name] = value
        let r = try #require(decodeRejection(e))
        #expect(r.code == .badAttribute)
        #expect(r.message.hasPrefix("\(name):"))
    }

    @Test("a time that is not RFC 3339 with an offset is bad_time",
          arguments: ["\"2024-04-30T10:00:00\"", "\"2024-02-30T00:00:00Z\"", "\"yesterday\"", "1714496399", "\"2024-04-30T24:00:00Z\""])
    func badTime(_ value: String) throws {
        var e = DecoderEventText()
        e["time"] = value
        let r = try #require(decodeRejection(e))
        #expect(r.code == .badTime)
        #expect(r.message.hasPrefix("time:"))
    }

    @Test("datacontenttype must be application/json (parameters allowed)")
    func contentType() throws {
        var e = DecoderEventText()
        e["datacontenttype"] = "\"application/json; charset=utf-8\""
        #expect(decodeRejection(e) == nil)
        e["datacontenttype"] = "\"text/plain\""
        let r = try #require(decodeRejection(e))
        #expect(r.code == .badAttribute)
        #expect(r.message.hasPrefix("datacontenttype:"))
        e["datacontenttype"] = "\"application/jsonx\""
        #expect(decodeRejection(e)?.code == .badAttribute)
        e["datacontenttype"] = nil
        #expect(decodeRejection(e) == nil)
    }

    @Test("a duplicate attribute is rejected, not resolved by last-wins")
    func duplicateAttribute() throws {
        let text = DecoderEventText().json.decoderReplacing("\"id\":\"e-1\"", "\"id\":\"e-1\",\"id\":\"e-2\"")
        let r = try #require(decodeFrame(text).only?.reason)
        #expect(r.code == .badAttribute)
        #expect(r.message == "id: duplicate attribute")
    }

    @Test("subject and extension attributes are ignored, whatever their shape")
    func extensionsIgnored() {
        var e = DecoderEventText()
        e["subject"] = "\"s\""
        e["traceparent"] = "\"00-abc\""
        e["ext"] = "{\"a\":[1,2,{\"b\":null}],\"c\":true}"
        #expect(decodeRejection(e) == nil)
    }

    @Test("an escaped key is matched by its decoded name")
    func escapedKey() throws {
        let text = DecoderEventText().json.decoderReplacing("\"id\":", "\"\\u0069d\":")
        let o = try #require(decodeFrame(text).only)
        guard case .event(_, _, _, let id, _, _) = o else { Issue.record("\(o)"); return }
        #expect(id == "e-1")
    }

    @Test("a type outside the catalog needs only a valid envelope and is unrouted")
    func unrouted() throws {
        let e = DecoderEventText(type: "vendor.thing.happened", data: "[1,\"x\",{}]")
        #expect(decodeFrame(e.json).only == .unrouted(type: "vendor.thing.happened", source: "/ndxp/gw-01"))
        var noData = e
        noData["data"] = nil
        #expect(decodeFrame(noData.json).only == .unrouted(type: "vendor.thing.happened", source: "/ndxp/gw-01"))
        var bad = e
        bad["time"] = nil
        #expect(decodeRejection(bad)?.code == .missingAttribute)
    }

    @Test("a catalog type needs data as an object")
    func dataMustBeObject() throws {
        var e = DecoderEventText()
        e["data"] = nil
        var r = try #require(decodeRejection(e))
        #expect(r.code == .missingAttribute)
        #expect(r.message.hasPrefix("data:"))
        e["data"] = "null"
        r = try #require(decodeRejection(e))
        #expect(r.code == .missingAttribute)
        e["data"] = "\"cp-1\""
        r = try #require(decodeRejection(e))
        #expect(r.code == .badAttribute)
        #expect(r.message == "data: expected an object, got a string")
    }

    @Test("data before type is validated once the type is known")
    func dataBeforeType() throws {
        let text = #"{"data":{"account":"a-1"},"specversion":"1.0","id":"e","source":"/dvc","time":"2024-02-29T12:00:00Z","type":"dvc.account.registered"}"#
        let o = try #require(decodeFrame(text).only)
        #expect(o.fields == [.string("a-1")])
        let bad = text.decoderReplacing("\"a-1\"", "7")
        #expect(decodeFrame(bad).only?.reason?.code == .wrongType)
    }

    @Test("an empty object reports the first missing attribute")
    func emptyObject() {
        #expect(decodeFrame("{}").only?.reason == RejectReason(code: .missingAttribute, message: "specversion: required attribute is missing"))
    }

    @Test("tally.balance control events decode to balance outcomes")
    func balance() throws {
        let e = DecoderEventText(type: "tally.balance", data: #"{"indicator":"dvc.portal_accounts","value":12500000.5}"#)
        #expect(decodeFrame(e.json).only == .balance(indicator: "dvc.portal_accounts", value: 12_500_000.5,
                                                 at: 1_714_496_399_123_000, source: "/ndxp/gw-01", id: "e-1"))
        let missing = DecoderEventText(type: "tally.balance", data: #"{"indicator":"x"}"#)
        let r = try #require(decodeRejection(missing))
        #expect(r.code == .missingField)
        #expect(r.message.hasPrefix("data.value:"))
    }
}

// MARK: - Data fields

@Suite("Decoder: data fields against the catalog")
struct DecoderDataTests {
    func payment(_ amount: String) -> DecoderEventText {
        DecoderEventText(type: "dvc.payment.completed", data: "{\"payment\":\"p-1\",\"amount_vnd\":\(amount)}")
    }

    func economy(_ revenue: String) -> DecoderEventText {
        DecoderEventText(type: "economy.it.reported", data: "{\"enterprise\":\"e\",\"revenue_usd\":\(revenue),\"export_usd\":0}")
    }

    @Test("a missing required field is missing_field naming it")
    func missingField() throws {
        let e = DecoderEventText(type: "ndxp.transaction", data: #"{"endpoint":"cp-1","consumer":"a","provider":"b"}"#)
        let r = try #require(decodeRejection(e))
        #expect(r.code == .missingField)
        #expect(r.message == "data.status: required field is missing")
    }

    @Test("a wrong JSON type is wrong_type naming the field and both types", arguments: [
        (#"{"endpoint":7,"consumer":"a","provider":"b","status":"ok"}"#, "ndxp.transaction", "data.endpoint: expected a string, got a number"),
        (#"{"payment":"p","amount_vnd":"260000"}"#, "dvc.payment.completed", "data.amount_vnd: expected an integer, got a string"),
        (#"{"payment":"p","amount_vnd":2.5}"#, "dvc.payment.completed", "data.amount_vnd: expected an integer, got a number with a fraction or exponent"),
        (#"{"payment":"p","amount_vnd":1e3}"#, "dvc.payment.completed", "data.amount_vnd: expected an integer, got a number with a fraction or exponent"),
        (#"{"enterprise":"e","revenue_usd":"1","export_usd":2}"#, "economy.it.reported", "data.revenue_usd: expected a number, got a string"),
        (#"{"commune":"c","fiber":"yes"}"#, "infra.commune.reported", "data.fiber: expected a boolean, got a string"),
        (#"{"procedure":"p","authority":"a","level":"full","essential":true,"programs":"qd-422"}"#, "dvc.procedure.listed", "data.programs: expected an array of strings, got a string"),
        (#"{"procedure":"p","authority":"a","level":"full","essential":true,"programs":["a",1]}"#, "dvc.procedure.listed", "data.programs[1]: expected a string, got a number"),
    ])
    func wrongType(_ data: String, _ type: String, _ message: String) throws {
        let r = try #require(decodeRejection(DecoderEventText(type: type, data: data)))
        #expect(r.code == .wrongType)
        #expect(r.message == message)
    }

    @Test("an unacceptable value of the right type is bad_value naming the field", arguments: [
        (#"{"endpoint":"","consumer":"a","provider":"b","status":"ok"}"#, "ndxp.transaction", "data.endpoint: expected a non-empty string"),
        (#"{"endpoint":"e","consumer":"a","provider":"b","status":"maybe"}"#, "ndxp.transaction", "data.status: expected one of \"ok\", \"error\", got \"maybe\""),
        (#"{"payment":"p","amount_vnd":9223372036854775808}"#, "dvc.payment.completed", "data.amount_vnd: integer out of the 64-bit range"),
        (#"{"payment":"p","amount_vnd":-9223372036854775809}"#, "dvc.payment.completed", "data.amount_vnd: integer out of the 64-bit range"),
        (#"{"enterprise":"e","revenue_usd":1e400,"export_usd":2}"#, "economy.it.reported", "data.revenue_usd: number out of the finite double range"),
        (#"{"procedure":"p","authority":"a","level":"full","essential":true,"programs":["a",""]}"#, "dvc.procedure.listed", "data.programs[1]: expected a non-empty string"),
        (#"{"payment":"p","payment":"q","amount_vnd":1}"#, "dvc.payment.completed", "data.payment: duplicate field"),
    ])
    func badValue(_ data: String, _ type: String, _ message: String) throws {
        let r = try #require(decodeRejection(DecoderEventText(type: type, data: data)))
        #expect(r.code == .badValue)
        #expect(r.message == message)
    }

    @Test("Int64 extremes are accepted exactly")
    func intExtremes() {
        #expect(decodeFrame(payment("9223372036854775807").json).only?.fields?[1] == .int(.max))
        #expect(decodeFrame(payment("-9223372036854775808").json).only?.fields?[1] == .int(.min))
        #expect(decodeFrame(payment("0").json).only?.fields?[1] == .int(0))
        #expect(decodeFrame(payment("-0").json).only?.fields?[1] == .int(0))
        #expect(decodeFrame(payment("5000000000").json).only?.fields?[1] == .int(5_000_000_000))
    }

    @Test("numbers are read exactly as the standard parser reads them",
          arguments: ["22570999.68", "6662092.65", "0.1", "-0.5", "1e-7", "1.5E+3", "123456789012345678901234", "4.9e-324", "1.7976931348623157e308", "0.000000000000000000000000001"])
    func numbers(_ text: String) {
        #expect(decodeFrame(economy(text).json).only?.fields?[1] == .number(Double(text)!))
    }

    @Test("a 100 000-digit number is rejected as bad_value, not a crash")
    func hugeNumbers() throws {
        let digits = String(repeating: "9", count: 100_000)
        #expect(decodeRejection(economy(digits))?.code == .badValue)
        #expect(decodeRejection(payment(digits))?.code == .badValue)
        // In an ignored member a huge number is only validated.
        var e = DecoderEventText()
        e["ext"] = digits + ".5e99999999999"
        #expect(decodeRejection(e) == nil)
    }

    @Test("an optional field may be absent or null; a required null is missing_field")
    func optionalAndNull() throws {
        let base = #"{"document":"d","kind":"plan","issuer":"btttt","issuer_level":"ministry""#
        #expect(decodeFrame(DecoderEventText(type: "policy.document.issued", data: base + "}").json).only?.fields?[4] == .absent)
        #expect(decodeFrame(DecoderEventText(type: "policy.document.issued", data: base + #","plan_year":null}"#).json).only?.fields?[4] == .absent)
        #expect(decodeFrame(DecoderEventText(type: "policy.document.issued", data: base + #","plan_year":2025}"#).json).only?.fields?[4] == .int(2025))
        let r = try #require(decodeRejection(DecoderEventText(type: "policy.document.issued", data: #"{"document":null,"kind":"plan","issuer":"b","issuer_level":"ministry"}"#)))
        #expect(r.code == .missingField)
        #expect(r.message == "data.document: required field is null")
    }

    @Test("unknown data fields are ignored (forward compatibility)")
    func unknownFieldsIgnored() {
        let e = DecoderEventText(type: "dvc.account.registered", data: #"{"new_field":{"x":[1,2]},"account":"a-1","other":null}"#)
        #expect(decodeFrame(e.json).only?.fields == [.string("a-1")])
    }

    @Test("[str] fields keep their elements in order")
    func stringArrays() {
        let data = #"{"procedure":"p","authority":"a","level":"partial","essential":false,"programs":["de-an-06","qd-422","x\u0041"]}"#
        #expect(decodeFrame(DecoderEventText(type: "dvc.procedure.listed", data: data).json).only?.fields
            == [.string("p"), .string("a"), .string("partial"), .bool(false), .strings(["de-an-06", "qd-422", "xA"])])
        let empty = data.decoderReplacing(#"["de-an-06","qd-422","x\u0041"]"#, "[ ]")
        #expect(decodeFrame(DecoderEventText(type: "dvc.procedure.listed", data: empty).json).only?.fields?[4] == .strings([]))
    }

    @Test("a batch with many long [str] fields keeps every list intact")
    func manyLists() {
        let items = (0..<300).map { "\"prog-\($0)\"" }.joined(separator: ",")
        let data = #"{"procedure":"p","authority":"a","level":"full","essential":true,"programs":["#+items+"]}"
        let one = DecoderEventText(type: "dvc.procedure.listed", data: data).json
        let d = decodeFrame("[" + Array(repeating: one, count: 20).joined(separator: ",") + "]")
        #expect(d.frame == nil)
        #expect(d.outcomes.count == 20)
        let expected = DecodedValue.strings((0..<300).map { "prog-\($0)" })
        for o in d.outcomes { #expect(o.fields?[4] == expected) }
    }
}

// MARK: - Strings

@Suite("Decoder: JSON strings")
struct DecoderStringTests {
    @Test("escapes and surrogate pairs decode to UTF-8")
    func escapes() throws {
        var e = DecoderEventText(type: "security.incident", data: #"{"incident":"a\"b\\c\/d\be\ff\ng\rh\ti","system":"\u00e9\u1ed9\ud83d\ude00"}"#)
        e["id"] = #""\u0065-1""#
        let o = try #require(decodeFrame(e.json).only)
        guard case .event(_, _, _, let id, let fields, _) = o else { Issue.record("\(o)"); return }
        #expect(id == "e-1")
        #expect(fields == [.string("a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti"), .string("é\u{1ED9}😀")])
    }

    @Test("raw UTF-8 passes through unchanged")
    func rawUTF8() {
        let e = DecoderEventText(type: "security.incident", data: #"{"incident":"Sự cố","system":"Cổng 🇻🇳"}"#)
        #expect(decodeFrame(e.json).only?.fields == [.string("Sự cố"), .string("Cổng 🇻🇳")])
    }

    @Test("invalid UTF-8 anywhere in a string is invalid_json for the frame", arguments: [
        [0xC3, 0x28], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
        [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82], [0xFF], [0x80],
    ] as [[UInt8]])
    func invalidUTF8(_ bad: [UInt8]) throws {
        let text = Array(DecoderEventText().json.utf8)
        let i = try #require(text.firstIndex(of: UInt8(ascii: "7")))  // inside "cp-0794"
        var bytes = text
        bytes.replaceSubrange(i..<(i + 1), with: bad)
        let d = decodeFrame(bytes)
        #expect(d.frame?.code == .invalidJSON)
        #expect(d.outcomes.isEmpty)
        // Also inside an ignored member.
        var e = DecoderEventText()
        e["ext"] = "\"x7y\""
        var ext = Array(e.json.utf8)
        let j = try #require(ext.lastIndex(of: UInt8(ascii: "7")))
        ext.replaceSubrange(j..<(j + 1), with: bad)
        #expect(decodeFrame(ext).frame?.code == .invalidJSON)
    }

    @Test("bad escapes, lone surrogates and raw control characters are invalid_json",
          arguments: [#"\x41"#, #"\u12"#, #"\ud800"#, #"\udc00"#, #"\ud800\u0041"#, "\u{01}", "\t", "\n"])
    func badEscapes(_ inner: String) {
        var e = DecoderEventText()
        e["id"] = "\"a\(inner)b\""
        #expect(decodeFrame(e.json).frame?.code == .invalidJSON)
    }

    @Test("a string longer than maxStringLength is too_large naming the member")
    func tooLong() throws {
        var limits = DecodeLimits()
        limits.maxStringLength = 32
        var e = DecoderEventText()
        e["id"] = "\"" + String(repeating: "x", count: 33) + "\""
        var r = try #require(decodeFrame(e.json, limits: limits).only?.reason)
        #expect(r.code == .tooLarge)
        #expect(r.message.hasPrefix("id:"))
        e = DecoderEventText()
        e["subject"] = "\"" + String(repeating: "x", count: 33) + "\""
        r = try #require(decodeFrame(e.json, limits: limits).only?.reason)
        #expect(r.code == .tooLarge)
        #expect(r.message.contains("subject"))
        e = DecoderEventText(type: "dvc.account.registered", data: "{\"account\":\"" + String(repeating: "y", count: 33) + "\"}")
        r = try #require(decodeFrame(e.json, limits: limits).only?.reason)
        #expect(r.code == .tooLarge)
        #expect(r.message.hasPrefix("data.account:"))
    }
}

// MARK: - Frames and batches

@Suite("Decoder: frames, batches and limits")
struct DecoderFrameTests {
    @Test("frames that are not an object or array of objects are rejected whole", arguments: [
        ("", RejectReason.Code.invalidJSON), ("   ", .invalidJSON), ("42", .notAnObject), ("\"x\"", .notAnObject),
        ("null", .notAnObject), ("nul", .invalidJSON), ("{", .invalidJSON), ("[", .invalidJSON), ("{]", .invalidJSON),
        ("[}", .invalidJSON), ("{} x", .invalidJSON), ("[{},]", .invalidJSON), ("[,{}]", .invalidJSON),
        ("{\"a\" 1}", .invalidJSON), ("{\"a\":}", .invalidJSON), ("{\"a\":1,}", .invalidJSON), ("\u{FEFF}{}", .invalidJSON),
        ("{\"a\":01}", .invalidJSON), ("{\"a\":-}", .invalidJSON), ("{\"a\":1.}", .invalidJSON), ("{\"a\":1e}", .invalidJSON),
        ("{\"a\":tru}", .invalidJSON), ("{\"a\":[1 2]}", .invalidJSON), ("{'a':1}", .invalidJSON),
    ])
    func frameRejects(_ text: String, _ code: RejectReason.Code) {
        let d = decodeFrame(text)
        #expect(d.frame?.code == code)
        #expect(d.outcomes.isEmpty)
    }

    @Test("an empty batch calls body for nothing and is not an error")
    func emptyBatch() {
        let d = decodeFrame(" [ ] ")
        #expect(d.frame == nil)
        #expect(d.outcomes.isEmpty)
    }

    @Test("a batch reports every element in order, valid and invalid")
    func mixedBatch() {
        var bad = DecoderEventText()
        bad["specversion"] = "\"0.3\""
        let unrouted = DecoderEventText(type: "vendor.x", data: "{}")
        let d = decodeFrame("[" + [DecoderEventText().json, bad.json, "7", unrouted.json, "[]"].joined(separator: ",") + "]")
        #expect(d.frame == nil)
        #expect(d.indices == [0, 1, 2, 3, 4])
        #expect(d.outcomes.count == 5)
        #expect(d.outcomes[0].fields != nil)
        #expect(d.outcomes[1].reason?.code == .badSpecversion)
        #expect(d.outcomes[2].reason?.code == .notAnObject)
        #expect(d.outcomes[3] == .unrouted(type: "vendor.x", source: "/ndxp/gw-01"))
        #expect(d.outcomes[4].reason?.code == .notAnObject)
    }

    @Test("a long batch hands every event its own fields, in element order, while the decoder's event storage grows")
    func longMixedBatch() {
        var parts: [String] = []
        for i in 0..<40 {
            if i % 7 == 3 {
                parts.append("7")
            } else {
                var e = DecoderEventText()
                e["id"] = "\"ev-\(i)\""
                parts.append(e.json)
            }
        }
        let d = decodeFrame("[" + parts.joined(separator: ",") + "]")
        #expect(d.frame == nil)
        #expect(d.indices == Array(0..<40))
        for (i, o) in d.outcomes.enumerated() {
            if i % 7 == 3 {
                #expect(o.reason?.code == .notAnObject, "element \(i)")
            } else if case .event(_, _, _, let id, _, _) = o {
                #expect(id == "ev-\(i)")
            } else {
                Issue.record("element \(i): \(o)")
            }
        }
    }

    @Test("a syntax error in a later batch element rejects the whole frame and reports no element")
    func batchSyntaxError() {
        let good = DecoderEventText().json
        let d = decodeFrame("[" + good + "," + good + "," + String(good.dropLast()) + "]")
        #expect(d.frame?.code == .invalidJSON)
        #expect(d.outcomes.isEmpty)
    }

    @Test("more events than maxEventsPerBatch is too_large for the frame")
    func tooManyEvents() {
        var limits = DecodeLimits()
        limits.maxEventsPerBatch = 3
        let e = DecoderEventText().json
        #expect(decodeFrame("[" + Array(repeating: e, count: 3).joined(separator: ",") + "]", limits: limits).frame == nil)
        let d = decodeFrame("[" + Array(repeating: e, count: 4).joined(separator: ",") + "]", limits: limits)
        #expect(d.frame?.code == .tooLarge)
        #expect(d.outcomes.isEmpty)
    }

    @Test("depth bombs are too_deep without exhausting the stack", arguments: [
        String(repeating: "[", count: 100_000),
        String(repeating: "{\"a\":", count: 100_000),
        "[" + String(repeating: "{\"a\":[", count: 50_000),
        "{\"x\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}",
    ])
    func depthBombs(_ text: String) {
        let d = decodeFrame(text)
        #expect(d.frame?.code == .tooDeep)
        #expect(d.outcomes.isEmpty)
    }

    @Test("maxDepth counts the frame's container as level 1")
    func depthBoundary() {
        var limits = DecodeLimits()
        limits.maxDepth = 4
        var e = DecoderEventText()
        e["ext"] = "[[1]]"  // event 1, ext 2, inner 3
        #expect(decodeFrame(e.json, limits: limits).frame == nil)
        e["ext"] = "[[[1]]]"  // innermost at 4
        #expect(decodeFrame(e.json, limits: limits).frame == nil)
        #expect(decodeFrame("[" + e.json + "]", limits: limits).frame?.code == .tooDeep)  // in a batch: 5
        e["ext"] = "[[[[1]]]]"
        #expect(decodeFrame(e.json, limits: limits).frame?.code == .tooDeep)
        let procedure = DecoderEventText(type: "dvc.procedure.listed", data: #"{"procedure":"p","authority":"a","level":"full","essential":true,"programs":["x"]}"#)
        limits.maxDepth = 3  // event 1, data 2, programs 3
        #expect(decodeFrame(procedure.json, limits: limits).only?.fields != nil)
        #expect(decodeFrame("[" + procedure.json + "]", limits: limits).frame?.code == .tooDeep)
    }

    @Test("views handed to body stay valid for the whole frame, and across frames the decoder is reusable")
    func viewLifetime() {
        var decoder = EventDecoder()
        var events: [DecoderEventText] = []
        for i in 0..<50 {
            var e = DecoderEventText(type: "security.incident", data: "{\"incident\":\"\\u00e9-\(i)\",\"system\":\"s\\n\(i)\"}")
            e["id"] = "\"\\u0069d-\(i)\""
            events.append(e)
        }
        for _ in 0..<3 {
            let d = decodeFrame(Array(("[" + events.map(\.json).joined(separator: ",") + "]").utf8), decoder: &decoder)
            #expect(d.outcomes.count == 50)
            for (i, o) in d.outcomes.enumerated() {
                guard case .event(_, _, _, let id, let fields, _) = o else { Issue.record("\(o)"); continue }
                #expect(id == "id-\(i)")
                #expect(fields == [.string("é-\(i)"), .string("s\n\(i)")])
            }
        }
        var copy = decoder
        #expect(decodeFrame(Array(DecoderEventText().json.utf8), decoder: &copy).only?.fields != nil)
        #expect(decodeFrame(Array(DecoderEventText().json.utf8), decoder: &decoder).only?.fields != nil)
    }
}

// MARK: - Dedup key

@Suite("Decoder: dedup key")
struct DecoderDedupKeyTests {
    func key(_ source: String, _ id: String) -> EventKey {
        var s = source, i = id
        return s.withUTF8 { sb in i.withUTF8 { ib in EventKey(source: sb, id: ib) } }
    }

    @Test("equal (source, id) give equal keys, however the JSON spelled them")
    func equalKeys() throws {
        var a = DecoderEventText()
        a["id"] = "\"abc\""
        var b = DecoderEventText()
        b["id"] = #""\u0061bc""#
        b["time"] = "\"2020-01-01T00:00:00Z\""
        guard case .event(_, _, _, _, _, let ka) = try #require(decodeFrame(a.json).only),
              case .event(_, _, _, _, _, let kb) = try #require(decodeFrame(b.json).only)
        else { Issue.record("not events"); return }
        #expect(ka == kb)
        #expect(ka == key("/ndxp/gw-01", "abc"))
    }

    @Test("different sources, ids or splits give different keys")
    func differentKeys() {
        #expect(key("/a", "1") != key("/a", "2"))
        #expect(key("/a", "1") != key("/b", "1"))
        #expect(key("ab", "c") != key("a", "bc"))
        #expect(key("", "abc") != key("abc", ""))
        let long = String(repeating: "x", count: 40)
        #expect(key(long, long + "1") != key(long, long + "2"))
    }

    @Test("200 000 distinct ids give 200 000 distinct keys")
    func noCollisions() {
        var seen = Set<EventKey>()
        for i in 0..<200_000 { seen.insert(key("/ndxp/gw-01", "\(i)-4189-8878")) }
        #expect(seen.count == 200_000)
    }
}

extension String {
    func decoderReplacing(_ target: String, _ replacement: String) -> String {
        var out = ""
        var rest = self[...]
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound] + replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

@Suite("Decoder: unusual limits")
struct DecoderLimitTests {
    @Test("absurd limits neither crash nor disable the checks")
    func absurdLimits() {
        var limits = DecodeLimits()
        limits.maxDepth = .max
        limits.maxStringLength = .max
        limits.maxEventsPerBatch = .max
        #expect(decodeFrame(String(repeating: "[", count: 100_000), limits: limits).frame?.code == .tooDeep)
        #expect(decodeFrame(DecoderEventText().json, limits: limits).only?.fields != nil)
        limits.maxDepth = 0
        limits.maxEventsPerBatch = -1
        #expect(decodeFrame(DecoderEventText().json, limits: limits).frame?.code == .tooDeep)
        limits.maxDepth = 8
        #expect(decodeFrame("[" + DecoderEventText().json + "]", limits: limits).frame?.code == .tooLarge)
    }
}

@Suite("Decoder: spellings of the same event")
struct DecoderSpellingTests {
    @Test("member order, whitespace and escaped key names do not change the decoded event")
    func spellings() throws {
        let canonical = try #require(decodeFrame(DecoderEventText(type: "dvc.dossier.submitted", data:
            #"{"dossier":"d-1","procedure":"1.0","channel":"online","via_national_portal":true,"province":"P01"}"#).json).only)
        let variants = [
            // data fields in reverse order, envelope reordered
            #"{"data":{"province":"P01","via_national_portal":true,"channel":"online","procedure":"1.0","dossier":"d-1"},"time":"2024-04-30T23:59:59.123+07:00","type":"dvc.dossier.submitted","source":"/ndxp/gw-01","id":"e-1","specversion":"1.0"}"#,
            // whitespace everywhere
            " {\n \"specversion\" : \"1.0\" ,\t\"id\" : \"e-1\" , \"source\" : \"/ndxp/gw-01\" , \"type\" : \"dvc.dossier.submitted\" , \"time\" : \"2024-04-30T23:59:59.123+07:00\" , \"data\" : { \"dossier\" : \"d-1\" , \"procedure\" : \"1.0\" , \"channel\" : \"online\" , \"via_national_portal\" : true , \"province\" : \"P01\" } } ",
            // escaped keys and values
            #"{"\u0073pecversion":"1\u002e0","i\u0064":"e-1","source":"\/ndxp\/gw-01","typ\u0065":"dvc.dossier.submitted","time":"2024-04-30T23:59:59.123+07:00","\u0064ata":{"do\u0073sier":"d-1","procedure":"1.0","channel":"onlin\u0065","via_national_portal":true,"provinc\u0065":"P01"}}"#,
            // a field skipped in the middle, extra unknown members
            #"{"specversion":"1.0","x":1,"id":"e-1","source":"/ndxp/gw-01","type":"dvc.dossier.submitted","time":"2024-04-30T23:59:59.123+07:00","data":{"dossier":"d-1","channel":"online","extra":[],"procedure":"1.0","province":"P01","via_national_portal":true}}"#,
        ]
        for v in variants {
            #expect(decodeFrame(v).only == canonical, "\(v)")
        }
    }
}

@Suite("Decoder: StringView")
struct DecoderStringViewTests {
    @Test("equality with byte arrays and static strings, including empty ones")
    func equality() {
        var text = "abc"
        text.withUTF8 { b in
            let v = StringView(start: b.baseAddress!, count: 3)
            #expect(v.equals("abc"))
            #expect(!v.equals("abd"))
            #expect(v.equals(Array("abc".utf8)))
            #expect(!v.equals([UInt8]()))
            let empty = StringView(start: b.baseAddress!, count: 0)
            #expect(empty.equals([UInt8]()))
            #expect(empty.equals(""))
            #expect(v.string == "abc")
        }
    }
}
