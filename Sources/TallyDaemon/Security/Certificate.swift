public import ZeroMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - Roles and sources

/// What a key may do at the daemon: write events (`producer`: the ingest endpoints), read
/// snapshots (`subscriber`: publication and the snapshot service), or both.
///
/// Written in a certificate's metadata as `role = "producer"`, `"subscriber"` or
/// `"producer,subscriber"`. A certificate without `role` (e.g. a bare public key copied from a
/// pyzmq `create_certificates` pair, whose `.key` file has no metadata) is given both roles, so
/// that the ZeroMQ convention "a key in the directory is authorized" keeps working; a daemon
/// operator who wants least privilege writes the role.
public struct Roles: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let producer = Roles(rawValue: 1)
    public static let subscriber = Roles(rawValue: 2)
    public static let all: Roles = [.producer, .subscriber]

    /// Parses `producer`, `subscriber` or a comma-separated list of them (spaces allowed).
    public init(parsing text: String) throws(CertificateError.Problem) {
        var roles: Roles = []
        for word in text.split(separator: ",") {
            switch word.filter({ $0 != " " && $0 != "\t" }) {
            case "producer": roles.insert(.producer)
            case "subscriber": roles.insert(.subscriber)
            case "": continue
            default: throw .badMetadata("role", "'\(word)' is not a role: use producer, subscriber or producer,subscriber")
            }
        }
        guard !roles.isEmpty else {
            throw .badMetadata("role", "is empty: use producer, subscriber or producer,subscriber")
        }
        self = roles
    }

    /// `producer`, `subscriber` or `producer,subscriber` (the metadata spelling).
    public var description: String {
        var words: [String] = []
        if contains(.producer) { words.append("producer") }
        if contains(.subscriber) { words.append("subscriber") }
        return words.joined(separator: ",")
    }
}

/// Which CloudEvents `source` values a producer key may send.
///
/// Written in the metadata as `sources = "/province/hanoi,/ndxp/"`: an event is allowed when its
/// `source` starts with one of the prefixes (plain byte prefix: `/province/hanoi` also admits
/// `/province/hanoi-2`; end a prefix with `/` to mean "this subtree only"). Absent or `"*"`: any
/// source (the daemon logs a warning for such producer keys at load, because such a key can send
/// events in another agency's name).
public enum SourcePolicy: Sendable, Hashable, CustomStringConvertible {
    case any
    case prefixes([String])

    public init(parsing text: String) throws(CertificateError.Problem) {
        let trimmed = text.filter { $0 != " " && $0 != "\t" }
        if trimmed == "*" {
            self = .any
            return
        }
        let list = trimmed.split(separator: ",").map(String.init)
        guard !list.isEmpty else {
            throw .badMetadata("sources", "is empty: list source prefixes like /province/hanoi,/ndxp/ or write *")
        }
        self = .prefixes(list)
    }

    /// The prefixes for the engine's `Origin(sourcePrefixes:)`: `nil` means unrestricted.
    public var sourcePrefixes: [String]? {
        switch self {
        case .any: return nil
        case .prefixes(let list): return list
        }
    }

    /// Whether `source` is allowed. - Complexity: O(prefixes × prefix length).
    public func allows(_ source: String) -> Bool {
        switch self {
        case .any: return true
        case .prefixes(let list): return list.contains { source.utf8.starts(with: $0.utf8) }
        }
    }

    public var description: String {
        switch self {
        case .any: return "*"
        case .prefixes(let list): return list.joined(separator: ",")
        }
    }
}

// MARK: - Errors

/// A certificate could not be read, parsed or written. The message names the file.
public struct CertificateError: Error, Sendable, CustomStringConvertible {
    public enum Problem: Error, Sendable, CustomStringConvertible {
        case file(SecureFileError)
        case syntax(ZPL.SyntaxError)
        case missingKey(String)
        case badKey(String, String)
        case badMetadata(String, String)
        case mismatchedKeys
        case badName(String)
        case exists(String)

        public var description: String {
            switch self {
            case .file(let e): return e.description
            case .syntax(let e): return "not a ZPL certificate: \(e)"
            case .missingKey(let k): return "no \(k) in the curve section"
            case .badKey(let k, let why): return "\(k) is not a Z85 CURVE key (40 characters): \(why)"
            case .badMetadata(let k, let why): return "metadata \(k) \(why)"
            case .mismatchedKeys: return "secret-key does not belong to public-key"
            case .badName(let n): return "'\(n)' is not a certificate name: use letters, digits, '.', '_' and '-'"
            case .exists(let p): return "'\(p)' already exists: remove it first or choose another name"
            }
        }
    }

    public let path: String
    public let problem: Problem

    public init(path: String, problem: Problem) {
        self.path = path
        self.problem = problem
    }

    public var description: String {
        if case .file(let e) = problem { return e.description }
        return "\(path): \(problem)"
    }
}

// MARK: - Certificate

/// A ZeroMQ CURVE certificate, in the convention CZMQ (`zcert`) and pyzmq (`zmq.auth`) share:
/// `NAME.key` holds the public key, `NAME.key_secret` the public and the secret key, both ZPL:
///
/// ```
/// metadata
///     role = "producer"
///     sources = "/province/hanoi"
/// curve
///     public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
///     secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"   # .key_secret only
/// ```
/// Tally's metadata: `role` (see ``Roles``) and `sources` (see ``SourcePolicy``); other
/// metadata is kept and written back unchanged. The certificate's `name` is the file name
/// without `.key`/`.key_secret`; it becomes the ZAP User-Id of connections made with the key.
public struct Certificate: Sendable {
    public var name: String
    public var publicKey: CurveKey
    /// Present only when loaded from a `.key_secret` file or freshly generated.
    public var secretKey: CurveKey?
    /// All metadata, in file order (Tally reads `role` and `sources`).
    public var metadata: [(name: String, value: String)]

    public init(name: String, publicKey: CurveKey, secretKey: CurveKey? = nil,
                metadata: [(name: String, value: String)] = []) {
        self.name = name
        self.publicKey = publicKey
        self.secretKey = secretKey
        self.metadata = metadata
    }

    /// The value of metadata `key`, if present.
    public func metadata(_ key: String) -> String? { metadata.first { $0.name == key }?.value }

    /// The roles of the key: metadata `role`, or both when absent (see ``Roles``).
    public func roles() throws(CertificateError.Problem) -> Roles {
        guard let text = metadata("role") else { return .all }
        return try Roles(parsing: text)
    }

    /// The sources the key may send: metadata `sources`, or any when absent (see ``SourcePolicy``).
    public func sources() throws(CertificateError.Problem) -> SourcePolicy {
        guard let text = metadata("sources") else { return .any }
        return try SourcePolicy(parsing: text)
    }

    // MARK: Generating

    /// A new key pair with Tally's metadata. `sources` nil = any source.
    ///
    /// - Complexity: one `zmq_curve_keypair` (reads the OS random source).
    public static func generate(name: String, roles: Roles = .all,
                                sources: [String]? = nil) throws(CertificateError) -> Certificate {
        guard isValidName(name) else { throw CertificateError(path: name, problem: .badName(name)) }
        let pair: CurveKeyPair
        do { pair = try CurveKeyPair.generate() } catch {
            throw CertificateError(path: name, problem: .badKey("key pair", error.description))
        }
        var metadata: [(name: String, value: String)] = [("role", roles.description)]
        if let sources {
            for s in sources where !ZPL.isWritable(s) || s.contains(",") {
                throw CertificateError(path: name, problem: .badMetadata("sources", "'\(s)' cannot contain quotes, commas or newlines"))
            }
            metadata.append(("sources", sources.isEmpty ? "*" : sources.joined(separator: ",")))
        }
        return Certificate(name: name, publicKey: pair.publicKey, secretKey: pair.secretKey, metadata: metadata)
    }

    /// Names usable as a file name and a User-Id: `[A-Za-z0-9._-]+`, not starting with `.`.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 200 && name.first != "." && name.allSatisfy { c in
            c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-")
        }
    }

    // MARK: Writing

    /// The public certificate's text (`NAME.key`): metadata and `public-key`, as CZMQ writes it.
    public func publicText() -> String { text(includingSecret: false) }

    /// The secret certificate's text (`NAME.key_secret`); `nil` without a secret key.
    public func secretText() -> String? { secretKey == nil ? nil : text(includingSecret: true) }

    private func text(includingSecret: Bool) -> String {
        var out = includingSecret
            ? "#   ****  Generated by tally keys generate  ****\n"
                + "#   ZeroMQ CURVE **Secret** Certificate\n"
                + "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
            : "#   ****  Generated by tally keys generate  ****\n"
                + "#   ZeroMQ CURVE Public Certificate\n"
                + "#   Exchange securely, or use a secure mechanism to verify the contents\n"
                + "#   of this file after exchange. Copy it into the daemon's --authorized-keys directory.\n\n"
        out += "metadata\n"
        for (k, v) in metadata where ZPL.isWritable(v) { out += ZPL.line(k, v, level: 1) }
        out += "curve\n"
        out += ZPL.line("public-key", publicKey.z85, level: 1)
        if includingSecret, let secretKey { out += ZPL.line("secret-key", secretKey.z85, level: 1) }
        return out
    }

    /// Writes `DIR/NAME.key` (0644) and `DIR/NAME.key_secret` (0600); creates `DIR` 0700 when
    /// missing. Refuses to overwrite either file unless `overwrite`. Returns both paths.
    ///
    /// - Complexity: two small atomic writes with `fsync`.
    @discardableResult
    public func write(toDirectory dir: String, overwrite: Bool = false) throws(CertificateError) -> (publicPath: String, secretPath: String) {
        let base = dir.hasSuffix("/") ? dir + name : dir + "/" + name
        let publicPath = base + ".key"
        let secretPath = base + ".key_secret"
        guard let secret = secretText() else {
            throw CertificateError(path: secretPath, problem: .missingKey("secret-key"))
        }
        if !overwrite {
            for p in [publicPath, secretPath] where SecureFiles.mode(of: p) != nil {
                throw CertificateError(path: p, problem: .exists(p))
            }
        }
        do {
            if SecureFiles.mode(of: dir) == nil { try SecureFiles.createPrivateDirectory(dir) }
            try SecureFiles.writePrivateFile(secretPath, Array(secret.utf8), mode: 0o600)
            try SecureFiles.writePrivateFile(publicPath, Array(publicText().utf8), mode: 0o644)
        } catch {
            throw CertificateError(path: base, problem: .file(error))
        }
        return (publicPath, secretPath)
    }

    // MARK: Reading

    /// Loads a public certificate (`NAME.key`; a `.key_secret` file also works, its secret key is
    /// then ignored and not kept). Name = file name without the extension.
    ///
    /// - Complexity: O(file size), at most 64 KiB read.
    public static func load(publicFile path: String) throws(CertificateError) -> Certificate {
        var cert = try parse(path: path, requireSecret: false)
        cert.secretKey = nil
        return cert
    }

    /// Loads a secret certificate (`NAME.key_secret`), refusing one readable or writable by group
    /// or others (like ssh), one without `secret-key`, and one whose keys do not belong together.
    public static func load(secretFile path: String) throws(CertificateError) -> Certificate {
        do { try SecureFiles.checkSecretFile(path) } catch {
            throw CertificateError(path: path, problem: .file(error))
        }
        return try parse(path: path, requireSecret: true)
    }

    private static func parse(path: String, requireSecret: Bool) throws(CertificateError) -> Certificate {
        let bytes: [UInt8]
        do { bytes = try SecureFiles.read(path) } catch {
            throw CertificateError(path: path, problem: .file(error))
        }
        do throws(CertificateError.Problem) {
            return try parse(text: String(decoding: bytes, as: UTF8.self), name: name(ofFile: path),
                             requireSecret: requireSecret)
        } catch {
            throw CertificateError(path: path, problem: error)
        }
    }

    /// Parses certificate text. Keys are read from the `curve` section (`curve/public-key`); for
    /// pyzmq compatibility a `public-key` anywhere is accepted when the section is missing.
    public static func parse(text: String, name: String,
                             requireSecret: Bool) throws(CertificateError.Problem) -> Certificate {
        let properties: [ZPL.Property]
        do { properties = try ZPL.parse(text) } catch { throw .syntax(error) }
        func find(_ key: String) -> String? {
            properties.first { $0.key == "curve/\(key)" }?.value ?? properties.first { $0.name == key }?.value
        }
        guard let publicText = find("public-key") else { throw .missingKey("public-key") }
        let publicKey: CurveKey
        do { publicKey = try CurveKey(z85: publicText) } catch { throw .badKey("public-key", error.description) }
        var secretKey: CurveKey?
        if let secretText = find("secret-key") {
            do { secretKey = try CurveKey(z85: secretText) } catch { throw .badKey("secret-key", "invalid") }
        }
        if requireSecret {
            guard let secretKey else { throw .missingKey("secret-key") }
            let derived: CurveKeyPair
            do { derived = try CurveKeyPair(secretKey: secretKey) } catch { throw .badKey("secret-key", "invalid") }
            guard derived.publicKey == publicKey else { throw .mismatchedKeys }
        }
        let metadata = properties.filter { $0.path == ["metadata"] }.map { (name: $0.name, value: $0.value) }
        let cert = Certificate(name: name, publicKey: publicKey, secretKey: secretKey, metadata: metadata)
        // Validate Tally's metadata now, so a typo is reported at load, not at the first connection.
        _ = try cert.roles()
        _ = try cert.sources()
        return cert
    }

    /// `dir/hanoi.key_secret` → `hanoi`.
    static func name(ofFile path: String) -> String {
        var base = Substring(path)
        if let slash = base.lastIndex(of: "/") { base = base[base.index(after: slash)...] }
        for ext in [".key_secret", ".key"] where base.hasSuffix(ext) {
            return String(base.dropLast(ext.count))
        }
        return String(base)
    }
}
