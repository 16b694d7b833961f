import Foundation
import SkiffSupport

/// Resolves a container's user the way Kubernetes and containerd do: run_as_user / run_as_group /
/// run_as_username from the CRI, else the image's USER ("uid", "uid:gid", "name", "name:group"), looked
/// up in the image's /etc/passwd and /etc/group. Supplemental groups: the user's groups in /etc/group plus
/// those the pod asks for.
public struct ResolvedUser: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var additionalGids: [UInt32]
    public var username: String?
}

public enum UserResolver {
    struct PasswdEntry { var name: String; var uid: UInt32; var gid: UInt32 }
    struct GroupEntry { var name: String; var gid: UInt32; var members: [String] }

    public static func resolve(
        rootfs: String, runAsUser: Int64?, runAsGroup: Int64?, runAsUsername: String, imageUser: String,
        supplementalGroups: [Int64]
    ) throws(SkiffError) -> ResolvedUser {
        // CRI: run_as_group is only valid with run_as_user or run_as_username; the runtime MUST error.
        if runAsGroup != nil && runAsUser == nil && runAsUsername.isEmpty {
            throw .invalidArgument("run_as_group is set without run_as_user or run_as_username")
        }
        let passwd = readPasswd(rootfs + "/etc/passwd")
        let groups = readGroups(rootfs + "/etc/group")
        var user: (uid: UInt32, gid: UInt32?, name: String?)
        if let runAsUser {
            guard runAsUser >= 0 && runAsUser <= Int64(UInt32.max) else { throw .invalidArgument("run_as_user \(runAsUser) is out of range") }
            let uid = UInt32(runAsUser)
            user = (uid, passwd.first { $0.uid == uid }?.gid, passwd.first { $0.uid == uid }?.name)
        } else if !runAsUsername.isEmpty {
            guard let entry = passwd.first(where: { $0.name == runAsUsername }) else {
                throw .invalidArgument("run_as_username \"\(runAsUsername)\" is not in the image's /etc/passwd")
            }
            user = (entry.uid, entry.gid, entry.name)
        } else {
            let parts = imageUser.split(separator: ":", maxSplits: 1).map(String.init)
            let name = parts.first ?? ""
            if name.isEmpty {
                user = (0, 0, "root")
            } else if let uid = UInt32(name) {
                let entry = passwd.first { $0.uid == uid }
                user = (uid, entry?.gid, entry?.name)
            } else if let entry = passwd.first(where: { $0.name == name }) {
                user = (entry.uid, entry.gid, entry.name)
            } else {
                throw .invalidArgument("image user \"\(name)\" is not in the image's /etc/passwd")
            }
            if parts.count == 2 {
                if let gid = UInt32(parts[1]) {
                    user.gid = gid
                } else if let group = groups.first(where: { $0.name == parts[1] }) {
                    user.gid = group.gid
                } else {
                    throw .invalidArgument("image group \"\(parts[1])\" is not in the image's /etc/group")
                }
            }
        }
        var gid = user.gid ?? 0
        if let runAsGroup {
            guard runAsGroup >= 0 && runAsGroup <= Int64(UInt32.max) else { throw .invalidArgument("run_as_group \(runAsGroup) is out of range") }
            gid = UInt32(runAsGroup)
        }
        var extra: [UInt32] = []
        if let name = user.name {
            extra += groups.filter { $0.members.contains(name) }.map(\.gid)
        }
        for g in supplementalGroups where g >= 0 && g <= Int64(UInt32.max) { extra.append(UInt32(g)) }
        var seen = Set<UInt32>([gid])
        extra = extra.filter { seen.insert($0).inserted }
        return ResolvedUser(uid: user.uid, gid: gid, additionalGids: extra, username: user.name)
    }

    static func lines(_ path: String) -> [[String]] {
        guard let text = try? FileSystem.readString(path) else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
    }

    static func readPasswd(_ path: String) -> [PasswdEntry] {
        lines(path).compactMap { f in
            guard f.count >= 4, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { return nil }
            return PasswdEntry(name: f[0], uid: uid, gid: gid)
        }
    }

    static func readGroups(_ path: String) -> [GroupEntry] {
        lines(path).compactMap { f in
            guard f.count >= 3, let gid = UInt32(f[2]) else { return nil }
            let members = f.count >= 4 ? f[3].split(separator: ",").map(String.init) : []
            return GroupEntry(name: f[0], gid: gid, members: members)
        }
    }
}
