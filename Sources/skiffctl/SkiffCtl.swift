import ArgumentParser
import CRI
import Foundation
import GRPCCore

/// skiffctl: a crictl-like client for any CRI runtime. Verbs, flags and output follow crictl's, so that
/// what works with `crictl` works with `skiffctl` and the other way round.
struct SkiffCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skiffctl",
        abstract: "A crictl-like client for CRI runtimes (Skiff, containerd, CRI-O).",
        usage: "skiffctl [global options] <verb> [verb options] [arguments]",
        discussion: GlobalOptions.help,
        version: "0.1.0",
        subcommands: [
            // Pods
            RunPodCommand.self, StopPodCommand.self, RemovePodCommand.self, ListPodsCommand.self, InspectPodCommand.self,
            // Containers
            CreateContainerCommand.self, StartContainerCommand.self, StopContainerCommand.self, RemoveContainerCommand.self,
            ListContainersCommand.self, InspectContainerCommand.self, ExecCommand.self, AttachCommand.self, PortForwardCommand.self, LogsCommand.self, StatsCommand.self, PodStatsCommand.self,
            MetricDescsCommand.self, PodMetricsCommand.self,
            UpdateContainerCommand.self, RunContainerCommand.self,
            // Images
            PullCommand.self, ImagesCommand.self, InspectImageCommand.self, RemoveImageCommand.self, ImageFsInfoCommand.self,
            // Runtime
            VersionCommand.self, InfoCommand.self,
        ]
    )
}

/// Takes crictl's global options off the front of the command line, runs the verb, and reports failures
/// as one line each (`skiffctl: NotFound: ...`) with exit status 1; `exec -s` exits with the command's code.
@main
enum Main {
    static func main() async {
        do {
            let (global, rest) = try GlobalOptions.split(Array(CommandLine.arguments.dropFirst()))
            GlobalOptions.current = global
            var command = try SkiffCtl.parseAsRoot(rest)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as ExitCode {
            exit(error.rawValue)
        } catch let error where isRuntimeFailure(error) {
            fflush(nil)
            FileHandle.standardError.write(Data(errorLine(error).split(separator: "\n").map { "skiffctl: \($0)\n" }.joined().utf8))
            exit(1)
        } catch {
            // Usage errors, --help, --version: ArgumentParser's own text and exit status.
            SkiffCtl.exit(withError: error)
        }
        exit(0)
    }
}

/// Failures of the work itself (as opposed to usage errors), reported as `skiffctl: ...` lines.
func isRuntimeFailure(_ error: any Error) -> Bool {
    error is CtlError || error is ContextError || error is MultiError || error is RPCError || error is CRICodecError
}
