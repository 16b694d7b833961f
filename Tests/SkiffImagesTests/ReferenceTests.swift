import Foundation
import Testing

@testable import SkiffImages

@Suite("Image references and registry config")
struct ReferenceTests {
    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    @Test("normalises the Docker way", arguments: [
        ("busybox", "docker.io", "library/busybox", "latest", nil),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", nil),
        ("library/busybox", "docker.io", "library/busybox", "latest", nil),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", nil),
        ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", nil),
        ("user/app", "docker.io", "user/app", "latest", nil),
        ("user/app/sub:v_1.0-x", "docker.io", "user/app/sub", "v_1.0-x", nil),
        ("localhost/app", "localhost", "app", "latest", nil),
        ("localhost:5000/app:2", "localhost:5000", "app", "2", nil),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", "latest", nil),
        ("quay.io/coreos/etcd:v3", "quay.io", "coreos/etcd", "v3", nil),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", nil),
        ("Registry/app", "Registry", "app", "latest", nil),
        ("a.b/c__d/e-f.g_h", "a.b", "c__d/e-f.g_h", "latest", nil),
        ("busybox@\(digest)", "docker.io", "library/busybox", nil, digest),
        ("busybox:1.36@\(digest)", "docker.io", "library/busybox", "1.36", digest),
        ("localhost:5000/app@\(digest)", "localhost:5000", "app", nil, digest),
        ("localhost:5000", "docker.io", "library/localhost", "5000", nil),
    ] as [(String, String, String, String?, String?)])
    func parses(input: String, domain: String, path: String, tag: String?, digest: String?) throws {
        let ref = try ImageReference(parsing: input)
        #expect(ref.domain == domain)
        #expect(ref.path == path)
        #expect(ref.tag == tag)
        #expect(ref.digest?.description == digest)
    }

    @Test("rejects malformed references", arguments: [
        "", "Busybox", "docker.io/Library/busybox", "busybox:", "busybox:-x", "busybox:" + String(repeating: "a", count: 129),
        "busybox@sha256:abc", "busybox@md5:" + String(repeating: "a", count: 32), "a//b", "a/b/", "/a", "a__-b", "a..b",
        "-a", "a-", "host:port/app", "host:99999999/app", "has space", "café",
        String(repeating: "ab", count: 32),
        "docker.io/" + String(repeating: "a", count: 250),
    ])
    func rejects(input: String) {
        #expect(throws: ImageError.self) { try ImageReference(parsing: input) }
        do { _ = try ImageReference(parsing: input) } catch { #expect(error.kind == .invalidReference) }
    }

    @Test("canonical strings")
    func strings() throws {
        let ref = try ImageReference(parsing: "busybox:1.36@\(Self.digest)")
        #expect(ref.name == "docker.io/library/busybox")
        #expect(ref.tagged == "docker.io/library/busybox:1.36")
        #expect(ref.digested == "docker.io/library/busybox@\(Self.digest)")
        #expect(ref.description == "docker.io/library/busybox:1.36@\(Self.digest)")
        #expect(ref.manifestReference == Self.digest)
        #expect(try ImageReference(parsing: "busybox").manifestReference == "latest")
    }

    @Test("registry config: mirrors first, loopback and insecure hosts over plain HTTP, Docker Hub's API host")
    func endpoints() throws {
        let json = """
            {"registries": {
               "docker.io": {"mirrors": ["127.0.0.1:5001", "https://mirror.example.com/"]},
               "registry.example.com": {"insecure": true, "auth": {"username": "u", "password": "p"}},
               "127.0.0.1:5001": {"auth": {"auth": "\(Data("m:pw".utf8).base64EncodedString())"}}
             },
             "stallTimeoutSeconds": 5}
            """
        let config = try JSONDecoder().decode(RegistryConfig.self, from: Data(json.utf8))
        #expect(config.stallTimeout == .seconds(5))
        let hub = try config.endpoints(for: "docker.io")
        #expect(hub.map(\.baseURL) == ["http://127.0.0.1:5001", "https://mirror.example.com", "https://registry-1.docker.io"])
        #expect(hub.map(\.isMirror) == [true, true, false])
        #expect(hub[0].configAuth?.basic?.user == "m")
        #expect(hub[0].configAuth?.basic?.password == "pw")
        let insecure = try config.endpoints(for: "registry.example.com")
        #expect(insecure.map(\.baseURL) == ["http://registry.example.com"])
        #expect(insecure[0].configAuth?.basic?.user == "u")
        #expect(try config.endpoints(for: "quay.io").map(\.baseURL) == ["https://quay.io"])
        #expect(try config.endpoints(for: "localhost:5000").map(\.baseURL) == ["http://localhost:5000"])
        #expect(throws: ImageError.self) {
            try RegistryConfig(registries: ["docker.io": .init(mirrors: ["not a host"])]).endpoints(for: "docker.io")
        }
        #expect(try JSONDecoder().decode(RegistryConfig.self, from: Data("{}".utf8)) == RegistryConfig())
    }

    @Test("WWW-Authenticate challenges")
    func challenges() {
        let c = RegistryClient.parseChallenge(#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#)
        #expect(c.scheme == "Bearer")
        #expect(c.params["realm"] == "https://auth.example.com/token")
        #expect(c.params["service"] == "registry.example.com")
        #expect(c.params["scope"] == "repository:a/b:pull,push")
        let b = RegistryClient.parseChallenge(#"Basic realm="x \"y\"""#)
        #expect(b.scheme == "Basic")
        #expect(b.params["realm"] == #"x "y""#)
    }

    @Test("image config decodes the image-spec shape")
    func imageConfig() throws {
        let json = #"{"User":"1000","Env":["A=1"],"Entrypoint":["/e"],"Cmd":null,"WorkingDir":"/w","StopSignal":"SIGUSR1","Labels":{"k":"v"},"ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/data":{}}}"#
        let c = try JSONDecoder().decode(ImageConfig.self, from: Data(json.utf8))
        #expect(c == ImageConfig(user: "1000", env: ["A=1"], entrypoint: ["/e"], cmd: nil, workingDir: "/w", stopSignal: "SIGUSR1",
                                 labels: ["k": "v"], exposedPorts: ["53/udp", "80/tcp"], volumes: ["/data"]))
        let round = try JSONDecoder().decode(ImageConfig.self, from: JSONEncoder().encode(c))
        #expect(round == c)
    }
}
