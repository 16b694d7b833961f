import Synchronization
import Testing
@testable import SkiffStreaming

@Suite("HTTP upgrade and remote command documents")
struct HandshakeTests {
    static func request(_ lines: [String]) throws -> HTTPHead {
        let bytes = Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
        return try #require(try HTTPUpgrade.parseHead(bytes, isRequest: true)).0
    }

    @Test func parsesHeadsIncrementally() throws {
        let text = Array("POST /exec/abc?x=1 HTTP/1.1\r\nHost: a\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\nFRAMES".utf8)
        for cut in 0..<(text.count - 6) {
            #expect(try HTTPUpgrade.parseHead(Array(text.prefix(cut)), isRequest: true) == nil)
        }
        let (head, used) = try #require(try HTTPUpgrade.parseHead(text, isRequest: true))
        #expect(head.method == "POST" && head.path == "/exec/abc" && used == text.count - 6)
        #expect(head.value("x-stream-protocol-version") == "v4.channel.k8s.io")
        #expect(throws: HTTPHeadError.self) { try HTTPUpgrade.parseHead(Array("garbage\r\n\r\n".utf8), isRequest: true) }
        #expect(throws: HTTPHeadError.tooLarge(HTTPUpgrade.maxHeadSize)) {
            try HTTPUpgrade.parseHead([UInt8](repeating: 65, count: HTTPUpgrade.maxHeadSize + 1), isRequest: true)
        }
    }

    @Test func negotiatesTheClientsFirstSupportedProtocol() throws {
        let head = try Self.request([
            "POST /exec/t HTTP/1.1", "Connection: Upgrade", "Upgrade: SPDY/3.1",
            "X-Stream-Protocol-Version: v5.channel.k8s.io", "X-Stream-Protocol-Version: v3.channel.k8s.io, v4.channel.k8s.io",
        ])
        let (chosen, response) = try HTTPUpgrade.negotiate(head, supported: RemoteCommand.protocols).get()
        #expect(chosen == "v3.channel.k8s.io")
        let (answer, _) = try #require(try HTTPUpgrade.parseHead(response, isRequest: false))
        #expect(answer.statusCode == 101 && answer.value("Upgrade") == "SPDY/3.1" && answer.value("X-Stream-Protocol-Version") == chosen)
        #expect(try HTTPUpgrade.check(response: answer, body: [], offered: RemoteCommand.protocols).get() == chosen)
    }

    @Test func refusesWhatKubeletRefuses() throws {
        let plain = try Self.request(["GET /exec/t HTTP/1.1", "Host: x"])
        #expect(throws: HTTPErrorAnswer.self) { try HTTPUpgrade.negotiate(plain, supported: RemoteCommand.protocols).get() }
        let noVersion = try Self.request(["GET /exec/t HTTP/1.1", "Connection: upgrade", "Upgrade: spdy/3.1"])
        #expect(throws: HTTPErrorAnswer(400, "unable to upgrade: X-Stream-Protocol-Version is required")) {
            try HTTPUpgrade.negotiate(noVersion, supported: RemoteCommand.protocols).get()
        }
        let other = try Self.request(["GET /exec/t HTTP/1.1", "Connection: upgrade", "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: v9"])
        guard case .failure(let answer) = HTTPUpgrade.negotiate(other, supported: ["portforward.k8s.io"]) else {
            Issue.record("negotiated with no common protocol")
            return
        }
        #expect(answer.status == 403 && answer.headers.map(\.1) == ["portforward.k8s.io"])
        let (errorHead, used) = try #require(try HTTPUpgrade.parseHead(answer.bytes, isRequest: false))
        #expect(errorHead.statusCode == 403 && Int(errorHead.value("Content-Length") ?? "") == answer.bytes.count - used)
        let refused = HTTPUpgrade.check(response: errorHead, body: Array(answer.bytes[used...]), offered: ["portforward.k8s.io"])
        #expect(throws: StreamingClientError.upgradeRefused(status: 403, message: answer.message)) { try refused.get() }
    }

    @Test func statusDocumentsAreKubeletsBytes() throws {
        #expect(String(decoding: RemoteCommandStatus.success.encoded(protocol: RemoteCommand.v4), as: UTF8.self) == #"{"metadata":{},"status":"Success"}"#)
        let failed = RemoteCommandStatus.exitCode(3, command: ["sh", "-c", "exit 3"])
        #expect(String(decoding: failed.encoded(protocol: RemoteCommand.v4), as: UTF8.self)
            == #"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#)
        #expect(try RemoteCommandStatus.decode(failed.encoded(protocol: RemoteCommand.v4), protocol: RemoteCommand.v4).get() == 3)
        #expect(try RemoteCommandStatus.decode(RemoteCommandStatus.success.encoded(protocol: RemoteCommand.v4), protocol: RemoteCommand.v4).get() == 0)
        let failure = RemoteCommandStatus.failure("no such file <x>")
        #expect(throws: RemoteCommandError("Internal error occurred: no such file <x>")) {
            try RemoteCommandStatus.decode(failure.encoded(protocol: RemoteCommand.v4), protocol: RemoteCommand.v4).get()
        }
        // v1-v3: nothing on success, the message as text otherwise.
        #expect(RemoteCommandStatus.success.encoded(protocol: RemoteCommand.v3).isEmpty)
        #expect(throws: RemoteCommandError.self) { try RemoteCommandStatus.decode(failed.encoded(protocol: RemoteCommand.v2), protocol: RemoteCommand.v2).get() }
    }

    @Test func terminalSizesSplitAcrossChunks() {
        var buffer: [UInt8] = []
        let wire = TerminalSize(width: 100, height: 40).json + TerminalSize(width: 7, height: 3).json
        #expect(String(decoding: TerminalSize(width: 100, height: 40).json, as: UTF8.self) == #"{"Width":100,"Height":40}"#)
        #expect(TerminalSize.decode(appending: Array(wire.prefix(10)), to: &buffer).isEmpty)
        #expect(TerminalSize.decode(appending: Array(wire.dropFirst(10)), to: &buffer) == [TerminalSize(width: 100, height: 40), TerminalSize(width: 7, height: 3)])
        #expect(buffer.isEmpty)
    }

    @Test func parsesStreamingURLs() {
        #expect(StreamingURL("http://127.0.0.1:36000/exec/abc") == StreamingURL(host: "127.0.0.1", port: 36000, path: "/exec/abc"))
        #expect(StreamingURL("http://[::1]:8080/portforward/x")?.authority == "[::1]:8080")
        #expect(StreamingURL("https://a:1/x") == nil && StreamingURL("http://a:0/x") == nil)
    }
}

extension StreamingURL {
    init(host: String, port: Int, path: String) {
        self = StreamingURL("http://\(host):\(port)\(path)")!
    }
}

@Suite("Streaming request tokens")
struct TokenCacheTests {
    final class FakeClock: Sendable {
        let now = Mutex(ContinuousClock.now)
        func advance(_ d: Duration) { now.withLock { $0 = $0.advanced(by: d) } }
    }

    @Test func tokensAreSingleUseAndExpire() throws {
        let clock = FakeClock()
        let cache = TokenCache<Int>(ttl: .seconds(60)) { clock.now.withLock { $0 } }
        let a = try #require(cache.insert(1))
        let b = try #require(cache.insert(2))
        #expect(a != b && a.count == 11 && a.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(cache.consume(a) == 1)
        #expect(cache.consume(a) == nil)
        clock.advance(.seconds(61))
        #expect(cache.consume(b) == nil)
        #expect(cache.consume("nonsense") == nil)
    }

    @Test func refusesPastTheInFlightLimit() {
        let cache = TokenCache<Int>()
        for n in 0..<TokenCache<Int>.maxInFlight { #expect(cache.insert(n) != nil) }
        #expect(cache.insert(-1) == nil)
    }
}
