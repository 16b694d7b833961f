import CRI
import Logging
import SkiffRuntime
import SkiffStreaming
import SkiffSupport

/// One streaming attach: the client's streams joined to the container's monitor (AttachConnection).
/// Output flows until the container exits (or the client leaves); stdin is forwarded and its end
/// reported to the monitor (which closes the container's stdin under stdin_once); terminal sizes go to
/// the container's pty. As kubelet: Success on the error stream when the container's output ended,
/// an internal error when the attach itself failed.
struct AttachSession {
    let context: RuntimeContext
    let logger: Logger
    let request: AttachRequest

    func run(_ streams: RemoteCommandStreams, session: any StreamingSession) async -> RemoteCommandStatus {
        let connection: AttachConnection
        do {
            connection = try context.attach(request.containerId)
        } catch {
            return .failure("error attaching to container: \(error.message)")
        }
        defer { connection.close() }
        let stdinTask = Task {
            guard let source = streams.stdin else { return }
            // An empty write marks this client as a stdin user (its leaving then ends stdin_once).
            try? await connection.writeStdin([])
            while let chunk = await source.read() {
                if (try? await connection.writeStdin(chunk)) == nil { return }
            }
            try? await connection.closeStdin()
        }
        let resizeTask = Task {
            for await size in streams.resizes() {
                try? await connection.resize(width: size.width, height: size.height)
            }
        }
        // The client going away detaches: the pending read then ends.
        let detach = Task {
            await session.waitClosed()
            if !Task.isCancelled { connection.close() }
        }
        defer {
            detach.cancel()
            stdinTask.cancel()
            resizeTask.cancel()
        }
        do throws(SkiffError) {
            while let output = try await connection.readOutput() {
                let sink = output.stream == .stderr && streams.stderr != nil ? streams.stderr : streams.stdout
                // Output nobody asked for is read anyway, so the monitor never stalls on this client.
                if let sink { try? await sink.write(output.bytes) }
            }
            return .success
        } catch {
            if session.isClosed { return .success }
            return .failure("error attaching to container: \(error.message)")
        }
    }
}
