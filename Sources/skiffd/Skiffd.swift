import ArgumentParser
import Logging
import SkiffServer
import SkiffSupport

/// skiffd: the Skiff CRI server. Flags override the config file; the config file overrides the embedded
/// defaults (`/run/skiff/skiff.sock`, `/var/lib/skiff`, `/run/skiff`).
@main
struct Skiffd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skiffd",
        abstract: "Skiff: a Kubernetes CRI container runtime.",
        version: SkiffVersion.current
    )

    @Option(help: "YAML config file (default: \(SkiffConfig.defaultPath) if it exists).")
    var config: String?

    @Option(help: "CRI Unix socket path.")
    var socket: String?

    @Option(help: "Persistent state directory (images, records).")
    var root: String?

    @Option(help: "Runtime state directory (bundles, launcher state).")
    var state: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    func run() async throws {
        var settings = try SkiffConfig.load(path: config)
        if let socket { settings.socket = socket }
        if let root { settings.root = root }
        if let state { settings.state = state }
        if let logLevel { settings.logLevel = logLevel }
        try settings.validate()

        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in LogfmtHandler(label: label, level: level) }
        let logger = Logger(label: "skiffd")
        do {
            try await Daemon(config: settings, logger: logger).run()
        } catch {
            logger.critical("skiffd failed: \(error)")
            throw ExitCode.failure
        }
    }
}
