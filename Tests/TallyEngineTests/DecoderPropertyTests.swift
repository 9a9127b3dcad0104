import Foundation
import PropertyBased
import TallyEngine
import Testing

// MARK: - Fixture corpus

/// `Fixtures/decoder/`: one frame per file, also the seed corpus for fuzzing. The name says
/// what the decoder must do: `ok-*` every element accepted (event, unrouted or balance),
/// `frame-<code>-*` the frame rejected with `<code>`, `event-<code>-*` one element rejected
/// with `<code>`.
enum DecoderFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/decoder")

    static let names: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
        .filter { $0.hasSuffix(".json") }.sorted()

    static func bytes(_ name: String) -> [UInt8] {
        (try? [UInt8](Data(contentsOf: directory.appendingPathComponent(name)))) ?? []
    }

    /// The code a fixture name announces (`frame-too_deep-bomb.json` → `too_deep`).
    static func code(_ name: String) -> RejectReason.Code {
        let parts = name.split(separator: "-")
        return RejectReason.Code(rawValue: String(parts[1]).replacingOccurrences(of: ".json", with: ""))
    }
}

@Suite("Decoder: fixture corpus and random mutations")
struct DecoderPropertyTests {
    @Test("the corpus is present")
    func corpusPresent() {
        #expect(DecoderFixtures.names.count >= 30)
        #expect(DecoderFixtures.names.contains { $0.hasPrefix("ok-") })
    }

    @Test("every fixture decodes as its name says", arguments: DecoderFixtures.names)
    func fixture(_ name: String) {
        let d = decodeFrame(DecoderFixtures.bytes(name))
        if name.hasPrefix("ok-") {
            #expect(d.frame == nil, "\(d.frame.map(String.init(describing:)) ?? "")")
            #expect(!d.outcomes.isEmpty)
            for o in d.outcomes { #expect(o.reason == nil, "\(o.reason.map(String.init(describing:)) ?? "")") }
        } else if name.hasPrefix("frame-") {
            #expect(d.frame?.code == DecoderFixtures.code(name))
            #expect(d.outcomes.isEmpty)
        } else {
            #expect(d.frame == nil)
            #expect(d.outcomes.count == 1)
            #expect(d.outcomes.first?.reason?.code == DecoderFixtures.code(name))
        }
    }

    /// One random edit of a frame.
    enum Mutation {
        case replace(position: Int, byte: UInt8)
        case insert(position: Int, byte: UInt8)
        case delete(position: Int)
        case truncate(position: Int)

        static let generator = zip(Gen.int(in: 0...3), Gen.int(in: 0...100_000), Gen.uint8()).map { (kind: Int, position: Int, byte: UInt8) -> Mutation in
            switch kind {
            case 0: return .replace(position: position, byte: byte)
            case 1: return .insert(position: position, byte: byte)
            case 2: return .delete(position: position)
            default: return .truncate(position: position)
            }
        }

        func apply(_ bytes: inout [UInt8]) {
            guard !bytes.isEmpty else { return }
            switch self {
            case .replace(let p, let b): bytes[p % bytes.count] = b
            case .insert(let p, let b): bytes.insert(b, at: p % (bytes.count + 1))
            case .delete(let p): bytes.remove(at: p % bytes.count)
            case .truncate(let p): bytes.removeLast(bytes.count - p % bytes.count)
            }
        }
    }

    /// Decodes and checks the decoder's contract on any input: a frame-level rejection
    /// calls `body` for nothing; otherwise indices are 0, 1, 2... and every outcome is
    /// one of the four cases with a non-empty message when rejected.
    @discardableResult
    static func checkContract(_ bytes: [UInt8], decoder: inout EventDecoder) -> Bool {
        var indices: [Int] = []
        var messagesOK = true
        let frame = bytes.withUnsafeBytes { raw in
            decoder.decode(raw) { i, o in
                indices.append(i)
                switch o {
                case .event(let e):
                    _ = e.dedupKey
                    for f in e.fields { if case .strings(let l) = f { _ = l.map(\.count) } }
                case .unrouted, .balance: break
                case .rejected(let r): messagesOK = messagesOK && !r.message.isEmpty
                }
            }
        }
        if let frame {
            #expect(indices.isEmpty)
            #expect(!frame.message.isEmpty)
        } else {
            #expect(indices == Array(0..<indices.count))
        }
        #expect(messagesOK)
        return frame == nil
    }

    @Test("random byte mutations of valid frames never crash: they decode or are rejected")
    func mutations() async {
        let seeds = DecoderFixtures.names.filter { $0.hasPrefix("ok-") }.map(DecoderFixtures.bytes)
        guard !seeds.isEmpty else { Issue.record("no ok- fixtures"); return }
        let decoderBox = DecoderBox()
        await propertyCheck(count: 3000, input: Gen.int(in: 0...(seeds.count - 1)), Mutation.generator.array(of: 1...6)) { seed, edits in
            var bytes = seeds[seed]
            for m in edits { m.apply(&bytes) }
            var fresh = EventDecoder()
            DecoderPropertyTests.checkContract(bytes, decoder: &fresh)
            decoderBox.withDecoder { DecoderPropertyTests.checkContract(bytes, decoder: &$0) }
        }
        // The edits must exercise both paths, or the property proves little.
        #expect(decoderBox.accepted > 100)
        #expect(decoderBox.rejected > 100)
    }

    @Test("random bytes never crash the decoder")
    func randomBytes() async {
        await propertyCheck(count: 2000, input: Gen.uint8().array(of: 0...64)) { tail in
            var d = EventDecoder()
            DecoderPropertyTests.checkContract(tail, decoder: &d)
            DecoderPropertyTests.checkContract([UInt8(ascii: "{"), UInt8(ascii: "\"")] + tail, decoder: &d)
            DecoderPropertyTests.checkContract([UInt8(ascii: "[")] + tail, decoder: &d)
        }
    }
}

/// One decoder reused across property runs (its scratch state carried from frame to frame),
/// behind a lock because property checks may run concurrently.
final class DecoderBox: @unchecked Sendable {
    private let lock = NSLock()
    private var decoder = EventDecoder()
    private var counts = (accepted: 0, rejected: 0)
    var accepted: Int { lock.withLock { counts.accepted } }
    var rejected: Int { lock.withLock { counts.rejected } }

    /// Runs `body` on the shared decoder; counts frames it accepted (true) or rejected.
    func withDecoder(_ body: (inout EventDecoder) -> Bool) {
        lock.lock()
        defer { lock.unlock() }
        if body(&decoder) { counts.accepted += 1 } else { counts.rejected += 1 }
    }
}
