/// Container and sandbox ids: 64 lowercase hex characters, like containerd's and CRI-O's, so that tools
/// which truncate ids to 13 characters keep working.
public func newIdentifier() -> String {
    var generator = SystemRandomNumberGenerator()
    let hex = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(64)
    for _ in 0..<4 {
        var word = generator.next()
        for _ in 0..<16 {
            out.append(hex[Int(word & 0xf)])
            word >>= 4
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Resolves a possibly-abbreviated id against known ids the way crictl users expect: an exact match wins,
/// otherwise a unique prefix; an ambiguous prefix is an error rather than a guess.
public func resolveIdentifier(_ query: String, among ids: some Sequence<String>) throws(SkiffError) -> String? {
    guard !query.isEmpty else { throw .invalidArgument("id must not be empty") }
    var match: String?
    for id in ids {
        if id == query { return id }
        if id.hasPrefix(query) {
            if match != nil { throw .invalidArgument("id prefix \"\(query)\" is ambiguous: give more characters") }
            match = id
        }
    }
    return match
}
