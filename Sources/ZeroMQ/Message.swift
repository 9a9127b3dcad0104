import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Message

/// One message part, owning a `zmq_msg_t` (closed in `deinit`).
///
/// Receiving into a reused `Message` (``Socket/receive(into:flags:)``) costs no allocation
/// beyond what libzmq's decoder does anyway, and ``withUnsafeBytes(_:)`` reads the payload
/// in place. ``bytes`` and ``string`` copy.
///
/// A message is one value moving through one thread at a time; `Sendable` so it can be handed
/// to another thread, not to be used from two at once.
public final class Message: @unchecked Sendable {
    /// The `zmq_msg_t`, heap-allocated so its address is stable (libzmq requires that).
    let pointer: UnsafeMutablePointer<zmq_msg_t>

    /// An empty message (`zmq_msg_init`), to receive into.
    public init() {
        pointer = .allocate(capacity: 1)
        zmq_msg_init(pointer)   // cannot fail
    }

    /// A message whose payload *is* `bytes`' storage: no copy (`zmq_msg_init_data`).
    ///
    /// The array is retained in a box; libzmq calls the free function, which releases the box,
    /// once the last copy of the message is gone (possibly on an I/O thread). The array is a
    /// `let` in the box, so its storage is never written again and its address stays put.
    /// For small frames (below a few hundred bytes) copying via ``Socket/send(_:flags:)-([UInt8])``
    /// is as cheap: zero-copy pays one `malloc` for libzmq's reference-counted content.
    /// - Complexity: O(1) in `bytes.count`.
    public init(bytes: [UInt8]) {
        pointer = .allocate(capacity: 1)
        if bytes.isEmpty {
            zmq_msg_init(pointer)
            return
        }
        let box = Unmanaged.passRetained(StorageBox(bytes))
        let data = box.takeUnretainedValue().base
        let rc = zmq_msg_init_data(pointer, data, bytes.count, releaseStorageBox, box.toOpaque())
        if rc != 0 {   // only ENOMEM: as any Swift allocation failure, fatal
            box.release()
            fatalError("zmq_msg_init_data: \(ZMQError(zmq_errno(), call: "zmq_msg_init_data"))")
        }
    }

    /// A message holding a copy of `buffer` (`zmq_msg_init_size` + one `memcpy`).
    /// - Complexity: O(n).
    public init(copying buffer: UnsafeRawBufferPointer) {
        pointer = .allocate(capacity: 1)
        Self.initialize(pointer, copying: buffer)
    }

    /// A message holding a copy of a string's UTF-8 bytes.
    /// - Complexity: O(n).
    public init(string: String) {
        pointer = .allocate(capacity: 1)
        var s = string
        let target = pointer
        s.withUTF8 { Self.initialize(target, copying: UnsafeRawBufferPointer($0)) }
    }

    private static func initialize(_ pointer: UnsafeMutablePointer<zmq_msg_t>, copying buffer: UnsafeRawBufferPointer) {
        if zmq_msg_init_size(pointer, buffer.count) != 0 {   // only ENOMEM: fatal, as any allocation failure
            fatalError("zmq_msg_init_size: \(ZMQError(zmq_errno(), call: "zmq_msg_init_size"))")
        }
        if let src = buffer.baseAddress, buffer.count > 0 {
            memcpy(zmq_msg_data(pointer), src, buffer.count)
        }
    }

    deinit {
        zmq_msg_close(pointer)
        pointer.deallocate()
    }

    /// The payload's size in bytes. - Complexity: O(1).
    public var count: Int { zmq_msg_size(pointer) }

    /// Whether more parts of the same message follow this one (after a receive).
    public var more: Bool { zmq_msg_more(pointer) != 0 }

    /// Reads the payload in place, without copying. The pointer is valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(pointer), count: zmq_msg_size(pointer)))
    }

    /// A copy of the payload. - Complexity: O(n).
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The payload decoded as UTF-8 (invalid sequences repaired). - Complexity: O(n).
    public var string: String { withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

    /// A metadata property of a received message (`zmq_msg_gets`): `"Socket-Type"`, `"Routing-Id"`,
    /// `"Peer-Address"`, `"User-Id"` (set by a ZAP handler), or a ZAP handler's own properties.
    /// `nil` when the message has no such property.
    public func property(_ name: String) -> String? {
        guard let value = zmq_msg_gets(pointer, name) else { return nil }
        return String(cString: value)
    }
}

// MARK: - Zero-copy storage

/// Keeps an array's storage alive for libzmq and exposes its (stable) base address.
private final class StorageBox {
    let bytes: [UInt8]
    let base: UnsafeMutableRawPointer

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        // A native Swift array's elements live in one heap buffer that `self.bytes` keeps alive;
        // being a `let`, it is never mutated, so copy-on-write never moves it.
        self.base = UnsafeMutableRawPointer(mutating: self.bytes.withUnsafeBytes { $0.baseAddress! })
    }
}

/// libzmq's free function for ``Message/init(bytes:)``: releases the box (any thread).
private func releaseStorageBox(_ data: UnsafeMutableRawPointer?, _ hint: UnsafeMutableRawPointer?) {
    guard let hint else { return }
    Unmanaged<StorageBox>.fromOpaque(hint).release()
}
