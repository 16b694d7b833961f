import SkiffSupport
#if canImport(Glibc)
import Glibc
#endif

/// Processes, open files and sockets of a cgroup's processes, from /proc (as cAdvisor counts them), and the
/// soft `nofile` limit of a container's first process.
enum ProcessMetrics {
    /// `pids`: the cgroup's processes (cgroup.procs, descendants included). `countThreads` when the pids
    /// controller does not count them (CgroupMetrics reports pids.current otherwise). A process that exits
    /// while it is read is skipped.
    static func samples(pids: [Int32], countThreads: Bool) -> [MetricSample] {
        var fds: UInt64 = 0
        var sockets: UInt64 = 0
        var threads: UInt64 = 0
        for pid in pids {
            let open = openFiles(pid: pid)
            fds += open.fds
            sockets += open.sockets
            if countThreads { threads += UInt64(FileSystem.listDirectory("/proc/\(pid)/task").count) }
        }
        var out = [
            MetricSample(MetricCatalog.processes, UInt64(pids.count)),
            MetricSample(MetricCatalog.fileDescriptors, fds),
            MetricSample(MetricCatalog.sockets, sockets),
        ]
        if countThreads { out.append(MetricSample(MetricCatalog.threads, threads)) }
        return out
    }

    /// Entries of /proc/PID/fd, and how many of them are sockets (links to `socket:[inode]`).
    static func openFiles(pid: Int32) -> (fds: UInt64, sockets: UInt64) {
        let dir = "/proc/\(pid)/fd"
        var fds: UInt64 = 0
        var sockets: UInt64 = 0
        var buffer = [CChar](repeating: 0, count: 64)
        for name in FileSystem.listDirectory(dir) {
            fds += 1
            let n = readlink(dir + "/" + name, &buffer, buffer.count - 1)
            if n >= 7 && buffer.prefix(7).elementsEqual("socket:".utf8.map { CChar(bitPattern: $0) }) { sockets += 1 }
        }
        return (fds, sockets)
    }

    /// `container_ulimits_soft{ulimit="max_open_files"}` of `pid` (cAdvisor reports only this one), from
    /// /proc/PID/limits. `unlimited` is the kernel's RLIM_INFINITY (all bits set: -1 as a signed number).
    static func ulimits(pid: Int32) -> [MetricSample] {
        guard pid > 0, let text = try? FileSystem.readString("/proc/\(pid)/limits"),
              let soft = softOpenFilesLimit(text)
        else { return [] }
        return [MetricSample(MetricCatalog.ulimitsSoft, soft, ["max_open_files"])]
    }

    /// `Max open files   <soft>   <hard>   files`.
    static func softOpenFilesLimit(_ text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("Max open files") {
            let fields = line.dropFirst("Max open files".count).split(separator: " ")
            guard let soft = fields.first else { return nil }
            return soft == "unlimited" ? UInt64.max : UInt64(soft)
        }
        return nil
    }
}
