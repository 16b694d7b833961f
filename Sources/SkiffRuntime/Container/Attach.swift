import CLinux
import Foundation
import Glibc
import SkiffSupport
import Synchronization

/// One piece of a container's output, as its monitor forwarded it to an attach client.
public struct AttachOutput: Sendable, Equatable {
    public enum Stream: Sendable, Equatable { case stdout, stderr }
    public var stream: Stream
    public var bytes: [UInt8]

    public init(stream: Stream, bytes: [UInt8]) {
        self.stream = stream
        self.bytes = bytes
    }
}

extension RuntimeContext {
    /// Connects to the attach socket of a running container's monitor (docs/attach.md). The monitor
    /// owns the socket, so containers started by an earlier skiffd can be attached too.
    /// Unknown container → notFound; not running (or its monitor has no attach socket) → failedPrecondition.
    public func attach(_ containerID: String) throws(SkiffError) -> AttachConnection {
        guard let found = try containers.resolve(containerID), let record = refresh(found.id) else {
            throw .notFound("container \"\(containerID)\" not found")
        }
        guard record.state == .running else {
            throw .failedPrecondition("container \(record.id) is \(record.state.rawValue), not running: only a running container can be attached")
        }
        let directory = paths.containerStateDirectory(record.id)
        do {
            return try AttachConnection(directory: directory)
        } catch let error where error.code == .notFound {
            // No socket: the monitor ended in between, or it predates attach support.
            if ExitRecord.read(directory: directory) != nil {
                refresh(record.id)
                throw .failedPrecondition("container \(record.id) has exited: only a running container can be attached")
            }
            throw .failedPrecondition("container \(record.id) cannot be attached: \(error.message) (a container created before attach support keeps running without it)")
        }
    }
}

/// A client of one container monitor's attach socket: live output from the moment of attaching, and
/// stdin, close-stdin and terminal resizes the other way. The frames are those of
/// Sources/skiff-monitor/main.c (docs/attach.md).
///
/// The socket is non-blocking; waits for it go to one epoll thread shared by all connections, so no
/// cooperative thread is ever parked in a syscall. Reads are served one at a time, and so are writes
/// (stdin and resize may come from different tasks; their frames must not interleave).
public final class AttachConnection: Sendable {
    static let maxFrame = 32 * 1024
    static let frameStdout: UInt8 = 1, frameStderr: UInt8 = 2, frameExit: UInt8 = 3
    static let frameStdin: UInt8 = 1, frameCloseStdin: UInt8 = 2, frameResize: UInt8 = 3

    /// The socket for reading, and a dup of it for writing: epoll keys registrations on (file, fd), so
    /// a reader and a writer can each wait for their own readiness.
    private let readFD: Int32
    private let writeFD: Int32
    private let path: String
    private let reads = AsyncSerial()
    private let writes = AsyncSerial()

    private struct ReadState {
        var inbox: [UInt8] = []
        var start = 0
        /// The exit code from the EXIT frame, once seen: every later read answers nil.
        var exitCode: Int32?
    }

    private let readState = Mutex(ReadState())
    private let closed = Atomic<Bool>(false)

    /// Connects to `<directory>/attach` through /proc/self/fd (the directory may be longer than a
    /// socket path may be). A missing socket or a monitor that no longer listens is notFound.
    public init(directory: String) throws(SkiffError) {
        path = directory + "/attach"
        // O_PATH (Glibc does not export it without _GNU_SOURCE): enough to name the directory.
        let dirFD = open(directory, 0o10000000 | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw SkiffError.fromErrno("open", directory) }
        defer { Glibc.close(dirFD) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SkiffError.fromErrno("socket for", path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let name = Array("/proc/self/fd/\(dirFD)/attach".utf8) + [0]
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: name) }
        var rc: Int32
        repeat {
            rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        } while rc != 0 && errno == EINTR
        guard rc == 0 else {
            let error = SkiffError.fromErrno("connect to", path)
            Glibc.close(fd)
            throw error
        }
        let copy = dup(fd)
        guard copy >= 0 else {
            let error = SkiffError.fromErrno("dup socket of", path)
            Glibc.close(fd)
            throw error
        }
        _ = fcntl(copy, F_SETFD, FD_CLOEXEC)
        readFD = fd
        writeFD = copy
    }

    deinit {
        FDPoller.shared.forget(readFD)
        FDPoller.shared.forget(writeFD)
        Glibc.close(readFD)
        Glibc.close(writeFD)
    }

    /// The next piece of output, or nil once the container has exited and all its output was read.
    /// Throws unavailable when the monitor cut the connection without an exit (this client fell too far
    /// behind, or the monitor died), failedPrecondition after `close()`.
    public func readOutput() async throws(SkiffError) -> AttachOutput? {
        await reads.acquire()
        defer { reads.release() }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            if closed.load(ordering: .acquiring) { throw .failedPrecondition("attach connection to \(path) is closed") }
            if Task.isCancelled { throw SkiffError(.aborted, "reading from \(path): cancelled") }
            switch try readState.withLock({ (s: inout ReadState) throws(SkiffError) -> FrameStep in try Self.nextFrame(&s, path: path) }) {
            case .output(let output): return output
            case .exited: return nil
            case .needMore: break
            }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(readFD, $0.baseAddress, $0.count) }
            if n > 0 {
                readState.withLock { $0.inbox += chunk[0..<n] }
                continue
            }
            if n == 0 {
                if closed.load(ordering: .acquiring) { throw .failedPrecondition("attach connection to \(path) is closed") }
                let partial = readState.withLock { $0.inbox.count - $0.start }
                throw SkiffError(.unavailable, "the monitor at \(path) ended the attach connection before the container exited"
                    + (partial > 0 ? " (inside a frame, \(partial) bytes in)" : "") + ": this client fell too far behind, or the monitor died")
            }
            switch errno {
            case EINTR: continue
            case EAGAIN:
                let fd = readFD
                await withTaskCancellationHandler {
                    await FDPoller.shared.wait(fd, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
                } onCancel: {
                    FDPoller.shared.wake(fd)
                }
            case ECONNRESET: throw SkiffError(.unavailable, "the monitor at \(path) reset the attach connection")
            default: throw SkiffError.fromErrno("read from", path)
            }
        }
    }

    /// Sends bytes to the container's stdin. The monitor drops them when the container has no stdin
    /// (or it was closed). Empty `bytes` only tell the monitor that this client uses stdin, so that its
    /// going away counts as the end of its stdin (stdin_once).
    public func writeStdin(_ bytes: [UInt8]) async throws(SkiffError) {
        if bytes.isEmpty { return try await send([Self.frame(Self.frameStdin, [])]) }
        var frames: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + Self.maxFrame, bytes.count)
            frames.append(Self.frame(Self.frameStdin, bytes[offset..<end]))
            offset = end
        }
        try await send(frames)
    }

    /// This client's stdin has ended. With stdin_once (and no tty) that closes the container's stdin.
    public func closeStdin() async throws(SkiffError) {
        try await send([Self.frame(Self.frameCloseStdin, [])])
    }

    /// Sets the terminal's size (ignored by the monitor when the container has no tty).
    public func resize(width: UInt16, height: UInt16) async throws(SkiffError) {
        try await send([Self.frame(Self.frameResize, [UInt8(width >> 8), UInt8(width & 0xff), UInt8(height >> 8), UInt8(height & 0xff)])])
    }

    /// Detaches. A pending `readOutput` or write ends with failedPrecondition. Idempotent.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // shutdown, not close: the descriptors stay valid (and unreused) until deinit, and a waiter
        // sees them ready at once.
        _ = shutdown(readFD, Int32(SHUT_RDWR))
        FDPoller.shared.wake(readFD)
        FDPoller.shared.wake(writeFD)
    }

    // MARK: - frames

    private enum FrameStep { case output(AttachOutput), exited, needMore }

    private static func nextFrame(_ s: inout ReadState, path: String) throws(SkiffError) -> FrameStep {
        if s.exitCode != nil { return .exited }
        let available = s.inbox.count - s.start
        guard available >= 5 else { return .needMore }
        let h = s.start
        let length = Int(s.inbox[h + 1]) << 24 | Int(s.inbox[h + 2]) << 16 | Int(s.inbox[h + 3]) << 8 | Int(s.inbox[h + 4])
        guard length <= maxFrame else { throw .internal("attach socket \(path): frame of \(length) bytes (at most \(maxFrame))") }
        guard available >= 5 + length else { return .needMore }
        let type = s.inbox[h]
        let payload = Array(s.inbox[(h + 5)..<(h + 5 + length)])
        s.start += 5 + length
        // Compact once the consumed part dominates (keeps the buffer from growing without bound).
        if s.start == s.inbox.count {
            s.inbox.removeAll(keepingCapacity: true)
            s.start = 0
        } else if s.start > 64 * 1024 {
            s.inbox.removeFirst(s.start)
            s.start = 0
        }
        switch type {
        case frameStdout: return .output(AttachOutput(stream: .stdout, bytes: payload))
        case frameStderr: return .output(AttachOutput(stream: .stderr, bytes: payload))
        case frameExit:
            guard payload.count == 4 else { throw .internal("attach socket \(path): EXIT frame of \(payload.count) bytes") }
            s.exitCode = Int32(bitPattern: payload.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            return .exited
        default:
            throw .internal("attach socket \(path): unknown frame type \(type)")
        }
    }

    private static func frame(_ type: UInt8, _ payload: some Collection<UInt8>) -> [UInt8] {
        let n = UInt32(payload.count)
        return [type, UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + payload
    }

    /// Writes whole frames, waiting (off the cooperative pool) while the socket is full.
    private func send(_ frames: [[UInt8]]) async throws(SkiffError) {
        await writes.acquire()
        defer { writes.release() }
        for frame in frames {
            var offset = 0
            while offset < frame.count {
                if closed.load(ordering: .acquiring) { throw .failedPrecondition("attach connection to \(path) is closed") }
                let n = frame[offset...].withUnsafeBytes { Glibc.send(writeFD, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if n >= 0 {
                    offset += n
                    continue
                }
                switch errno {
                case EINTR: continue
                case EAGAIN:
                    if Task.isCancelled { throw SkiffError(.aborted, "writing to \(path): cancelled") }
                    let fd = writeFD
                    await withTaskCancellationHandler {
                        await FDPoller.shared.wait(fd, events: EPOLLOUT.rawValue)
                    } onCancel: {
                        FDPoller.shared.wake(fd)
                    }
                case EPIPE, ECONNRESET:
                    throw SkiffError(.unavailable, "the monitor at \(path) closed the attach connection (the container exited, or this client was cut off)")
                default: throw SkiffError.fromErrno("write to", path)
                }
            }
        }
    }
}

extension SkiffError {
    /// An error naming the failed step and path, coded by errno: a missing or refusing socket is notFound.
    static func fromErrno(_ step: String, _ path: String, _ code: Int32 = errno) -> SkiffError {
        let text = "\(step) \(path): \(String(cString: strerror(code)))"
        switch code {
        case ENOENT, ECONNREFUSED: return .notFound(text)
        case EAGAIN: return SkiffError(.unavailable, text + " (its backlog is full; retry)")
        default: return .internal(text)
        }
    }
}

/// One at a time, in arrival order, for async callers (a Mutex cannot be held across an await).
final class AsyncSerial: Sendable {
    private let state = Mutex<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s in
                if !s.busy {
                    s.busy = true
                    return true
                }
                s.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.busy = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// Waits for descriptors to become ready on one epoll thread (oneshot registrations), so async code
/// never blocks in poll or read. One waiter per descriptor at a time.
final class FDPoller: Sendable {
    static let shared = FDPoller()

    private let epollFD: Int32
    private let waiters = Mutex<[Int32: CheckedContinuation<Void, Never>]>([:])

    private init() {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { return }
        let thread = Thread { [self] in self.run() }
        thread.name = "skiff-attach-poll"
        thread.stackSize = 256 * 1024
        thread.start()
    }

    /// Returns once `fd` is ready for `events`, hung up or in error, or `wake(fd)` was called. Spurious
    /// returns are possible: callers retry their syscall.
    func wait(_ fd: Int32, events: UInt32) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            waiters.withLock { $0[fd] = continuation }
            var event = epoll_event()
            event.events = events | EPOLLONESHOT.rawValue
            event.data.fd = fd
            var armed = epollFD >= 0 && epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event) == 0
            if !armed && errno == ENOENT { armed = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 }
            // Not armed (no epoll here): return at once; the caller's retry then polls briefly. A task
            // cancelled before its handler could see this waiter must not wait either.
            if !armed || Task.isCancelled { wake(fd) }
        }
        if epollFD < 0 { try? await Task.sleep(for: .milliseconds(10)) }
    }

    func wake(_ fd: Int32) {
        waiters.withLock { $0.removeValue(forKey: fd) }?.resume()
    }

    /// Before `fd` is closed: out of the epoll set, and any waiter woken.
    func forget(_ fd: Int32) {
        if epollFD >= 0 { _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil) }
        wake(fd)
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let n = epoll_wait(epollFD, &events, Int32(events.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            for event in events.prefix(Int(n)) { wake(event.data.fd) }
        }
    }
}
