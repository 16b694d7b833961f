#if canImport(Glibc)
import Glibc
#endif

/// Copies a connected socket ↔ a stream (port forwarding, both ends) with half-closes: the stream's
/// end becomes shutdown(SHUT_WR), the socket's EOF ends the stream's sending side. Returns when both
/// directions ended (a reset or the connection's end stops both); the socket is closed then.
///
/// `linger`: for transports whose client cannot half-close (WebSocket channels, where the stream only
/// ends with the connection), once the socket reached EOF the other direction gets at most this long,
/// then the stream is no longer read (containerd gives it a second).
public enum SocketSplice {
    public static func run(fd: Int32, stream: any DuplexStream, linger: Duration? = nil) async {
        let reader = FileDescriptorReader(fd: fd, name: "splice-in")
        let writer = FileDescriptorWriter(fd: fd, name: "splice-out")
        let inbound = Task {
            while let chunk = await stream.read() {
                if await !writer.write(chunk) { break }
            }
            await writer.perform { _ = shutdown($0, Int32(SHUT_WR)) }
            if stream.isAborted { reader.cancel() }
        }
        while let chunk = await reader.read() {
            if (try? await stream.write(chunk)) == nil { break }
        }
        await stream.closeWrite()
        if let linger {
            let timer = Task {
                try? await Task.sleep(for: linger)
                if !Task.isCancelled { stream.stopReading() }
            }
            await inbound.value
            timer.cancel()
        } else {
            await inbound.value
        }
        await reader.finish()
        await writer.finish(closing: true)
    }
}
