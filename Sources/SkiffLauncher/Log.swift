// Error and warning output: one line on stderr, and in the --log file (text or JSON lines).

#if canImport(Glibc)
import Glibc
#endif
import SkiffOCI

public enum Log {
    public enum Format: String, Sendable { case text, json }

    nonisolated(unsafe) static var file: String?
    nonisolated(unsafe) static var format: Format = .text

    /// Where --log/--log-format point. Call once at startup.
    public static func configure(file: String?, format: Format) {
        Log.file = file
        Log.format = format
    }

    public static func error(_ msg: String) { emit("error", msg, toStderr: true) }
    public static func warn(_ msg: String) { emit("warning", msg, toStderr: true) }

    static func emit(_ level: String, _ msg: String, toStderr: Bool) {
        if toStderr {
            let line = "skiff-runc: " + (level == "error" ? "" : "\(level): ") + msg + "\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
        guard let file else { return }
        let time = Sys.rfc3339()
        let line: String
        switch format {
        case .json:
            line = JSON.object(["level": .string(level), "msg": .string(msg), "time": .string(time)]).compactText + "\n"
        case .text:
            var quoted = ""
            JSON.writeString(msg, to: &quoted)
            line = "time=\"\(time)\" level=\(level) msg=\(quoted)\n"
        }
        let fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = line.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
