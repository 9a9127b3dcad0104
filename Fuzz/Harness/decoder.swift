// libFuzzer target: the CloudEvents decoder (TallyEngine/Events/EventDecoder) on arbitrary bytes.
//
// Built by Fuzz/run.sh with `-sanitize=fuzzer,address`: AddressSanitizer turns any read outside a
// frame or the decoder's scratch buffer into a crash, and the checks below turn a broken contract
// into one (a frame rejection that still reported elements, indices out of order, a string view
// pointing outside both the payload and nowhere, a batch larger than the limit).
import TallyEngine

/// Small limits so the fuzzer reaches the limit paths with small inputs.
nonisolated(unsafe) var decoder: EventDecoder = {
    var limits = DecodeLimits()
    limits.maxDepth = 8
    limits.maxStringLength = 64
    limits.maxEventsPerBatch = 16
    return EventDecoder(limits: limits)
}()

@inline(never)
func touch(_ view: StringView) -> UInt8 {
    // Read every byte: ASan reports a view that is not entirely valid memory.
    var x: UInt8 = 0
    for b in view.bytes { x ^= b }
    return x
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let payload = UnsafeRawBufferPointer(start: data, count: size)
    var calls = 0
    var lastIndex = -1
    var sink: UInt8 = 0
    let frameError = decoder.decode(payload) { index, outcome in
        calls += 1
        precondition(index == lastIndex + 1, "indices must be consecutive from 0, got \(index) after \(lastIndex)")
        lastIndex = index
        switch outcome {
        case .event(let e):
            sink ^= touch(e.source) ^ touch(e.id)
            precondition(e.source.count > 0 && e.id.count > 0, "an accepted event has a source and an id")
        case .unrouted(let type, let source):
            sink ^= touch(type) ^ touch(source)
        case .balance(let indicator, let value, _, let source, let id):
            sink ^= touch(indicator) ^ touch(source) ^ touch(id)
            precondition(value.isFinite, "a balance value is finite")
        case .rejected(let reason):
            precondition(!reason.code.rawValue.isEmpty && !reason.message.isEmpty, "a reason has a code and a message")
        }
    }
    if let frameError {
        precondition(calls == 0, "a rejected frame reported \(calls) elements")
        precondition(!frameError.message.isEmpty)
    } else {
        precondition(calls <= 16, "an accepted frame has at most maxEventsPerBatch elements (an empty batch has none), got \(calls)")
    }
    if sink == 0xFF && size == 1 { print("") }   // keep `sink` alive
    return 0
}
