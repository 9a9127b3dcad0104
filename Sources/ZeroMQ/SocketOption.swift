import CZeroMQ

// MARK: - SocketOption

/// A typed socket option: the `ZMQ_*` code plus how its value travels through
/// `zmq_setsockopt` / `zmq_getsockopt`. The whole table is below, one line per option, so a
/// value of the wrong type (a `Bool` for `.linger`) does not compile.
///
/// ```swift
/// try socket.set(.linger, 0)
/// try socket.set(.subscribe, Array("tally.".utf8))
/// let hwm = try socket.get(.receiveHighWaterMark)
/// ```
/// Options that libzmq only lets you set (`.subscribe`, `.routerMandatory`, ...) are marked
/// write-only: `get` on them throws ``ZMQError/invalidArgument`` without calling libzmq.
///
/// - Complexity: a set or get allocates one small array for the value's bytes; options are not
///   meant for a hot path.
public struct SocketOption<Value>: Sendable, CustomStringConvertible {
    /// The `ZMQ_*` option code.
    public let code: Int32
    /// The option's name in this table, e.g. `"linger"`.
    public let name: String
    /// The bytes libzmq takes for a value.
    let encode: @Sendable (Value) -> [UInt8]
    /// The value from the bytes libzmq returned; `nil` when libzmq cannot read the option.
    let decode: (@Sendable ([UInt8]) -> Value)?
    /// The size of the buffer handed to `zmq_getsockopt`.
    let capacity: Int

    public var description: String { name }

    /// A custom option, for codes this table lacks.
    public init(code: Int32, name: String, capacity: Int,
                encode: @escaping @Sendable (Value) -> [UInt8],
                decode: (@Sendable ([UInt8]) -> Value)?) {
        self.code = code
        self.name = name
        self.encode = encode
        self.decode = decode
        self.capacity = capacity
    }
}

// MARK: - Codecs

extension SocketOption where Value == Int32 {
    static func int32(_ code: Int32, _ name: String, readable: Bool = true) -> Self {
        let decode: @Sendable ([UInt8]) -> Int32 = { b in b.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } }
        return .init(code: code, name: name, capacity: 4,
                     encode: { v in withUnsafeBytes(of: v) { Array($0) } },
                     decode: readable ? decode : nil)
    }
}

extension SocketOption where Value == Int64 {
    static func int64(_ code: Int32, _ name: String) -> Self {
        .init(code: code, name: name, capacity: 8,
              encode: { v in withUnsafeBytes(of: v) { Array($0) } },
              decode: { b in b.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) } })
    }
}

extension SocketOption where Value == Bool {
    static func bool(_ code: Int32, _ name: String, readable: Bool = true) -> Self {
        let decode: @Sendable ([UInt8]) -> Bool = { b in b.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } != 0 }
        return .init(code: code, name: name, capacity: 4,
                     encode: { v in withUnsafeBytes(of: Int32(v ? 1 : 0)) { Array($0) } },
                     decode: readable ? decode : nil)
    }
}

extension SocketOption where Value == [UInt8] {
    static func bytes(_ code: Int32, _ name: String, capacity: Int, readable: Bool = true) -> Self {
        let identity: @Sendable ([UInt8]) -> [UInt8] = { $0 }
        return .init(code: code, name: name, capacity: capacity, encode: identity, decode: readable ? identity : nil)
    }
}

extension SocketOption where Value == String {
    /// libzmq returns strings with their terminating NUL; it takes them without.
    static func string(_ code: Int32, _ name: String, capacity: Int = 1024) -> Self {
        .init(code: code, name: name, capacity: capacity,
              encode: { Array($0.utf8) },
              decode: { b in String(decoding: b.prefix { $0 != 0 }, as: UTF8.self) })
    }
}

extension SocketOption where Value == CurveKey {
    /// Keys travel as their 32 raw bytes (a 32-byte buffer asks libzmq for the binary form).
    static func curveKey(_ code: Int32, _ name: String) -> Self {
        .init(code: code, name: name, capacity: 32,
              encode: { $0.bytes },
              decode: { b in CurveKey(validated: b) })
    }
}

// MARK: - The table

extension SocketOption where Value == Int32 {
    /// `ZMQ_LINGER` (ms): how long `close` keeps unsent messages for delivery; `-1` forever, `0` drop.
    public static var linger: Self { .int32(ZMQ_LINGER, "linger") }
    /// `ZMQ_SNDHWM` (messages): the outbound queue limit per peer; `0` is unlimited.
    public static var sendHighWaterMark: Self { .int32(ZMQ_SNDHWM, "sendHighWaterMark") }
    /// `ZMQ_RCVHWM` (messages): the inbound queue limit per peer; `0` is unlimited.
    public static var receiveHighWaterMark: Self { .int32(ZMQ_RCVHWM, "receiveHighWaterMark") }
    /// `ZMQ_RCVTIMEO` (ms): a blocking receive returns `nil` after this long; `-1` waits forever.
    public static var receiveTimeout: Self { .int32(ZMQ_RCVTIMEO, "receiveTimeout") }
    /// `ZMQ_SNDTIMEO` (ms): a blocking send returns `false` after this long; `-1` waits forever.
    public static var sendTimeout: Self { .int32(ZMQ_SNDTIMEO, "sendTimeout") }
    /// `ZMQ_HEARTBEAT_IVL` (ms): send a ZMTP PING this often; `0` disables heartbeats.
    public static var heartbeatInterval: Self { .int32(ZMQ_HEARTBEAT_IVL, "heartbeatInterval") }
    /// `ZMQ_HEARTBEAT_TIMEOUT` (ms): drop the connection when no traffic follows a PING this long.
    public static var heartbeatTimeout: Self { .int32(ZMQ_HEARTBEAT_TIMEOUT, "heartbeatTimeout") }
    /// `ZMQ_HEARTBEAT_TTL` (ms, 100 ms resolution): the timeout the peer should apply to us.
    public static var heartbeatTTL: Self { .int32(ZMQ_HEARTBEAT_TTL, "heartbeatTTL") }
    /// `ZMQ_TCP_KEEPALIVE`: `-1` OS default, `0` off, `1` on (`SO_KEEPALIVE`).
    public static var tcpKeepalive: Self { .int32(ZMQ_TCP_KEEPALIVE, "tcpKeepalive") }
    /// `ZMQ_TCP_KEEPALIVE_IDLE` (s): idle time before the first probe (`TCP_KEEPIDLE`); `-1` OS default.
    public static var tcpKeepaliveIdle: Self { .int32(ZMQ_TCP_KEEPALIVE_IDLE, "tcpKeepaliveIdle") }
    /// `ZMQ_TCP_KEEPALIVE_INTVL` (s): time between probes (`TCP_KEEPINTVL`); `-1` OS default.
    public static var tcpKeepaliveInterval: Self { .int32(ZMQ_TCP_KEEPALIVE_INTVL, "tcpKeepaliveInterval") }
    /// `ZMQ_TCP_KEEPALIVE_CNT`: probes before the connection is dropped (`TCP_KEEPCNT`); `-1` OS default.
    public static var tcpKeepaliveCount: Self { .int32(ZMQ_TCP_KEEPALIVE_CNT, "tcpKeepaliveCount") }
    /// `ZMQ_RECONNECT_IVL` (ms): wait before reconnecting; `-1` never reconnect.
    public static var reconnectInterval: Self { .int32(ZMQ_RECONNECT_IVL, "reconnectInterval") }
    /// `ZMQ_RECONNECT_IVL_MAX` (ms): cap of the exponential reconnect back-off; `0` no back-off.
    public static var reconnectIntervalMax: Self { .int32(ZMQ_RECONNECT_IVL_MAX, "reconnectIntervalMax") }
    /// `ZMQ_BACKLOG`: the `listen` backlog of bound tcp/ipc endpoints.
    public static var backlog: Self { .int32(ZMQ_BACKLOG, "backlog") }
    /// `ZMQ_HANDSHAKE_IVL` (ms): drop a connection whose ZMTP handshake takes longer; `0` never.
    public static var handshakeInterval: Self { .int32(ZMQ_HANDSHAKE_IVL, "handshakeInterval") }
    /// `ZMQ_SNDBUF` (bytes): the kernel send buffer; `-1` OS default.
    public static var sendBuffer: Self { .int32(ZMQ_SNDBUF, "sendBuffer") }
    /// `ZMQ_RCVBUF` (bytes): the kernel receive buffer; `-1` OS default.
    public static var receiveBuffer: Self { .int32(ZMQ_RCVBUF, "receiveBuffer") }
    /// `ZMQ_MECHANISM` (read-only): `0` NULL, `1` PLAIN, `2` CURVE, `3` GSSAPI.
    public static var mechanism: Self { .int32(ZMQ_MECHANISM, "mechanism") }
}

extension SocketOption where Value == Int64 {
    /// `ZMQ_MAXMSGSIZE` (bytes): a peer sending a larger message is disconnected; `-1` no limit.
    public static var maxMessageSize: Self { .int64(ZMQ_MAXMSGSIZE, "maxMessageSize") }
}

extension SocketOption where Value == Bool {
    /// `ZMQ_ROUTER_MANDATORY` (write-only): a ROUTER send to an unknown routing id fails with
    /// ``ZMQError/hostUnreachable`` (or returns `false` at the high-water mark) instead of dropping.
    public static var routerMandatory: Self { .bool(ZMQ_ROUTER_MANDATORY, "routerMandatory", readable: false) }
    /// `ZMQ_IMMEDIATE`: queue only to completed connections (no queueing to a peer not yet there).
    public static var immediate: Self { .bool(ZMQ_IMMEDIATE, "immediate") }
    /// `ZMQ_CURVE_SERVER`: act as CURVE server (needs `.curveSecretKey`).
    public static var curveServer: Self { .bool(ZMQ_CURVE_SERVER, "curveServer") }
    /// `ZMQ_PLAIN_SERVER`: act as PLAIN server.
    public static var plainServer: Self { .bool(ZMQ_PLAIN_SERVER, "plainServer") }
    /// `ZMQ_XPUB_VERBOSE` (write-only): pass every subscription message up, not only new ones.
    public static var xpubVerbose: Self { .bool(ZMQ_XPUB_VERBOSE, "xpubVerbose", readable: false) }
    /// `ZMQ_PROBE_ROUTER` (write-only): send an empty message to a ROUTER on connect.
    public static var probeRouter: Self { .bool(ZMQ_PROBE_ROUTER, "probeRouter", readable: false) }
    /// `ZMQ_IPV6`: accept and make IPv6 connections as well.
    public static var ipv6: Self { .bool(ZMQ_IPV6, "ipv6") }
    /// `ZMQ_CONFLATE` (write-only): keep only the last message (PULL, SUB, DEALER; single-part only).
    public static var conflate: Self { .bool(ZMQ_CONFLATE, "conflate", readable: false) }
    /// `ZMQ_RCVMORE` (read-only): the last received part has more parts after it.
    public static var receiveMore: Self { .bool(ZMQ_RCVMORE, "receiveMore") }
}

extension SocketOption where Value == [UInt8] {
    /// `ZMQ_ROUTING_ID` (1...255 bytes, not starting with 0): this socket's identity at a ROUTER.
    public static var routingID: Self { .bytes(ZMQ_ROUTING_ID, "routingID", capacity: 255) }
    /// `ZMQ_CONNECT_ROUTING_ID` (write-only): the routing id a ROUTER gives the next `connect`'s peer.
    public static var connectRoutingID: Self { .bytes(ZMQ_CONNECT_ROUTING_ID, "connectRoutingID", capacity: 255, readable: false) }
    /// `ZMQ_SUBSCRIBE` (write-only, SUB): receive messages starting with these bytes; empty = all.
    public static var subscribe: Self { .bytes(ZMQ_SUBSCRIBE, "subscribe", capacity: 0, readable: false) }
    /// `ZMQ_UNSUBSCRIBE` (write-only, SUB): drop one earlier identical subscription.
    public static var unsubscribe: Self { .bytes(ZMQ_UNSUBSCRIBE, "unsubscribe", capacity: 0, readable: false) }
}

extension SocketOption where Value == String {
    /// `ZMQ_LAST_ENDPOINT` (read-only): the endpoint last bound or connected, with the real port
    /// of a `tcp://127.0.0.1:*` bind.
    public static var lastEndpoint: Self { .string(ZMQ_LAST_ENDPOINT, "lastEndpoint") }
    /// `ZMQ_ZAP_DOMAIN`: the domain sent to the ZAP handler; CURVE/PLAIN servers consult ZAP with it.
    public static var zapDomain: Self { .string(ZMQ_ZAP_DOMAIN, "zapDomain", capacity: 256) }
    /// `ZMQ_SOCKS_PROXY`: connect through this SOCKS5 proxy (`host:port`).
    public static var socksProxy: Self { .string(ZMQ_SOCKS_PROXY, "socksProxy", capacity: 256) }
    /// `ZMQ_PLAIN_USERNAME`: the PLAIN client's user name.
    public static var plainUsername: Self { .string(ZMQ_PLAIN_USERNAME, "plainUsername", capacity: 256) }
    /// `ZMQ_PLAIN_PASSWORD`: the PLAIN client's password.
    public static var plainPassword: Self { .string(ZMQ_PLAIN_PASSWORD, "plainPassword", capacity: 256) }
}

extension SocketOption where Value == CurveKey {
    /// `ZMQ_CURVE_PUBLICKEY`: this socket's long-term public key (clients; servers may set it too).
    public static var curvePublicKey: Self { .curveKey(ZMQ_CURVE_PUBLICKEY, "curvePublicKey") }
    /// `ZMQ_CURVE_SECRETKEY`: this socket's long-term secret key.
    public static var curveSecretKey: Self { .curveKey(ZMQ_CURVE_SECRETKEY, "curveSecretKey") }
    /// `ZMQ_CURVE_SERVERKEY`: the server's public key a client expects; a wrong one fails the handshake.
    public static var curveServerKey: Self { .curveKey(ZMQ_CURVE_SERVERKEY, "curveServerKey") }
}

extension SocketOption where Value == SocketType {
    /// `ZMQ_TYPE` (read-only): the socket's type.
    public static var type: Self {
        .init(code: ZMQ_TYPE, name: "type", capacity: 4,
              encode: { v in withUnsafeBytes(of: v.rawValue) { Array($0) } },
              decode: { b in SocketType(rawValue: b.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }) })
    }
}
