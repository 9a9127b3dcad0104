#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CTallyCRC

// MARK: - The syscall funnel

/// The single place where the durability layer calls POSIX, in the style of swift-nio's
/// `System.swift`: every call goes through `syscall(_:path:_:)`, which retries `EINTR` and turns
/// `-1` into a typed `DurabilityError.system` naming the call, the path and the errno.
///
/// Keeping every syscall here makes fault behaviour reviewable in one file: short writes are
/// looped, nothing else retries silently.
enum FileIO {
    /// Runs `body` until it does not fail with EINTR.
    /// - Complexity: O(1) plus the syscall.
    @inline(__always)
    static func syscall<T: FixedWidthInteger>(
        _ call: StaticString, path: String, _ body: () -> T
    ) throws(DurabilityError) -> T {
        while true {
            let result = body()
            if result == -1 {
                let code = errno
                if code == EINTR { continue }
                throw .system(call: "\(call)", path: path, errno: code)
            }
            return result
        }
    }

    // MARK: Files

    /// Opens `path` with `flags`; `mode` is applied explicitly with `fchmod` when the file is
    /// created, so the umask never widens or narrows it.
    static func open(_ path: String, flags: Int32, mode: mode_t = 0o600) throws(DurabilityError) -> Int32 {
        let fd = try syscall("open", path: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        if flags & O_CREAT != 0 {
            do {
                _ = try syscall("fchmod", path: path) { fchmod(fd, mode) }
            } catch {
                Glibc.close(fd)
                throw error
            }
        }
        return fd
    }

    /// Opens `path` (which exists) again for writing with `O_DIRECT`: writes then go from the
    /// caller's memory to the device, past the page cache.
    /// - Returns: the descriptor, or nil when this platform or file system has no direct I/O
    ///   (`O_DIRECT` answered with EINVAL, as on tmpfs): the caller then writes through the cache.
    static func openDirect(_ path: String) throws(DurabilityError) -> Int32? {
        let flag = tally_o_direct_flag()
        guard flag != 0 else { return nil }
        do {
            return try open(path, flags: O_WRONLY | flag)
        } catch {
            if case .system(_, _, EINVAL) = error { return nil }
            throw error
        }
    }

    /// Closes `fd`. EINTR is not retried (Linux closes the descriptor anyway).
    static func close(_ fd: Int32, path: String) throws(DurabilityError) {
        if Glibc.close(fd) == -1, errno != EINTR {
            throw .system(call: "close", path: path, errno: errno)
        }
    }

    /// Writes all of `bytes` at `offset`, looping over short writes.
    /// A failure part-way leaves a partial write on disk: the caller owns rolling it back.
    /// - Complexity: O(n) bytes, normally one syscall.
    static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64, path: String) throws(DurabilityError) {
        var done = 0
        while done < bytes.count {
            let n = try syscall("pwrite", path: path) {
                pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            }
            if n == 0 { throw .system(call: "pwrite", path: path, errno: EIO) }
            done += n
        }
    }

    /// Writes every byte the `iovecs` describe, in order, at `offset`: one `pwritev` per
    /// `IOV_MAX` (1,024) pieces, looping over short writes (the pieces are advanced in place,
    /// so the caller's array is consumed).
    /// A failure part-way leaves a partial write on disk: the caller owns rolling it back.
    /// - Complexity: O(pieces + bytes), normally one syscall.
    static func pwritevAll(_ fd: Int32, _ iovecs: UnsafeMutableBufferPointer<iovec>, at offset: Int64, path: String) throws(DurabilityError) {
        guard let base = iovecs.baseAddress else { return }
        var first = 0
        var position = offset
        while first < iovecs.count {
            if base[first].iov_len == 0 { first += 1; continue }
            let pieces = Int32(min(iovecs.count - first, 1024))
            let n = try syscall("pwritev", path: path) { pwritev(fd, base + first, pieces, off_t(position)) }
            if n == 0 { throw .system(call: "pwritev", path: path, errno: EIO) }
            position += Int64(n)
            var left = n
            while left > 0 {
                let len = base[first].iov_len
                if left >= len {
                    left -= len
                    base[first].iov_len = 0
                    first += 1
                } else {
                    base[first].iov_base = base[first].iov_base! + left
                    base[first].iov_len = len - left
                    left = 0
                }
            }
        }
    }

    /// Writes zeros over `[from, to)` in 1 MiB `pwrite`s (real blocks, not `fallocate`'s
    /// unwritten extents, whose first overwrite still changes metadata).
    /// - Complexity: O(to − from).
    static func writeZeros(_ fd: Int32, from: Int64, to: Int64, path: String) throws(DurabilityError) {
        guard from < to else { return }
        let zeros = [UInt8](repeating: 0, count: Int(min(to - from, 1 << 20)))
        var position = from
        while position < to {
            let n = Int(min(Int64(zeros.count), to - position))
            let p = position
            try zeros.withUnsafeBytes { z in
                Result { () throws(DurabilityError) in
                    try pwriteAll(fd, UnsafeRawBufferPointer(rebasing: z[..<n]), at: p, path: path)
                }
            }.get()
            position += Int64(n)
        }
    }

    /// Reads up to `count` bytes at `offset` into `buffer`, looping until `count` bytes or EOF.
    /// - Returns: the number of bytes read (less than `count` only at end of file).
    static func preadFully(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int64, path: String) throws(DurabilityError) -> Int {
        var done = 0
        while done < count {
            let n = try syscall("pread", path: path) {
                pread(fd, buffer + done, count - done, off_t(offset) + off_t(done))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func fdatasync(_ fd: Int32, path: String) throws(DurabilityError) {
        #if os(Linux)
        _ = try syscall("fdatasync", path: path) { Glibc.fdatasync(fd) }
        #else
        _ = try syscall("fsync", path: path) { fsync(fd) }
        #endif
    }

    /// Starts the kernel's writeback of `length` bytes at `offset` and returns without waiting for
    /// it (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux; nothing elsewhere).
    ///
    /// Why: the write-ahead log appends hundreds of MB/s into the page cache. Left alone, that
    /// data is written back only when an `fdatasync` (the 100 ms timer, a segment roll) asks for
    /// it, and that call then waits for all of it: 10–30 ms stalls at 1.5 M events/s, during which
    /// the engine waits for the log's thread. Started as it is appended (PostgreSQL's
    /// `wal_writer_flush_after`, RocksDB's `wal_bytes_per_sync`), the writeback runs alongside,
    /// and the `fdatasync` finds little left.
    ///
    /// Advisory only, so it never throws: a failure (an errno this returns, e.g. `EIO`) is still
    /// reported by the `fdatasync` that follows, which is what makes anything durable.
    /// - Returns: 0, or the errno of the call.
    /// - Complexity: O(pages in the range) to queue their I/O; it blocks only when the device's
    ///   request queue is full.
    @discardableResult
    static func startWriteback(_ fd: Int32, offset: Int64, length: Int64) -> Int32 {
        Int32(tally_start_writeback(fd, offset, length))
    }

    /// Starts the writeback of `[from, end)` once it holds at least `every` bytes, and moves
    /// `from` to `end`: what the log and the checkpoint store call after each write.
    /// - Complexity: O(1), plus ``startWriteback(_:offset:length:)`` when it fires.
    @inline(__always)
    static func startWriteback(_ fd: Int32, from: inout Int64, to end: Int64, every: Int64) {
        guard end - from >= every else { return }
        startWriteback(fd, offset: from, length: end - from)
        from = end
    }

    static func fsync(_ fd: Int32, path: String) throws(DurabilityError) {
        _ = try syscall("fsync", path: path) { Glibc.fsync(fd) }
    }

    static func ftruncate(_ fd: Int32, to length: Int64, path: String) throws(DurabilityError) {
        _ = try syscall("ftruncate", path: path) { Glibc.ftruncate(fd, off_t(length)) }
    }

    static func fileSize(_ fd: Int32, path: String) throws(DurabilityError) -> Int64 {
        var st = stat()
        _ = try syscall("fstat", path: path) { fstat(fd, &st) }
        return Int64(st.st_size)
    }

    // MARK: Paths and directories

    static func rename(_ from: String, _ to: String) throws(DurabilityError) {
        _ = try syscall("rename", path: "\(from) -> \(to)") { Glibc.rename(from, to) }
    }

    static func unlink(_ path: String) throws(DurabilityError) {
        _ = try syscall("unlink", path: path) { Glibc.unlink(path) }
    }

    /// Removes `path`, treating "already gone" as success.
    static func unlinkIfPresent(_ path: String) throws(DurabilityError) {
        if Glibc.unlink(path) == -1, errno != ENOENT {
            throw .system(call: "unlink", path: path, errno: errno)
        }
    }

    /// Creates `path` (and missing parents) with `mode`, or tightens an existing directory to
    /// `mode`; the mode is set with `chmod`, so it does not depend on the umask.
    static func makeDirectory(_ path: String, mode: mode_t = 0o700) throws(DurabilityError) {
        var isDir = stat()
        if stat(path, &isDir) == 0 {
            guard (isDir.st_mode & S_IFMT) == S_IFDIR else {
                throw .system(call: "mkdir", path: path, errno: ENOTDIR)
            }
        } else {
            let parent = parentDirectory(of: path)
            if parent != path, !parent.isEmpty, access(parent, F_OK) != 0 {
                try makeDirectory(parent, mode: mode)
            }
            if mkdir(path, mode) == -1, errno != EEXIST {
                throw .system(call: "mkdir", path: path, errno: errno)
            }
        }
        _ = try syscall("chmod", path: path) { chmod(path, mode) }
    }

    /// fsyncs a directory so that creations, renames and removals inside it are durable.
    static func syncDirectory(_ path: String) throws(DurabilityError) {
        let fd = try syscall("open", path: path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { Glibc.close(fd) }
        try fsync(fd, path: path)
    }

    /// The names in a directory (no `.`/`..`), unsorted.
    /// - Complexity: O(entries).
    static func listDirectory(_ path: String) throws(DurabilityError) -> [String] {
        guard let dir = opendir(path) else {
            throw .system(call: "opendir", path: path, errno: errno)
        }
        defer { closedir(dir) }
        return entryNames(dir)
    }

    /// The entry names left in an open directory stream (no `.`/`..`), unsorted: the one
    /// `readdir` loop behind ``listDirectory(_:)`` and `SecureFiles.list`.
    static func entryNames(_ dir: OpaquePointer) -> [String] {
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Takes an exclusive, non-blocking `flock` on `path` (created 0600) and returns its fd; the
    /// lock lives as long as the descriptor and dies with the process, even on kill -9.
    static func lockFile(_ path: String) throws(DurabilityError) -> Int32 {
        let fd = try open(path, flags: O_RDWR | O_CREAT, mode: 0o600)
        if flock(fd, LOCK_EX | LOCK_NB) == -1 {
            let code = errno
            Glibc.close(fd)
            if code == EWOULDBLOCK { throw .stateDirectoryLocked(path: path) }
            throw .system(call: "flock", path: path, errno: code)
        }
        return fd
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
