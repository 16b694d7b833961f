import ArgumentParser
import CRI
import Foundation
import GRPCCore
import SkiffClient

/// How `pull` shows progress. CRI's PullImage reports nothing until it is done, so skiffctl polls
/// skiffd's skiff.v1 ListPulls while the call runs; other runtimes answer UNIMPLEMENTED and the
/// pull goes on without a display.
enum ProgressMode: String, ExpressibleByArgument, CaseIterable {
    /// `tty` when standard output is a terminal, else `none`.
    case auto
    /// One frame redrawn in place: a line per layer with a bar, bytes and the total with its rate.
    case tty
    /// A line per layer state change and a summary line, for logs.
    case plain
    case none

    var resolved: ProgressMode {
        guard self == .auto else { return self }
        return isatty(STDOUT_FILENO) == 1 ? .tty : .none
    }
}

/// Follows one pull of `image` on the daemon while `pull` runs, drawing it in `mode`.
struct PullProgressFollower {
    let client: Client
    let image: String
    let mode: ProgressMode
    private static let interval: Duration = .milliseconds(100)

    /// Runs `pull` and draws progress until it returns; the display never fails the pull.
    func run<T: Sendable>(_ pull: @escaping @Sendable () async throws -> T) async throws -> T {
        // Pulls that exist before ours have smaller ids; ours is the first newer one.
        guard mode != .none, let baseline = try? await listPulls().map(\.id).max() ?? 0 else {
            return try await pull()
        }
        let display = Display(mode: mode)
        let start = ContinuousClock.now
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try await pullWhilePolling(pull, baseline: baseline, display: display, start: start))
        } catch {
            outcome = .failure(error)
        }
        // The daemon keeps ended pulls for a minute: draw how ours ended, failed or not.
        if let ours = try? await ours(after: baseline) {
            display.show(ours, at: Self.seconds(since: start), final: true)
        }
        return try outcome.get()
    }

    private func pullWhilePolling<T: Sendable>(
        _ pull: @escaping @Sendable () async throws -> T, baseline: UInt64, display: Display, start: ContinuousClock.Instant
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await pull() }
            group.addTask {
                while !Task.isCancelled {
                    if let ours = try? await self.ours(after: baseline) {
                        display.show(ours, at: Self.seconds(since: start), final: false)
                    }
                    try? await Task.sleep(for: Self.interval)
                }
                return nil
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let value = next { return value }
            }
            preconditionFailure("the pull task always returns a value or throws")
        }
    }

    private func ours(after baseline: UInt64) async throws -> SkiffV1.PullStatus? {
        try await listPulls().filter { $0.id > baseline }.min { $0.id < $1.id }
    }

    private func listPulls() async throws -> [SkiffV1.PullStatus] {
        var request = SkiffV1.ListPullsRequest()
        request.image = image
        // Straight to the transport: --debug would log ten calls a second.
        return try await client.cri.call(SkiffV1Methods.listPulls, request, timeout: .seconds(5)).pulls
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// The drawing state shared by the polling task and the final frame.
private final class Display: @unchecked Sendable {
    // Only touched from the poller, then (after it ended) from `run`: never concurrently.
    private var view = PullProgressView()
    private var linesOnScreen = 0
    let mode: ProgressMode

    init(mode: ProgressMode) { self.mode = mode }

    func show(_ status: SkiffV1.PullStatus, at seconds: Double, final: Bool) {
        view.observe(status, at: seconds)
        var out = ""
        switch mode {
        case .tty:
            let lines = view.frame(status, width: Self.terminalWidth())
            out = PullProgressView.redraw(lines, over: linesOnScreen)
            linesOnScreen = lines.count
        case .plain:
            for line in view.plainLines(status) { out += line + "\n" }
        case .auto, .none:
            return
        }
        if final, status.phase == .pullComplete || status.phase == .pullFailed {
            out += PullProgressView.summary(status) + "\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }

    static func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }
}
