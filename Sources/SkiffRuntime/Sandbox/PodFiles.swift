import CRI
import Foundation
import SkiffSupport

/// The per-pod files every container of the pod bind-mounts: /etc/resolv.conf, /etc/hosts, /etc/hostname.
/// Written once at RunPodSandbox into the sandbox's directory.
public enum PodFiles {
    public static func resolvConf(_ dns: DNSConfig?, hostNetwork: Bool) -> String {
        guard let dns, !(dns.servers.isEmpty && dns.searches.isEmpty && dns.options.isEmpty) else {
            // No DNS config: as containerd, the pod uses the node's resolver configuration.
            return (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        }
        var text = ""
        if !dns.searches.isEmpty { text += "search \(dns.searches.joined(separator: " "))\n" }
        for server in dns.servers { text += "nameserver \(server)\n" }
        if !dns.options.isEmpty { text += "options \(dns.options.joined(separator: " "))\n" }
        return text
    }

    public static func hosts(hostNetwork: Bool) -> String {
        if hostNetwork, let host = try? String(contentsOfFile: "/etc/hosts", encoding: .utf8) { return host }
        return """
            127.0.0.1\tlocalhost
            ::1\tlocalhost ip6-localhost ip6-loopback
            fe00::0\tip6-localnet
            fe00::0\tip6-mcastprefix
            fe00::1\tip6-allnodes
            fe00::2\tip6-allrouters

            """
    }

    public static func hostname(_ configured: String, hostNetwork: Bool) -> String {
        if hostNetwork || configured.isEmpty {
            var buffer = [CChar](repeating: 0, count: 256)
            gethostname(&buffer, buffer.count)
            let host = String(cString: buffer)
            return configured.isEmpty ? host : configured
        }
        return configured
    }

    public static func write(to directory: String, config: PodSandboxConfig, hostNetwork: Bool) throws(SystemError) {
        let name = hostname(config.hostname, hostNetwork: hostNetwork)
        try AtomicFile.write(resolvConf(config.dnsConfig, hostNetwork: hostNetwork), to: directory + "/resolv.conf", mode: 0o644)
        try AtomicFile.write(hosts(hostNetwork: hostNetwork), to: directory + "/hosts", mode: 0o644)
        try AtomicFile.write(name + "\n", to: directory + "/hostname", mode: 0o644)
    }
}

/// Sysctls a pod may set: only those the kernel keeps per namespace, and only for namespaces the pod owns.
public enum Sysctls {
    public static func validate(_ sysctls: [String: String], hostNetwork: Bool, hostIPC: Bool) throws(SkiffError) {
        for key in sysctls.keys.sorted() {
            let ipc = key.hasPrefix("kernel.shm") || key.hasPrefix("kernel.msg") || key == "kernel.sem" || key.hasPrefix("fs.mqueue.")
            let net = key.hasPrefix("net.")
            guard ipc || net else {
                throw .invalidArgument("sysctl \(key) is not namespaced: a pod may only set net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*")
            }
            if net && hostNetwork {
                throw .invalidArgument("sysctl \(key) cannot be set in a pod that uses the host's network namespace")
            }
            if ipc && hostIPC {
                throw .invalidArgument("sysctl \(key) cannot be set in a pod that uses the host's IPC namespace")
            }
        }
    }
}
