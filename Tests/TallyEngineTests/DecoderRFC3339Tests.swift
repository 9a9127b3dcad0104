import PropertyBased
import TallyEngine
import Testing

func parseRFC3339(_ s: String) -> Micros? {
    var text = s
    return text.withUTF8 { RFC3339.parse($0) }
}

@Suite("Decoder: RFC 3339 time")
struct DecoderRFC3339Tests {
    @Test("offsets, Z/z and separators give the same UTC instant", arguments: [
        "2024-04-30T23:59:59.123+07:00", "2024-04-30T16:59:59.123Z", "2024-04-30t16:59:59.123z",
        "2024-04-30 16:59:59.123+00:00", "2024-04-30T11:29:59.123-05:30", "2024-04-30T16:59:59.123-00:00",
    ])
    func sameInstant(_ text: String) {
        #expect(parseRFC3339(text) == 1_714_496_399_123_000)
    }

    @Test("fractions of 0 to 9 digits are read and truncated to microseconds", arguments: [
        ("2024-04-30T16:59:59Z", 0), ("2024-04-30T16:59:59.1Z", 100_000), ("2024-04-30T16:59:59.12Z", 120_000),
        ("2024-04-30T16:59:59.123456Z", 123_456), ("2024-04-30T16:59:59.1234567Z", 123_456),
        ("2024-04-30T16:59:59.999999999Z", 999_999),
    ] as [(String, Int64)])
    func fractions(_ text: String, _ micros: Int64) {
        #expect(parseRFC3339(text) == 1_714_496_399_000_000 + micros)
    }

    @Test("leap days exist exactly in leap years", arguments: [
        ("2024-02-29T12:00:00Z", true), ("2000-02-29T00:00:00Z", true), ("2023-02-29T00:00:00Z", false),
        ("1900-02-29T00:00:00Z", false), ("2100-02-29T00:00:00Z", false), ("2400-02-29T00:00:00Z", true),
    ])
    func leapDays(_ text: String, _ valid: Bool) {
        #expect((parseRFC3339(text) != nil) == valid)
    }

    @Test("known instants across the calendar", arguments: [
        ("2024-02-29T12:00:00Z", 1_709_208_000_000_000), ("2000-02-29T00:00:00-05:30", 951_802_200_000_000),
        ("1969-12-31T23:59:59Z", -1_000_000), ("1970-01-01T00:00:00Z", 0),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000_000), ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
        ("2024-04-30T17:00:00+07:00", 1_714_471_200_000_000),
    ] as [(String, Int64)])
    func knownInstants(_ text: String, _ micros: Int64) {
        #expect(parseRFC3339(text) == micros)
    }

    @Test("a leap second is clamped to the last microsecond of its minute")
    func leapSecond() {
        #expect(parseRFC3339("2016-12-31T23:59:60Z") == parseRFC3339("2016-12-31T23:59:59.999999Z"))
        #expect(parseRFC3339("2017-01-01T06:59:60.5+07:00") == parseRFC3339("2016-12-31T23:59:59.999999Z"))
    }

    @Test("invalid date-times are nil", arguments: [
        "2024-04-30T10:00:00", "2024-04-30T10:00:00+0700", "2024-04-30T10:00:00+07", "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z", "2024-04-00T00:00:00Z", "2024-04-31T00:00:00Z", "2024-04-30T24:00:00Z",
        "2024-04-30T23:60:00Z", "2024-04-30T23:59:61Z", "2024-04-30T23:59:59+24:00", "2024-04-30T23:59:59+07:60",
        "2024-04-30T23:59:59.Z", "2024-04-30T23:59:59.1234567890Z", "2024-04-30X23:59:59Z", "24-04-30T23:59:59Z",
        "2024-4-30T23:59:59Z", "2024-04-30T23:59:59ZZ", "2024-04-30T23:59:59Z ", " 2024-04-30T23:59:59Z", "",
        "2024-04-30T23:59:59+07:00:00", "２024-04-30T23:59:59Z", "2024/04/30T23:59:59Z", "2024-04-30T23:59:5aZ",
    ])
    func invalid(_ text: String) {
        #expect(parseRFC3339(text) == nil)
    }

    @Test("the decoder's day cache never accepts what the parser rejects")
    func dayCache() {
        var decoder = EventDecoder()
        for time in ["2024-02-29T10:00:00Z", "2024-02-29T25:00:00Z", "2023-02-29T10:00:00Z", "2023-02-29T10:00:00Z",
                     "2024-02-29T10:00:01+07:00"] {
            var e = DecoderEventText()
            e["time"] = "\"\(time)\""
            let d = decodeFrame(Array(e.json.utf8), decoder: &decoder)
            if let t = parseRFC3339(time) {
                guard case .event(_, let got, _, _, _, _) = d.only else { Issue.record("\(time): \(d)"); continue }
                #expect(got == t)
            } else {
                #expect(d.only?.reason?.code == .badTime, "\(time)")
            }
        }
    }

    @Test("the minute cache gives the parser's instant or rejection for every time after a cached minute")
    func minuteCache() {
        var decoder = EventDecoder()
        let times = ["2024-04-30T10:15:00Z", "2024-04-30T10:15:59.999+07:00", "2024-04-30T10:15:60Z", "2024-04-30T10:15:61Z",
                     "2024-04-30T10:15:0xZ", "2024-04-30T10:15-00Z", "2024-04-30t10:15:00Z", "2024-04-30T10:16:00Z",
                     "2024-04-30T10:15:30.5-00:30", "2024-04-30T10:15:30", "2024-05-30T10:15:30Z", "2024-04-30T10:15:30Z",
                     "2024-04-31T10:15:30Z", "2024-04-30T10:15:30.123456789Z", "2024-04-30T24:15:30Z", "2024-04-30T10:15:30.000Z"]
        for _ in 0..<2 {
            for time in times {
                var e = DecoderEventText()
                e["time"] = "\"\(time)\""
                let d = decodeFrame(Array(e.json.utf8), decoder: &decoder)
                if let t = parseRFC3339(time) {
                    guard case .event(_, let got, _, _, _, _) = d.only else { Issue.record("\(time): \(d)"); continue }
                    #expect(got == t, "\(time)")
                } else {
                    #expect(d.only?.reason?.code == .badTime, "\(time)")
                }
            }
        }
    }

    @Test("format writes RFC 3339 in the requested offset", arguments: [
        (1_714_496_399_123_000, 25_200, "2024-04-30T23:59:59.123+07:00"), (0, 0, "1970-01-01T00:00:00Z"),
        (1_714_496_399_123_456, 0, "2024-04-30T16:59:59.123456Z"), (-1_000_000, 0, "1969-12-31T23:59:59Z"),
        (951_802_200_000_000, -19_800, "2000-02-29T00:00:00-05:30"),
    ] as [(Int64, Int, String)])
    func format(_ t: Int64, _ offset: Int, _ text: String) {
        #expect(RFC3339.format(t, offsetSeconds: offset) == text)
    }

    @Test("format then parse is the identity for any instant of years 1..9999 and any whole-minute offset")
    func roundTrip() async {
        await propertyCheck(count: 2000, input: Gen.int64(in: -62_135_596_800_000_000 + 86_400_000_000 ... 253_402_300_799_999_999 - 86_400_000_000),
                            Gen.int(in: -(23 * 60 + 59)...(23 * 60 + 59))) { t, minutes in
            let text = RFC3339.format(t, offsetSeconds: minutes * 60)
            #expect(parseRFC3339(text) == t, "\(text)")
        }
    }
}
