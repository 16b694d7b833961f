import Foundation
import Glibc
import SkiffSupport

/// The launcher as skiffd sees it: any binary with runc's command line (skiff-runc, runc, crun).
/// skiffd never forks; every operation is one spawned command whose failure carries the runtime's words.
public struct OCIRuntime: Sendable {
    public let name: String
    public let path: String
    public let root: String

    public init(name: String, path: String, root: String) {
        self.name = name
        self.path = path
        self.root = root
    }

    var base: [String] { [path, "--root", root] }

    public func start(_ id: String) async throws(SkiffError) {
        try await expectSuccess(["start", id], step: "start container \(id)")
    }

    public func kill(_ id: String, signal: Int32) async throws(SkiffError) {
        try await expectSuccess(["kill", id, String(signal)], step: "signal \(signal) to container \(id)")
    }

    /// Removes the runtime's record and cgroup. `force` kills a running container first.
    public func delete(_ id: String, force: Bool) async throws(SkiffError) {
        let result = try await run(["delete"] + (force ? ["--force"] : []) + [id])
        if result.status != 0 {
            let message = result.stderrText
            // Deleting what the runtime no longer knows is success: Remove is idempotent.
            if message.contains("does not exist") || message.contains("not found") || message.contains("no such") { return }
            throw .internal("\(name) delete \(id): \(Self.firstLine(message, status: result.status))")
        }
    }

    /// `exec` with a process.json on stdin-less path: the caller writes the file.
    public func exec(
        _ id: String, processFile: String, pidFile: String, timeout: Duration?, outputLimit: Int
    ) async throws(SkiffError) -> ProcessResult {
        var spec = ProcessSpec(base + ["exec", "--process", processFile, "--pid-file", pidFile, id])
        spec.timeout = timeout
        spec.outputLimit = outputLimit
        spec.onTimeout = {
            // Kill the exec'd process itself, not only the launcher waiting for it.
            if let text = try? FileSystem.readString(pidFile), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 {
                Glibc.kill(pid, SIGKILL)
            }
        }
        do {
            return try await ProcessRunner.run(spec)
        } catch {
            throw .internal("\(name) exec in \(id): \(error)")
        }
    }

    func expectSuccess(_ arguments: [String], step: String) async throws(SkiffError) {
        let result = try await run(arguments)
        guard result.status == 0 else {
            throw .internal("\(step): \(name): \(Self.firstLine(result.stderrText, status: result.status))")
        }
    }

    func run(_ arguments: [String]) async throws(SkiffError) -> ProcessResult {
        var spec = ProcessSpec(base + arguments)
        spec.timeout = .seconds(60)
        do {
            return try await ProcessRunner.run(spec)
        } catch {
            throw .internal("\(name) \(arguments.first ?? ""): \(error)")
        }
    }

    static func firstLine(_ text: String, status: Int32) -> String {
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        // runc's json log lines carry "msg"; prefer the last error line.
        if let last = lines.last { return String(last) }
        return "exited with status \(status)"
    }
}
