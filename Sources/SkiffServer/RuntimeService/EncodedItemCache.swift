import CRI
import SkiffRuntime
import Synchronization

/// The protobuf encoding of each record's List item, kept while the record is unchanged. A record update
/// replaces its box in the index, so "unchanged" is box identity; the entry holds the box, so its identity
/// cannot be reused by a later one. Kubelet lists every container every second, and most of them never
/// change: their items are encoded once (by protobuf-c) and then only copied.
final class EncodedItemCache<Record: Sendable>: Sendable {
    private struct Entry {
        let ref: RecordRef<Record>
        let bytes: [UInt8]
    }

    private let entries = Mutex<[String: Entry]>([:])

    /// The encoded items of `refs`, in order; `encode` runs for records not seen in this version.
    /// `all`, when given, are every record there is: entries of records not among them are dropped, once
    /// the cache holds noticeably more entries than there are records.
    func items(
        _ refs: [RecordRef<Record>], all: [RecordRef<Record>]?, id: (Record) -> String, encode: (Record) -> [UInt8]
    ) -> [[UInt8]] {
        entries.withLock { entries in
            var out: [[UInt8]] = []
            out.reserveCapacity(refs.count)
            for ref in refs {
                let key = id(ref.record)
                if let entry = entries[key], entry.ref === ref {
                    out.append(entry.bytes)
                } else {
                    let bytes = encode(ref.record)
                    entries[key] = Entry(ref: ref, bytes: bytes)
                    out.append(bytes)
                }
            }
            if let all, entries.count > all.count + 64 {
                let live = Set(all.map { id($0.record) })
                entries = entries.filter { live.contains($0.key) }
            }
            return out
        }
    }

    var count: Int { entries.withLock { $0.count } }
}
