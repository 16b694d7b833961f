import SkiffSupport

/// Huge page sizes of this host, named as the hugetlb controller names its files (`2MB`, `1GB`).
enum HugePages {
    static let sizes: [String] = FileSystem.listDirectory("/sys/kernel/mm/hugepages").compactMap(name(directory:))

    /// `hugepages-2048kB` → `2MB`.
    static func name(directory: String) -> String? {
        guard directory.hasPrefix("hugepages-"), directory.hasSuffix("kB"),
              let kb = UInt64(directory.dropFirst("hugepages-".count).dropLast(2)), kb > 0
        else { return nil }
        var value = kb * 1024
        var unit = 0
        let units = ["B", "KB", "MB", "GB", "TB", "PB"]
        while value >= 1024 && value % 1024 == 0 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return "\(value)\(units[unit])"
    }
}

/// Names of block devices for the `device` label, as cAdvisor shows them (`/dev/vda`).
enum DeviceNames {
    /// `/dev/<DEVNAME>` from sysfs for a block device; `MAJ:MIN` for anything else (an overlay, a tmpfs).
    static func name(major: UInt32, minor: UInt32) -> String {
        if let uevent = try? FileSystem.readString("/sys/dev/block/\(major):\(minor)/uevent"),
           let line = uevent.split(separator: "\n").first(where: { $0.hasPrefix("DEVNAME=") }) {
            return "/dev/" + line.dropFirst("DEVNAME=".count)
        }
        return "\(major):\(minor)"
    }
}
