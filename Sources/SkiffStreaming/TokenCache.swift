import Synchronization

/// kubelet's streaming request cache: values parked under random URL-safe tokens, each usable once,
/// each expiring after `ttl`, at most `maxInFlight` waiting (a flood of unused requests is refused
/// rather than held in memory).
public final class TokenCache<Value: Sendable>: Sendable {
    public static var maxInFlight: Int { 1000 }

    private struct Entry: Sendable {
        var value: Value
        var expires: ContinuousClock.Instant
    }

    public let ttl: Duration
    private let entries = Mutex<[String: Entry]>([:])
    private let clock: @Sendable () -> ContinuousClock.Instant

    public init(ttl: Duration = .seconds(60), clock: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.ttl = ttl
        self.clock = clock
    }

    /// Parks `value`; its token, or nil when `maxInFlight` values are already waiting.
    public func insert(_ value: Value) -> String? {
        let now = clock()
        return entries.withLock { e in
            e = e.filter { $0.value.expires > now }
            guard e.count < Self.maxInFlight else { return nil }
            var token = Self.newToken()
            while e[token] != nil { token = Self.newToken() }
            e[token] = Entry(value: value, expires: now.advanced(by: ttl))
            return token
        }
    }

    /// The value for `token`, removed; nil if unknown, already used or expired.
    public func consume(_ token: String) -> Value? {
        let now = clock()
        return entries.withLock { e in
            guard let entry = e.removeValue(forKey: token), entry.expires > now else { return nil }
            return entry.value
        }
    }

    /// 8 random bytes, base64url without padding (11 characters, kubelet's token shape).
    public static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var value = generator.next() as UInt64
        var out: [UInt8] = []
        // 64 bits → ten 6-bit groups and a final 4-bit group (padded with zero bits).
        for _ in 0..<10 {
            out.append(alphabet[Int(value >> 58)])
            value <<= 6
        }
        out.append(alphabet[Int(value >> 60) << 2])
        return String(decoding: out, as: UTF8.self)
    }
}
