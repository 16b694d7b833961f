import ArgumentParser
import CRI
import Foundation
import GRPCCore
import SkiffStreaming
import Synchronization

/// `port-forward [--transport spdy|websocket] POD [LOCAL:]REMOTE...`: crictl's port forwarding.
/// PortForward answers a URL on the runtime's streaming server; skiffctl opens one SPDY connection to it
/// (with websocket: SPDY tunneled over a WebSocket connection, as crictl) and listens on 127.0.0.1 for
/// each LOCAL port; every accepted connection becomes a stream pair to REMOTE in the pod. Runs until
/// interrupted or until the runtime closes the connection.
struct PortForwardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port-forward", abstract: "Forward local port to a pod")

    @Option(help: "Transport protocol to use, one of: spdy|websocket")
    var transport: StreamingTransport = .spdy

    @Argument(help: "POD-ID [LOCAL_PORT:]REMOTE_PORT...")
    var arguments: [String] = []

    struct Mapping: Equatable {
        var local: UInt16
        var remote: UInt16
    }

    /// `8080:80`, `80` (same port locally), `:80` (any free local port).
    static func parse(_ text: String) throws -> Mapping {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let remote = UInt16(parts.last!), remote > 0 else {
            throw CtlError("invalid port specification \"\(text)\": want [LOCAL_PORT:]REMOTE_PORT")
        }
        if parts.count == 1 { return Mapping(local: remote, remote: remote) }
        if parts[0].isEmpty { return Mapping(local: 0, remote: remote) }
        guard let local = UInt16(parts[0]) else { throw CtlError("invalid local port in \"\(text)\"") }
        return Mapping(local: local, remote: remote)
    }

    func validate() throws {
        guard arguments.count >= 2 else { throw missing("POD-ID and at least one port are required") }
    }

    func run() async throws {
        let pod = arguments[0]
        let mappings = try arguments.dropFirst().map(Self.parse)
        var request = PortForwardRequest()
        request.podSandboxId = pod
        request.port = mappings.map { Int32($0.remote) }
        let url = try await GlobalOptions.current.withRuntime { client in
            try await step("port forward pod \(pod)") { try await client.call(CRIMethods.portForward, request).url }
        }
        let forwarder = try await step("port forward pod \(pod)") { try await PortForwardClient.connect(url: url, transport: transport) }
        var listeners: [LocalListener] = []
        for mapping in mappings {
            let listener = try LocalListener(port: mapping.local)
            listeners.append(listener)
            print("Forwarding from 127.0.0.1:\(listener.port) -> \(mapping.remote)")
        }
        fflush(nil)
        let open = listeners
        await withTaskGroup(of: Void.self) { group in
            for (listener, mapping) in zip(open, mappings) {
                group.addTask {
                    for await fd in listener.connections() {
                        print("Handling connection for \(listener.port)")
                        fflush(nil)
                        Task { await Self.handle(fd, remote: mapping.remote, forwarder: forwarder) }
                    }
                }
            }
            group.addTask {
                await forwarder.session.waitClosed()
                open.forEach { $0.close() }
            }
        }
        throw CtlError("port forward pod \(pod): lost connection to the runtime's streaming server")
    }

    static func handle(_ fd: Int32, remote: UInt16, forwarder: PortForwardClient) async {
        do {
            let (data, error) = try await forwarder.open(port: remote)
            let report = Task {
                let text = String(decoding: await error.readAll(), as: UTF8.self)
                if !text.isEmpty {
                    FileHandle.standardError.write(Data("E: an error occurred forwarding \(remote): \(text)\n".utf8))
                }
            }
            await SocketSplice.run(fd: fd, stream: data)
            await report.value
        } catch {
            close(fd)
            FileHandle.standardError.write(Data("E: forwarding to \(remote): \(error)\n".utf8))
        }
    }
}

/// A local TCP listener on 127.0.0.1 whose accepts run on a thread of their own.
final class LocalListener: Sendable {
    let fd: Int32
    let port: UInt16
    private let closed = ClosedFlag()

    final class ClosedFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    init(port: UInt16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CtlError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw CtlError("unable to listen on 127.0.0.1:\(port): \(String(cString: strerror(e)))")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    /// Accepted connections until `close`.
    func connections() -> AsyncStream<Int32> {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        let fd = self.fd
        let closed = self.closed
        let thread = Thread {
            while !closed.value.load(ordering: .relaxed) {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 200) <= 0 { continue }
                let connection = accept(fd, nil, nil)
                if connection >= 0 {
                    _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                    continuation.yield(connection)
                }
            }
            continuation.finish()
        }
        thread.start()
        return stream
    }

    func close() {
        if !closed.value.exchange(true, ordering: .relaxed) { Glibc.close(fd) }
    }
}
