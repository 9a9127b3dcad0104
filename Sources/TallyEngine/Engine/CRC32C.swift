import CTallyCRC

// MARK: - CRC32C (Castagnoli)

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every log record and
/// checkpoint: it detects all burst errors up to 32 bits and is what ext4, iSCSI and LevelDB use.
///
/// Hardware first: the SSE4.2 `crc32` instruction (ARMv8 `crc32c*`) through the small C target
/// `CTallyCRC`, chosen once at run time by CPUID, ~5× the software rate (the software CRC was
/// ~200 ns of every 277-byte event on the ingest path). Otherwise software slicing-by-8: eight
/// 256-entry tables (8 KiB, built once) consume 8 bytes per iteration with eight independent
/// table look-ups. Both give identical results (tested). Chaining:
/// `update(checksum(a), b) == checksum(a + b)`.
public enum CRC32C {
    /// Whether this CPU's CRC-32C instruction is used (decided once per process).
    public static let usesHardware: Bool = tally_crc32c_hw_available() != 0

    /// Reflected Castagnoli polynomial.
    public static let polynomial: UInt32 = 0x82F6_3B78

    /// 8 × 256 entries; slice k is the CRC of a byte followed by k zero bytes.
    static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ polynomial : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let prev = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        return t
    }()

    /// The CRC-32C of `bytes`.
    /// - Complexity: O(n), about 1 ns per byte or better.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        update(0, bytes)
    }

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }

    /// Extends a finished checksum `crc` over `bytes` (as if the bytes had been appended).
    /// - Complexity: O(n): ~0.1 ns per byte with the instruction, ~0.7 ns in software.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        if usesHardware { return tally_crc32c_update_hw(crc, base, bytes.count) }
        return softwareUpdate(crc, bytes)
    }

    /// The portable slicing-by-8 path (also the reference the hardware path is tested against).
    /// - Complexity: O(n).
    public static func softwareUpdate(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return crc }
        var n = bytes.count
        var c = ~crc
        return table.withUnsafeBufferPointer { tb -> UInt32 in
            let t = tb.baseAddress!
            while n >= 8 {
                let word = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) ^ UInt64(c)
                c = t[7 * 256 + Int(word & 0xFF)]
                    ^ t[6 * 256 + Int((word >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((word >> 16) & 0xFF)]
                    ^ t[4 * 256 + Int((word >> 24) & 0xFF)]
                    ^ t[3 * 256 + Int((word >> 32) & 0xFF)]
                    ^ t[2 * 256 + Int((word >> 40) & 0xFF)]
                    ^ t[1 * 256 + Int((word >> 48) & 0xFF)]
                    ^ t[Int(word >> 56)]
                p += 8
                n -= 8
            }
            while n > 0 {
                c = t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                p += 1
                n -= 1
            }
            return ~c
        }
    }

    /// Extends a finished checksum over `bytes`.
    public static func update(_ crc: UInt32, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(crc, $0) }
    }
}
