import Foundation

/// Kubernetes' remote command (exec/attach) and port-forward conventions, on SPDY streams and on
/// WebSocket channels alike: protocol names, stream headers and channel numbers, the error stream's
/// status document, terminal sizes.
public enum RemoteCommand {
    /// v5 exists for WebSocket only (its CLOSE signal is what SPDY's FIN already gives).
    public static let v5 = "v5.channel.k8s.io"
    public static let v4 = "v4.channel.k8s.io"
    public static let v3 = "v3.channel.k8s.io"
    public static let v2 = "v2.channel.k8s.io"
    public static let v1 = "channel.k8s.io"
    /// What a server accepts, most preferred first (kubelet's SupportedStreamingProtocols).
    public static let protocols = [v4, v3, v2, v1]
    public static let portForwardProtocol = "portforward.k8s.io"

    /// Stream headers (lower case on the wire).
    public static let streamTypeHeader = "streamtype"
    public static let portHeader = "port"
    public static let requestIDHeader = "requestid"

    public enum StreamType: String, Sendable {
        case error, stdin, stdout, stderr, resize, data

        /// Its channel number over WebSocket (stdio as file descriptors, then error and resize).
        public var channel: UInt8? {
            switch self {
            case .stdin: 0
            case .stdout: 1
            case .stderr: 2
            case .error: 3
            case .resize: 4
            case .data: nil
            }
        }
    }

    /// Whether a SPDY protocol carries a resize stream for terminals (v3 and later).
    public static func supportsResize(_ proto: String) -> Bool { version(of: proto) >= 3 }

    /// The remotecommand version a negotiated protocol name stands for, whatever the transport
    /// (`v4.base64.channel.k8s.io` is 4; `channel.k8s.io`, its base64 variant and "" are 1).
    public static func version(of proto: String) -> Int {
        switch proto {
        case v5: 5
        case v4, WebSocketChannelProtocol.v4Base64.name: 4
        case v3: 3
        case v2: 2
        default: 1
        }
    }
}

/// The final word on the error stream. v4 and v5 write metav1.Status as JSON (always); v1–v3 write
/// the message as text, and nothing on success.
public enum RemoteCommandStatus: Equatable, Sendable {
    case success
    /// The command ran and exited non-zero: `command` is its argv for the message, as containerd words it.
    case exitCode(Int32, command: [String])
    /// The command could not be run.
    case failure(String)

    /// kubelet's bytes: `json.Marshal(metav1.Status)` (metadata is an always-present empty object).
    public func encoded(protocol proto: String) -> [UInt8] {
        if RemoteCommand.version(of: proto) < 4 {
            switch self {
            case .success: return []
            case .exitCode: return Array(message.utf8)
            case .failure(let text): return Array(text.utf8)
            }
        }
        switch self {
        case .success:
            return Array(#"{"metadata":{},"status":"Success"}"#.utf8)
        case .exitCode(let code, _):
            return Array(
                (#"{"metadata":{},"status":"Failure","message":"# + Self.jsonString(message)
                    + #","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":""# + "\(code)" + #""}]}}"#).utf8)
        case .failure(let text):
            // apierrors.NewInternalError: the cause carries the bare error, the message a prefix.
            return Array(
                (#"{"metadata":{},"status":"Failure","message":"# + Self.jsonString(message) + #","reason":"InternalError","details":{"causes":[{"message":"# + Self.jsonString(text) + #"}]},"code":500}"#).utf8)
        }
    }

    var message: String {
        switch self {
        case .success: ""
        case .exitCode(let code, let command):
            "command terminated with non-zero exit code: error executing command [\(command.joined(separator: " "))], exit code \(code)"
        case .failure(let text): "Internal error occurred: \(text)"
        }
    }

    /// Reads what a server wrote on the error stream: the exit code (0 on success), or the failure.
    public static func decode(_ bytes: [UInt8], protocol proto: String) -> Result<Int32, RemoteCommandError> {
        if bytes.isEmpty { return .success(0) }
        guard RemoteCommand.version(of: proto) >= 4 else {
            return .failure(RemoteCommandError(String(decoding: bytes, as: UTF8.self)))
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            return .failure(RemoteCommandError("error stream protocol error: \(String(decoding: bytes, as: UTF8.self))"))
        }
        switch object["status"] as? String {
        case "Success":
            return .success(0)
        case "Failure":
            if object["reason"] as? String == "NonZeroExitCode" {
                let causes = (object["details"] as? [String: Any])?["causes"] as? [[String: Any]] ?? []
                for cause in causes where cause["reason"] as? String == "ExitCode" {
                    if let text = cause["message"] as? String, let code = UInt8(text) { return .success(Int32(code)) }
                    return .failure(RemoteCommandError("error stream protocol error: invalid exit code value \(cause["message"] ?? "")"))
                }
                return .failure(RemoteCommandError("error stream protocol error: no ExitCode cause given"))
            }
            return .failure(RemoteCommandError(object["message"] as? String ?? "unknown failure"))
        default:
            return .failure(RemoteCommandError("error stream protocol error: unknown error"))
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<": out += "\\u003c"
            case ">": out += "\\u003e"
            case "&": out += "\\u0026"
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

public struct RemoteCommandError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A terminal size as client-go sends it on the resize stream: `{"Width":80,"Height":24}`, one
/// JSON document after another.
public struct TerminalSize: Equatable, Sendable {
    public var width: UInt16
    public var height: UInt16

    public init(width: UInt16, height: UInt16) {
        self.width = width
        self.height = height
    }

    public var json: [UInt8] { Array(#"{"Width":\#(width),"Height":\#(height)}"#.utf8) }

    /// Splits a byte stream of concatenated JSON objects; keeps an incomplete tail in `buffer`.
    public static func decode(appending bytes: [UInt8], to buffer: inout [UInt8]) -> [TerminalSize] {
        buffer += bytes
        var sizes: [TerminalSize] = []
        while let close = buffer.firstIndex(of: UInt8(ascii: "}")) {
            let doc = Array(buffer[...close])
            buffer.removeFirst(close + 1)
            if let object = try? JSONSerialization.jsonObject(with: Data(doc)) as? [String: Any],
               let w = (object["Width"] as? NSNumber)?.intValue, let h = (object["Height"] as? NSNumber)?.intValue,
               (0...Int(UInt16.max)).contains(w), (0...Int(UInt16.max)).contains(h) {
                sizes.append(TerminalSize(width: UInt16(w), height: UInt16(h)))
            }
        }
        return sizes
    }
}
