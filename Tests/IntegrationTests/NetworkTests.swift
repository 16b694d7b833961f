import CRI
import Foundation
import GRPCCore
import SkiffClient
import Testing

/// Pod networking through CNI with Debian's containernetworking-plugins: a bridge network with
/// host-local IPAM and portmap, written into the test's own conf dir. The tests run inside their own
/// network namespace (scripts/test.sh), so the bridge and iptables rules never touch the host's.
@Suite(.serialized, RegistryScope())
struct NetworkTests {}

/// One test's CNI network: conf dir, IPAM data dir, a unique bridge and /24; `remove()` deletes them and
/// the portmap chains the test created.
struct BridgeNetwork {
    let directory: String
    let name: String
    let bridge: String
    let prefix: String  // "10.a.b"
    var confDirectory: String { directory + "/net.d" }
    var ipamDirectory: String { directory + "/ipam" }
    var configYAML: String { "cni_conf_dir: \(confDirectory)\n" }

    init() throws {
        let tag = String(UUID().uuidString.lowercased().filter(\.isHexDigit).prefix(6))
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-cni-\(tag)").path
        name = "skiff-net-\(tag)"
        bridge = "skiffbr\(tag)"
        prefix = "10.\(Int.random(in: 100...250)).\(Int.random(in: 0...255))"
        try FileManager.default.createDirectory(atPath: confDirectory, withIntermediateDirectories: true)
    }

    /// The conflist: bridge + host-local, then portmap (capability portMappings), then `extra` plugins.
    func conflist(extraPlugins: [String] = []) -> String {
        let bridgePlugin = """
            {"type": "bridge", "bridge": "\(bridge)", "isGateway": true, "ipMasq": false, "hairpinMode": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "\(prefix).0/24"}]], "dataDir": "\(ipamDirectory)"}}
            """
        let portmap = #"{"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}"#
        return """
            {"cniVersion": "1.0.0", "name": "\(name)", "plugins": [\(([bridgePlugin, portmap] + extraPlugins).joined(separator: ", "))]}
            """
    }

    func install(extraPlugins: [String] = []) throws {
        try conflist(extraPlugins: extraPlugins).write(toFile: confDirectory + "/10-skiff.conflist", atomically: true, encoding: .utf8)
    }

    /// IPs host-local still holds for this network (files named by address in its data dir).
    func reservedIPs() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: ipamDirectory + "/" + name)) ?? []
        return entries.filter { $0.hasPrefix(prefix + ".") }.sorted()
    }

    /// Interfaces enslaved to the bridge (the host ends of the pods' veths).
    func bridgePorts() -> [String] {
        let text = (try? sh(["ip", "-o", "link", "show", "master", bridge])) ?? ""
        return text.split(separator: "\n").compactMap { line in
            line.split(separator: ":").dropFirst().first.map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    static var iptablesWorks: Bool { (try? sh(["iptables", "-t", "nat", "-S"])) != nil }

    /// Chains in the nat table whose name starts with `prefix`.
    static func natChains(_ prefix: String) -> [String] {
        let rules = (try? sh(["iptables", "-t", "nat", "-S"])) ?? ""
        return rules.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            return f.count == 2 && f[0] == "-N" && f[1].hasPrefix(prefix) ? String(f[1]) : nil
        }
    }

    func remove() {
        _ = try? sh(["ip", "link", "del", bridge])
        // portmap's top-level chains (its per-pod ones go with each DEL) and the jumps to them.
        if Self.iptablesWorks {
            let rules = (try? sh(["iptables", "-t", "nat", "-S"])) ?? ""
            for line in rules.split(separator: "\n") where line.hasPrefix("-A ") && line.contains("-j CNI-HOSTPORT-") {
                let args = line.split(separator: " ").dropFirst().map(String.init)
                if ["PREROUTING", "OUTPUT", "POSTROUTING", "INPUT"].contains(args.first ?? "") {
                    _ = try? sh(["iptables", "-t", "nat", "-D"] + args)
                }
            }
            for chain in Self.natChains("CNI-HOSTPORT-") { _ = try? sh(["iptables", "-t", "nat", "-F", chain]) }
            for chain in Self.natChains("CNI-HOSTPORT-") { _ = try? sh(["iptables", "-t", "nat", "-X", chain]) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs `body` with a fresh network and removes it afterwards, whatever happens.
    static func with(_ body: (BridgeNetwork) async throws -> Void) async throws {
        let network = try BridgeNetwork()
        do {
            try await body(network)
        } catch {
            network.remove()
            throw error
        }
        network.remove()
    }
}

extension CRIClient {
    func runtimeStatus() async throws -> StatusResponse {
        try await call(CRIMethods.status, StatusRequest())
    }
}

extension NetworkTests {
    @Test func podsGetDistinctIPsReachEachOtherAndReleaseThemOnStop() async throws {
        try await BridgeNetwork.with { net in
        try net.install()
        try await RuntimeHarness.run(configYAML: net.configYAML) { h in
        try await h.client { c in
            try await c.pull(h.registry.image("latest"))
            let network = try await c.runtimeStatus().status?.conditions.first { $0.type == "NetworkReady" }
            #expect(network?.status == true, "NetworkReady: \(String(describing: network))")

            let configA = h.podConfig(name: "net-a")
            var configB = h.podConfig(name: "net-b")
            var mapping = PortMapping()
            mapping.protocol = .tcp
            mapping.containerPort = 8080
            mapping.hostPort = Int32.random(in: 20000...30000)
            configB.portMappings = [mapping]
            let podA = try await c.runPod(configA)
            let podB = try await c.runPod(configB)
            let ipA = try await c.podStatus(podA).status?.network?.ip ?? ""
            let ipB = try await c.podStatus(podB).status?.network?.ip ?? ""
            #expect(ipA.hasPrefix(net.prefix + ".") && ipB.hasPrefix(net.prefix + "."), "pod IPs \(ipA), \(ipB) not in \(net.prefix).0/24")
            #expect(ipA != ipB)
            #expect(net.reservedIPs() == [ipA, ipB].sorted())
            #expect(net.bridgePorts().count == 2, "bridge ports: \(net.bridgePorts())")

            // pod B serves HTTP on 8080; pod A fetches it over the bridge by pod B's IP.
            let server = try await c.run(podB, Pods.container(
                name: "server", image: h.registry.image("latest"),
                command: ["sh", "-c", "mkdir -p /www && echo skiff-from-b > /www/index.html && exec httpd -f -p 8080 -h /www"]), configB)
            let client = try await c.run(podA, Pods.container(name: "client", image: h.registry.image("latest"), command: ["sleep", "300"]), configA)
            #expect(try await c.exec(client, ["sh", "-c", "ip -o -4 addr show eth0"]).out.contains(ipA + "/24"))
            var body = ""
            for _ in 0..<100 {
                body = try await c.exec(client, ["wget", "-qO-", "http://\(ipB):8080/"], timeout: 10).out
                if body.contains("skiff-from-b") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(body == "skiff-from-b\n")
            _ = server

            // The host port reaches pod B from the test's namespace through portmap's DNAT (127.0.0.1, as
            // critest does: portmap's SNAT and route_localnet make loopback work). Not wget -T: busybox's
            // segfaults.
            if BridgeNetwork.iptablesWorks {
                #expect(!BridgeNetwork.natChains("CNI-DN-").isEmpty, "portmap made no DNAT chain")
                var fromHost = ""
                for _ in 0..<50 {
                    let url = "http://127.0.0.1:\(mapping.hostPort)/"
                    fromHost = (try? await offThePool { try sh(["timeout", "5", "busybox", "wget", "-qO-", url]) }) ?? ""
                    if fromHost.contains("skiff-from-b") { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(fromHost == "skiff-from-b\n", "hostPort \(mapping.hostPort) did not reach pod B")
            } else {
                print("NetworkTests: iptables does not work in this namespace; hostPort check skipped")
            }

            // Stop releases the IP and the veth; status no longer reports an IP; a second stop is a no-op.
            try await c.stopPod(podB)
            #expect(net.reservedIPs() == [ipA])
            #expect(net.bridgePorts().count == 1)
            #expect(try await c.podStatus(podB).status?.network?.ip == "")
            if BridgeNetwork.iptablesWorks { #expect(BridgeNetwork.natChains("CNI-DN-").count == 0, "portmap DEL left \(BridgeNetwork.natChains("CNI-DN-"))") }
            try await c.stopPod(podB)
            // Remove without Stop releases too.
            try await c.removePod(podA)
            #expect(net.reservedIPs().isEmpty)
            #expect(net.bridgePorts().isEmpty)
            try await c.removePod(podB)
        }
        }
        }
    }

    @Test func networkReadyFollowsTheConfDirAndPodsGetOnlyLoWithoutConfig() async throws {
        try await BridgeNetwork.with { net in
        try await RuntimeHarness.run(configYAML: net.configYAML) { h in
        try await h.client { c in
            let notReady = try await c.runtimeStatus().status?.conditions.first { $0.type == "NetworkReady" }
            #expect(notReady?.status == false)
            #expect(notReady?.reason == "NetworkPluginNotReady")
            #expect(notReady?.message.contains(net.confDirectory) == true, "message: \(notReady?.message ?? "")")
            #expect(try await c.runtimeStatus().status?.conditions.first { $0.type == "RuntimeReady" }?.status == true)

            // Without a config a pod still runs, with lo only and no IP.
            try await c.pull(h.registry.image("latest"))
            let plainConfig = h.podConfig(name: "plain")
            let plain = try await c.runPod(plainConfig)
            #expect(try await c.podStatus(plain).status?.network?.ip == "")
            let ctr = try await c.run(plain, Pods.container(name: "c", image: h.registry.image("latest"), command: ["sleep", "300"]), plainConfig)
            #expect(try await c.exec(ctr, ["ls", "/sys/class/net"]).out == "lo\n")
            try await c.removePod(plain)

            // A config written later is picked up (a CNI daemonset installs it after the runtime starts).
            try net.install()
            let ready = try await c.runtimeStatus().status?.conditions.first { $0.type == "NetworkReady" }
            #expect(ready?.status == true)
            #expect(ready?.reason == "")
            let pod = try await c.runPod(h.podConfig(name: "late"))
            let ip = try await c.podStatus(pod, verbose: true)
            #expect(ip.status?.network?.ip.hasPrefix(net.prefix + ".") == true)
            #expect(ip.info["info"]?.contains(net.name) == true)
            try await c.removePod(pod)
            #expect(net.reservedIPs().isEmpty)
        }
        }
        }
    }

    @Test func aFailingPluginFailsRunPodSandboxAndReleasesWhatTheChainTook() async throws {
        try await BridgeNetwork.with { net in
        // The third plugin does not exist: bridge and portmap ADD succeed, then the chain fails.
        try net.install(extraPlugins: [#"{"type": "skiff-no-such-plugin"}"#])
        try await RuntimeHarness.run(configYAML: net.configYAML) { h in
        try await h.client { c in
            await #expect {
                try await c.runPod(h.podConfig(name: "broken"))
            } throws: { error in
                let message = (error as? RPCError)?.message ?? ""
                return message.contains("skiff-no-such-plugin") && message.contains(net.name) && message.contains("10-skiff.conflist")
            }
            #expect(net.reservedIPs().isEmpty, "IP left reserved: \(net.reservedIPs())")
            #expect(net.bridgePorts().isEmpty)
            let pods = try await c.listPods()
            #expect(pods.isEmpty)
        }
        }
        }
    }
}
