#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Errors

/// A file-system operation on a key or the state directory failed, or a file's permissions
/// are unsafe. The message names the path and says what to do, like ssh's.
public struct SecureFileError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A secret file is readable or writable by group or others.
        case tooOpen(mode: UInt32)
        /// A file or directory could not be created, read, written or inspected.
        case io(errno: Int32)
        /// The path exists but is not what was expected (a file where a directory belongs, ...).
        case wrongKind
    }

    public let path: String
    public let kind: Kind
    public let operation: String

    public init(path: String, kind: Kind, operation: String) {
        self.path = path
        self.kind = kind
        self.operation = operation
    }

    public var description: String {
        switch kind {
        case .tooOpen(let mode):
            let octal = String(mode & 0o777, radix: 8)
            return "permissions 0\(octal) for '\(path)' are too open: a secret key must not be "
                + "accessible by others; run: chmod 600 '\(path)'"
        case .io(let code):
            return "cannot \(operation) '\(path)': \(String(cString: strerror(code)))"
        case .wrongKind:
            return "cannot \(operation) '\(path)': it exists but is not the expected kind of file"
        }
    }
}

// MARK: - SecureFiles

/// Creating and checking files that hold secrets or state: secret keys 0600, the state directory
/// 0700, every file in it 0600.
///
/// Why not Foundation's `FileManager`: it creates the file first and sets the mode after, a window
/// in which another user can open it. Here the mode is given to `open(2)` / `mkdir(2)` itself, and
/// the process umask is irrelevant because we `fchmod` to the exact mode as well.
public enum SecureFiles {
    /// Mode bits (group and others) that make a secret file "too open", as ssh judges it.
    public static let forbiddenSecretBits: UInt32 = 0o077

    /// Throws ``SecureFileError`` if the secret file at `path` is readable or writable by group
    /// or others, or cannot be inspected. Symbolic links are followed (the target's mode counts).
    ///
    /// - Complexity: one `stat(2)`.
    public static func checkSecretFile(_ path: String) throws(SecureFileError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw SecureFileError(path: path, kind: .io(errno: errno), operation: "read the secret key")
        }
        guard (UInt32(st.st_mode) & UInt32(S_IFMT)) == UInt32(S_IFREG) else {
            throw SecureFileError(path: path, kind: .wrongKind, operation: "read the secret key")
        }
        let mode = UInt32(st.st_mode) & 0o7777
        if mode & forbiddenSecretBits != 0 {
            throw SecureFileError(path: path, kind: .tooOpen(mode: mode), operation: "read the secret key")
        }
    }

    /// The permission bits of `path` (`0o600`), or `nil` if it cannot be `stat`ed.
    public static func mode(of path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(st.st_mode) & 0o7777
    }

    /// Creates `path` (and missing parents, 0700 too) as a directory with mode 0700; an existing
    /// directory is tightened to 0700. This is the state directory's contract.
    ///
    /// - Complexity: one `mkdir` + `chmod` per missing component.
    public static func createPrivateDirectory(_ path: String) throws(SecureFileError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (UInt32(st.st_mode) & UInt32(S_IFMT)) == UInt32(S_IFDIR) else {
                throw SecureFileError(path: path, kind: .wrongKind, operation: "use as a directory")
            }
            if UInt32(st.st_mode) & 0o777 != 0o700, chmod(path, 0o700) != 0 {
                throw SecureFileError(path: path, kind: .io(errno: errno), operation: "chmod 700")
            }
            return
        }
        let parent = parentDirectory(of: path)
        if !parent.isEmpty, parent != path, stat(parent, &st) != 0 {
            try createPrivateDirectory(parent)
        }
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            throw SecureFileError(path: path, kind: .io(errno: errno), operation: "create the directory")
        }
        if chmod(path, 0o700) != 0 {
            throw SecureFileError(path: path, kind: .io(errno: errno), operation: "chmod 700")
        }
    }

    /// Writes `bytes` to `path` with mode `mode` (default 0600), atomically: a temporary file in
    /// the same directory created with that mode, written, `fsync`ed and renamed over `path`.
    /// A reader sees the old content or the new, never a mix, and never a wider mode.
    ///
    /// - Complexity: O(n) bytes written, one `fsync`.
    public static func writePrivateFile(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o600,
                                        overwrite: Bool = true) throws(SecureFileError) {
        if !overwrite, access(path, F_OK) == 0 {
            throw SecureFileError(path: path, kind: .io(errno: EEXIST), operation: "create")
        }
        let temp = path + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode_t(mode))
        guard fd >= 0 else {
            throw SecureFileError(path: temp, kind: .io(errno: errno), operation: "create")
        }
        var failure: SecureFileError?
        if fchmod(fd, mode_t(mode)) != 0 {
            failure = SecureFileError(path: temp, kind: .io(errno: errno), operation: "chmod")
        }
        var written = 0
        while failure == nil, written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = SecureFileError(path: temp, kind: .io(errno: errno), operation: "write")
            } else {
                written += n
            }
        }
        if failure == nil, fsync(fd) != 0 {
            failure = SecureFileError(path: temp, kind: .io(errno: errno), operation: "fsync")
        }
        close(fd)
        if failure == nil, rename(temp, path) != 0 {
            failure = SecureFileError(path: path, kind: .io(errno: errno), operation: "rename into place")
        }
        if let failure {
            unlink(temp)
            throw failure
        }
    }

    /// The contents of a regular file, at most `limit` bytes (a certificate is a few hundred).
    ///
    /// - Complexity: O(n) in the file's size, bounded by `limit`.
    public static func read(_ path: String, limit: Int = 64 * 1024) throws(SecureFileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SecureFileError(path: path, kind: .io(errno: errno), operation: "open") }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SecureFileError(path: path, kind: .io(errno: errno), operation: "read")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit {
                throw SecureFileError(path: path, kind: .io(errno: EFBIG), operation: "read (larger than \(limit) bytes)")
            }
        }
        return out
    }

    /// Names of the entries of directory `path` (not `.`/`..`), sorted.
    public static func list(_ path: String) throws(SecureFileError) -> [String] {
        guard let dir = opendir(path) else {
            throw SecureFileError(path: path, kind: .io(errno: errno), operation: "list the directory")
        }
        defer { closedir(dir) }
        return FileIO.entryNames(dir).sorted()
    }

    static func parentDirectory(of path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        let parent = p[..<slash]
        return parent.isEmpty ? "/" : String(parent)
    }
}
