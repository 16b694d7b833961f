/// The HTTP/1.1 part of a Kubernetes streaming connection: the client's upgrade request
/// (`Connection: Upgrade`, `Upgrade: SPDY/3.1`, one `X-Stream-Protocol-Version` per protocol it speaks)
/// and the server's `101 Switching Protocols` naming the protocol it picked, or a plain error answer.
public struct HTTPHead: Equatable, Sendable {
    /// Request: method, target; response: status code and reason in `statusCode`/`reason`.
    public var method = ""
    public var target = ""
    public var statusCode = 0
    public var reason = ""
    public var headers: [(name: String, value: String)] = []

    public init() {}

    public static func == (a: HTTPHead, b: HTTPHead) -> Bool {
        a.method == b.method && a.target == b.target && a.statusCode == b.statusCode && a.reason == b.reason
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }

    /// Every value of a header (case-insensitive name), in order.
    public func values(_ name: String) -> [String] {
        let key = name.lowercased()
        return headers.filter { $0.name.lowercased() == key }.map(\.value)
    }

    public func value(_ name: String) -> String? { values(name).first }

    /// The path without its query.
    public var path: String { String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "") }
}

public enum HTTPHeadError: Error, Equatable, CustomStringConvertible {
    case tooLarge(Int)
    case malformed(String)

    public var description: String {
        switch self {
        case .tooLarge(let n): "HTTP head exceeds \(n) bytes"
        case .malformed(let what): "malformed HTTP head: \(what)"
        }
    }
}

public enum HTTPUpgrade {
    public static let spdyProtocol = "SPDY/3.1"
    public static let protocolVersionHeader = "X-Stream-Protocol-Version"
    public static let acceptedVersionsHeader = "X-Accepted-Stream-Protocol-Versions"
    public static let maxHeadSize = 16 * 1024

    /// Splits a complete head off `bytes`: the head and how many bytes it took (nil: incomplete).
    public static func parseHead(_ bytes: [UInt8], isRequest: Bool) throws(HTTPHeadError) -> (HTTPHead, Int)? {
        let end: Int? = bytes.count < 4 ? nil : (0...(bytes.count - 4)).first {
            bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10
        }
        guard let end else {
            if bytes.count > maxHeadSize { throw .tooLarge(maxHeadSize) }
            return nil
        }
        let text = String(decoding: bytes[0..<end], as: UTF8.self)
        // "\r\n" is a single Character (grapheme cluster) in Swift.
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let first = lines.isEmpty ? "" : lines.removeFirst()
        var head = HTTPHead()
        let parts = first.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
        if isRequest {
            guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { throw .malformed("request line \"\(first)\"") }
            head.method = parts[0]
            head.target = parts[1]
        } else {
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else {
                throw .malformed("status line \"\(first)\"")
            }
            head.statusCode = code
            head.reason = parts.count > 2 ? parts[2] : ""
        }
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw .malformed("header line \"\(line)\"") }
            let name = String(line[..<colon]).trimmingWhitespace()
            let value = String(line[line.index(after: colon)...]).trimmingWhitespace()
            head.headers.append((name, value))
        }
        return (head, end + 4)
    }

    public static func serializeRequest(_ head: HTTPHead) -> [UInt8] {
        var text = "\(head.method) \(head.target) HTTP/1.1\r\n"
        for (name, value) in head.headers { text += "\(name): \(value)\r\n" }
        return Array((text + "\r\n").utf8)
    }

    public static func serializeResponse(_ head: HTTPHead, body: [UInt8] = []) -> [UInt8] {
        var text = "HTTP/1.1 \(head.statusCode) \(head.reason)\r\n"
        for (name, value) in head.headers { text += "\(name): \(value)\r\n" }
        return Array((text + "\r\n").utf8) + body
    }

    /// The upgrade request a client sends for `target` on `host`.
    public static func request(method: String = "POST", target: String, host: String, protocols: [String]) -> HTTPHead {
        var head = HTTPHead()
        head.method = method
        head.target = target
        head.headers = [("Host", host), ("User-Agent", "skiff"), ("Content-Length", "0"),
                        ("Connection", "Upgrade"), ("Upgrade", spdyProtocol)]
        head.headers += protocols.map { (protocolVersionHeader, $0) }
        return head
    }

    /// The server's decision on an upgrade request: 101 with the negotiated protocol, or the error
    /// answer Kubernetes gives (400: not an upgrade / no protocol header, 403: no common protocol).
    public static func negotiate(_ request: HTTPHead, supported: [String]) -> Result<(protocol: String, response: [UInt8]), HTTPErrorAnswer> {
        let connection = request.values("Connection").joined(separator: ",").lowercased()
        let upgrade = request.values("Upgrade").joined(separator: ",").lowercased()
        guard connection.contains("upgrade"), upgrade.contains(spdyProtocol.lowercased()) else {
            return .failure(HTTPErrorAnswer(400, "unable to upgrade: missing upgrade headers in request"))
        }
        let offered = request.values(protocolVersionHeader)
            .flatMap { $0.split(separator: ",") }
            .map { String($0).trimmingWhitespace() }
            .filter { !$0.isEmpty }
        guard !offered.isEmpty else {
            return .failure(HTTPErrorAnswer(400, "unable to upgrade: \(protocolVersionHeader) is required"))
        }
        // The client's order wins (httpstream.Handshake): its first protocol the server speaks.
        guard let chosen = offered.first(where: supported.contains) else {
            var answer = HTTPErrorAnswer(
                403, "unable to upgrade: unable to negotiate protocol: client supports [\(offered.joined(separator: " "))], server accepts [\(supported.joined(separator: " "))]")
            answer.headers = supported.map { (acceptedVersionsHeader, $0) }
            return .failure(answer)
        }
        var head = HTTPHead()
        head.statusCode = 101
        head.reason = "Switching Protocols"
        head.headers = [("Connection", "Upgrade"), ("Upgrade", spdyProtocol), (protocolVersionHeader, chosen)]
        return .success((chosen, serializeResponse(head)))
    }

    /// Checks a server's answer to an upgrade request: the negotiated protocol, or why not.
    public static func check(response: HTTPHead, body: [UInt8], offered: [String]) -> Result<String, StreamingClientError> {
        let connection = response.values("Connection").joined(separator: ",").lowercased()
        let upgrade = response.values("Upgrade").joined(separator: ",").lowercased()
        guard response.statusCode == 101, connection.contains("upgrade"), upgrade.contains(spdyProtocol.lowercased()) else {
            let text = String(decoding: body, as: UTF8.self).trimmingWhitespace()
            return .failure(.upgradeRefused(status: response.statusCode, message: text.isEmpty ? response.reason : text))
        }
        guard let chosen = response.value(protocolVersionHeader), offered.contains(chosen) else {
            return .failure(.upgradeRefused(status: 101, message: "the server chose no protocol among \(offered)"))
        }
        return .success(chosen)
    }
}

/// A non-upgrade answer: status, plain-text body (Go's http.Error form) and extra headers.
public struct HTTPErrorAnswer: Error, Equatable, Sendable {
    public var status: Int
    public var message: String
    public var headers: [(String, String)] = []

    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }

    public static func == (a: HTTPErrorAnswer, b: HTTPErrorAnswer) -> Bool {
        a.status == b.status && a.message == b.message && a.headers.map(\.0) == b.headers.map(\.0) && a.headers.map(\.1) == b.headers.map(\.1)
    }

    public static let notFound = HTTPErrorAnswer(404, "404 page not found")

    public var bytes: [UInt8] {
        let reasons = [400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"]
        let body = Array((message + "\n").utf8)
        var head = HTTPHead()
        head.statusCode = status
        head.reason = reasons[status] ?? "Error"
        head.headers = [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]
        head.headers += headers.map { ($0.0, $0.1) }
        head.headers += [("Content-Length", String(body.count)), ("Connection", "close")]
        return HTTPUpgrade.serializeResponse(head, body: body)
    }
}

public enum StreamingClientError: Error, Equatable, CustomStringConvertible {
    case badURL(String)
    case connect(String)
    case upgradeRefused(status: Int, message: String)
    case protocolError(String)

    public var description: String {
        switch self {
        case .badURL(let url): "invalid streaming URL \"\(url)\""
        case .connect(let what): "cannot connect to the streaming server: \(what)"
        case .upgradeRefused(let status, let message): "unable to upgrade connection: \(message) (HTTP \(status))"
        case .protocolError(let what): "streaming protocol error: \(what)"
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" || f == "\r\n" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" || l == "\r\n" { s.removeLast() }
        return String(s)
    }
}
