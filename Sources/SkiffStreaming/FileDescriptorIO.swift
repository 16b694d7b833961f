import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Blocking file descriptor I/O (pipes, ptys, sockets) for async code: each reader or writer owns
/// one OS thread, so no Swift concurrency thread ever blocks in read/write/poll. One operation is
/// outstanding at a time, which gives natural backpressure: nothing is read before the previous chunk
/// was taken.
public final class FileDescriptorReader: Sendable {
    public let fd: Int32
    private let worker: IOWorker
    private let cancelled = Flag()

    public init(fd: Int32, name: String) {
        self.fd = fd
        worker = IOWorker(name: name)
    }

    /// The next chunk; nil at EOF, on an error (EIO from a pty whose other side closed) or once cancelled.
    public func read(max: Int = 32 * 1024) async -> [UInt8]? {
        let fd = self.fd
        let cancelled = self.cancelled
        return await worker.run { () -> [UInt8]? in
            var buffer = [UInt8](repeating: 0, count: max)
            while !cancelled.isSet {
                // Poll with a timeout so that `cancel()` ends a read whose writer never closes.
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, 100)
                if ready < 0 && errno != EINTR { return nil }
                if ready <= 0 { continue }
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n > 0 { return Array(buffer[0..<n]) }
                if n == 0 { return nil }
                if errno == EINTR || errno == EAGAIN { continue }
                return nil
            }
            return nil
        }
    }

    /// Makes the pending and every later `read` return nil within ~100 ms.
    public func cancel() { cancelled.set() }

    /// Cancels, waits until no read is in flight and ends the thread. The descriptor stays open: only
    /// after this may the caller close it (closing under a blocked read could read a reused fd).
    public func finish() async {
        cancel()
        await worker.run {}
        worker.stop()
    }
}

public final class FileDescriptorWriter: Sendable {
    public let fd: Int32
    private let worker: IOWorker

    public init(fd: Int32, name: String) {
        self.fd = fd
        worker = IOWorker(name: name)
    }

    /// Writes all bytes; false when the descriptor refuses them (EPIPE: the reader is gone).
    public func write(_ bytes: [UInt8]) async -> Bool {
        let fd = self.fd
        let closed = self.closed
        return await worker.run {
            // After closeOnce the number may belong to another file by now.
            if closed.isSet { return false }
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }

    /// Runs `body` on the writer's thread after everything written so far (ioctl, shutdown, close).
    public func perform(_ body: @escaping @Sendable (Int32) -> Void) async {
        let fd = self.fd
        let closed = self.closed
        await worker.run { if !closed.isSet { body(fd) } }
    }

    /// Runs after every queued write: closes the descriptor (if `closing`) and ends the thread.
    public func finish(closing: Bool) async {
        if closing { await closeOnce() }
        worker.stop()
    }

    private let closed = Flag()

    /// Closes the descriptor the first time only (stdin can be closed by the client's EOF and by teardown).
    public func closeOnce() async {
        let closed = self.closed
        let fd = self.fd
        await worker.run {
            if closed.setFirst() { Glibc.close(fd) }
        }
    }
}

/// One thread running blocking jobs in order.
final class IOWorker: Sendable {
    private final class Queue: Sendable {
        struct State {
            var jobs: [@Sendable () -> Void] = []
            var stopped = false
        }

        let state = Mutex(State())
        let wakeup = DispatchSemaphore(value: 0)
    }

    private let queue = Queue()

    init(name: String) {
        let queue = self.queue
        let thread = Thread {
            while true {
                queue.wakeup.wait()
                let (job, stopped): ((@Sendable () -> Void)?, Bool) = queue.state.withLock { s in
                    s.jobs.isEmpty ? (nil, s.stopped) : (s.jobs.removeFirst(), false)
                }
                if let job { job() } else if stopped { return }
            }
        }
        thread.name = name
        thread.stackSize = 256 * 1024
        thread.start()
    }

    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let accepted = queue.state.withLock { s in
                if s.stopped { return false }
                s.jobs.append { continuation.resume(returning: body()) }
                return true
            }
            if accepted { queue.wakeup.signal() } else { continuation.resume(returning: body()) }
        }
    }

    /// Lets the thread finish after the queued jobs.
    func stop() {
        let first = queue.state.withLock { s in
            defer { s.stopped = true }
            return !s.stopped
        }
        if first { queue.wakeup.signal() }
    }

    deinit { stop() }
}

/// A flag set once, readable from any thread.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
    /// Sets the flag; true only for the caller that set it first.
    func setFirst() -> Bool { !value.exchange(true, ordering: .acquiringAndReleasing) }
}
