#if canImport(Glibc)
import Glibc
#endif

/// Copies a connected socket ↔ a SPDY stream (port forwarding, both ends) with half-closes: the
/// stream's FIN becomes shutdown(SHUT_WR), the socket's EOF becomes a FIN. Returns when both
/// directions ended (a reset or the connection's end stops both); the socket is closed then.
public enum SocketSplice {
    public static func run(fd: Int32, stream: SPDYStream) async {
        let reader = FileDescriptorReader(fd: fd, name: "splice-in")
        let writer = FileDescriptorWriter(fd: fd, name: "splice-out")
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while let chunk = await reader.read() {
                    if (try? await stream.write(chunk)) == nil { break }
                }
                await stream.closeWrite()
            }
            group.addTask {
                while let chunk = await stream.read() {
                    if await !writer.write(chunk) { break }
                }
                await writer.perform { _ = shutdown($0, Int32(SHUT_WR)) }
                if stream.resetStatus != nil || stream.isConnectionClosed { reader.cancel() }
            }
        }
        await reader.finish()
        await writer.finish(closing: true)
    }
}
