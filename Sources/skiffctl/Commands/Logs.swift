import ArgumentParser
import CRI
import Foundation

/// `logs [-f] [--tail N] [-t] [--since T] [--limit-bytes N] [-s stream] [-p] [-r] ID`: reads the container's
/// CRI log file (ContainerStatus.logPath) directly, as crictl does; `-f` follows it until the container exits.
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Fetch the logs of a container")

    @Flag(name: .shortAndLong, help: "Follow log output")
    var follow = false

    @Flag(name: .shortAndLong, help: "Print the logs for the previous instance of the container in a pod if it exists")
    var previous = false

    @Flag(name: [.customShort("r"), .long], help: "Reopen the container logs for the provided container")
    var reopen = false

    @Option(help: "Number of lines to show from the end of the logs. Defaults to all")
    var tail: Int = -1

    @Option(help: "Maximum bytes of logs to return. Defaults to no limit")
    var limitBytes: Int = -1

    @Option(help: "Show logs since timestamp (e.g. 2013-01-02T13:23:37) or relative (e.g. 42m for 42 minutes)")
    var since: String?

    @Flag(name: [.customShort("t"), .long], help: "Show timestamps")
    var timestamps = false

    @Option(name: [.customShort("s"), .long], help: "Show specified stream (stdout or stderr). Defaults to both.")
    var stream: String?

    @Option(help: "Read this CRI log file instead of asking the runtime for the container's (no CONTAINER-ID needed)")
    var path: String?

    @Argument(help: "CONTAINER-ID")
    var containerID: String?

    func run() async throws {
        var options = LogOptions()
        options.follow = follow
        options.tail = tail >= 0 ? tail : nil
        options.limitBytes = limitBytes >= 0 ? limitBytes : nil
        options.timestamps = timestamps
        if let since { options.since = try parseSince(since) }
        switch stream {
        case nil, "": break
        case "stdout": options.streams = [.stdout]
        case "stderr": options.streams = [.stderr]
        case let other?: throw CtlError("invalid stream \"\(other)\", must be \"stdout\" or \"stderr\"")
        }
        if tail >= 0 && stream != nil { throw CtlError("--tail and --stream are mutually exclusive") }

        if let path {
            try await LogReader(path: path, options: options).run()
            return
        }
        guard let id = containerID, !id.isEmpty else { throw CtlError("ID cannot be empty") }
        try await GlobalOptions.current.withRuntime { client in
            if reopen {
                var request = ReopenContainerLogRequest()
                request.containerId = id
                _ = try await step("reopen container logs") { try await client.call(CRIMethods.reopenContainerLog, request) }
                infoLog("Container logs reopened")
            }
            var request = ContainerStatusRequest()
            request.containerId = id
            let status = try await step("get container status \"\(id)\"") { try await client.call(CRIMethods.containerStatus, request) }.status
            var logPath = status?.logPath ?? ""
            guard !logPath.isEmpty else { throw CtlError("the container has not set log path") }
            if previous {
                // kubelet's layout: <dir>/<attempt>.log; the previous instance is attempt - 1.
                let attempt = status?.metadata?.attempt ?? 0
                guard attempt > 0 else {
                    throw CtlError("previous terminated container \(status?.metadata?.name ?? "") not found")
                }
                let url = URL(fileURLWithPath: logPath)
                logPath = url.deletingLastPathComponent().path + "/\(attempt - 1)." + url.pathExtension
            }
            let stillRunning: () async -> Bool = {
                // An error (container removed, runtime gone) ends following, as kubelet's reader does.
                guard let state = try? await client.call(CRIMethods.containerStatus, request).status?.state else { return false }
                return state == .containerRunning || state == .containerCreated
            }
            try await LogReader(path: logPath, options: options).run(stillRunning: stillRunning)
        }
    }
}
