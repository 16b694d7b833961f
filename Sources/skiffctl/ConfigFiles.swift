import CRI
import Foundation
import Yams

/// crictl's pod and container config files: JSON or YAML with the CRI field names (snake_case as in
/// crictl's examples, or lowerCamelCase), enums by name or number.
enum ConfigFiles {
    /// crictl's checks: metadata with name and namespace required; a missing uid is generated.
    static func podSandboxConfig(at path: String) throws -> PodSandboxConfig {
        var config = try PodSandboxConfig(protoJSON: document(at: path))
        guard var metadata = config.metadata else { throw CtlError("metadata is not set") }
        if metadata.uid.isEmpty {
            metadata.uid = UUID().uuidString.lowercased()
            config.metadata = metadata
        }
        guard !metadata.name.isEmpty, !metadata.namespace.isEmpty else {
            throw CtlError("name or namespace is not in metadata \(metadata.jsonText())")
        }
        if let linux = config.linux, linux.cgroupParent.isEmpty {
            warnLog("cgroup_parent is not set. Use `runtime-config` to get the runtime cgroup driver")
        }
        return config
    }

    /// crictl's checks: metadata.name and image.image required.
    static func containerConfig(at path: String) throws -> ContainerConfig {
        let config = try ContainerConfig(protoJSON: plainEnvValues(document(at: path)))
        guard let metadata = config.metadata else { throw CtlError("metadata is not set") }
        guard !metadata.name.isEmpty else { throw CtlError("name is not in metadata \(metadata.jsonText())") }
        guard let image = config.image else { throw CtlError("image is not set") }
        guard !image.image.isEmpty else { throw CtlError("image field is not set in image \(image.jsonText())") }
        return config
    }

    /// `envs[].value` is `bytes` in the CRI schema, which proto3 JSON writes as base64; crictl keeps it a
    /// plain string in its files (`{"key": "MODE", "value": "test"}`), so encode it before decoding.
    static func plainEnvValues(_ json: ProtoJSON) -> ProtoJSON {
        guard case .object(var members) = json,
            let i = members.firstIndex(where: { $0.0 == "envs" }), case .array(let envs) = members[i].1
        else { return json }
        members[i].1 = .array(
            envs.map { env in
                guard case .string(let value)? = env["value"] else { return env }
                return Output.setting("value", .string(Data(value.utf8).base64EncodedString()), in: env)
            })
        return .object(members)
    }

    /// The file as a JSON value. JSON goes through the CRI module's parser (exact 64-bit integers, line and
    /// column in errors); anything else is read as YAML.
    static func document(at path: String) throws -> ProtoJSON {
        guard FileManager.default.fileExists(atPath: path) else { throw CtlError("config at \(path) not found") }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CtlError("read \(path): \(error.localizedDescription)")
        }
        return try document(text: text, name: path)
    }

    static func document(text: String, name: String) throws -> ProtoJSON {
        if text.drop(while: { $0.isWhitespace }).hasPrefix("{") {
            do {
                return try ProtoJSON.parse(text)
            } catch {
                throw CtlError("\(name): \(error.message)")
            }
        }
        do {
            guard let node = try Yams.compose(yaml: text) else { throw CtlError("\(name): the file is empty") }
            return try json(from: node)
        } catch let error as CtlError {
            throw error
        } catch {
            throw CtlError("\(name): invalid YAML: \(error)")
        }
    }

    /// A YAML node as the JSON value sigs.k8s.io/yaml would turn it into.
    static func json(from node: Node) throws -> ProtoJSON {
        switch node {
        case .scalar(let scalar):
            switch node.tag.rawValue {
            case Tag.Name.null.rawValue: return .null
            case Tag.Name.bool.rawValue: return node.bool.map(ProtoJSON.bool) ?? .string(scalar.string)
            case Tag.Name.int.rawValue:
                if let value = Int64(scalar.string) { return .int(value) }
                if let value = UInt64(scalar.string) { return .uint(value) }
                if let value = node.int { return .int(Int64(value)) }
                return .string(scalar.string)
            case Tag.Name.float.rawValue: return node.float.map(ProtoJSON.number) ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .mapping(let mapping):
            var members: [(String, ProtoJSON)] = []
            for (key, value) in mapping {
                guard let name = key.string else { throw CtlError("a mapping key is not a string at line \(key.mark?.line ?? 0)") }
                members.append((name, try json(from: value)))
            }
            return .object(members)
        case .sequence(let sequence):
            return .array(try sequence.map { try json(from: $0) })
        case .alias:
            throw CtlError("YAML aliases are not supported in config files")
        }
    }
}
