import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Z85

/// ZeroMQ's Base-85 text encoding (RFC 32/Z85), used for CURVE keys in configuration files.
public enum Z85 {
    /// Encodes bytes whose count is a multiple of 4 (`zmq_z85_encode`): 5 characters per 4 bytes.
    /// - Throws: ``ZMQError/invalidArgument`` when `bytes.count % 4 != 0`.
    /// - Complexity: O(n).
    public static func encode(_ bytes: [UInt8]) throws(ZMQError) -> String {
        guard bytes.count % 4 == 0 else { throw ZMQError(EINVAL, call: "zmq_z85_encode") }
        if bytes.isEmpty { return "" }
        var out = [CChar](repeating: 0, count: bytes.count * 5 / 4 + 1)
        _ = try ZMQCall.pointer("zmq_z85_encode") {
            out.withUnsafeMutableBufferPointer { dst in
                bytes.withUnsafeBufferPointer { zmq_z85_encode(dst.baseAddress, $0.baseAddress, $0.count) }
            }
        }
        return String(decoding: out.prefix(out.count - 1).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes Z85 text whose length is a multiple of 5 (`zmq_z85_decode`).
    /// - Throws: ``ZMQError/invalidArgument`` for a bad length or a character outside the alphabet.
    /// - Complexity: O(n).
    public static func decode(_ text: String) throws(ZMQError) -> [UInt8] {
        let chars = Array(text.utf8)
        guard chars.count % 5 == 0 else { throw ZMQError(EINVAL, call: "zmq_z85_decode") }
        // libzmq 4.3's decoder indexes its table with `char - 32` unchecked: reject out-of-range bytes here.
        guard chars.allSatisfy({ $0 >= 0x21 && $0 <= 0x7D }) else { throw ZMQError(EINVAL, call: "zmq_z85_decode") }
        if chars.isEmpty { return [] }
        var out = [UInt8](repeating: 0, count: chars.count * 4 / 5)
        let cstring = chars.map { CChar(bitPattern: $0) } + [0]
        _ = try ZMQCall.pointer("zmq_z85_decode") {
            out.withUnsafeMutableBufferPointer { dst in
                cstring.withUnsafeBufferPointer { zmq_z85_decode(dst.baseAddress, $0.baseAddress) }
            }
        }
        return out
    }
}

// MARK: - CurveKey

/// A CURVE key: exactly 32 bytes. Stored and compared as bytes; Z85 (40 characters) only at the
/// edges (configuration files, logs), so no code path ever confuses the two forms.
public struct CurveKey: Sendable, Hashable, CustomStringConvertible {
    /// The 32 key bytes.
    public let bytes: [UInt8]

    /// A key from 32 raw bytes. - Throws: ``ZMQError/invalidArgument`` for any other length.
    public init(bytes: [UInt8]) throws(ZMQError) {
        guard bytes.count == 32 else { throw ZMQError(EINVAL, call: "CurveKey(bytes:)") }
        self.bytes = bytes
    }

    /// A key from its 40-character Z85 form. - Throws: ``ZMQError/invalidArgument`` otherwise.
    public init(z85: String) throws(ZMQError) {
        guard z85.utf8.count == 40 else { throw ZMQError(EINVAL, call: "CurveKey(z85:)") }
        self.bytes = try Z85.decode(z85)
    }

    /// For bytes libzmq handed back (always 32).
    init(validated bytes: [UInt8]) { self.bytes = bytes }

    /// The 40-character Z85 form.
    public var z85: String {
        // 32 is a multiple of 4: encoding cannot fail.
        (try? Z85.encode(bytes)) ?? ""
    }

    /// The Z85 form (a public key is fine to log; do not log secret keys).
    public var description: String { z85 }
}

// MARK: - CurveKeyPair

/// A CURVE long-term key pair (Curve25519), as libzmq (with libsodium) generates it.
public struct CurveKeyPair: Sendable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    /// A fresh random pair (`zmq_curve_keypair`).
    /// - Throws: ``ZMQError/notSupported`` when libzmq was built without CURVE.
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        try ZMQCall.check("zmq_curve_keypair") {
            pub.withUnsafeMutableBufferPointer { p in
                sec.withUnsafeMutableBufferPointer { s in zmq_curve_keypair(p.baseAddress, s.baseAddress) }
            }
        }
        return CurveKeyPair(publicKey: try CurveKey(z85: z85Text(pub)),
                            secretKey: try CurveKey(z85: z85Text(sec)))
    }

    /// The pair whose public key derives from `secretKey` (`zmq_curve_public`).
    /// - Throws: ``ZMQError/notSupported`` when libzmq was built without CURVE.
    public init(secretKey: CurveKey) throws(ZMQError) {
        var pub = [CChar](repeating: 0, count: 41)
        let sec = secretKey.z85.utf8.map { CChar(bitPattern: $0) } + [0]
        try ZMQCall.check("zmq_curve_public") {
            pub.withUnsafeMutableBufferPointer { p in
                sec.withUnsafeBufferPointer { zmq_curve_public(p.baseAddress, $0.baseAddress) }
            }
        }
        self.init(publicKey: try CurveKey(z85: z85Text(pub)), secretKey: secretKey)
    }

    /// A pair from keys you already hold (e.g. read from a key file); not checked for consistency.
    public init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

/// The text of a NUL-terminated C buffer libzmq filled.
private func z85Text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
