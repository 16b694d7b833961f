import Foundation
import Testing

/// The repository root, from this file's path (Tests/IntegrationTests/Support/RegistryScope.swift).
let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { url.deleteLastPathComponent() }
    return url.path
}()

/// Runs a command to completion; returns stdout; throws with the output on failure. Output goes through
/// files, not pipes: a daemon the command leaves running (the registry) must not hold our read end open.
@discardableResult
func sh(_ arguments: [String]) throws -> String {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-it-sh-\(UUID().uuidString.prefix(8))").path
    defer { try? FileManager.default.removeItem(atPath: base + ".out") }
    let out = base + ".out"
    // stdout and stderr share the file; the scripts print their result as the last line.
    let child = try Spawned(["sh", "-c", "exec \"$@\" 2>" + base + ".err", "sh"] + arguments, output: out)
    let status = child.wait()
    let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    let errors = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
    try? FileManager.default.removeItem(atPath: base + ".err")
    guard status == 0 else {
        throw TestFailure("\(arguments.joined(separator: " ")) exited \(status): \(text)\(errors)")
    }
    return text
}

/// A local docker-registry on 127.0.0.1 holding the busybox test images (scripts/build-test-images),
/// started once for a suite and stopped after it.
struct TestRegistry: Sendable {
    let address: String
    @TaskLocal static var current: TestRegistry?

    static func get() throws -> TestRegistry {
        guard let current else { throw TestFailure("no test registry in scope: the suite needs the RegistryScope trait") }
        return current
    }

    func image(_ tag: String) -> String { "\(address)/busybox:\(tag)" }
}

struct RegistryScope: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Building the images and starting the registry take seconds: off the cooperative pool.
        let (work, registry) = try await offThePool { () throws -> (String, TestRegistry) in
            let work = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-it-registry-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            do {
                try sh([repoRoot + "/scripts/build-test-images", work + "/layout"])
                let started = try sh([repoRoot + "/scripts/test-registry", "start", work + "/registry"]).split(separator: " ")
                let registry = TestRegistry(address: String(started[0]))
                do {
                    for tag in ["latest", "user", "entrypoint", "env", "stopsignal", "whiteout"] {
                        try sh(["skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:\(work)/layout:\(tag)", "docker://\(registry.image(tag))"])
                    }
                } catch {
                    _ = try? sh([repoRoot + "/scripts/test-registry", "stop", work + "/registry"])
                    throw error
                }
                return (work, registry)
            } catch {
                try? FileManager.default.removeItem(atPath: work)
                throw error
            }
        }
        let stop: @Sendable () async -> Void = {
            _ = try? await offThePool {
                _ = try? sh([repoRoot + "/scripts/test-registry", "stop", work + "/registry"])
                try? FileManager.default.removeItem(atPath: work)
            }
        }
        do {
            try await TestRegistry.$current.withValue(registry) { try await function() }
        } catch {
            await stop()
            throw error
        }
        await stop()
    }
}
