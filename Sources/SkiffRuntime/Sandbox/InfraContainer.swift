import CRI
import Foundation
import Glibc
import SkiffOCI
import SkiffSupport

/// The pod's infra container: skiff-pause run by the sandbox's launcher in the namespaces the pod shares.
/// Its rootfs is a tiny read-only directory holding only the pause binary.
public enum InfraContainer {
    /// Builds the OCI spec for the infra process of a pod.
    public static func spec(
        rootfs: String, hostname: String, options: NamespaceOption?, sysctls: [String: String], cgroupsPath: String
    ) -> Spec {
        var spec = Spec.defaultLinux(args: ["/pause"], rootfs: rootfs, hostname: nil)
        let network = options?.network ?? .pod
        let pid = options?.pid ?? .container
        let ipc = options?.ipc ?? .pod
        var namespaces = [Namespace(.mount)]
        if network != .node {
            namespaces.append(Namespace(.network))
            namespaces.append(Namespace(.uts))
            spec.hostname = hostname
        } else {
            spec.hostname = nil
        }
        if ipc != .node { namespaces.append(Namespace(.ipc)) }
        // The infra gets its own PID namespace unless the pod uses the host's; with pid == POD it is that
        // namespace's PID 1 and reaps the pod's zombies.
        if pid != .node { namespaces.append(Namespace(.pid)) }
        spec.linux?.namespaces = namespaces
        spec.linux?.sysctl = sysctls
        spec.linux?.cgroupsPath = cgroupsPath
        spec.process?.capabilities = Capabilities(all: [])
        spec.process?.noNewPrivileges = true
        // The infra needs no /sys, cgroups or devpts: fewer mounts, faster start.
        spec.mounts = Spec.defaultMounts.filter { ["/proc", "/dev", "/dev/shm", "/dev/mqueue"].contains($0.destination) }
        return spec
    }

    /// Prepares the shared infra rootfs once: /pause plus the mount points its spec needs.
    public static func prepareRootfs(at rootfs: String, pauseBinary: String) throws(SkiffError) {
        let target = rootfs + "/pause"
        do {
            for dir in ["proc", "dev", "sys", "etc"] { try FileSystem.makeDirectories(rootfs + "/" + dir) }
            let current = try? FileSystem.readBytes(target)
            let wanted = try FileSystem.readBytes(pauseBinary)
            if current != wanted {
                try AtomicFile.write(wanted, to: target, mode: 0o755)
            }
        } catch {
            throw .internal("prepare infra rootfs \(rootfs) from \(pauseBinary): \(error)")
        }
    }

    /// Brings up `lo` in a new network namespace with the CNI loopback plugin, as containerd does.
    public static func loopbackUp(netnsPath: String, containerId: String, pluginDirectories: [String]) async throws(SkiffError) {
        let runner = CNIPluginRunner(pluginDirectories: pluginDirectories, timeout: .seconds(30))
        guard runner.find("loopback") != nil else {
            throw .failedPrecondition("CNI loopback plugin not found in \(pluginDirectories.joined(separator: ", ")): install containernetworking-plugins")
        }
        let config: JSONObject = ["cniVersion": .string("0.4.0"), "name": .string("skiff-loopback"), "type": .string("loopback")]
        _ = try await runner.run(
            command: "ADD", config: config, network: "skiff-loopback", containerId: containerId, netns: netnsPath, ifName: "lo", args: [])
    }
}
