import CZeroMQ

// MARK: - Proxy

/// libzmq's built-in forwarder (`zmq_proxy`): moves messages between a frontend and a backend
/// (ROUTER↔DEALER, XSUB↔XPUB, PULL→PUSH), copying everything to `capture` if given.
public enum Proxy {
    /// Runs the proxy until the context is shut down. It blocks the calling thread for the
    /// proxy's whole life: call it only on a dedicated `Thread`, never from Swift concurrency.
    /// - Throws: ``ZMQError/terminated`` when ``Context/shutdown()`` stops it (the normal end);
    ///   any other ``ZMQError`` is a real failure.
    public static func run(frontend: Socket, backend: Socket, capture: Socket? = nil) throws(ZMQError) {
        guard let f = frontend.pollHandle, let b = backend.pollHandle else {
            throw .notSocketIn("zmq_proxy")
        }
        let c = capture?.pollHandle
        // zmq_proxy always returns -1; ETERM is its normal end.
        try withExtendedLifetime((frontend, backend, capture)) { () throws(ZMQError) in
            _ = try ZMQCall.check("zmq_proxy") { zmq_proxy(f, b, c) }
        }
    }
}

extension ZMQError {
    static func notSocketIn(_ call: String) -> ZMQError { ZMQError(rawValue: ZMQError.notSocket.rawValue).with(call: call) }
    func with(call: String) -> ZMQError { ZMQError(rawValue, call: call, endpoint: endpoint, option: option) }
}
