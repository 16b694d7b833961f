import ArgumentParser

/// skiffctl: a crictl-like client for any CRI runtime. Verbs, flags and output follow crictl's, so that
/// what works with `crictl` works with `skiffctl` and the other way round.
@main
struct SkiffCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skiffctl",
        abstract: "A crictl-like client for CRI runtimes (Skiff, containerd, CRI-O).",
        version: "0.1.0",
        subcommands: [VersionCommand.self, InfoCommand.self, ImageFsInfoCommand.self]
    )

    @OptionGroup var global: GlobalOptions
}
