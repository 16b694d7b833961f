import ArgumentParser
import CRI
import Foundation

/// `pull [--creds U:P | --auth B64 | -u U] [--pod-config F] [-a k=v] [--pull-timeout D] [--progress M] IMAGE`.
/// Prints the result as crictl does; against skiffd it also shows progress (see PullProgressFollower).
struct PullCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pull", abstract: "Pull an image from a registry")

    @Option(help: "Use pod-config.[json|yaml] to override the pull context")
    var podConfig: String?

    @Option(name: [.customShort("a"), .long], help: "Annotation to be set on the pulled image (key=value, repeatable)")
    var annotation: [String] = []

    @OptionGroup var pullOptions: PullOptions

    @Option(help: "Progress display: auto (tty on a terminal, else none), tty, plain (a line per layer change) or none")
    var progress: ProgressMode = .auto

    @Argument(help: "NAME[:TAG|@DIGEST]")
    var image: String = ""

    func run() async throws {
        guard !image.isEmpty else { throw CtlError("image name cannot be empty") }
        let auth = try pullOptions.authConfig()
        let sandbox = try podConfig.map { path in
            do { return try ConfigFiles.podSandboxConfig(at: path) } catch { throw ContextError(context: "load podSandboxConfig", underlying: error) }
        }
        let annotations = try parseLabels(annotation)
        let timeout = try pullOptions.timeout()
        let image = self.image
        let mode = progress.resolved
        let ref = try await GlobalOptions.current.withImages { client in
            try await step("pulling image") {
                try await PullProgressFollower(client: client, image: image, mode: mode).run {
                    try await pullImage(client, image, auth: auth, sandbox: sandbox, annotations: annotations, timeout: timeout)
                }
            }
        }
        print("Image is up to date for \(ref)")
    }
}

/// `images [REPO[:TAG]]` (also `image`, `img`): crictl's columns IMAGE, TAG, [DIGEST,] IMAGE ID, SIZE, [PINNED].
struct ImagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List images", aliases: ["image", "img"])

    @Flag(name: .shortAndLong, help: "Show verbose info for images")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Only show image IDs")
    var quiet = false

    @Option(
        name: [.customShort("f"), .long],
        help: "Filter output: dangling=(true|false), reference=/regex/, before=<image>, since=<image> (repeatable)")
    var filter: [String] = []

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml|table")
    var output: OutputFormat = .table

    @Flag(help: "Show digests")
    var digests = false

    @Flag(help: "Show output without truncating the ID")
    var noTrunc = false

    @Flag(help: "Show whether the image is pinned or not")
    var pinned = false

    @Argument(help: "[REPOSITORY[:TAG]]")
    var reference: String?

    func run() async throws {
        let images = try await GlobalOptions.current.withImages { client in
            try await step("listing images") { try await listImages(client, name: reference ?? "", filters: filter) }
        }
        switch output {
        case .json, .yaml:
            try Output.print(Schema.list("images", images.map { $0.protoJSON(useProtoNames: false) }, Schema.image), as: output)
            return
        case .table:
            break
        }
        var header = ["IMAGE", "TAG"]
        if digests { header.append("DIGEST") }
        header += ["IMAGE ID", "SIZE"]
        if pinned { header.append("PINNED") }
        var table = Table(header: verbose || quiet ? nil : header)
        for image in images {
            if quiet {
                print(image.id)
                continue
            }
            if !verbose {
                let (name, digest) = repoDigest(image.repoDigests)
                let size = Human.size(Double(image.size), precision: 3)
                let id = noTrunc ? image.id : Human.truncated(image.id, prefix: "sha256:")
                let shownDigest = noTrunc ? digest : Human.truncated(digest, prefix: "sha256:")
                for (repo, tag) in repoTagPairs(image.repoTags, name: name) {
                    var row = [repo, tag]
                    if digests { row.append(shownDigest) }
                    row += [id, size]
                    if pinned { row.append(String(image.pinned)) }
                    table.add(row)
                }
                continue
            }
            print("ID: \(image.id)")
            for tag in image.repoTags { print("RepoTags: \(tag)") }
            for digest in image.repoDigests { print("RepoDigests: \(digest)") }
            if image.size != 0 { print("Size: \(image.size)") }
            if let uid = image.uid { print("Uid: value:\(uid.value)") }
            if !image.username.isEmpty { print("Username: \(image.username)") }
            if image.pinned { print("Pinned: true") }
            print()
        }
        table.print()
    }
}

/// ListImages sorted as crictl sorts them (first tag, else first digest, else id), then `--filter`s in order.
func listImages(_ client: Client, name: String, filters: [String]) async throws -> [Image] {
    var spec = ImageSpec()
    spec.image = name
    var imageFilter = ImageFilter()
    imageFilter.image = spec
    var request = ListImagesRequest()
    request.filter = imageFilter
    var images = try await client.call(CRIMethods.listImages, request).images
    images.sort { a, b in
        if let ta = a.repoTags.first, let tb = b.repoTags.first { return ta < tb }
        if let da = a.repoDigests.first, let db = b.repoDigests.first { return da < db }
        return a.id < b.id
    }
    for filter in filters {
        if let value = filter.dropPrefix("before=") {
            images = Array(images.reversed())
            images = Array(beforeSince(value, images).reversed())
        } else if let value = filter.dropPrefix("since=") {
            images = beforeSince(value, images)
        } else if let value = filter.dropPrefix("dangling=") {
            images = images.filter { value == "true" ? $0.repoTags.isEmpty : value == "false" ? !$0.repoTags.isEmpty : false }
        } else if let value = filter.dropPrefix("reference=") {
            let pattern = try Pattern(value)
            images = images.filter { image in
                let name = repoDigest(image.repoDigests).name
                return pattern.matches(name) || name == value
            }
        } else {
            throw CtlError("unknown filter flag: \(filter)")
        }
    }
    return images
}

/// crictl's before/since: the images listed ahead of the one named (by tag, id prefix or repo digest).
private func beforeSince(_ value: String, _ images: [Image]) -> [Image] {
    var out: [Image] = []
    for image in images {
        let isTag = value.contains(":") && !value.contains("@")
        let isDigest = value.contains(":") && value.contains("@")
        if isTag {
            let pair = repoTagPairs(image.repoTags, name: repoDigest(image.repoDigests).name)[0]
            if "\(pair.0):\(pair.1)" == value { break }
        } else if isDigest {
            guard let digest = image.repoDigests.first else { continue }
            if digest.hasPrefix(value) { break }
        } else if image.id.hasPrefix(value) {
            break
        }
        out.append(image)
    }
    return out
}

/// The repository and digest of the first repo digest, or `<none>`.
func repoDigest(_ repoDigests: [String]) -> (name: String, digest: String) {
    guard let first = repoDigests.first else { return ("<none>", "<none>") }
    let parts = first.split(separator: "@", omittingEmptySubsequences: false)
    guard parts.count == 2 else { return ("errorName", "errorRepoDigest") }
    return (String(parts[0]), String(parts[1]))
}

/// One (repository, tag) per repo tag; an untagged image shows its digest's repository and `<none>`.
func repoTagPairs(_ repoTags: [String], name: String) -> [(String, String)] {
    guard !repoTags.isEmpty else { return [(name, "<none>")] }
    return repoTags.map { tag in
        guard let colon = tag.lastIndex(of: ":") else { return ("errorRepoTag", "errorRepoTag") }
        var repo = String(tag[..<colon])
        if repo == "<none>" { repo = name }
        return (repo, String(tag[tag.index(after: colon)...]))
    }
}

extension String {
    fileprivate func dropPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}

/// ImageStatus of a name, id or digest.
func imageStatus(_ client: Client, _ image: String, verbose: Bool) async throws -> ImageStatusResponse {
    var spec = ImageSpec()
    spec.image = image
    var request = ImageStatusRequest()
    request.image = spec
    request.verbose = verbose
    return try await client.call(CRIMethods.imageStatus, request)
}

/// `inspecti IMAGE...`: ImageStatus (verbose unless -q); `status` is the image, plus each info entry.
struct InspectImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspecti", abstract: "Return the status of one or more images")

    @Option(name: .shortAndLong, help: "Output format, One of: json|yaml|table")
    var output: OutputFormat = .json

    @Flag(name: .shortAndLong, help: "Do not show verbose information")
    var quiet = false

    @Option(help: "Filter by image name")
    var name: String = ""

    @Option(name: [.customShort("f"), .long], help: "Filter output (see `images --filter`)")
    var filter: [String] = []

    @Argument(help: "IMAGE-ID [IMAGE-ID...]")
    var ids: [String] = []

    func run() async throws {
        let documents = try await GlobalOptions.current.withImages { client in
            var ids = self.ids
            if ids.isEmpty {
                ids = try await step("listing images") { try await listImages(client, name: name, filters: filter).map(\.id) }
            }
            guard !ids.isEmpty else { throw CtlError("No IDs provided or nothing found per filter") }
            var documents: [ProtoJSON] = []
            for id in ids {
                let response = try await step("image status for \"\(id)\" request") { try await imageStatus(client, id, verbose: !quiet) }
                guard let image = response.image else { throw CtlError("no such image \"\(id)\" present") }
                if output == .table {
                    print("ID: \(image.id)")
                    for tag in image.repoTags { print("Tag: \(tag)") }
                    for digest in image.repoDigests { print("Digest: \(digest)") }
                    print("Size: \(Human.size(Double(image.size), precision: 3))")
                    if !quiet {
                        let entries = response.info.keys.sorted().map { "\($0):\(response.info[$0]!)" }
                        print("Info: map[\(entries.joined(separator: " "))]")
                    }
                } else {
                    let status = Schema.withDefaults(image.protoJSON(useProtoNames: false), Schema.image)
                    documents.append(Output.statusDocument(status: status, info: response.info))
                }
            }
            return documents
        }
        try Output.printStatuses(documents, as: output)
    }
}

/// `rmi [-a] [-q|--prune] IMAGE...`: RemoveImage; prints `Deleted: <tag>` for each tag (or digest) removed.
/// `--prune` removes the images no container uses (pinned ones stay).
struct RemoveImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove one or more images")

    @Flag(name: .shortAndLong, help: "Remove all images")
    var all = false

    @Flag(name: [.customShort("q"), .long], help: "Remove all unused images")
    var prune = false

    @Argument(help: "IMAGE-ID [IMAGE-ID...]")
    var ids: [String] = []

    func validate() throws {
        if ids.isEmpty && !all && !prune { throw missing("IMAGE-ID is required (or --all, --prune)") }
    }

    func run() async throws {
        let global = GlobalOptions.current
        try await global.withImages { client in
            var selected = ids
            if all || prune {
                let images = try await step("listing images") { try await client.call(CRIMethods.listImages, ListImagesRequest()).images }
                for image in images where !(prune && image.pinned) && !selected.contains(image.id) { selected.append(image.id) }
            }
            if prune {
                let used = try await global.withRuntime { runtime in
                    try await step("listing containers") {
                        try await runtime.call(CRIMethods.listContainers, ListContainersRequest()).containers.map { $0.image?.image ?? "" }
                    }
                }
                var usedIDs: Set<String> = []
                for image in used {
                    if let id = try? await imageStatus(client, image, verbose: false).image?.id { usedIDs.insert(id) }
                }
                selected.removeAll { usedIDs.contains($0) }
            }
            if selected.isEmpty {
                infoLog("No images to remove")
                return
            }
            try await forEach(selected) { id in
                let status = try await step("image status request for \"\(id)\" failed") { try await imageStatus(client, id, verbose: false) }
                guard let image = status.image else { throw CtlError("no such image \(id)") }
                let likelyTag = !id.hasPrefix("sha256:") && (id.contains(":") || id.contains("/"))
                if image.repoTags.count > 1 && likelyTag {
                    warnLog("Image \"\(id)\" has multiple tags. Removing this image will delete all of the following tags:")
                    for tag in image.repoTags { warnLog("  \(tag)") }
                }
                var spec = ImageSpec()
                spec.image = id
                var request = RemoveImageRequest()
                request.image = spec
                do {
                    _ = try await step("error of removing image \"\(id)\"") { try await client.call(CRIMethods.removeImage, request, .work(nil)) }
                } catch {
                    if prune { return }
                    throw error
                }
                for name in image.repoTags.isEmpty ? image.repoDigests : image.repoTags { print("Deleted: \(name)") }
            }
        }
    }
}
