public import ZeroMQ
import Synchronization

// MARK: - Endpoint roles

/// The daemon's endpoints as security sees them: each has its own ZAP domain (so the ZAP handler
/// knows which endpoint a handshake is for) and the role a key needs to use it.
public enum EndpointRole: String, Sendable, CaseIterable, CustomStringConvertible {
    /// `--ingest` (PULL): fire-and-forget ingest. Needs `producer`.
    case ingest
    /// `--ingest-ack` (ROUTER): acknowledged ingest. Needs `producer`.
    case ingestAck = "ingest-ack"
    /// `--publish` (PUB): snapshot publication. Needs `subscriber`.
    case publish
    /// `--snapshot-service` (ROUTER): snapshots on request. Needs `subscriber`.
    case snapshot

    /// The ZAP domain set on the endpoint's socket (`ZMQ_ZAP_DOMAIN`): the raw value.
    public var zapDomain: String { rawValue }

    /// The role a key must have to complete a handshake on this endpoint.
    public var requiredRole: Roles {
        switch self {
        case .ingest, .ingestAck: return .producer
        case .publish, .snapshot: return .subscriber
        }
    }

    public var description: String { rawValue }
}

// MARK: - AccessPolicy

/// The authorized keys: an immutable snapshot of the `--authorized-keys` directory.
///
/// Immutable on purpose: a reload builds a new policy and swaps it in atomically
/// (``AccessControl``), so the ZAP thread and the engine thread never see half a directory.
/// - Complexity: lookups are O(1) hash lookups; memory O(keys).
public struct AccessPolicy: Sendable {
    /// One authorized key.
    public struct Entry: Sendable, Hashable {
        /// The certificate's name: the ZAP User-Id of this key's connections.
        public let name: String
        public let publicKey: CurveKey
        public let roles: Roles
        public let sources: SourcePolicy
        /// The file it was loaded from.
        public let path: String
    }

    /// Entries by public key (what the ZAP handler sees).
    public private(set) var byKey: [CurveKey: Entry] = [:]
    /// Entries by name (what a message's User-Id carries).
    public private(set) var byName: [String: Entry] = [:]

    public init(entries: [Entry] = []) {
        for e in entries { _ = insert(e) }
    }

    /// How many keys are authorized.
    public var count: Int { byKey.count }

    /// Adds `entry` unless its key or name is already present; returns whether it was added.
    mutating func insert(_ entry: Entry) -> Bool {
        guard byKey[entry.publicKey] == nil, byName[entry.name] == nil else { return false }
        byKey[entry.publicKey] = entry
        byName[entry.name] = entry
        return true
    }

    /// The ZAP decision for a CURVE client key on an endpoint.
    public func authorize(publicKey: CurveKey, for endpoint: EndpointRole) -> Decision {
        guard let entry = byKey[publicKey] else { return .denied(.unknownKey) }
        guard entry.roles.contains(endpoint.requiredRole) else { return .denied(.wrongRole(entry.name)) }
        return .allowed(entry)
    }

    /// The source prefixes allowed to frames whose `User-Id` property is `userId`, for the
    /// engine's `Origin(sourcePrefixes:)`:
    /// - `userId == nil` (CURVE off: no ZAP, no User-Id) → `nil`: unrestricted;
    /// - a known key → its `sources` (`nil` when it may send any source);
    /// - an unknown name (the key was removed by a reload while its connection stayed open) →
    ///   `[]`: nothing is allowed, every event is rejected `source_not_allowed`.
    /// - Complexity: one hash lookup.
    public func origin(forUserId userId: String?) -> [String]? {
        guard let userId, !userId.isEmpty else { return nil }
        guard let entry = byName[userId] else { return [] }
        return entry.sources.sourcePrefixes
    }

    /// Why a handshake is refused.
    public enum DenyReason: Sendable, Hashable, CustomStringConvertible {
        case unknownKey
        case wrongRole(String)
        case notCurve(String)
        case unknownDomain(String)
        case malformedRequest
        /// The handshake failed before ZAP (no key / NULL mechanism, wrong server key); the value is
        /// libzmq's `ZMQ_PROTOCOL_ERROR_*` code, 0 when it gave none.
        case handshakeFailed(UInt32)

        /// A stable label for metrics.
        public var code: String {
            switch self {
            case .unknownKey: return "unknown_key"
            case .wrongRole: return "wrong_role"
            case .notCurve: return "not_curve"
            case .unknownDomain: return "unknown_domain"
            case .malformedRequest: return "malformed_request"
            case .handshakeFailed: return "handshake_failed"
            }
        }

        public var description: String {
            switch self {
            case .unknownKey: return "key not in --authorized-keys"
            case .wrongRole(let name): return "key '\(name)' lacks the role this endpoint needs"
            case .notCurve(let m): return "mechanism \(m) is not CURVE"
            case .unknownDomain(let d): return "unknown ZAP domain '\(d)'"
            case .malformedRequest: return "malformed ZAP request"
            case .handshakeFailed(let code):
                return "handshake failed before authentication (no CURVE key, or the wrong server key; libzmq code 0x\(String(code, radix: 16)))"
            }
        }
    }

    public enum Decision: Sendable, Hashable {
        case allowed(Entry)
        case denied(DenyReason)
    }

    // MARK: Loading

    /// What a load found: the policy, and the files it skipped with why.
    public struct LoadResult: Sendable {
        public var policy: AccessPolicy
        public var skipped: [CertificateError]
        /// Producer keys with `sources` absent or `*`: they may send any source (worth a warning).
        public var unrestrictedProducers: [String]
    }

    /// Loads every `*.key` file of `directory` (not `*.key_secret`, not hidden files).
    ///
    /// A file that fails to parse, or repeats a key already loaded, is skipped and reported in
    /// `skipped`; when `previous` had an entry of the same name, that entry is kept (a key being
    /// edited is not locked out by a half-written file; deleting the file is how a key is revoked).
    /// An unreadable directory throws: the caller keeps its current policy.
    /// - Complexity: O(files × file size).
    public static func load(directory: String, previous: AccessPolicy? = nil) throws(SecureFileError) -> LoadResult {
        let names = try SecureFiles.list(directory).filter { $0.hasSuffix(".key") && !$0.hasPrefix(".") }
        var policy = AccessPolicy()
        var skipped: [CertificateError] = []
        var unrestricted: [String] = []
        let dir = directory.hasSuffix("/") ? directory : directory + "/"
        for file in names {
            let path = dir + file
            do throws(CertificateError) {
                let cert = try Certificate.load(publicFile: path)
                let roles: Roles
                let sources: SourcePolicy
                do throws(CertificateError.Problem) {
                    roles = try cert.roles()
                    sources = try cert.sources()
                } catch {
                    throw CertificateError(path: path, problem: error)
                }
                let entry = Entry(name: cert.name, publicKey: cert.publicKey, roles: roles, sources: sources, path: path)
                guard policy.insert(entry) else {
                    let other = policy.byKey[entry.publicKey]?.name ?? entry.name
                    throw CertificateError(path: path, problem: .badMetadata("public-key", "repeats the key of '\(other)'"))
                }
                if entry.roles.contains(.producer), entry.sources == .any { unrestricted.append(entry.name) }
            } catch {
                skipped.append(error)
                if let old = previous?.byName[Certificate.name(ofFile: path)] { _ = policy.insert(old) }
            }
        }
        return LoadResult(policy: policy, skipped: skipped, unrestrictedProducers: unrestricted)
    }
}

// MARK: - AccessControl

/// The live policy shared by the ZAP thread (handshakes) and the engine thread (per-frame
/// origins), swapped atomically by ``reload()`` (SIGHUP).
///
/// - Complexity: reads take a lock for a pointer copy (the policy is copy-on-write); a reload is
///   O(directory) and never blocks readers for longer than the swap.
public final class AccessControl: Sendable {
    public let directory: String
    private let current: Mutex<AccessPolicy>

    /// Loads `directory` once; a directory that cannot be read is an error (the daemon exits 2).
    public init(directory: String) throws(SecureFileError) {
        self.directory = directory
        let result = try AccessPolicy.load(directory: directory)
        current = Mutex(result.policy)
        initialLoad = result
    }

    /// What the first load found (for the daemon's start-up log).
    public let initialLoad: AccessPolicy.LoadResult

    /// The policy now in force.
    public var policy: AccessPolicy { current.withLock { $0 } }

    /// See ``AccessPolicy/origin(forUserId:)``.
    public func origin(forUserId userId: String?) -> [String]? {
        current.withLock { $0.origin(forUserId: userId) }
    }

    /// Re-reads the directory and swaps the new policy in. If the directory cannot be read, the
    /// current policy stays and the error is thrown; broken files are reported in the result and
    /// keep their previous entry (see ``AccessPolicy/load(directory:previous:)``).
    @discardableResult
    public func reload() throws(SecureFileError) -> AccessPolicy.LoadResult {
        let previous = policy
        let result = try AccessPolicy.load(directory: directory, previous: previous)
        current.withLock { $0 = result.policy }
        return result
    }
}
