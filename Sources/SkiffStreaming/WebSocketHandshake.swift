import Foundation

/// The HTTP/1.1 opening handshake of a WebSocket connection (RFC 6455 §4): the client's `GET` with
/// `Upgrade: websocket`, a random `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13` and the subprotocols
/// it speaks in `Sec-WebSocket-Protocol`; the server's `101 Switching Protocols` proving it read the key
/// (`Sec-WebSocket-Accept`) and naming the one subprotocol it picked. Refusals are worded and coded as
/// kubelet's streaming server (golang.org/x/net/websocket behind wsstream) answers them.
public enum WebSocketHandshake {
    /// §1.3: appended to the client's key before hashing.
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    public static let version = "13"
    public static let protocolHeader = "Sec-WebSocket-Protocol"

    /// `Sec-WebSocket-Accept` for a client's key: base64(SHA-1(key + GUID)).
    public static func acceptKey(for key: String) -> String {
        Data(SHA1.hash(Array((key + guid).utf8))).base64EncodedString()
    }

    /// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
    public static func newKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }).base64EncodedString()
    }

    /// Whether a request asks for a WebSocket (as wsstream.IsWebSocketRequest: `Upgrade: websocket` and
    /// a `Connection` header with the `upgrade` token).
    public static func isUpgradeRequest(_ head: HTTPHead) -> Bool {
        tokens(head, "Upgrade").contains("websocket") && tokens(head, "Connection").contains("upgrade")
    }

    /// The client's request for `target` on `host`.
    public static func request(target: String, host: String, key: String, protocols: [String]) -> HTTPHead {
        var head = HTTPHead()
        head.method = "GET"
        head.target = target
        head.headers = [("Host", host), ("User-Agent", "skiff"), ("Connection", "Upgrade"), ("Upgrade", "websocket"),
                        ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
        if !protocols.isEmpty { head.headers.append((protocolHeader, protocols.joined(separator: ", "))) }
        return head
    }

    /// The subprotocols a client offered, in its order.
    public static func offeredProtocols(_ request: HTTPHead) -> [String] {
        request.values(protocolHeader)
            .flatMap { $0.split(separator: ",") }
            .map { String($0).trimmingWhitespace() }
            .filter { !$0.isEmpty }
    }

    /// The server's decision. `supported` is in the server's order of preference (newest first): the
    /// first of them the client offered wins, so a client listing old versions first still gets the
    /// newest both speak. A client offering no subprotocol gets `""` if `acceptsNone` (kubelet then
    /// speaks the unversioned channel protocol), else 400. Refusals: 405 (not GET), 400 (not a WebSocket
    /// request, no key, or another version, with `Sec-WebSocket-Version: 13`), 403 (no common subprotocol).
    public static func negotiate(
        _ request: HTTPHead, supported: [String], acceptsNone: Bool
    ) -> Result<(protocol: String, response: [UInt8]), HTTPErrorAnswer> {
        guard request.method == "GET" else { return .failure(HTTPErrorAnswer(405, "websocket: the handshake needs GET, not \(request.method)")) }
        guard isUpgradeRequest(request) else { return .failure(HTTPErrorAnswer(400, "websocket: missing upgrade headers in request")) }
        guard let key = request.value("Sec-WebSocket-Key")?.trimmingWhitespace(), Data(base64Encoded: key)?.count == 16 else {
            return .failure(HTTPErrorAnswer(400, "websocket: missing or invalid Sec-WebSocket-Key"))
        }
        guard request.value("Sec-WebSocket-Version")?.trimmingWhitespace() == version else {
            var answer = HTTPErrorAnswer(400, "websocket: unsupported version \"\(request.value("Sec-WebSocket-Version") ?? "")\", want \(version)")
            answer.headers = [("Sec-WebSocket-Version", version)]
            return .failure(answer)
        }
        let offered = offeredProtocols(request)
        let chosen: String
        if offered.isEmpty {
            guard acceptsNone else { return .failure(HTTPErrorAnswer(400, "websocket: \(protocolHeader) is required")) }
            chosen = ""
        } else if let match = supported.first(where: offered.contains) {
            chosen = match
        } else {
            return .failure(HTTPErrorAnswer(
                403, "websocket: requested protocol(s) are not supported: [\(offered.joined(separator: " "))]; supports [\(supported.joined(separator: " "))]"))
        }
        var head = HTTPHead()
        head.statusCode = 101
        head.reason = "Switching Protocols"
        head.headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", acceptKey(for: key))]
        if !chosen.isEmpty { head.headers.append((protocolHeader, chosen)) }
        return .success((chosen, HTTPUpgrade.serializeResponse(head)))
    }

    /// Checks a server's answer (§4.1): 101, the upgrade headers, the accept key for `key`, and a
    /// subprotocol among `offered` (or none if none was offered). The negotiated subprotocol, or why not.
    public static func check(response: HTTPHead, body: [UInt8], key: String, offered: [String]) -> Result<String, StreamingClientError> {
        guard response.statusCode == 101 else {
            let text = String(decoding: body, as: UTF8.self).trimmingWhitespace()
            return .failure(.upgradeRefused(status: response.statusCode, message: text.isEmpty ? response.reason : text))
        }
        guard tokens(response, "Upgrade").contains("websocket"), tokens(response, "Connection").contains("upgrade") else {
            return .failure(.upgradeRefused(status: 101, message: "the server's answer lacks the WebSocket upgrade headers"))
        }
        guard response.value("Sec-WebSocket-Accept")?.trimmingWhitespace() == acceptKey(for: key) else {
            return .failure(.upgradeRefused(status: 101, message: "the server's Sec-WebSocket-Accept does not match the key"))
        }
        let chosen = response.value(protocolHeader)?.trimmingWhitespace() ?? ""
        guard chosen.isEmpty ? offered.isEmpty : offered.contains(chosen) else {
            return .failure(.upgradeRefused(status: 101, message: "invalid protocol, expected one of \(offered), got \"\(chosen)\""))
        }
        return .success(chosen)
    }

    /// A header's comma-separated tokens, lower-cased (`Connection: keep-alive, Upgrade`).
    static func tokens(_ head: HTTPHead, _ name: String) -> [String] {
        head.values(name).flatMap { $0.split(separator: ",") }.map { String($0).trimmingWhitespace().lowercased() }
    }
}
