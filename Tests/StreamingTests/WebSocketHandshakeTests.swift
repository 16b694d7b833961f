import Foundation
import Testing
@testable import SkiffStreaming

@Suite("WebSocket handshake and channel protocols")
struct WebSocketHandshakeTests {
    static func request(_ lines: [String], method: String = "GET") throws -> HTTPHead {
        let text = "\(method) /exec/tok HTTP/1.1\r\n" + lines.map { $0 + "\r\n" }.joined() + "\r\n"
        return try #require(try HTTPUpgrade.parseHead(Array(text.utf8), isRequest: true)).0
    }

    static let upgrade = ["Host: x", "Connection: keep-alive, Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    static let remoteCommand = WebSocketChannelProtocol.remoteCommand.map(\.name)

    @Test func acceptKeyOfTheRFCExample() {
        // RFC 6455 §1.3.
        #expect(WebSocketHandshake.acceptKey(for: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        let key = WebSocketHandshake.newKey()
        #expect(Data(base64Encoded: key)?.count == 16 && key != WebSocketHandshake.newKey())
    }

    @Test func negotiationPicksTheNewestOffered() throws {
        // Listed oldest first, spread over two headers: the newest both speak still wins.
        let head = try Self.request(Self.upgrade + ["Sec-WebSocket-Protocol: channel.k8s.io, v4.channel.k8s.io", "Sec-WebSocket-Protocol: v5.channel.k8s.io"])
        let (chosen, response) = try WebSocketHandshake.negotiate(head, supported: Self.remoteCommand, acceptsNone: true).get()
        #expect(chosen == "v5.channel.k8s.io")
        let (answer, used) = try #require(try HTTPUpgrade.parseHead(response, isRequest: false))
        #expect(used == response.count && answer.statusCode == 101)
        #expect(answer.value("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" && answer.value("Sec-WebSocket-Protocol") == "v5.channel.k8s.io")
        #expect(try WebSocketHandshake.check(response: answer, body: [], key: "dGhlIHNhbXBsZSBub25jZQ==", offered: ["v5.channel.k8s.io"]).get() == chosen)
        // A wrong key's answer is refused by the client.
        #expect(throws: StreamingClientError.self) {
            try WebSocketHandshake.check(response: answer, body: [], key: WebSocketHandshake.newKey(), offered: ["v5.channel.k8s.io"]).get()
        }

        let base64 = try Self.request(Self.upgrade + ["Sec-WebSocket-Protocol: base64.channel.k8s.io, v4.base64.channel.k8s.io"])
        #expect(try WebSocketHandshake.negotiate(base64, supported: Self.remoteCommand, acceptsNone: true).get().protocol == "v4.base64.channel.k8s.io")
        // No subprotocol at all: kubelet's unversioned binary protocol, and no header in the answer.
        let none = try WebSocketHandshake.negotiate(try Self.request(Self.upgrade), supported: Self.remoteCommand, acceptsNone: true).get()
        #expect(none.protocol == "" && !String(decoding: none.response, as: UTF8.self).contains("Sec-WebSocket-Protocol"))
        #expect(WebSocketChannelProtocol.named("", among: WebSocketChannelProtocol.remoteCommand) == .unnamed)
    }

    @Test func refusals() throws {
        func status(_ head: HTTPHead, acceptsNone: Bool = true) -> HTTPErrorAnswer? {
            if case .failure(let answer) = WebSocketHandshake.negotiate(head, supported: Self.remoteCommand, acceptsNone: acceptsNone) { return answer }
            return nil
        }
        #expect(status(try Self.request(Self.upgrade, method: "POST"))?.status == 405)
        #expect(status(try Self.request(Self.upgrade.filter { !$0.hasPrefix("Upgrade") }))?.status == 400)
        #expect(status(try Self.request(Self.upgrade.filter { !$0.hasPrefix("Sec-WebSocket-Key") }))?.status == 400)
        let oldVersion = try #require(status(try Self.request(Self.upgrade.filter { !$0.hasPrefix("Sec-WebSocket-Version") } + ["Sec-WebSocket-Version: 8"])))
        #expect(oldVersion.status == 400 && oldVersion.headers.first?.1 == "13")
        #expect(status(try Self.request(Self.upgrade + ["Sec-WebSocket-Protocol: v9.channel.k8s.io"]))?.status == 403)
        #expect(status(try Self.request(Self.upgrade), acceptsNone: false)?.status == 400)
        // A refusal is a plain HTTP answer the client reports with its status and text.
        let refused = try #require(status(try Self.request(Self.upgrade + ["Sec-WebSocket-Protocol: nope"])))
        let (head, used) = try #require(try HTTPUpgrade.parseHead(refused.bytes, isRequest: false))
        let body = Array(refused.bytes[used...])
        guard case .failure(.upgradeRefused(403, let message)) = WebSocketHandshake.check(response: head, body: body, key: "k", offered: ["nope"]) else {
            Issue.record("not refused")
            return
        }
        #expect(message.contains("not supported"))
    }

    @Test func upgradeHeaderSelectsTheTransport() throws {
        #expect(WebSocketHandshake.isUpgradeRequest(try Self.request(Self.upgrade)))
        #expect(WebSocketHandshake.isUpgradeRequest(try Self.request(["Connection: Upgrade", "Upgrade: WebSocket"])))
        #expect(!WebSocketHandshake.isUpgradeRequest(try Self.request(["Connection: Upgrade", "Upgrade: SPDY/3.1"])))
        #expect(!WebSocketHandshake.isUpgradeRequest(try Self.request(["Upgrade: websocket"])))
    }

    @Test func statusFormatFollowsTheVersionWhateverTheTransport() throws {
        let failed = RemoteCommandStatus.exitCode(3, command: ["false"])
        for proto in ["v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"] {
            #expect(RemoteCommand.version(of: proto) >= 4)
            #expect(String(decoding: RemoteCommandStatus.success.encoded(protocol: proto), as: UTF8.self) == #"{"metadata":{},"status":"Success"}"#)
            #expect(try RemoteCommandStatus.decode(failed.encoded(protocol: proto), protocol: proto).get() == 3)
        }
        for proto in ["", "channel.k8s.io", "base64.channel.k8s.io", "v2.channel.k8s.io", "v3.channel.k8s.io"] {
            #expect(RemoteCommandStatus.success.encoded(protocol: proto).isEmpty)
            #expect(String(decoding: failed.encoded(protocol: proto), as: UTF8.self).hasPrefix("command terminated with non-zero exit code"))
        }
        #expect(WebSocketChannelProtocol.v5.hasCloseSignal && !WebSocketChannelProtocol.v4.hasCloseSignal)
    }
}
