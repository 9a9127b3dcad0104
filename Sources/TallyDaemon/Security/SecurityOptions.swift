public import ZeroMQ
public import Logging

// MARK: - Errors

/// A security setting is wrong or unsafe: the daemon exits with ``exitCode`` (2, a configuration
/// error) and prints ``description``, which says what to do.
public struct SecurityConfigError: Error, Sendable, CustomStringConvertible {
    public let message: String
    /// The process exit code the daemon should use: 2 (usage or configuration error).
    public let exitCode: Int32 = 2

    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - SecurityOptions

/// The security flags of `tally run` (and the same keys in its config file):
/// - `--curve-secret FILE`: the server's secret certificate (`NAME.key_secret`, mode 0600). Every
///   endpoint becomes a CURVE server whose handshakes go through the ZAP handler.
/// - `--authorized-keys DIR`: the public certificates (`*.key`) of the clients allowed in, each
///   with its `role` and `sources` metadata. Required with `--curve-secret`, reloaded on SIGHUP.
/// - `--insecure`: allow binding non-loopback addresses without CURVE (logged loudly).
public struct SecurityOptions: Sendable, Equatable {
    public var curveSecret: String?
    public var authorizedKeys: String?
    public var insecure: Bool

    public init(curveSecret: String? = nil, authorizedKeys: String? = nil, insecure: Bool = false) {
        self.curveSecret = curveSecret
        self.authorizedKeys = authorizedKeys
        self.insecure = insecure
    }

    /// Whether CURVE is on (`--curve-secret` given).
    public var curve: Bool { curveSecret != nil }

    /// Checks the combination of flags (not the files): CURVE needs an allow-list and vice versa.
    public func validate() throws(SecurityConfigError) {
        if curveSecret != nil, authorizedKeys == nil {
            throw SecurityConfigError(
                "--curve-secret needs --authorized-keys DIR: without an allow-list any client could connect; "
                    + "put the clients' public certificates (NAME.key, from `tally keys generate NAME --dir DIR`) "
                    + "in a directory and pass it with --authorized-keys")
        }
        if authorizedKeys != nil, curveSecret == nil {
            throw SecurityConfigError(
                "--authorized-keys needs --curve-secret FILE: keys are only checked on CURVE endpoints; "
                    + "create the server certificate with `tally keys generate server --dir /etc/tally/keys` "
                    + "and pass --curve-secret /etc/tally/keys/server.key_secret")
        }
    }

    // MARK: Binds

    /// Refuses a non-loopback bind without CURVE, unless `insecure`; with `insecure`, logs a loud
    /// warning for each such bind. Loopback = `127.0.0.0/8`, `::1`, `localhost`, the `lo`
    /// interface, and the local transports `ipc://` and `inproc://`; `*`, `0.0.0.0`, other
    /// addresses, host names and interface names are not.
    ///
    /// - Throws: ``SecurityConfigError`` (exit 2) naming the endpoint and how to enable CURVE.
    /// - Complexity: O(total endpoint length).
    public static func validateBinds(endpoints: [String], curve: Bool, insecure: Bool,
                                     logger: Logger? = nil) throws(SecurityConfigError) {
        guard !curve else { return }
        let open = endpoints.filter { !isLoopback(endpoint: $0) }
        guard !open.isEmpty else { return }
        if insecure {
            for endpoint in open {
                logger?.critical(
                    "INSECURE: \(endpoint) is reachable from the network WITHOUT CURVE: anyone who can reach it can send events or read snapshots (--insecure)",
                    metadata: ["endpoint": "\(endpoint)"])
            }
            return
        }
        throw SecurityConfigError(
            "refusing to bind \(open.joined(separator: ", ")) without CURVE security: it is not a loopback address. "
                + "Enable CURVE: `tally keys generate server --dir /etc/tally/keys`, then run with "
                + "--curve-secret /etc/tally/keys/server.key_secret --authorized-keys /etc/tally/authorized "
                + "(holding your clients' NAME.key files); or bind 127.0.0.1; or pass --insecure to accept the risk")
    }

    /// Whether a ZeroMQ endpoint string binds only the local machine.
    public static func isLoopback(endpoint: String) -> Bool {
        guard let sep = endpoint.range(of: "://") else { return false }
        let transport = endpoint[..<sep.lowerBound].lowercased()
        var address = endpoint[sep.upperBound...]
        switch transport {
        case "ipc", "inproc": return true
        case "tcp", "ws", "wss", "udp": break
        default: return false              // pgm, epgm, norm, vmci: network by nature
        }
        // `tcp://src;dst` is connect-only syntax; a bind has no `;`. Be strict anyway.
        if address.contains(";") { return false }
        // Strip a ws path.
        if let slash = address.firstIndex(of: "/") { address = address[..<slash] }
        // Host part: `[::1]:port`, `host:port`.
        let host: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]") else { return false }
            host = address[address.index(after: address.startIndex)..<close]
        } else if let colon = address.lastIndex(of: ":") {
            host = address[..<colon]
        } else {
            host = address
        }
        let h = host.lowercased()
        if h == "localhost" || h == "lo" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        if h.hasPrefix("::ffff:") { return isIPv4Loopback(String(h.dropFirst(7))) }
        return isIPv4Loopback(h)
    }

    private static func isIPv4Loopback(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber) && Int(p)! <= 255
        }) else { return false }
        return parts[0] == "127"
    }
}

// MARK: - Security (the running part)

/// Security for one running daemon: the server certificate, the live allow-list, the ZAP handler.
///
/// The daemon's use, in this order:
/// ```swift
/// try options.validate()                                                   // exit 2 on error
/// try SecurityOptions.validateBinds(endpoints: all, curve: options.curve,
///                                   insecure: options.insecure, logger: log)   // exit 2 on error
/// let security = try Security.start(options: options, context: ctx, logger: log)  // before any bind
/// try security.configure(socket: pull, role: .ingest)                     // before bind()
/// ...
/// let prefixes = security.origin(forUserId: frame.property("User-Id"))
/// engine.ingest(bytes, origin: Origin(sourcePrefixes: prefixes))
/// ...
/// security.reload()          // on SIGHUP
/// security.stop()            // after the sockets are closed, before ctx.shutdown()
/// ```
/// With CURVE off (`--curve-secret` absent) it is inert: `configure` does nothing and `origin`
/// returns `nil` (unrestricted), so the daemon has one code path.
public final class Security: Sendable {
    /// The server certificate (with its secret key); `nil` when CURVE is off.
    public let serverCertificate: Certificate?
    /// The allow-list; `nil` when CURVE is off.
    public let access: AccessControl?
    /// The ZAP handler; `nil` when CURVE is off.
    public let zap: ZAPHandler?
    private let logger: Logger

    private init(serverCertificate: Certificate?, access: AccessControl?, zap: ZAPHandler?, logger: Logger) {
        self.serverCertificate = serverCertificate
        self.access = access
        self.zap = zap
        self.logger = logger
    }

    /// Loads the server's secret certificate (refusing one readable by others) and the allow-list,
    /// and starts the ZAP handler on `context`. Call before binding any socket of `context`.
    ///
    /// - Throws: ``SecurityConfigError`` (exit 2) naming the file and the fix.
    public static func start(options: SecurityOptions, context: Context,
                             logger: Logger) throws(SecurityConfigError) -> Security {
        try options.validate()
        guard let secretPath = options.curveSecret, let keysDir = options.authorizedKeys else {
            return Security(serverCertificate: nil, access: nil, zap: nil, logger: logger)
        }
        let cert: Certificate
        do { cert = try Certificate.load(secretFile: secretPath) } catch {
            throw SecurityConfigError("--curve-secret: \(error)")
        }
        let access: AccessControl
        do { access = try AccessControl(directory: keysDir) } catch {
            throw SecurityConfigError("--authorized-keys: \(error)")
        }
        report(access.initialLoad, logger: logger, event: "loaded")
        let zap: ZAPHandler
        do { zap = try ZAPHandler(context: context, access: access, logger: logger) } catch {
            throw SecurityConfigError("cannot start the ZAP handler: \(error)")
        }
        logger.notice("CURVE on: server key \(cert.publicKey.z85), \(access.initialLoad.policy.count) authorized keys",
                      metadata: ["server_key": "\(cert.publicKey.z85)", "authorized_keys": "\(keysDir)"])
        return Security(serverCertificate: cert, access: access, zap: zap, logger: logger)
    }

    /// Makes `socket` a CURVE server for `role`'s endpoint (server keys + ZAP domain); a no-op with
    /// CURVE off. Call before `bind`, on the thread that owns the socket.
    ///
    /// `monitorHandshakes: true` also counts (in ``rejectedHandshakes``, the metric and the log)
    /// handshakes that fail before ZAP (clients with no key or the wrong server key) through the
    /// socket's monitor. Off by default because libzmq allows one monitor per socket and the daemon's
    /// own connection monitor already watches `handshakeFailed`; turn it on only for a socket that
    /// has no other monitor.
    public func configure(socket: Socket, role: EndpointRole, monitorHandshakes: Bool = false) throws(ZMQError) {
        guard let cert = serverCertificate, let secret = cert.secretKey else { return }
        try socket.set(.curveServer, true)
        try socket.set(.curveSecretKey, secret)
        try socket.set(.curvePublicKey, cert.publicKey)
        try socket.set(.zapDomain, role.zapDomain)
        if monitorHandshakes { try zap?.watch(socket, role: role) }
    }

    /// The allowed source prefixes for a frame's `User-Id` (see ``AccessPolicy/origin(forUserId:)``);
    /// `nil` (unrestricted) with CURVE off. - Complexity: one locked hash lookup.
    public func origin(forUserId userId: String?) -> [String]? {
        guard let access else { return nil }
        return access.origin(forUserId: userId)
    }

    /// Re-reads `--authorized-keys` (SIGHUP). Logs what changed; on an unreadable directory logs
    /// an error and keeps the current set. Returns whether the new set is in force.
    @discardableResult
    public func reload() -> Bool {
        guard let access else { return false }
        let before = access.policy
        do {
            let result = try access.reload()
            let added = result.policy.byName.keys.filter { before.byName[$0] == nil }.sorted()
            let removed = before.byName.keys.filter { result.policy.byName[$0] == nil }.sorted()
            report(result, logger: logger, event: "reloaded")
            logger.notice("authorized keys reloaded: \(result.policy.count) keys",
                          metadata: ["added": "\(added)", "removed": "\(removed)"])
            return true
        } catch {
            logger.error("authorized keys NOT reloaded, keeping the current \(before.count) keys: \(error)")
            return false
        }
    }

    /// Handshakes refused so far (0 with CURVE off).
    public var rejectedHandshakes: Int { zap?.rejectedCount ?? 0 }

    /// Stops the ZAP handler. Call after closing the CURVE sockets, before `Context.shutdown()`.
    public func stop() { zap?.stop() }

    private static func report(_ result: AccessPolicy.LoadResult, logger: Logger, event: String) {
        for error in result.skipped {
            logger.error("authorized key skipped: \(error)")
        }
        for name in result.unrestrictedProducers {
            logger.warning("producer key '\(name)' has no `sources` metadata: it may send events with ANY source")
        }
    }

    private func report(_ result: AccessPolicy.LoadResult, logger: Logger, event: String) {
        Self.report(result, logger: logger, event: event)
    }
}
