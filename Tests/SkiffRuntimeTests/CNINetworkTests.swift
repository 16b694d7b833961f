import CRI
import Foundation
import Logging
import SkiffOCI
import Testing

@testable import SkiffRuntime

/// CNI config loading, stdin injection and result parsing, without running plugins (NetworkTests in
/// IntegrationTests runs the real ones).
@Suite struct CNINetworkTests {
    static func tempDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-cni-unit-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func theFirstFileInLexicalOrderIsTheNetworkAndAConfIsAListOfOne() throws {
        let dir = try Self.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try CNINetworkList.loadFirst(in: dir) == nil)
        try #"{"cniVersion": "0.4.0", "name": "second", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}"#
            .write(toFile: dir + "/20-b.conflist", atomically: true, encoding: .utf8)
        try "ignored".write(toFile: dir + "/00-readme.txt", atomically: true, encoding: .utf8)
        try #"{"cniVersion": "0.3.1", "name": "first", "type": "ptp", "ipam": {"type": "host-local"}}"#
            .write(toFile: dir + "/10-a.conf", atomically: true, encoding: .utf8)
        let network = try #require(try CNINetworkList.loadFirst(in: dir))
        #expect(network.name == "first")
        #expect(network.cniVersion == "0.3.1")
        #expect(network.plugins.map { $0["type"]?.stringValue } == ["ptp"])
        #expect(network.file == dir + "/10-a.conf")

        // The persisted form round-trips, as a DEL after a restart needs.
        let again = try CNINetworkList(list: try #require(try JSON(parsing: network.listJSON).objectValue), file: "")
        #expect(again.plugins == network.plugins && again.name == "first" && again.cniVersion == "0.3.1")
    }

    @Test func brokenConfigsAreRejectedNamingTheFile() throws {
        for (file, text, needle) in [
            ("a.conflist", #"{"name": "n", "plugins": []}"#, "plugins"),
            ("a.conflist", #"{"plugins": [{"type": "bridge"}]}"#, "name"),
            ("a.conflist", #"{"name": "n", "plugins": [{"ipam": {}}]}"#, "plugins[0]"),
            ("a.conf", #"{"name": "n"}"#, "type"),
            ("a.conf", "{not json", "invalid JSON"),
        ] {
            #expect {
                try CNINetworkList(parsing: Array(text.utf8), file: "/etc/cni/net.d/" + file)
            } throws: { error in
                let message = "\(error)"
                return message.contains("/etc/cni/net.d/\(file)") && message.contains(needle)
            }
        }
    }

    @Test func pluginStdinGetsNameVersionPrevResultAndOnlyDeclaredCapabilities() throws {
        let network = try CNINetworkList(
            parsing: Array(#"{"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge", "name": "x"}, {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}}]}"#.utf8),
            file: "n.conflist")
        let args = CNIPodArgs.kubernetes(
            sandboxId: "abc", netns: "/proc/1/ns/net", name: "web", namespace: "default", uid: "u1",
            portMappings: [
                { var m = PortMapping(); m.protocol = .udp; m.containerPort = 53; m.hostPort = 5353; m.hostIp = "127.0.0.1"; return m }(),
                { var m = PortMapping(); m.containerPort = 80; return m }(),  // no host port: left out
            ])
        #expect(args.args == ["K8S_POD_NAMESPACE=default", "K8S_POD_NAME=web", "K8S_POD_INFRA_CONTAINER_ID=abc", "K8S_POD_UID=u1"])
        var withBandwidth = args.capabilityArgs
        withBandwidth["bandwidth"] = .object(["ingressRate": JSON(1000)])

        let bridge = CNIManager.pluginConfig(network.plugins[0], network: network, prevResult: nil, capabilityArgs: withBandwidth)
        #expect(bridge["name"]?.stringValue == "net")
        #expect(bridge["cniVersion"]?.stringValue == "1.0.0")
        #expect(bridge["runtimeConfig"] == nil)
        #expect(bridge["prevResult"] == nil)

        let previous = try JSON(parsing: #"{"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}"#)
        let portmap = CNIManager.pluginConfig(network.plugins[1], network: network, prevResult: previous, capabilityArgs: withBandwidth)
        #expect(portmap["prevResult"] == previous)
        #expect(portmap["runtimeConfig"]?["bandwidth"] == nil)
        #expect(JSON.object(try #require(portmap["runtimeConfig"]?.objectValue)).compactText
            == #"{"portMappings":[{"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}]}"#)
    }

    @Test func podIPsComeFromPodInterfacesIPv4First() throws {
        let result = try JSON(parsing: """
            {"cniVersion": "1.0.0",
             "interfaces": [{"name": "skiff0", "mac": "aa"}, {"name": "veth1", "mac": "bb"}, {"name": "eth0", "mac": "cc", "sandbox": "/proc/9/ns/net"}],
             "ips": [{"address": "fd00::5/64", "interface": 2}, {"address": "10.88.0.1/16", "interface": 0},
                     {"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 2}, {"address": "192.168.9.9/32"}]}
            """)
        #expect(CNIManager.podIPs(from: result) == ["10.88.0.5", "192.168.9.9", "fd00::5"])
        let legacy = try JSON(parsing: #"{"cniVersion": "0.2.0", "ip4": {"ip": "10.1.2.3/24"}, "ip6": {"ip": "fd00::3/64"}}"#)
        #expect(CNIManager.podIPs(from: legacy) == ["10.1.2.3", "fd00::3"])
        #expect(CNIManager.podIPs(from: try JSON(parsing: "{}")).isEmpty)
    }

    @Test func delGetsPrevResultFromCNI040On() {
        #expect(CNIManager.versionAtLeast("0.4.0", 0, 4))
        #expect(CNIManager.versionAtLeast("1.0.0", 0, 4))
        #expect(!CNIManager.versionAtLeast("0.3.1", 0, 4))
        #expect(!CNIManager.versionAtLeast("", 0, 4))
    }

    @Test func aConfigWrittenLaterIsLoadedAndNamedInReadiness() throws {
        let dir = try Self.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let manager = CNIManager(confDirectory: dir, pluginDirectories: ["/usr/lib/cni"], logger: Logger(label: "test"))
        let before = manager.readiness()
        #expect(!before.ready && before.message.contains(dir))
        #expect(manager.network() == nil)
        try #"{"cniVersion": "1.0.0", "name": "late", "plugins": [{"type": "bridge"}]}"#
            .write(toFile: dir + "/10-late.conflist", atomically: true, encoding: .utf8)
        #expect(manager.readiness().ready)
        #expect(manager.network()?.name == "late")
        // A plugin type is a file name, never a path out of the plugin directories.
        #expect(manager.runner.find("../../bin/sh") == nil)
        #expect(manager.runner.find("loopback") == "/usr/lib/cni/loopback")
    }
}
