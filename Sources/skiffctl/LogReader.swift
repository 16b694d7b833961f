import Foundation

/// One line of a CRI container log: `<RFC3339Nano> <stdout|stderr> <P|F>[:more tags] <text>`.
/// `P` marks a piece of a longer line; the runtime writes the rest in the following pieces and ends with `F`.
struct CRILogLine: Equatable {
    enum Stream: String { case stdout, stderr }
    var timestamp: String
    var stream: Stream
    var partial: Bool
    var content: [UInt8]

    /// Parses one line without its newline; nil when it is not in the CRI format.
    init?(_ line: ArraySlice<UInt8>) {
        let space = UInt8(ascii: " ")
        guard let first = line.firstIndex(of: space) else { return nil }
        let afterTime = line[(first + 1)...]
        guard let second = afterTime.firstIndex(of: space) else { return nil }
        guard let stream = Stream(rawValue: String(decoding: line[(first + 1)..<second], as: UTF8.self)) else { return nil }
        let afterStream = line[(second + 1)...]
        // kubelet: the tag field is required; its first ':'-separated tag is P (partial) or F (full).
        let tagEnd = afterStream.firstIndex(of: space) ?? afterStream.endIndex
        let tags = afterStream[afterStream.startIndex..<tagEnd]
        let firstTag = tags.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false).first ?? []
        timestamp = String(decoding: line[line.startIndex..<first], as: UTF8.self)
        self.stream = stream
        partial = Array(firstTag) == [UInt8(ascii: "P")]
        content = tagEnd < afterStream.endIndex ? Array(afterStream[(tagEnd + 1)...]) : []
    }

    /// The time in Unix nanoseconds, if the timestamp is valid RFC 3339.
    var unixNanos: Int64? { RFC3339.parse(timestamp) }
}

/// What `logs` prints and how much.
struct LogOptions {
    var follow = false
    /// Lines from the end of the file; nil for all.
    var tail: Int?
    /// Skip lines older than this (Unix nanoseconds).
    var since: Int64?
    var timestamps = false
    /// Stop after this many bytes; nil for no limit.
    var limitBytes: Int?
    var streams: Set<CRILogLine.Stream> = [.stdout, .stderr]
}

/// Reads a CRI log file as kubelet's log reader does (crictl uses the same code): pieces of one line are
/// joined, each line goes to stdout or stderr as the container wrote it, and `follow` keeps reading
/// (across a rotation of the file) until `stillRunning` says the container has stopped.
struct LogReader {
    let path: String
    let options: LogOptions
    var write: (CRILogLine.Stream, [UInt8]) -> Void = { stream, bytes in
        stream == .stdout ? Stdio.out(bytes) : Stdio.err(bytes)
    }

    private final class State {
        var written = 0
        var atLineStart: [CRILogLine.Stream: Bool] = [.stdout: true, .stderr: true]
        var done = false
    }

    func run(stillRunning: () async -> Bool = { false }) async throws {
        var file = try LogFile(path: path)
        defer { file.close() }
        if let tail = options.tail { try file.seek(to: file.offsetOfLast(lines: tail)) }
        let state = State()
        var lastCheck = ContinuousClock.now
        while !state.done {
            let lines = try file.readCompleteLines()
            for line in lines {
                emit(line, state)
                if state.done { return }
            }
            if !lines.isEmpty { continue }
            guard options.follow else { return }
            // Rotated: the path now names a new file. Finish the old one (done above), then switch.
            if file.isReplaced() {
                file.close()
                guard let next = try? LogFile(path: path) else {
                    try await Task.sleep(for: .milliseconds(200))
                    continue
                }
                file = next
                continue
            }
            if ContinuousClock.now - lastCheck >= .seconds(1) {
                lastCheck = .now
                if !(await stillRunning()) {
                    // Whatever the container wrote before it ended is in the file now.
                    for line in try file.readCompleteLines() {
                        emit(line, state)
                        if state.done { return }
                    }
                    return
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func emit(_ raw: [UInt8], _ state: State) {
        guard let line = CRILogLine(raw[...]) else {
            FileHandle.standardError.write(Data("ERRO failed to parse log line \"\(String(decoding: raw, as: UTF8.self))\"\n".utf8))
            return
        }
        if let since = options.since, let time = line.unixNanos, time < since { return }
        guard options.streams.contains(line.stream) else { return }
        var bytes: [UInt8] = []
        if options.timestamps && state.atLineStart[line.stream]! {
            bytes += Array((RFC3339.goNano(line.timestamp) + " ").utf8)
        }
        bytes += line.content
        if !line.partial { bytes.append(UInt8(ascii: "\n")) }
        state.atLineStart[line.stream] = !line.partial
        if let limit = options.limitBytes {
            let room = limit - state.written
            if bytes.count >= room {
                bytes = Array(bytes.prefix(max(room, 0)))
                state.done = true
            }
        }
        state.written += bytes.count
        write(line.stream, bytes)
    }
}

/// A log file read in complete lines, remembering its identity to notice a rotation.
struct LogFile {
    private let fd: Int32
    private let path: String
    private let device: UInt64
    private let inode: UInt64
    private var pending: [UInt8] = []

    init(path: String) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CtlError("failed to open log file \"\(path)\": \(String(cString: strerror(errno)))") }
        self.path = path
        var st = stat()
        fstat(fd, &st)
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }

    func close() { _ = Glibc.close(fd) }

    mutating func seek(to offset: off_t) throws {
        lseek(fd, offset, SEEK_SET)
        pending = []
    }

    /// The offset where the last `lines` lines begin (0 lines: the end of the file).
    func offsetOfLast(lines: Int) throws -> off_t {
        var st = stat()
        fstat(fd, &st)
        var end = off_t(st.st_size)
        var position = end
        var newlines = 0
        // A final newline ends the last line rather than starting an empty one.
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        if end > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, end - 1) == 1, last == UInt8(ascii: "\n") { end -= 1 }
            position = end
        }
        if lines == 0 { return off_t(st.st_size) }
        while position > 0 {
            let size = Int(min(off_t(buffer.count), position))
            position -= off_t(size)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, position) }
            guard n == size else { throw CtlError("read log file \"\(path)\": \(String(cString: strerror(errno)))") }
            for i in stride(from: size - 1, through: 0, by: -1) where buffer[i] == UInt8(ascii: "\n") {
                newlines += 1
                if newlines == lines { return position + off_t(i) + 1 }
            }
        }
        return 0
    }

    /// The complete lines (without newline) written since the last call; an unfinished last line waits.
    mutating func readCompleteLines() throws -> [[UInt8]] {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var lines: [[UInt8]] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CtlError("read log file \"\(path)\": \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            pending += buffer[0..<n]
            var start = 0
            for i in 0..<pending.count where pending[i] == UInt8(ascii: "\n") {
                lines.append(Array(pending[start..<i]))
                start = i + 1
            }
            pending.removeFirst(start)
            if lines.count > 1000 { break }
        }
        return lines
    }

    /// Whether the path now names another file (or none), as after a log rotation.
    func isReplaced() -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        return UInt64(st.st_dev) != device || UInt64(st.st_ino) != inode
    }
}

enum RFC3339 {
    /// Unix nanoseconds of an RFC 3339 time ("2026-11-22T10:00:00.123456789Z", "...+02:00").
    static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= b.count else { return nil }
            var value = 0
            for c in b[range] {
                guard c >= 48, c <= 57 else { return nil }
                value = value * 10 + Int(c - 48)
            }
            return value
        }
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var i = 19
        var nanos: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if digits < 9 { nanos = nanos * 10 + Int64(b[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 9 { for _ in digits..<9 { nanos *= 10 } }
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard let oh = number((i + 1)..<(i + 3)), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"),
                let om = number((i + 4)..<(i + 6))
            else { return nil }
            offset = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        var tm = tm()
        tm.tm_year = Int32(year - 1900)
        tm.tm_mon = Int32(month - 1)
        tm.tm_mday = Int32(day)
        tm.tm_hour = Int32(hour)
        tm.tm_min = Int32(minute)
        tm.tm_sec = Int32(second)
        let seconds = Int64(timegm(&tm)) - Int64(offset)
        return seconds * 1_000_000_000 + nanos
    }

    /// The timestamp as Go's RFC3339Nano prints it: trailing zeros of the fraction dropped.
    static func goNano(_ text: String) -> String {
        guard let dot = text.firstIndex(of: ".") else { return text }
        let afterDot = text.index(after: dot)
        let fractionEnd = text[afterDot...].firstIndex { !$0.isNumber } ?? text.endIndex
        var fraction = String(text[afterDot..<fractionEnd])
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return String(text[..<dot]) + (fraction.isEmpty ? "" : "." + fraction) + String(text[fractionEnd...])
    }
}

/// crictl's `--since`: a relative duration ("42m", "1h30m": that long before now), an RFC 3339 time, a
/// date and time without zone ("2013-01-02T13:23:37", local time), a date, or Unix seconds ("1700000000.5").
func parseSince(_ text: String, now: Date = Date()) throws -> Int64 {
    let nowNanos = Int64(now.timeIntervalSince1970 * 1e9)
    if let duration = parseDuration(text), Double(text) == nil {
        let (seconds, attoseconds) = duration.components
        return nowNanos - (seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
    if let nanos = RFC3339.parse(text) { return nanos }
    if let seconds = Double(text) { return Int64(seconds * 1e9) }
    for format in ["yyyy-MM-dd'T'HH:mm:ss.SSSSSSSSS", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd"] {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone.current
        formatter.dateFormat = format
        if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970 * 1e9) }
    }
    throw CtlError("failed to parse value as time or duration: \"\(text)\"")
}
