import CRI
import Foundation
import Glibc
import Testing

/// skiffctl, the crictl-like client, run as a real process against a real skiffd: output formats, crictl's
/// config files, error lines and exit codes, and the pod and container verbs end to end.
@Suite(.serialized)
struct SkiffctlTests {
    // MARK: Runtime information

    @Test func versionAsTextAndJSON() async throws {
        try await TestDaemon.with { daemon in
        let text = try await Ctl.run(daemon, ["version"])
        #expect(text.status == 0)
        #expect(text.out == "Version:  0.1.0\nRuntimeName:  skiff\nRuntimeVersion:  0.1.0\nRuntimeApiVersion:  v1\n")
        let json = try await Ctl.run(daemon, ["version", "-o", "json"])
        let version = try VersionResponse(jsonText: json.out)
        #expect(version.runtimeName == "skiff" && version.runtimeApiVersion == "v1")
        // The endpoint may come from the environment, as with crictl.
        let fromEnv = try await Ctl.run(nil, ["version"], environment: ["CONTAINER_RUNTIME_ENDPOINT": daemon.endpoint])
        #expect(fromEnv.status == 0 && fromEnv.out.contains("RuntimeName:  skiff"))
        }
    }

    @Test func infoAsJSONAndYAML() async throws {
        try await TestDaemon.with { daemon in
        let json = try await Ctl.run(daemon, ["info"])
        #expect(json.status == 0)
        let document = try ProtoJSON.parse(json.out)
        guard case .array(let conditions)? = document["status"]?["conditions"] else {
            Issue.record("no status.conditions in \(json.out)")
            return
        }
        #expect(conditions.contains { $0["type"] == .string("RuntimeReady") && $0["status"] == .bool(true) })
        // The verbose info entry "config" is a JSON object and is shown as one, not as a string.
        guard case .object? = document["config"] else {
            Issue.record("config is not an object in \(json.out)")
            return
        }
        let yaml = try await Ctl.run(daemon, ["info", "-o", "yaml"])
        #expect(yaml.status == 0)
        #expect(yaml.out.contains("conditions:") && yaml.out.contains("type: RuntimeReady"))
        #expect(!yaml.out.contains("{\n"))
        }
    }

    @Test func imageFsInfoNamesTheStore() async throws {
        try await TestDaemon.with { daemon in
        let result = try await Ctl.run(daemon, ["imagefsinfo"])
        #expect(result.status == 0)
        let document = try ProtoJSON.parse(result.out)
        guard case .array(let filesystems)? = document["status"]?["imageFilesystems"], let first = filesystems.first,
            case .string(let mountpoint)? = first["fsId"]?["mountpoint"]
        else {
            Issue.record("no status.imageFilesystems[0].fsId.mountpoint in \(result.out)")
            return
        }
        #expect(mountpoint.hasPrefix(daemon.root))
        #expect(first["usedBytes"]?["value"] != nil)
        let table = try await Ctl.run(daemon, ["imagefsinfo", "-o", "table"])
        #expect(table.out.contains("Image Filesystem") && table.out.contains("Mountpoint[0]: \(mountpoint)"))
        }
    }

    // MARK: Empty runtime

    @Test func emptyListsPrintOnlyTheirHeaders() async throws {
        try await TestDaemon.with { daemon in
        let expectations: [([String], String)] = [
            (["images"], "IMAGE               TAG                 IMAGE ID            SIZE\n"),
            (["img", "--digests"], "IMAGE               TAG                 DIGEST              IMAGE ID            SIZE\n"),
            (
                ["pods"],
                "POD ID              CREATED             STATE               NAME                NAMESPACE           ATTEMPT             RUNTIME\n"
            ),
            (
                ["ps", "-a"],
                "CONTAINER           IMAGE               CREATED             STATE               NAME                ATTEMPT             POD ID              POD                 NAMESPACE\n"
            ),
            (["pods", "-q"], ""),
            (["ps", "-q"], ""),
            (["images", "-q"], ""),
            (["pods", "-o", "json"], "{\n  \"items\": []\n}\n"),
            (["ps", "-o", "json"], "{\n  \"containers\": []\n}\n"),
            (["images", "-o", "json"], "{\n  \"images\": []\n}\n"),
        ]
        for (arguments, expected) in expectations {
            let result = try await Ctl.run(daemon, arguments)
            #expect(result.status == 0, "\(arguments): \(result.err)")
            #expect(result.out == expected, "\(arguments)")
        }
        }
    }

    // MARK: Errors

    @Test func unknownPodIsNotFoundInOneLine() async throws {
        try await TestDaemon.with { daemon in
        let result = try await Ctl.run(daemon, ["inspectp", "skiff-no-such-pod"])
        #expect(result.status == 1)
        #expect(result.out.isEmpty)
        let lines = result.err.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix("skiffctl: NotFound: ") == true, "\(result.err)")
        #expect(result.err.contains("skiff-no-such-pod"))
        // Stop is idempotent in the CRI, so stopp of an unknown pod succeeds, as with crictl.
        let stop = try await Ctl.run(daemon, ["stopp", "skiff-no-such-pod"])
        #expect(stop.status == 0 && stop.out == "Stopped sandbox skiff-no-such-pod\n")
        let rm = try await Ctl.run(daemon, ["rm", "skiff-no-such-container"])
        #expect(rm.status == 1 && rm.err.hasPrefix("skiffctl: NotFound: "))
        }
    }

    @Test func missingRuntimeAndBadFlagsFailClearly() async throws {
        let directory = try Ctl.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let missing = try await Ctl.run(nil, ["-r", "unix://\(directory)/skiff-none.sock", "pods"])
        #expect(missing.status == 1)
        #expect(missing.err.hasPrefix("skiffctl: Unavailable: ") && missing.err.contains("skiff-none.sock"))
        // Usage errors are ArgumentParser's, with the verb's usage and exit status 64.
        let usage = try await Ctl.run(nil, ["runp"])
        #expect(usage.status == 64)
        #expect(usage.err.contains("Usage: skiffctl runp"))
        let state = try await Ctl.run(nil, ["-r", "unix://\(directory)/skiff-none.sock", "-t", "soon", "pods"])
        #expect(state.status == 1 && state.err.contains("-timeout"))
    }

    // MARK: crictl's config files

    @Test func podConfigInCrictlsJSONAndYAMLForms() async throws {
        let directory = try Ctl.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // crictl's documented form: snake_case keys, enums as numbers.
        let json = """
            {
              "metadata": {"name": "skiff-web", "namespace": "skiff-ns", "attempt": 2, "uid": "skiff-uid-7"},
              "hostname": "skiff-host",
              "log_directory": "/tmp/skiff-logs",
              "dns_config": {"servers": ["10.0.0.10"], "searches": ["skiff.svc"], "options": ["ndots:5"]},
              "port_mappings": [{"protocol": 1, "container_port": 80, "host_port": 8080}],
              "labels": {"app": "skiff-web"},
              "annotations": {"skiff.io/note": "yes"},
              "linux": {
                "cgroup_parent": "/skiff-test",
                "sysctls": {"net.ipv4.ip_forward": "1"},
                "security_context": {"namespace_options": {"network": 2, "pid": 1}}
              }
            }
            """
        // The same pod as YAML with lowerCamelCase keys and enums by name.
        let yaml = """
            metadata:
              name: skiff-web
              namespace: skiff-ns
              attempt: 2
              uid: skiff-uid-7
            hostname: skiff-host
            logDirectory: /tmp/skiff-logs
            dnsConfig:
              servers: [10.0.0.10]
              searches:
                - skiff.svc
              options: ["ndots:5"]
            portMappings:
              - protocol: UDP
                containerPort: 80
                hostPort: 8080
            labels:
              app: skiff-web
            annotations:
              skiff.io/note: "yes"
            linux:
              cgroupParent: /skiff-test
              sysctls:
                net.ipv4.ip_forward: "1"
              securityContext:
                namespaceOptions:
                  network: NODE
                  pid: CONTAINER
            """
        try json.write(toFile: directory + "/pod.json", atomically: true, encoding: .utf8)
        try yaml.write(toFile: directory + "/pod.yaml", atomically: true, encoding: .utf8)
        let fromJSON = try await Ctl.run(nil, ["runp", "--dry-run", "--runtime", "runc", directory + "/pod.json"])
        let fromYAML = try await Ctl.run(nil, ["runp", "--dry-run", "-r", "runc", directory + "/pod.yaml"])
        #expect(fromJSON.status == 0, "\(fromJSON.err)")
        #expect(fromYAML.status == 0, "\(fromYAML.err)")
        let request = try RunPodSandboxRequest(jsonText: fromJSON.out)
        #expect(try RunPodSandboxRequest(jsonText: fromYAML.out) == request)
        #expect(request.runtimeHandler == "runc")
        let config = try #require(request.config)
        #expect(config.metadata?.name == "skiff-web" && config.metadata?.namespace == "skiff-ns")
        #expect(config.metadata?.attempt == 2 && config.metadata?.uid == "skiff-uid-7")
        #expect(config.hostname == "skiff-host" && config.logDirectory == "/tmp/skiff-logs")
        #expect(config.dnsConfig?.servers == ["10.0.0.10"] && config.dnsConfig?.options == ["ndots:5"])
        #expect(config.portMappings.first?.protocol == .udp && config.portMappings.first?.hostPort == 8080)
        #expect(config.labels == ["app": "skiff-web"] && config.annotations == ["skiff.io/note": "yes"])
        #expect(config.linux?.cgroupParent == "/skiff-test" && config.linux?.sysctls == ["net.ipv4.ip_forward": "1"])
        #expect(config.linux?.securityContext?.namespaceOptions?.network == .node)
        #expect(config.linux?.securityContext?.namespaceOptions?.pid == .container)
    }

    @Test func podConfigChecksAsCrictlDoes() async throws {
        let directory = try Ctl.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func runp(_ text: String) async throws -> Ctl.Result {
            let path = directory + "/pod-\(UUID().uuidString.prefix(6)).yaml"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return try await Ctl.run(nil, ["runp", "--dry-run", path])
        }
        // No uid: one is made up, as crictl does.
        let noUID = try await runp("metadata:\n  name: skiff-a\n  namespace: skiff-ns\n")
        #expect(noUID.status == 0)
        let uid = try RunPodSandboxRequest(jsonText: noUID.out).config?.metadata?.uid ?? ""
        #expect(UUID(uuidString: uid) != nil, "uid \(uid)")
        // A linux section without cgroup_parent: crictl's warning.
        let warned = try await runp("metadata: {name: skiff-a, namespace: skiff-ns}\nlinux: {}\n")
        #expect(warned.status == 0 && warned.err.contains("cgroup_parent is not set"))
        let noMetadata = try await runp("hostname: skiff\n")
        #expect(noMetadata.status == 1 && noMetadata.err == "skiffctl: load podSandboxConfig: metadata is not set\n")
        let noNamespace = try await runp("metadata:\n  name: skiff-a\n")
        #expect(noNamespace.status == 1 && noNamespace.err.contains("name or namespace is not in metadata"))
        let wrongType = try await runp("metadata:\n  name: [1, 2]\n  namespace: skiff-ns\n")
        #expect(wrongType.status == 1 && wrongType.err.contains("PodSandboxMetadata.name"))
        let badJSON = try await runp("{\"metadata\": {\"name\": \"x\"")
        #expect(badJSON.status == 1 && badJSON.err.contains("invalid JSON at line 1"))
        let missing = try await Ctl.run(nil, ["runp", "--dry-run", directory + "/skiff-none.json"])
        #expect(missing.status == 1 && missing.err.contains("config at \(directory)/skiff-none.json not found"))
    }

    @Test func containerConfigInCrictlsForm() async throws {
        let directory = try Ctl.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let container = """
            metadata:
              name: skiff-app
            image:
              image: registry.example/skiff/app:1.0
            command: [sh, -c]
            args: ["echo hi"]
            working_dir: /work
            envs:
              - key: SKIFF_MODE
                value: test
            mounts:
              - container_path: /data
                host_path: /tmp/skiff-data
                readonly: true
                propagation: PROPAGATION_HOST_TO_CONTAINER
            log_path: skiff-app.0.log
            linux:
              resources:
                memory_limit_in_bytes: 33554432
                cpu_quota: 50000
              security_context:
                capabilities:
                  drop_capabilities: [NET_RAW]
                run_as_user: {value: 1000}
            """
        try container.write(toFile: directory + "/container.yaml", atomically: true, encoding: .utf8)
        try "{\"metadata\": {\"name\": \"skiff-pod\", \"namespace\": \"skiff-ns\", \"uid\": \"u1\"}}"
            .write(toFile: directory + "/pod.json", atomically: true, encoding: .utf8)
        let result = try await Ctl.run(nil, ["create", "--dry-run", "skiff-pod-id", directory + "/container.yaml", directory + "/pod.json"])
        #expect(result.status == 0, "\(result.err)")
        let request = try CreateContainerRequest(jsonText: result.out)
        #expect(request.podSandboxId == "skiff-pod-id")
        #expect(request.sandboxConfig?.metadata?.uid == "u1")
        let config = try #require(request.config)
        #expect(config.metadata?.name == "skiff-app")
        // crictl fills user_specified_image from the image when the file leaves it out.
        #expect(config.image?.image == "registry.example/skiff/app:1.0")
        #expect(config.image?.userSpecifiedImage == "registry.example/skiff/app:1.0")
        #expect(config.command == ["sh", "-c"] && config.args == ["echo hi"] && config.workingDir == "/work")
        #expect(config.envs.first?.key == "SKIFF_MODE" && config.envs.first?.value == Array("test".utf8))
        #expect(config.mounts.first?.readonly == true && config.mounts.first?.propagation == .propagationHostToContainer)
        #expect(config.logPath == "skiff-app.0.log")
        #expect(config.linux?.resources?.memoryLimitInBytes == 33_554_432 && config.linux?.resources?.cpuQuota == 50000)
        #expect(config.linux?.securityContext?.capabilities?.dropCapabilities == ["NET_RAW"])
        #expect(config.linux?.securityContext?.runAsUser?.value == 1000)

        try "metadata:\n  name: skiff-app\n".write(toFile: directory + "/noimage.yaml", atomically: true, encoding: .utf8)
        let noImage = try await Ctl.run(nil, ["create", "--dry-run", "p", directory + "/noimage.yaml", directory + "/pod.json"])
        #expect(noImage.status == 1 && noImage.err == "skiffctl: image is not set\n")
    }

    // MARK: CRI log files

    @Test func logsReadTheCRIFormat() async throws {
        let directory = try Ctl.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/skiff.0.log"
        try """
            2026-01-02T03:04:05.100000000Z stdout F hello
            2026-01-02T03:04:05.200000000Z stderr F oops
            2026-01-02T03:04:06.000000000Z stdout P part-one\u{20}
            2026-01-02T03:04:06.100000000Z stdout F part-two
            2026-01-02T03:04:07.123456789Z stdout F last line

            """.write(toFile: path, atomically: true, encoding: .utf8)
        func logs(_ arguments: [String]) async throws -> Ctl.Result { try await Ctl.run(nil, ["logs", "--path", path] + arguments) }

        let all = try await logs([])
        #expect(all.status == 0)
        #expect(all.out == "hello\npart-one part-two\nlast line\n")
        #expect(all.err == "oops\n")
        #expect(try await logs(["--tail", "1"]).out == "last line\n")
        // --tail counts lines of the file, as kubelet's reader does: here the end of a split line.
        #expect(try await logs(["--tail", "2"]).out == "part-two\nlast line\n")
        #expect(try await logs(["--tail", "0"]).out == "")
        let stamped = try await logs(["-t"])
        #expect(
            stamped.out
                == "2026-01-02T03:04:05.1Z hello\n2026-01-02T03:04:06Z part-one part-two\n2026-01-02T03:04:07.123456789Z last line\n")
        #expect(stamped.err == "2026-01-02T03:04:05.2Z oops\n")
        #expect(try await logs(["--since", "2026-01-02T03:04:06Z"]).out == "part-one part-two\nlast line\n")
        // The byte limit counts both streams.
        let limited = try await logs(["--limit-bytes", "8"])
        #expect(limited.out == "hello\n" && limited.err == "oo")
        let errOnly = try await logs(["--stream", "stderr"])
        #expect(errOnly.out == "" && errOnly.err == "oops\n")
        let badStream = try await logs(["-s", "both"])
        #expect(badStream.status == 1 && badStream.err.contains("must be \"stdout\" or \"stderr\""))
    }
}

/// The pod and container verbs against a skiffd that runs real pods and containers.
@Suite(.serialized, RegistryScope())
struct SkiffctlRuntimeTests {
    @Test func podLifecycle() async throws {
        try await RuntimeHarness.run { h in
            let name = "skiffctl-\(UUID().uuidString.prefix(6).lowercased())"
            var config = h.podConfig(name: name, labels: ["skiffctl-test": "yes"])
            config.annotations = ["skiff.io/by": "skiffctl"]
            let podFile = h.daemon.directory + "/pod.json"
            // crictl's file form: snake_case keys.
            try config.jsonText(useProtoNames: true, pretty: true).write(toFile: podFile, atomically: true, encoding: .utf8)

            let runp = try await Ctl.run(h.daemon, ["runp", podFile])
            #expect(runp.status == 0, "\(runp.err)")
            let id = runp.out.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(id.count == 64 && id.allSatisfy(\.isHexDigit))

            let table = try await Ctl.run(h.daemon, ["pods"]).out.split(separator: "\n")
            #expect(table.count == 2)
            #expect(table.last?.hasPrefix(String(id.prefix(13)) + "       ") == true, "\(table)")
            for cell in ["Ready", name, "skiff-tests", "(default)"] { #expect(table.last?.contains(cell) == true) }
            #expect(try await Ctl.run(h.daemon, ["pods", "--no-trunc"]).out.contains(id))

            // Filters: name and namespace patterns, labels, state, id prefix.
            #expect(try await Ctl.run(h.daemon, ["pods", "-q", "--name", "^skiffctl-"]).out == id + "\n")
            #expect(try await Ctl.run(h.daemon, ["pods", "-q", "--name", "nomatch"]).out == "")
            #expect(try await Ctl.run(h.daemon, ["pods", "-q", "--namespace", "skiff-tests", "--label", "skiffctl-test=yes"]).out == id + "\n")
            #expect(try await Ctl.run(h.daemon, ["pods", "-q", "--label", "skiffctl-test=no"]).out == "")
            #expect(try await Ctl.run(h.daemon, ["pods", "-q", "--state", "notready"]).out == "")
            #expect(try await Ctl.run(h.daemon, ["pods", "-q", "--id", String(id.prefix(8))]).out == id + "\n")
            let listed = try ProtoJSON.parse(await Ctl.run(h.daemon, ["pods", "-o", "json"]).out)
            guard case .array(let items)? = listed["items"], let item = items.first else {
                Issue.record("no items in pods -o json")
                return
            }
            #expect(item["state"] == .string("SANDBOX_READY") && item["runtimeHandler"] == .string(""))

            // inspectp: status with every field and an RFC 3339 createdAt, plus skiffd's verbose info.
            let inspect = try await Ctl.run(h.daemon, ["inspectp", id])
            #expect(inspect.status == 0, "\(inspect.err)")
            let document = try ProtoJSON.parse(inspect.out)
            #expect(document["status"]?["id"] == .string(id))
            #expect(document["status"]?["state"] == .string("SANDBOX_READY"))
            #expect(document["status"]?["metadata"]?["name"] == .string(name))
            #expect(document["status"]?["annotations"]?["skiff.io/by"] == .string("skiffctl"))
            guard case .string(let created)? = document["status"]?["createdAt"] else {
                Issue.record("no createdAt in \(inspect.out)")
                return
            }
            #expect(created.contains("T") && (created.hasSuffix("Z") || created.contains("+")), "\(created)")
            #expect(document.serialized().contains("\"pid\""), "verbose info missing: \(inspect.out)")
            let quiet = try ProtoJSON.parse(await Ctl.run(h.daemon, ["inspectp", "-q", id]).out)
            guard case .object(let members) = quiet else { return }
            #expect(members.map(\.0) == ["status"])
            #expect(try await Ctl.run(h.daemon, ["inspectp", "-o", "yaml", id]).out.contains("state: SANDBOX_READY"))

            // A ready pod is not removed without -f.
            let refused = try await Ctl.run(h.daemon, ["rmp", id])
            #expect(refused.status == 1 && refused.err.contains("is running, please stop it first"))

            let stopp = try await Ctl.run(h.daemon, ["stopp", id])
            #expect(stopp.status == 0 && stopp.out == "Stopped sandbox \(id)\n")
            #expect(try await Ctl.run(h.daemon, ["pods", "-q", "--state", "notready"]).out == id + "\n")
            #expect(try await Ctl.run(h.daemon, ["pods"]).out.contains("NotReady"))

            let rmp = try await Ctl.run(h.daemon, ["rmp", id])
            #expect(rmp.status == 0 && rmp.out == "Removed sandbox \(id)\n")
            #expect(try await Ctl.run(h.daemon, ["pods", "-q"]).out == "")
            let gone = try await Ctl.run(h.daemon, ["inspectp", id])
            #expect(gone.status == 1 && gone.err.hasPrefix("skiffctl: NotFound: "))
            // rmp -a on an empty runtime has nothing to do.
            #expect(try await Ctl.run(h.daemon, ["rmp", "-a"]).status == 0)
        }
    }

    @Test func containerLifecycle() async throws {
        try await RuntimeHarness.run { h in
            let image = h.registry.image("latest")
            let podName = "skiffctl-\(UUID().uuidString.prefix(6).lowercased())"
            let podFile = h.daemon.directory + "/pod.json"
            try h.podConfig(name: podName).jsonText(useProtoNames: true).write(toFile: podFile, atomically: true, encoding: .utf8)
            let containerFile = h.daemon.directory + "/container.json"
            var container = Pods.container(
                name: "skiffctl-app", image: image,
                command: ["sh", "-c", "echo hello; echo oops >&2; trap 'exit 0' TERM; while true; do sleep 0.2; done"],
                logPath: "skiffctl-app.0.log")
            container.labels = ["io.kubernetes.pod.name": podName, "io.kubernetes.pod.namespace": "skiff-tests"]
            // crictl's file form: env values are plain strings (bytes in the schema, base64 in proto3 JSON).
            guard case .object(var members) = container.protoJSON(useProtoNames: true) else { return }
            members.append(("envs", .array([.object([("key", .string("SKIFF_MODE")), ("value", .string("plain text"))])])))
            let file = ProtoJSON.object(members)
            try file.serialized(pretty: true).write(toFile: containerFile, atomically: true, encoding: .utf8)

            // Images.
            let pull = try await Ctl.run(h.daemon, ["pull", image])
            #expect(pull.status == 0, "\(pull.err)")
            #expect(pull.out.hasPrefix("Image is up to date for sha256:"))
            let imageID = try await Ctl.run(h.daemon, ["images", "-q"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(imageID.hasPrefix("sha256:"))
            let images = try await Ctl.run(h.daemon, ["images"]).out.split(separator: "\n")
            #expect(images.count == 2)
            let repo = String(image.dropLast(":latest".count))
            #expect(images.last?.hasPrefix(repo + "   latest") == true, "\(images)")
            #expect(images.last?.contains(String(imageID.dropFirst(7).prefix(13))) == true)
            let inspecti = try ProtoJSON.parse(await Ctl.run(h.daemon, ["inspecti", image]).out)
            #expect(inspecti["status"]?["id"] == .string(imageID))

            // run: pod + container, started.
            let run = try await Ctl.run(h.daemon, ["run", containerFile, podFile])
            #expect(run.status == 0, "\(run.err)")
            let id = run.out.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(id.count == 64)
            #expect(try await Ctl.run(h.daemon, ["ps", "-q"]).out == id + "\n")
            let ps = try await Ctl.run(h.daemon, ["ps"]).out
            for cell in [String(id.prefix(13)), image, "Running", "skiffctl-app", podName, "skiff-tests"] {
                #expect(ps.contains(cell), "\(cell) not in \(ps)")
            }
            #expect(try await Ctl.run(h.daemon, ["ps", "-q", "--name", "app$", "--image", image]).out == id + "\n")
            #expect(try await Ctl.run(h.daemon, ["ps", "-q", "--state", "exited"]).out == "")

            // logs: stdout to stdout, stderr to stderr.
            var logs = try await Ctl.run(h.daemon, ["logs", id])
            let deadline = Date().addingTimeInterval(30)
            while !(logs.out.contains("hello") && logs.err.contains("oops")) && Date() < deadline {
                try await Task.sleep(for: .milliseconds(100))
                logs = try await Ctl.run(h.daemon, ["logs", id])
            }
            #expect(logs.out == "hello\n" && logs.err == "oops\n", "\(logs)")

            // exec -s: output and exit code passed through (ExecSync); without -s the same over the streaming server.
            let exec = try await Ctl.run(h.daemon, ["exec", "-s", id, "sh", "-c", "echo out; echo err >&2; exit 3"])
            #expect(exec.status == 3 && exec.out == "out\n" && exec.err == "err\n", "\(exec)")
            let env = try await Ctl.run(h.daemon, ["exec", "-s", id, "sh", "-c", "printf %s \"$SKIFF_MODE\""])
            #expect(env.status == 0 && env.out == "plain text", "\(env)")
            let stream = try await Ctl.run(h.daemon, ["exec", id, "true"])
            #expect(stream.status == 0 && stream.out.isEmpty && stream.err.isEmpty, "\(stream)")

            let stats = try await Ctl.run(h.daemon, ["stats", "-a"]).out.split(separator: "\n")
            #expect(stats.first?.hasPrefix("CONTAINER           NAME                CPU %") == true)
            #expect(stats.count == 2 && stats.last?.hasPrefix(String(id.prefix(13))) == true, "\(stats)")

            let inspect = try ProtoJSON.parse(await Ctl.run(h.daemon, ["inspect", id]).out)
            #expect(inspect["status"]?["state"] == .string("CONTAINER_RUNNING"))
            #expect(inspect["status"]?["finishedAt"] == .string("0001-01-01T00:00:00Z"))
            guard case .string(let logPath)? = inspect["status"]?["logPath"] else {
                Issue.record("no logPath")
                return
            }

            // logs -f follows until the container stops.
            let follow = try Ctl.spawn(h.daemon, ["logs", "-f", id])
            try await Task.sleep(for: .milliseconds(500))
            let stop = try await Ctl.run(h.daemon, ["stop", "-t", "10", id])
            #expect(stop.status == 0 && stop.out == id + "\n")
            let followed = try await follow.wait(timeout: 30)
            #expect(followed.status == 0 && followed.out == "hello\n", "\(followed)")
            let exited = try ProtoJSON.parse(await Ctl.run(h.daemon, ["inspect", "-q", id]).out)
            #expect(exited["status"]?["state"] == .string("CONTAINER_EXITED"))
            #expect(exited["status"]?["exitCode"] == .int(0))
            #expect(try await Ctl.run(h.daemon, ["ps", "-q"]).out == "")
            #expect(try await Ctl.run(h.daemon, ["ps", "-a", "-q"]).out == id + "\n")

            // rm removes the container and its log file; rmp -f the pod; rmi the image.
            let rm = try await Ctl.run(h.daemon, ["rm", id])
            #expect(rm.status == 0 && rm.out == id + "\n")
            #expect(!FileManager.default.fileExists(atPath: logPath))
            let pods = try await Ctl.run(h.daemon, ["rmp", "-a", "-f"])
            #expect(pods.status == 0 && pods.out.contains("Removed sandbox"), "\(pods)")
            let rmi = try await Ctl.run(h.daemon, ["rmi", image])
            #expect(rmi.status == 0 && rmi.out == "Deleted: \(image)\n", "\(rmi)")
            #expect(try await Ctl.run(h.daemon, ["images", "-q"]).out == "")
        }
    }
}

/// Runs the built skiffctl with stdout and stderr in separate files (posix_spawn: Foundation's Process has
/// been seen to miss a child's exit under load).
enum Ctl {
    struct Result: CustomStringConvertible {
        let status: Int32
        let out: String
        let err: String
        var description: String { "exit \(status), stdout \(out.debugDescription), stderr \(err.debugDescription)" }
    }

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-ctl-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// `skiffctl -r <daemon> <arguments>`; without a daemon no endpoint is given.
    static func run(_ daemon: TestDaemon?, _ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        try await spawn(daemon, arguments, environment: environment).wait(timeout: 120)
    }

    static func spawn(_ daemon: TestDaemon?, _ arguments: [String], environment: [String: String] = [:]) throws -> Running {
        let endpoint = daemon.map { ["-r", $0.endpoint] } ?? []
        return try Running([binDirectory + "/skiffctl"] + endpoint + arguments, environment: environment)
    }

    final class Running {
        let pid: pid_t
        let base: String

        init(_ argv: [String], environment: [String: String]) throws {
            base = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-ctl-run-\(UUID().uuidString.prefix(8))").path
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            var env = ProcessInfo.processInfo.environment
            env["CONTAINER_RUNTIME_ENDPOINT"] = nil
            env["IMAGE_SERVICE_ENDPOINT"] = nil
            for (key, value) in environment { env[key] = value }
            let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
            let args = argv.map { strdup($0) } + [nil]
            defer {
                envp.forEach { free($0) }
                args.forEach { free($0) }
            }
            var child: pid_t = 0
            let rc = withCleanSignals { posix_spawn(&child, argv[0], &actions, $0, args, envp) }
            guard rc == 0 else { throw TestFailure("spawn \(argv[0]): \(String(cString: strerror(rc)))") }
            pid = child
        }

        /// Waits (bounded, polling: no cooperative thread parked in waitpid) for the exit; a process still
        /// running at the deadline is killed and reported.
        func wait(timeout seconds: Double) async throws -> Result {
            let deadline = Date().addingTimeInterval(seconds)
            var status: Int32 = 0
            while true {
                let rc = waitpid(pid, &status, WNOHANG)
                if rc == pid { break }
                if rc < 0 && errno != EINTR { throw TestFailure("waitpid: errno \(errno)") }
                if Date() > deadline {
                    kill(pid, SIGKILL)
                    _ = waitpid(pid, &status, 0)
                    throw TestFailure("skiffctl did not exit within \(seconds) s: \(read())")
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            let (out, err) = read()
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
            let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return Result(status: code, out: out, err: err)
        }

        private func read() -> (String, String) {
            ((try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "", (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
        }
    }
}
