#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - DurabilityError

/// Every failure of the storage layer, typed so the daemon can decide what to answer.
///
/// `system` carries the syscall, the path and the errno (with its `strerror` text in
/// `description`), so an operator reading a log line knows which file and which call failed.
/// `isOutOfSpace` groups the errors that mean "the disk or a quota is full" (ENOSPC, EDQUOT,
/// EFBIG): the daemon keeps running, answers acknowledged batches with an error status, and
/// retries when space returns.
public enum DurabilityError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A POSIX call failed (after EINTR retries).
    case system(call: String, path: String, errno: Int32)
    /// A record in a log segment that is not the newest failed its length or checksum check;
    /// replay stops before it so garbage is never applied.
    case corruptLog(segment: String, offset: Int64, reason: String)
    /// A checkpoint file failed its magic, version, length or checksum check.
    case corruptCheckpoint(path: String, reason: String)
    /// A lease or other small metadata file is unreadable.
    case corruptMetadata(path: String, reason: String)
    /// A record is larger than the log accepts (`WriteAheadLog.Options.maxRecordSize`).
    case recordTooLarge(size: Int, limit: Int)
    /// A record body does not have the layout its kind requires.
    case malformedRecord(lsn: UInt64, reason: String)
    /// Another process holds the state directory's lock.
    case stateDirectoryLocked(path: String)
    /// An argument is outside what the API accepts.
    case invalidArgument(String)

    /// True when the failure means the file system (or a file-size limit) is full: the
    /// condition clears by itself when space returns, so the caller should retry later.
    public var isOutOfSpace: Bool {
        if case .system(_, _, let code) = self {
            return code == ENOSPC || code == EDQUOT || code == EFBIG
        }
        return false
    }

    public var description: String {
        switch self {
        case .system(let call, let path, let code):
            return "\(call)(\(path)) failed: \(String(cString: strerror(code))) (errno \(code))"
        case .corruptLog(let segment, let offset, let reason):
            return "corrupt write-ahead log record in \(segment) at byte \(offset): \(reason); replay stopped before it"
        case .corruptCheckpoint(let path, let reason):
            return "corrupt checkpoint \(path): \(reason)"
        case .corruptMetadata(let path, let reason):
            return "corrupt metadata file \(path): \(reason)"
        case .recordTooLarge(let size, let limit):
            return "write-ahead log record of \(size) bytes exceeds the limit of \(limit) bytes"
        case .malformedRecord(let lsn, let reason):
            return "write-ahead log record \(lsn) is malformed: \(reason)"
        case .stateDirectoryLocked(let path):
            return "state directory \(path) is locked by another process (is another tally daemon running on it?)"
        case .invalidArgument(let message):
            return "invalid argument: \(message)"
        }
    }
}
