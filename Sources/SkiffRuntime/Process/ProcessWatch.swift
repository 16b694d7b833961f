import CLinux
import Foundation
import Glibc
import Synchronization

/// Learns when watched processes exit, without polling: one pidfd per process (it turns readable when
/// the process exits, child or not) in one epoll set, waited on by one thread. List calls ask it
/// instead of opening exit files or reading /proc for every item, so they never touch the disk.
///
/// A pidfd names one process, never a later one that reuses its pid: the start time is checked once,
/// right after the pidfd is opened. Where pidfds are unavailable (kernels before 5.3, seccomp),
/// `exited` answers nil and callers check the disk as before.
public final class ProcessWatch: Sendable {
    private struct State {
        /// id → (pid, pidfd or -1 once exited)
        var watched: [String: (pid: Int32, fd: Int32)] = [:]
        var idOfFD: [Int32: String] = [:]
        var exited: Set<String> = []
    }

    private let state = Mutex(State())
    private let epollFD: Int32
    /// Told the id of each watched process that exits (on the watch thread, or in `watch` when the process
    /// is already gone): how a container that exits by itself gets its STOPPED event.
    private let exitHandler = Mutex<(@Sendable (String) -> Void)?>(nil)

    public func onExit(_ handler: @escaping @Sendable (String) -> Void) {
        exitHandler.withLock { $0 = handler }
    }

    private func reportExit(_ ids: [String]) {
        guard !ids.isEmpty, let handler = exitHandler.withLock({ $0 }) else { return }
        for id in ids { handler(id) }
    }

    public init() {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { return }
        let thread = Thread { [self] in self.run() }
        thread.name = "skiff-process-watch"
        thread.start()
    }

    /// Starts watching `pid` (started at `startTime` clock ticks after boot, 0 = unknown) for `id`.
    /// Watching the same id and pid again does nothing; a new pid replaces the old watch.
    public func watch(_ id: String, pid: Int32, startTime: UInt64) {
        guard epollFD >= 0, pid > 0 else { return }
        if state.withLock({ $0.watched[id]?.pid == pid }) { return }
        let fd = clx_pidfd_open(pid)
        if fd < 0 {
            // ESRCH: already gone. Anything else: no pidfds here; leave the id unwatched.
            if errno == ESRCH {
                state.withLock { s in Self.forget(id, &s); s.watched[id] = (pid, -1); s.exited.insert(id) }
                reportExit([id])
            }
            return
        }
        // The pidfd holds the process it was opened for; make sure that is still ours.
        guard ProcFS.isAlive(pid, startTime: startTime) else {
            close(fd)
            state.withLock { s in Self.forget(id, &s); s.watched[id] = (pid, -1); s.exited.insert(id) }
            reportExit([id])
            return
        }
        state.withLock { s in
            Self.forget(id, &s)
            s.watched[id] = (pid, fd)
            s.idOfFD[fd] = id
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = fd
        if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) != 0 {
            state.withLock { s in Self.forget(id, &s) }
        }
    }

    /// Stops watching `id` (its record is gone or no longer has a live process).
    public func forget(_ id: String) {
        state.withLock { s in Self.forget(id, &s) }
    }

    /// True once the watched process of `id` has exited, false while it runs, nil if `id` is not
    /// watched (then the caller must look for itself).
    public func exited(_ id: String) -> Bool? {
        state.withLock { s in
            guard s.watched[id] != nil else { return nil }
            return s.exited.contains(id)
        }
    }

    private static func forget(_ id: String, _ s: inout State) {
        if let old = s.watched.removeValue(forKey: id), old.fd >= 0 {
            s.idOfFD.removeValue(forKey: old.fd)
            close(old.fd)  // closing also takes it out of the epoll set
        }
        s.exited.remove(id)
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let n = epoll_wait(epollFD, &events, Int32(events.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            let gone: [String] = state.withLock { s in
                var gone: [String] = []
                for event in events.prefix(Int(n)) {
                    let fd = event.data.fd
                    // A forgotten (closed) fd may still be reported once; its number may even be reused
                    // by a newer watch, so only trust the mapping and re-check the fd is readable.
                    guard let id = s.idOfFD[fd], isReadable(fd) else { continue }
                    s.idOfFD.removeValue(forKey: fd)
                    if let w = s.watched[id] { s.watched[id] = (w.pid, -1) }
                    close(fd)
                    s.exited.insert(id)
                    gone.append(id)
                }
                return gone
            }
            reportExit(gone)
        }
    }

    private func isReadable(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 1 && p.revents & Int16(POLLIN) != 0
    }
}
