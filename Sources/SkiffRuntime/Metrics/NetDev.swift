import SkiffSupport

/// Interface counters of a process's network namespace from /proc/PID/net/dev, which shows the namespace
/// of that process: no setns, no thread pinned to another namespace. PodSandboxStats and the network
/// metrics both read the pod's through its infra process.
public enum NetDev {
    public struct Interface: Sendable, Equatable {
        public var name: String
        public var rxBytes: UInt64, rxPackets: UInt64, rxErrors: UInt64, rxDropped: UInt64
        public var txBytes: UInt64, txPackets: UInt64, txErrors: UInt64, txDropped: UInt64
    }

    public static func read(pid: Int32) -> [Interface]? {
        guard pid > 0, let text = try? FileSystem.readString("/proc/\(pid)/net/dev") else { return nil }
        return parse(text)
    }

    /// Two header lines, then `name: rx bytes packets errs drop fifo frame compressed multicast tx bytes
    /// packets errs drop fifo colls carrier compressed`.
    public static func parse(_ text: String) -> [Interface] {
        var out: [Interface] = []
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon].drop(while: { $0 == " " }))
            let fields = line[line.index(after: colon)...].split(separator: " ").compactMap { UInt64($0) }
            guard !name.isEmpty, fields.count >= 16 else { continue }
            out.append(Interface(
                name: name, rxBytes: fields[0], rxPackets: fields[1], rxErrors: fields[2], rxDropped: fields[3],
                txBytes: fields[8], txPackets: fields[9], txErrors: fields[10], txDropped: fields[11]))
        }
        return out
    }

    /// The eight cAdvisor network counters of every interface but loopback (cAdvisor leaves `lo` out: it
    /// is not pod traffic).
    static func samples(_ interfaces: [Interface]) -> [MetricSample] {
        var out: [MetricSample] = []
        for i in interfaces where i.name != "lo" {
            let label = [i.name]
            out += [
                MetricSample(MetricCatalog.networkReceiveBytes, i.rxBytes, label),
                MetricSample(MetricCatalog.networkReceivePackets, i.rxPackets, label),
                MetricSample(MetricCatalog.networkReceiveErrors, i.rxErrors, label),
                MetricSample(MetricCatalog.networkReceiveDropped, i.rxDropped, label),
                MetricSample(MetricCatalog.networkTransmitBytes, i.txBytes, label),
                MetricSample(MetricCatalog.networkTransmitPackets, i.txPackets, label),
                MetricSample(MetricCatalog.networkTransmitErrors, i.txErrors, label),
                MetricSample(MetricCatalog.networkTransmitDropped, i.txDropped, label),
            ]
        }
        return out
    }
}
