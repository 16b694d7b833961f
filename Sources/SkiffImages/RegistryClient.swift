import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Talks the OCI distribution API (registry v2) to one registry and its mirrors for one pull.
///
/// Auth: a request goes out with the Authorization we already hold for (host, repository); on 401 the
/// WWW-Authenticate challenge decides: Bearer → a token from the realm (anonymous, Basic with the
/// credentials, or an identity token as OAuth2 refresh token; a registry token is used as-is);
/// Basic → the credentials. Redirects are followed by hand so Authorization never leaves the host.
final class RegistryClient: Sendable {
    let http: HTTPClient
    let config: RegistryConfig
    let requestAuth: RegistryAuth?
    let logger: Logger
    private let authorizations = Mutex<[String: String]>([:])

    init(config: RegistryConfig, requestAuth: RegistryAuth?, logger: Logger) {
        let seconds = config.connectTimeout.components.seconds
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(max(1, seconds)), read: nil),
            decompression: .disabled)
        configuration.httpVersion = .automatic
        // A refused or failed connect fails the request at once (instead of AsyncHTTPClient's retrying
        // until the connect timeout), so a dead mirror costs nothing and fallback is prompt.
        configuration.connectionPool.retryConnectionEstablishment = false
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.config = config
        self.requestAuth = requestAuth
        self.logger = logger
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    /// Request credentials go to the image's own registry; mirrors get only their configured ones.
    func credentials(for endpoint: RegistryEndpoint) -> RegistryAuth? {
        if !endpoint.isMirror, let requestAuth, !requestAuth.isEmpty { return requestAuth }
        return endpoint.configAuth
    }

    // MARK: Manifests and blobs

    static let maxManifestBytes = 4 * 1024 * 1024

    /// GET /v2/<repo>/manifests/<reference> → body and its media type.
    func manifest(_ endpoint: RegistryEndpoint, repository: String, reference: String) async throws -> (data: Data, mediaType: String?) {
        let what = "manifest \(repository):\(reference) from \(endpoint)"
        return try await withStallTimeout(config.stallTimeout, what) { clock in
            let response = try await self.get(
                endpoint, repository: repository, path: "/manifests/\(reference)",
                accept: MediaType.acceptManifests, clock: clock, what: what)
            var data = Data()
            for try await chunk in response.body {
                clock.tick()
                data.append(contentsOf: chunk.readableBytesView)
                if data.count > Self.maxManifestBytes {
                    throw ImageError(.registry, "\(what): larger than \(Self.maxManifestBytes) bytes")
                }
            }
            let type = response.headers.first(name: "Content-Type").map {
                String($0.split(separator: ";").first ?? "").trimmingCharacters(in: .whitespaces)
            }
            return (data, type)
        }
    }

    /// GET /v2/<repo>/blobs/<digest> into `path` (created exclusively), checking size and sha256 as the
    /// bytes arrive. The caller renames the file into the store only after this returns.
    func downloadBlob(
        _ endpoint: RegistryEndpoint, repository: String, descriptor: Descriptor, to path: String,
        onProgress: @escaping @Sendable (UInt64) -> Void
    ) async throws {
        let digest = descriptor.digest
        let what = "blob \(digest) of \(repository) from \(endpoint)"
        try await withStallTimeout(config.stallTimeout, what) { clock in
            let response = try await self.get(
                endpoint, repository: repository, path: "/blobs/\(digest)", accept: ["*/*"], clock: clock, what: what)
            if let length = response.headers.first(name: "Content-Length").flatMap(Int64.init), length != descriptor.size {
                throw ImageError(.digestMismatch, "\(what): server sends \(length) bytes, the manifest says \(descriptor.size)")
            }
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw ImageError.posix("open", path) }
            defer { close(fd) }
            var hasher = SHA256()
            var received: Int64 = 0
            var reported: Int64 = 0
            for try await chunk in response.body {
                clock.tick()
                received += Int64(chunk.readableBytes)
                if received > descriptor.size {
                    throw ImageError(.digestMismatch, "\(what): more than the \(descriptor.size) bytes the manifest says")
                }
                try chunk.withUnsafeReadableBytes { raw in
                    hasher.update(bufferPointer: raw)
                    var offset = 0
                    while offset < raw.count {
                        let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                        if n < 0 {
                            if errno == EINTR { continue }
                            throw ImageError.posix("write", path)
                        }
                        offset += n
                    }
                }
                if received - reported >= 64 * 1024 || received == descriptor.size {
                    reported = received
                    onProgress(UInt64(received))
                }
            }
            guard received == descriptor.size else {
                throw ImageError(.digestMismatch, "\(what): got \(received) bytes, the manifest says \(descriptor.size)")
            }
            let actual = Digest(sha256Hex: hasher.finalize().hexString)
            guard actual == digest else {
                throw ImageError(.digestMismatch, "\(what): content hashes to \(actual)")
            }
            guard fsync(fd) == 0 else { throw ImageError.posix("fsync", path) }
        }
    }

    // MARK: Requests, redirects and auth

    private func get(
        _ endpoint: RegistryEndpoint, repository: String, path: String, accept: [String],
        clock: ProgressClock, what: String
    ) async throws -> HTTPClientResponse {
        var url = "\(endpoint.baseURL)/v2/\(repository)\(path)"
        let authKey = "\(endpoint.host)|\(repository)"
        var answeredChallenge = false
        var sameHost = true
        for _ in 0..<8 {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "User-Agent", value: "skiff")
            request.headers.add(name: "Accept", value: accept.joined(separator: ", "))
            if sameHost, let value = authorizations.withLock({ $0[authKey] }) {
                request.headers.add(name: "Authorization", value: value)
            }
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, deadline: .distantFuture, logger: nil)
            } catch {
                throw Self.networkError(error, "GET \(url)")
            }
            clock.tick()
            let status = Int(response.status.code)
            switch status {
            case 200..<300:
                return response
            case 301, 302, 303, 307, 308:
                guard let location = response.headers.first(name: "Location"),
                    let next = URL(string: location, relativeTo: URL(string: url))?.absoluteURL
                else {
                    throw ImageError(.registry, "\(what): redirect \(status) without a usable Location")
                }
                _ = try? await response.body.collect(upTo: 64 * 1024)
                if next.host != URL(string: url)?.host || next.port != URL(string: url)?.port { sameHost = false }
                url = next.absoluteString
            case 401 where !answeredChallenge && sameHost:
                let challenge = response.headers.first(name: "WWW-Authenticate") ?? ""
                _ = try? await response.body.collect(upTo: 64 * 1024)
                let value = try await authorize(endpoint, repository: repository, challenge: challenge, clock: clock)
                authorizations.withLock { $0[authKey] = value }
                answeredChallenge = true
            default:
                let body = (try? await response.body.collect(upTo: 64 * 1024)).map { String(buffer: $0) } ?? ""
                throw Self.statusError(status, body: body, what: what, endpoint: endpoint,
                                       hadCredentials: credentials(for: endpoint) != nil)
            }
        }
        throw ImageError(.registry, "\(what): too many redirects or auth rounds")
    }

    static func statusError(_ status: Int, body: String, what: String, endpoint: RegistryEndpoint, hadCredentials: Bool) -> ImageError {
        let detail = registryErrorText(body)
        switch status {
        case 401, 403:
            let hint = hadCredentials ? "the credentials were refused" : "no credentials were given (pull auth or registries.\(endpoint.configKey).auth)"
            return ImageError(.unauthorized, "\(what): HTTP \(status), \(hint)\(detail)")
        case 404:
            return ImageError(.notFound, "\(what): HTTP 404 not found\(detail)")
        default:
            return ImageError(.registry, "\(what): HTTP \(status)\(detail)")
        }
    }

    /// The first message of a distribution error body {"errors":[{"code":…,"message":…}]}.
    static func registryErrorText(_ body: String) -> String {
        struct Body: Decodable {
            struct Item: Decodable { var code: String?; var message: String? }
            var errors: [Item]?
        }
        guard let parsed = try? JSONDecoder().decode(Body.self, from: Data(body.utf8)), let first = parsed.errors?.first else {
            return ""
        }
        return " (\([first.code, first.message].compactMap { $0 }.joined(separator: ": ")))"
    }

    static func networkError(_ error: any Error, _ step: String) -> ImageError {
        if let e = error as? ImageError { return e }
        if error is CancellationError { return ImageError(.cancelled, "\(step): cancelled") }
        return ImageError(.network, "\(step): \(error)")
    }

    /// Answers a WWW-Authenticate challenge: the Authorization header value to retry with.
    private func authorize(_ endpoint: RegistryEndpoint, repository: String, challenge: String, clock: ProgressClock) async throws -> String {
        let creds = credentials(for: endpoint)
        let parsed = Self.parseChallenge(challenge)
        switch parsed.scheme.lowercased() {
        case "basic":
            guard let basic = creds?.basic else {
                throw ImageError(.unauthorized, "\(endpoint) asks for Basic auth for \(repository) and no credentials were given")
            }
            return "Basic " + Data("\(basic.user):\(basic.password)".utf8).base64EncodedString()
        case "bearer":
            if let token = creds?.registryToken, !token.isEmpty { return "Bearer \(token)" }
            guard let realm = parsed.params["realm"], let realmURL = URL(string: realm), realmURL.scheme != nil else {
                throw ImageError(.registry, "\(endpoint): Bearer challenge without a realm: \(challenge)")
            }
            let scope = parsed.params["scope"] ?? "repository:\(repository):pull"
            let token = try await fetchToken(
                realm: realm, service: parsed.params["service"], scope: scope, creds: creds, endpoint: endpoint, clock: clock)
            return "Bearer \(token)"
        default:
            throw ImageError(.unauthorized, "\(endpoint) refused the request with 401 and an unusable challenge \"\(challenge)\"")
        }
    }

    private func fetchToken(
        realm: String, service: String?, scope: String, creds: RegistryAuth?, endpoint: RegistryEndpoint, clock: ProgressClock
    ) async throws -> String {
        var request: HTTPClientRequest
        if let refresh = creds?.identityToken, !refresh.isEmpty {
            // OAuth2 refresh-token grant, as Docker does with identity tokens.
            request = HTTPClientRequest(url: realm)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            var form = ["grant_type": "refresh_token", "refresh_token": refresh, "scope": scope, "client_id": "skiff"]
            if let service { form["service"] = service }
            request.body = .bytes(ByteBuffer(string: Self.formEncode(form)))
        } else {
            var query = ["scope": scope]
            if let service { query["service"] = service }
            request = HTTPClientRequest(url: realm + (realm.contains("?") ? "&" : "?") + Self.formEncode(query))
            if let basic = creds?.basic {
                request.headers.add(name: "Authorization", value: "Basic " + Data("\(basic.user):\(basic.password)".utf8).base64EncodedString())
            }
        }
        request.headers.add(name: "User-Agent", value: "skiff")
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, deadline: .distantFuture, logger: nil)
        } catch {
            throw Self.networkError(error, "token request to \(realm)")
        }
        clock.tick()
        let body = try await response.body.collect(upTo: 1024 * 1024)
        clock.tick()
        let status = Int(response.status.code)
        guard status == 200 else {
            if status == 401 || status == 403 {
                throw ImageError(.unauthorized, "token server \(realm) for \(endpoint) refused \(creds == nil ? "anonymous access" : "the credentials") (HTTP \(status))")
            }
            throw ImageError(.registry, "token server \(realm) for \(endpoint): HTTP \(status)")
        }
        struct TokenResponse: Decodable {
            var token: String?
            var access_token: String?
        }
        guard let parsed = try? JSONDecoder().decode(TokenResponse.self, from: Data(body.readableBytesView)),
            let token = parsed.token ?? parsed.access_token, !token.isEmpty
        else {
            throw ImageError(.registry, "token server \(realm) for \(endpoint): response has no token")
        }
        return token
    }

    static func formEncode(_ fields: [String: String]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.sorted { $0.key < $1.key }.map { key, value in
            "\(key)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
        }.joined(separator: "&")
    }

    /// Parses `Scheme k="v", k2=v2` (RFC 7235 auth-params; quoted strings may hold commas and \-escapes).
    static func parseChallenge(_ header: String) -> (scheme: String, params: [String: String]) {
        let s = Array(header.utf8)
        var i = 0
        while i < s.count && s[i] == 0x20 { i += 1 }
        let schemeStart = i
        while i < s.count && s[i] != 0x20 { i += 1 }
        let scheme = String(decoding: s[schemeStart..<i], as: UTF8.self)
        var params: [String: String] = [:]
        while i < s.count {
            while i < s.count && (s[i] == 0x20 || s[i] == 0x2c) { i += 1 }
            let keyStart = i
            while i < s.count && s[i] != 0x3d && s[i] != 0x2c { i += 1 }
            let key = String(decoding: s[keyStart..<i], as: UTF8.self).trimmingCharacters(in: .whitespaces).lowercased()
            guard i < s.count, s[i] == 0x3d else { continue }
            i += 1
            var value: [UInt8] = []
            if i < s.count && s[i] == 0x22 {
                i += 1
                while i < s.count && s[i] != 0x22 {
                    if s[i] == 0x5c && i + 1 < s.count { i += 1 }
                    value.append(s[i])
                    i += 1
                }
                i += 1
            } else {
                while i < s.count && s[i] != 0x2c { value.append(s[i]); i += 1 }
            }
            if !key.isEmpty { params[key] = String(decoding: value, as: UTF8.self).trimmingCharacters(in: .whitespaces) }
        }
        return (scheme, params)
    }
}

/// The time of the last byte seen by one registry request.
final class ProgressClock: Sendable {
    private let last = Mutex<ContinuousClock.Instant>(.now)
    func tick() { last.withLock { $0 = .now } }
    var idle: Duration { ContinuousClock.now - last.withLock { $0 } }
}

/// Runs `body`, failing it with `stalled` once `limit` passes without `clock.tick()`: pulls fail on
/// lack of progress, never on total time.
func withStallTimeout<T: Sendable>(
    _ limit: Duration, _ what: String, _ body: @escaping @Sendable (ProgressClock) async throws -> T
) async throws -> T {
    let clock = ProgressClock()
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body(clock) }
        group.addTask {
            let period = min(Duration.seconds(1), limit / 4)
            while true {
                try await Task.sleep(for: period)
                if clock.idle > limit {
                    throw ImageError(.stalled, "\(what): no data for \(limit.seconds) s (stallTimeoutSeconds)")
                }
            }
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw ImageError(.cancelled, "\(what): cancelled")
        }
        return value
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
