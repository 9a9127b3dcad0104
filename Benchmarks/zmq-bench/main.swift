// zmq-bench: the ZeroMQ transport ceiling through the Swift binding, flag for flag the same
// traffic as `../shared/bench/ztransport.c` (C over libzmq), so the two can be run in turn:
//
//   zmq-bench recv -p pull|sub -e ENDPOINT [-b EVENTS_PER_FRAME] [-t IDLE_TIMEOUT_MS] [-H RCVHWM]
//   zmq-bench send -p push|pub -e ENDPOINT -n EVENTS [-b EVENTS_PER_FRAME] (-f NDJSON | -s BYTES) [-H SNDHWM]
//                  [-E] [-L LINGER_MS]
//
// The receiver binds, the sender connects. Frames are pre-built before timing; sent with a copy
// into a libzmq message (`Socket.send(UnsafeRawBufferPointer)` = `zmq_send`), received into one
// reused `Message` (`Socket.receive(into:)` = `zmq_msg_recv`). End of stream is an empty frame
// (repeated 50 times, 20 ms apart, for PUB, which drops at the high-water mark); PUB is an XPUB so
// the sender can wait for the subscription. Both print ztransport's JSON lines (receiver: stdout,
// timed from the first frame to END; sender: stderr). See RESULTS.md for the comparison.
import Foundation
import ZeroMQ

// MARK: - Arguments

struct Options {
    var isSend = false
    var pattern = ""
    var endpoint: String?
    var events: Int64 = 1_000_000
    var batch = 1
    var file: String?
    var fixed = 0
    var hwm: Int32 = -1
    var idleMs: Int32 = 3000
    var noEnd = false
    var linger: Int32 = 3000
}

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: zmq-bench send|recv -p PATTERN -e ENDPOINT [-n N] [-b B] [-f FILE | -s BYTES] [-H HWM] [-t MS] [-E] [-L MS]\n".utf8))
    exit(2)
}

func parse(_ args: [String]) -> Options {
    guard args.count >= 2, args[1] == "send" || args[1] == "recv" else { usage() }
    var o = Options()
    o.isSend = args[1] == "send"
    o.pattern = o.isSend ? "push" : "pull"
    var i = 2
    func value() -> String {
        i += 1
        guard i < args.count else { usage() }
        return args[i]
    }
    func number<T: LosslessStringConvertible>(_ type: T.Type) -> T {
        guard let n = T(value()) else { usage() }
        return n
    }
    while i < args.count {
        switch args[i] {
        case "-p": o.pattern = value()
        case "-e": o.endpoint = value()
        case "-n": o.events = number(Int64.self)
        case "-b": o.batch = number(Int.self)
        case "-f": o.file = value()
        case "-s": o.fixed = number(Int.self)
        case "-H": o.hwm = number(Int32.self)
        case "-t": o.idleMs = number(Int32.self)
        case "-E": o.noEnd = true
        case "-L": o.linger = number(Int32.self)
        default: usage()
        }
        i += 1
    }
    guard o.endpoint != nil, o.batch >= 1 else {
        FileHandle.standardError.write(Data("need -e ENDPOINT, -b>=1\n".utf8))
        exit(2)
    }
    return o
}

// MARK: - Clock and output

/// CLOCK_MONOTONIC seconds, as ztransport's `now()`.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func die(_ what: String, _ error: any Error) -> Never {
    FileHandle.standardError.write(Data("\(what): \(error)\n".utf8))
    exit(2)
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

// MARK: - Receiver

func receive(_ o: Options) {
    let endpoint = o.endpoint!
    do {
        let context = try Context()
        let socket = try Socket(context, o.pattern == "sub" ? .sub : .pull)
        if o.hwm >= 0 { try socket.set(.receiveHighWaterMark, o.hwm) }
        if o.pattern == "sub" { try socket.set(.subscribe, []) }
        do { try socket.bind(endpoint) } catch { die("bind", error) }
        FileHandle.standardOutput.write(Data("READY\n".utf8))

        let message = Message()
        var msgs: Int64 = 0, bytes: Int64 = 0, ended = false
        // First frame: block without timeout (the sender may still be pre-building frames).
        guard try socket.receive(into: message) else { die("recv", ZMQError.again) }
        let t0 = now()
        var t1 = t0
        if message.count == 0 { ended = true } else { msgs += 1; bytes += Int64(message.count) }
        try socket.set(.receiveTimeout, o.idleMs)
        while !ended {
            guard try socket.receive(into: message) else { break }   // idle timeout: END lost (PUB/SUB)
            let n = message.count
            t1 = now()
            if n == 0 { ended = true; break }
            msgs += 1
            bytes += Int64(n)
        }
        let dt = t1 - t0, b = Int64(o.batch)
        FileHandle.standardOutput.write(Data(("{\"role\":\"recv\",\"impl\":\"swift\",\"pattern\":\"\(o.pattern)\",\"endpoint\":\"\(endpoint)\",\"batch\":\(o.batch),"
            + "\"msgs\":\(msgs),\"events\":\(msgs * b),\"bytes\":\(bytes),\"secs\":\(fmt(dt, 6)),"
            + "\"msgs_per_s\":\(fmt(Double(msgs) / dt, 1)),\"events_per_s\":\(fmt(Double(msgs * b) / dt, 1)),"
            + "\"mb_per_s\":\(fmt(Double(bytes) / dt / 1e6, 2)),\"end_seen\":\(ended)}\n").utf8))
    } catch {
        die("recv", error)
    }
}

// MARK: - Sender

/// The frame pool, built before timing: NDJSON lines (packed B per JSON array) or one fixed frame.
func buildPool(_ o: Options) -> [[UInt8]] {
    if let file = o.file {
        guard let data = FileManager.default.contents(atPath: file) else {
            FileHandle.standardError.write(Data("\(file): cannot read\n".utf8))
            exit(2)
        }
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        let frames = lines.count / o.batch
        guard frames > 0 else {
            FileHandle.standardError.write(Data("file smaller than one batch\n".utf8))
            exit(2)
        }
        let all = Array(lines)
        return (0..<frames).map { fi in
            if o.batch == 1 { return [UInt8](all[fi]) }
            var frame: [UInt8] = [UInt8(ascii: "[")]
            for j in 0..<o.batch {
                if j > 0 { frame.append(UInt8(ascii: ",")) }
                frame.append(contentsOf: all[fi * o.batch + j])
            }
            frame.append(UInt8(ascii: "]"))
            return frame
        }
    }
    let fixed = o.fixed > 0 ? o.fixed : 280
    let total = o.batch == 1 ? fixed : fixed * o.batch + o.batch + 1
    return [[UInt8](repeating: UInt8(ascii: "x"), count: total)]
}

func send(_ o: Options) {
    let endpoint = o.endpoint!
    let pool = buildPool(o)
    let nmsg = o.events / Int64(o.batch)
    do {
        let context = try Context()
        let isPub = o.pattern == "pub"
        let socket = try Socket(context, isPub ? .xpub : .push)
        if o.hwm >= 0 { try socket.set(.sendHighWaterMark, o.hwm) }
        try socket.set(.linger, o.linger)
        do { try socket.connect(endpoint) } catch { die("connect", error) }
        if isPub {
            do { _ = try socket.receive() } catch { die("wait-subscription", error) }
        }
        // Frames in plain allocated memory, as ztransport's malloc'd pool: the timed loop then
        // touches no Swift array (no reference counting per frame), only the binding.
        let frames: [UnsafeRawBufferPointer] = pool.map { frame in
            let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.count, alignment: 16)
            frame.withUnsafeBytes { memory.copyMemory(from: $0) }
            return UnsafeRawBufferPointer(memory)
        }
        defer { frames.forEach { $0.deallocate() } }
        var bytes: Int64 = 0
        let count = frames.count
        var k = 0
        let t0 = now()
        for _ in 0..<nmsg {
            let frame = frames[k]
            guard try socket.send(frame) else { die("send", ZMQError.again) }
            bytes += Int64(frame.count)
            k += 1
            if k == count { k = 0 }
        }
        let t1 = now()   // the sender's rate excludes the END frames
        let nend = o.noEnd ? 0 : isPub ? 50 : 1
        for _ in 0..<nend {
            try socket.send(UnsafeRawBufferPointer(start: nil, count: 0))
            if nend > 1 { usleep(20_000) }
        }
        let line = "{\"role\":\"send\",\"impl\":\"swift\",\"pattern\":\"\(o.pattern)\",\"msgs\":\(nmsg),\"events\":\(nmsg * Int64(o.batch)),"
            + "\"bytes\":\(bytes),\"pool_frames\":\(pool.count),\"avg_frame_bytes\":\(fmt(Double(bytes) / Double(nmsg), 1)),"
            + "\"secs\":\(fmt(t1 - t0, 6)),\"msgs_per_s\":\(fmt(Double(nmsg) / (t1 - t0), 1)),\"t0_mono\":\(fmt(t0, 6))}\n"
        FileHandle.standardError.write(Data(line.utf8))
        socket.close()
        // context deinit: zmq_ctx_term waits up to the linger (-L) for queued frames
    } catch {
        die("send", error)
    }
}

// MARK: - Main

let options = parse(CommandLine.arguments)
if options.isSend { send(options) } else { receive(options) }
