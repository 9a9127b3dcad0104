import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Dedicated threads

/// Starts `body` on a new detached POSIX thread named `name` (as `top -H` and `perf` show it).
///
/// Why not the cooperative pool: the engine and the snapshot service block in `zmq_poll`, and
/// Swift concurrency's pool must never block on ZeroMQ.
/// - Returns: a ``Completion`` that fires when `body` returns.
@discardableResult
func spawnThread(name: String, _ body: @escaping @Sendable () -> Void) -> Completion {
    let completion = Completion()
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        let name: String
        let completion: Completion
        init(_ body: @escaping @Sendable () -> Void, _ name: String, _ completion: Completion) {
            self.body = body
            self.name = name
            self.completion = completion
        }
    }
    let box = Unmanaged.passRetained(Box(body, name, completion)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    var tid = pthread_t()
    let rc = pthread_create(&tid, &attr, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        nameCurrentThread(box.name)
        box.body()
        box.completion.fire()
        return nil
    }, box)
    pthread_attr_destroy(&attr)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return completion
}

/// A one-shot event: awaited by async code and by threads alike.
public final class Completion: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    /// Fires once; later calls do nothing.
    public func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard !s.fired else { return [] }
            s.fired = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    public var isFired: Bool { state.withLock { $0.fired } }

    /// Suspends until fired.
    public func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.fired { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// Blocks the calling thread (never a pool thread) until fired or `timeout` passes.
    /// - Returns: whether it fired.
    public func waitBlocking(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !isFired {
            if ContinuousClock.now >= deadline { return false }
            usleep(1_000)
        }
        return true
    }
}

// MARK: - Wake pipe

/// A self-pipe: another thread writes a byte to wake `zmq_poll` on the read end at once
/// (stop, reload), so the engine loop never needs a short poll timeout to notice them.
final class WakePipe: Sendable {
    let readFD: Int32
    let writeFD: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        let rc = fds.withUnsafeMutableBufferPointer { pipe($0.baseAddress!) }
        precondition(rc == 0, "pipe() failed: errno \(errno)")
        readFD = fds[0]
        writeFD = fds[1]
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    /// Async-signal-safe and thread-safe.
    func wake() {
        var b: UInt8 = 1
        _ = write(writeFD, &b, 1)
    }

    func drain() {
        var buf = [UInt8](repeating: 0, count: 64)
        while buf.withUnsafeMutableBytes({ read(readFD, $0.baseAddress, 64) }) > 0 {}
    }
}

/// Gives the calling thread its name in `top -H`, `ps -L`, `perf` and core dumps (at most 15
/// bytes, the kernel's limit). Best effort: `pthread_setname_np` and the variadic `prctl` are not
/// visible from Swift here, so the name is written to `/proc/thread-self/comm`.
private func nameCurrentThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    defer { close(fd) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

// MARK: - One job at a time to a worker thread

/// The hand-off between an owner thread and one worker thread that runs one job at a time:
/// the owner stores the job (in the object that owns this hand-off), ``post()``s, and later
/// ``waitDone()``s or polls ``tryDone()``; the worker runs the `job` closure given to
/// ``start(name:job:)`` once per post.
///
/// Why two POSIX semaphores and no lock: the owner and the worker never touch the job at the
/// same time (the owner only between `tryDone`/`waitDone` and the next `post`), and a
/// semaphore post/wait is the release/acquire edge that publishes it. `sem_trywait` makes
/// ``tryDone()`` free to call every loop turn. Used by the log's thread (``LogWriter``) and the
/// checkpoint thread (``CheckpointWriter``).
final class HandoffThread: @unchecked Sendable {
    private let work: UnsafeMutablePointer<sem_t>
    private let done: UnsafeMutablePointer<sem_t>
    private var stopping = false
    /// Between ``start(name:job:)`` and ``stop()``.
    private(set) var started = false

    init() {
        work = .allocate(capacity: 1)
        done = .allocate(capacity: 1)
        sem_init(work, 0, 0)
        sem_init(done, 0, 0)
    }

    deinit {
        sem_destroy(work)
        sem_destroy(done)
        work.deallocate()
        done.deallocate()
    }

    /// Starts the worker thread, named `name`; it runs `job` once per ``post()``.
    func start(name: String, job: @escaping @Sendable () -> Void) {
        started = true
        _ = spawnThread(name: name) { [self] in
            while true {
                while sem_wait(work) != 0 {}   // EINTR
                if stopping {
                    sem_post(done)
                    return
                }
                job()
                sem_post(done)
            }
        }
    }

    /// Lets the worker run the job stored beforehand (owner thread).
    func post() { sem_post(work) }

    /// Blocks until the posted job has finished (owner thread).
    func waitDone() { while sem_wait(done) != 0 {} }   // EINTR

    /// Whether the posted job has finished (then it counts as waited for). One `sem_trywait`.
    func tryDone() -> Bool { sem_trywait(done) == 0 }

    /// Ends the worker thread and waits until it has (owner thread, no job in flight).
    func stop() {
        guard started else { return }
        started = false
        stopping = true
        sem_post(work)
        waitDone()
    }
}
