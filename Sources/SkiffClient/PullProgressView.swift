import CRI

/// Turns the skiff.v1 ListPulls status of one pull into what `skiffctl pull` shows: a redrawn frame
/// of one line per layer on a terminal, or a line per layer state change for logs. Pure: time comes
/// in as seconds, so it is testable without a clock or a terminal.
public struct PullProgressView: Sendable {
    /// Bytes seen at each update in the last `rateWindow` seconds: the rate is their slope.
    private var samples: [(seconds: Double, bytes: UInt64)] = []
    private let rateWindow = 2.0
    /// Per layer digest, the last state a plain line was printed for.
    private var printedStates: [String: SkiffV1.LayerState] = [:]

    public init() {}

    /// Records the bytes of `status` at time `seconds` (any monotonic origin) for the rate.
    public mutating func observe(_ status: SkiffV1.PullStatus, at seconds: Double) {
        samples.append((seconds, Self.downloadedBytes(status)))
        samples.removeAll { seconds - $0.seconds > rateWindow }
    }

    /// Bytes per second over the last window; nil until two samples are far enough apart.
    public var rate: Double? {
        guard let first = samples.first, let last = samples.last, last.seconds - first.seconds >= 0.2 else { return nil }
        return Double(last.bytes &- min(first.bytes, last.bytes)) / (last.seconds - first.seconds)
    }

    // MARK: Terminal

    /// The frame for a terminal `width` columns wide: a title, one line per layer, a total line.
    /// Every line fits in `width` (a wrapped line would break redrawing in place).
    public func frame(_ status: SkiffV1.PullStatus, width: Int) -> [String] {
        var lines = ["\(status.reference): \(Self.phaseText(status))"]
        for layer in status.layers {
            let state = Self.stateText(layer.state).padding(to: 12)
            let counts = "\(Self.bytes(UInt64(max(0, layer.downloaded)))) / \(Self.bytes(UInt64(max(0, layer.size))))"
            var bar = ""
            if layer.state == .layerDownloading {
                bar = Self.bar(done: layer.downloaded, total: layer.size, cells: 20) + "  "
            }
            lines.append("  \(Self.shortDigest(layer.digest))  \(state) \(bar)\(counts)")
        }
        if !status.layers.isEmpty {
            let done = status.layers.reduce(Int64(0)) { $0 + max(0, $1.downloaded) }
            let total = status.layers.reduce(Int64(0)) { $0 + max(0, $1.size) }
            var line = "  total  \(Self.bytes(UInt64(done))) / \(Self.bytes(UInt64(total)))"
            if status.phase == .pullFetchingLayers, let rate {
                line += "  \(Self.bytes(UInt64(rate)))/s"
            }
            lines.append(line)
        }
        return lines.map { Self.fit($0, width) }
    }

    /// Escape sequences that replace `previous` lines already on the screen with `lines`.
    public static func redraw(_ lines: [String], over previous: Int) -> String {
        var out = previous > 0 ? "\u{1B}[\(previous)A" : ""
        for line in lines { out += "\r\u{1B}[2K" + line + "\n" }
        // A frame shorter than the last (not expected: layers only appear) leaves no stale lines.
        if previous > lines.count {
            for _ in lines.count..<previous { out += "\r\u{1B}[2K\n" }
            out += "\u{1B}[\(previous - lines.count)A"
        }
        return out
    }

    // MARK: Plain

    /// Lines for layers whose state changed since the last call (for logs and non-terminals).
    public mutating func plainLines(_ status: SkiffV1.PullStatus) -> [String] {
        var out: [String] = []
        for layer in status.layers where printedStates[layer.digest] != layer.state {
            // Waiting is the initial state of every layer: not worth a line.
            if layer.state == .layerWaiting { continue }
            printedStates[layer.digest] = layer.state
            let size = Self.bytes(UInt64(max(0, layer.size)))
            let text = switch layer.state {
            case .layerDownloading: "downloading (\(size))"
            case .layerExtracting: "extracting"
            case .layerDone: "done (\(size))"
            case .layerExists: "already exists (\(size))"
            default: Self.stateText(layer.state)
            }
            out.append("\(Self.shortDigest(layer.digest)): \(text)")
        }
        return out
    }

    /// One line on how the pull ended, from the server's own timestamps.
    public static func summary(_ status: SkiffV1.PullStatus) -> String {
        let seconds = status.finishedAt > status.startedAt ? Double(status.finishedAt - status.startedAt) / 1e9 : 0
        let fetched = status.layers.filter { $0.state == .layerDone }
        let fetchedBytes = UInt64(fetched.reduce(Int64(0)) { $0 + max(0, $1.size) })
        let total = UInt64(status.layers.reduce(Int64(0)) { $0 + max(0, $1.size) })
        let time = seconds < 10 ? String(format1: seconds, "s") : "\(Int(seconds.rounded()))s"
        switch status.phase {
        case .pullFailed:
            // The error itself reaches the user through PullImage's status.
            return "\(status.reference): failed after \(time)"
        default:
            var line = "\(status.reference): \(status.layers.count) layer\(status.layers.count == 1 ? "" : "s"), "
                + "\(bytes(total)); fetched \(fetched.count) (\(bytes(fetchedBytes))) in \(time)"
            if seconds > 0, fetchedBytes > 0 { line += ", \(bytes(UInt64(Double(fetchedBytes) / seconds)))/s" }
            return line
        }
    }

    // MARK: Formatting

    static func downloadedBytes(_ status: SkiffV1.PullStatus) -> UInt64 {
        UInt64(status.layers.reduce(Int64(0)) { $0 + max(0, $1.downloaded) })
    }

    static func phaseText(_ status: SkiffV1.PullStatus) -> String {
        switch status.phase {
        case .pullResolving: "resolving"
        case .pullFetchingLayers: "fetching layers"
        case .pullComplete: "complete"
        case .pullFailed: "failed: \(status.error)"
        default: status.phase.name
        }
    }

    static func stateText(_ state: SkiffV1.LayerState) -> String {
        switch state {
        case .layerWaiting: "waiting"
        case .layerDownloading: "downloading"
        case .layerExtracting: "extracting"
        case .layerDone: "done"
        case .layerExists: "exists"
        default: state.name
        }
    }

    /// "sha256:3f4d90098f5b…" → "3f4d90098f5b", as docker shows layer ids.
    static func shortDigest(_ digest: String) -> String {
        let hex = digest.split(separator: ":", maxSplits: 1).last.map(String.init) ?? digest
        return String(hex.prefix(12))
    }

    /// Binary units with one decimal: "0 B", "512 B", "1.5 KiB", "2.0 MiB".
    public static func bytes(_ n: UInt64) -> String {
        if n < 1024 { return "\(n) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var value = Double(n) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format1: value, " " + units[unit])
    }

    static func bar(done: Int64, total: Int64, cells: Int) -> String {
        let filled = total > 0 ? Int(Double(max(0, min(done, total))) / Double(total) * Double(cells)) : 0
        return "[" + String(repeating: "=", count: filled) + String(repeating: " ", count: cells - filled) + "]"
    }

    static func fit(_ line: String, _ width: Int) -> String {
        guard width > 1, line.count > width else { return line }
        return String(line.prefix(width - 1)) + "…"
    }
}

extension String {
    /// `value` with one decimal followed by `suffix` (no Foundation formatting in this module).
    init(format1 value: Double, _ suffix: String) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)\(suffix)"
    }

    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
