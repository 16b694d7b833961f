import CLinux
import Foundation
import Glibc
import Logging
import SkiffRuntime
import SkiffStreaming
import SkiffSupport
import Synchronization

/// One port-forward connection (kubelet's portforward, as containerd serves it). Over SPDY (also
/// tunneled over WebSocket) the client opens an error and a data stream per forwarded TCP connection,
/// paired by their `requestID` header and naming a `port`; over WebSocket channels each port the
/// request named has a fixed channel pair. Each pair is connected to 127.0.0.1:<port> inside the pod's
/// network namespace and copied both ways; failures are written on the pair's error stream as text.
struct PortForwardSession {
    /// client-go's SPDY-over-WebSocket subprotocol for port forwarding (crictl --transport websocket).
    static let tunnelProtocol = "SPDY/3.1+" + RemoteCommand.portForwardProtocol

    let context: RuntimeContext
    let logger: Logger
    let sandboxId: String

    final class PairTable: Sendable {
        let pairs = Mutex<[String: Pair]>([:])
    }

    final class Pair: Sendable {
        let requestID: String
        let streams = Mutex<(data: SPDYStream?, error: SPDYStream?)>((nil, nil))
        init(requestID: String) { self.requestID = requestID }
    }

    func run(_ session: SPDYSession) async {
        let table = PairTable()
        await withTaskGroup(of: Void.self) { group in
            for await stream in session.incomingStreams {
                guard let portText = stream.headers[RemoteCommand.portHeader], let port = UInt16(portText), port > 0,
                      let type = stream.headers[RemoteCommand.streamTypeHeader], type == "data" || type == "error"
                else {
                    // kubelet rejects a stream without a valid port or type by resetting it.
                    stream.reset(.cancel)
                    continue
                }
                stream.accept()
                // Old clients send no request id: kubelet derives one from the stream ids.
                let requestID = stream.headers[RemoteCommand.requestIDHeader]
                    ?? String(type == "error" ? stream.id : stream.id &- 2)
                let (pair, created) = table.pairs.withLock { p -> (Pair, Bool) in
                    if let existing = p[requestID] { return (existing, false) }
                    let pair = Pair(requestID: requestID)
                    p[requestID] = pair
                    return (pair, true)
                }
                let complete: (data: SPDYStream, error: SPDYStream)?? = pair.streams.withLock { s in
                    if type == "data" {
                        if s.data != nil { return .some(nil) }
                        s.data = stream
                    } else {
                        if s.error != nil { return .some(nil) }
                        s.error = stream
                    }
                    if let d = s.data, let e = s.error { return .some((d, e)) }
                    return .none
                }
                switch complete {
                case .some(.some(let both)):
                    _ = table.pairs.withLock { $0.removeValue(forKey: requestID) }
                    group.addTask { await forward(port: port, data: both.data, error: both.error) }
                case .some(.none):
                    let message = "error processing stream for request \(requestID): \(type) stream already assigned"
                    if let e = pair.streams.withLock({ $0.error }) { try? await e.write(Array(message.utf8)) }
                    stream.reset(.cancel)
                case .none:
                    if created {
                        group.addTask {
                            try? await Task.sleep(for: StreamingSessions.streamCreationTimeout)
                            let stale = table.pairs.withLock { p -> Bool in
                                guard p[requestID] === pair else { return false }
                                p.removeValue(forKey: requestID)
                                return true
                            }
                            if stale, let e = pair.streams.withLock({ $0.error }) {
                                try? await e.write(Array("timed out waiting for streams of request \(requestID)".utf8))
                                await e.closeWrite()
                            }
                        }
                    }
                }
            }
            // The connection is gone: forwards still running end as their streams do.
            group.cancelAll()
        }
    }

    /// WebSocket channels (kubelet's portforward websocket.go): the n-th requested port is channel 2n
    /// (data, both ways) and 2n+1 (error, server to client); each channel's first message is the
    /// port, 2 bytes little-endian. One TCP connection per port and connection; the session ends
    /// when every port's connection did.
    func run(_ session: WebSocketChannelSession, ports: [UInt16]) async {
        let pairs = ports.enumerated().map { n, port in
            (port, session.channel(UInt8(truncatingIfNeeded: 2 * n)), session.channel(UInt8(truncatingIfNeeded: 2 * n + 1)))
        }
        // Every channel's port, in channel order, before any data (as kubelet writes them).
        for (port, data, error) in pairs {
            let prefix = [UInt8(truncatingIfNeeded: port), UInt8(truncatingIfNeeded: port >> 8)]
            try? await data.write(prefix)
            try? await error.write(prefix)
        }
        await withTaskGroup(of: Void.self) { group in
            for (port, data, error) in pairs {
                // The client cannot half-close a channel: once the pod's side ended, a second for the rest.
                group.addTask { await forward(port: port, data: data, error: error, linger: .seconds(1)) }
            }
        }
    }

    private func forward(port: UInt16, data: any DuplexStream, error errorStream: any DuplexStream, linger: Duration? = nil) async {
        do throws(SkiffError) {
            let fd = try await connect(port: port)
            await SocketSplice.run(fd: fd, stream: data, linger: linger)
        } catch {
            let message = "error forwarding port \(port) to pod \(sandboxId), uid : \(error.message)"
            logger.info("port forward failed", metadata: ["pod": "\(sandboxId)", "port": "\(port)", "error": "\(error.message)"])
            try? await errorStream.write(Array(message.utf8))
        }
        await data.closeWrite()
        await errorStream.closeWrite()
    }

    /// Connects to the port on the pod's loopback (host network pods: the host's).
    private func connect(port: UInt16) async throws(SkiffError) -> Int32 {
        guard let sandbox = context.sandboxes.get(sandboxId) else { throw .notFound("pod sandbox \(sandboxId) not found") }
        guard sandbox.state == .ready, sandbox.infraPid > 0, ProcFS.isAlive(sandbox.infraPid, startTime: sandbox.infraStartTime) else {
            throw .failedPrecondition("pod sandbox \(sandboxId) is not ready")
        }
        let netns = sandbox.hostNetwork ? nil : "/proc/\(sandbox.infraPid)/ns/net"
        return try await NetnsDialer.connect(netns: netns, port: port)
    }
}

/// Opens a TCP connection from inside a network namespace: a dedicated thread joins the namespace,
/// creates and connects the socket, and leaves. A socket stays in the namespace it was created in, so
/// the descriptor works from any thread afterwards; the thread itself ends, so it cannot leak the
/// namespace to other work even if switching back failed.
enum NetnsDialer {
    static func connect(netns: String?, port: UInt16) async throws(SkiffError) -> Int32 {
        let result: Result<Int32, SkiffError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: dial(netns: netns, port: port))
            }
            thread.stackSize = 128 * 1024
            thread.start()
        }
        return try result.get()
    }

    private static func dial(netns: String?, port: UInt16) -> Result<Int32, SkiffError> {
        var original: Int32 = -1
        if let netns {
            original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            let target = open(netns, O_RDONLY | O_CLOEXEC)
            guard original >= 0, target >= 0 else {
                let e = errno
                if original >= 0 { close(original) }
                if target >= 0 { close(target) }
                return .failure(.internal("open network namespace \(netns): \(String(cString: strerror(e)))"))
            }
            let joined = clx_setns(target, Int32(CLX_CLONE_NEWNET))
            let e = errno
            close(target)
            if joined != 0 {
                close(original)
                return .failure(.internal("setns \(netns): \(String(cString: strerror(e)))"))
            }
        }
        defer {
            if original >= 0 {
                _ = clx_setns(original, Int32(CLX_CLONE_NEWNET))
                close(original)
            }
        }
        var failures: [String] = []
        // "localhost" as containerd dials it: IPv4 first, then IPv6.
        if let fd = connectIPv4(port: port, failures: &failures) { return .success(fd) }
        if let fd = connectIPv6(port: port, failures: &failures) { return .success(fd) }
        return .failure(.internal("failed to connect to localhost:\(port) inside namespace \(netns ?? "of the host"): \(failures.joined(separator: "; "))"))
    }

    private static func connectIPv4(port: UInt16, failures: inout [String]) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            failures.append("IPv4: socket: \(String(cString: strerror(errno)))")
            return nil
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 { return fd }
        failures.append("IPv4: dial tcp4 127.0.0.1:\(port): connect: \(String(cString: strerror(errno)))")
        close(fd)
        return nil
    }

    private static func connectIPv6(port: UInt16, failures: inout [String]) -> Int32? {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            failures.append("IPv6: socket: \(String(cString: strerror(errno)))")
            return nil
        }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        address.sin6_addr = in6addr_loopback
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        if rc == 0 { return fd }
        failures.append("IPv6: dial tcp6 [::1]:\(port): connect: \(String(cString: strerror(errno)))")
        close(fd)
        return nil
    }
}
