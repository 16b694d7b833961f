#!/usr/bin/env python3
"""Generates the Swift side of module CRI from the CRI schema.

Input: a FileDescriptorSet written by `protoc --descriptor_set_out` for one schema file
(proto/runtime/v1/api.proto, or Skiff's own proto/skiff/v1/pulls.proto), and the protoc-c header
generated from the same schema (to pick the exact C member names).
Output (into the given directory): Swift value types for every message and enum, the bridge to
protobuf-c's per-message functions, the proto3 JSON mapping, and the gRPC method table.

The descriptor set is read with the small protobuf wire reader below, so the generator needs
nothing beyond Python 3. Output is deterministic: it depends only on the schema and the header.

Usage: gen-cri-swift.py DESCRIPTOR_SET PROTOC_C_HEADER OUT_DIR [--namespace NAME] [--source PATH]

Without --namespace (the CRI itself) the types are top-level Swift types and the files are
Types.swift, Bridge.swift, JSON.swift and Methods.swift with `CRIMethods`/`CRIMessageTypes`.
With --namespace SkiffV1 the types are nested in `public enum SkiffV1`, the files are
SkiffV1Types.swift etc., and the tables are `SkiffV1Methods`/`SkiffV1MessageTypes`, so a second
schema can share module CRI without name clashes.
"""

import os
import re
import sys

# ---------------------------------------------------------------------------------------------
# Protobuf wire reader, just enough for descriptor.proto.


def read_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf):
    """Yields (field_number, wire_type, value) for each field of one encoded message."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError("unsupported wire type %d in descriptor set" % wire)
        yield number, wire, value


def decode(buf, spec):
    """spec: {number: (name, kind, repeated)} with kind 'str', 'int', 'bool' or a nested spec."""
    out = {}
    for _, (name, kind, repeated) in spec.items():
        out[name] = [] if repeated else None
    for number, _, value in fields(buf):
        if number not in spec:
            continue
        name, kind, repeated = spec[number]
        if kind == 'str':
            v = bytes(value).decode('utf-8')
        elif kind in ('int', 'bool'):
            v = value if kind == 'int' else bool(value)
        else:
            v = decode(value, kind)
        if repeated:
            out[name].append(v)
        else:
            out[name] = v
    return out


# The parts of google/protobuf/descriptor.proto this generator reads (field numbers from there).
ENUM_VALUE = {1: ('name', 'str', False), 2: ('number', 'int', False)}
ENUM = {1: ('name', 'str', False), 2: ('value', ENUM_VALUE, True)}
FIELD = {1: ('name', 'str', False), 3: ('number', 'int', False), 4: ('label', 'int', False),
         5: ('type', 'int', False), 6: ('type_name', 'str', False), 9: ('oneof_index', 'int', False),
         10: ('json_name', 'str', False), 17: ('proto3_optional', 'bool', False)}
MESSAGE_OPTIONS = {7: ('map_entry', 'bool', False)}
MESSAGE = {1: ('name', 'str', False), 2: ('field', FIELD, True), 4: ('enum_type', ENUM, True),
           7: ('options', MESSAGE_OPTIONS, False), 8: ('oneof_decl', {1: ('name', 'str', False)}, True)}
MESSAGE[3] = ('nested_type', MESSAGE, True)
METHOD = {1: ('name', 'str', False), 2: ('input_type', 'str', False), 3: ('output_type', 'str', False),
          5: ('client_streaming', 'bool', False), 6: ('server_streaming', 'bool', False)}
SERVICE = {1: ('name', 'str', False), 2: ('method', METHOD, True)}
FILE = {1: ('name', 'str', False), 2: ('package', 'str', False), 4: ('message_type', MESSAGE, True),
        5: ('enum_type', ENUM, True), 6: ('service', SERVICE, True)}
FILE_SET = {1: ('file', FILE, True)}

# FieldDescriptorProto.Type
T_DOUBLE, T_FLOAT, T_INT64, T_UINT64, T_INT32, T_FIXED64, T_FIXED32, T_BOOL, T_STRING = range(1, 10)
T_GROUP, T_MESSAGE, T_BYTES, T_UINT32, T_ENUM, T_SFIXED32, T_SFIXED64, T_SINT32, T_SINT64 = range(10, 19)
LABEL_REPEATED = 3

SWIFT_SCALAR = {T_DOUBLE: 'Double', T_FLOAT: 'Float', T_INT64: 'Int64', T_UINT64: 'UInt64',
                T_INT32: 'Int32', T_UINT32: 'UInt32', T_BOOL: 'Bool', T_STRING: 'String',
                T_BYTES: '[UInt8]'}

# Identifiers Swift does not accept as plain declarations (or that read badly as members).
SWIFT_KEYWORDS = set('''
associatedtype class deinit enum extension fileprivate func import init inout internal let open
operator private precedencegroup protocol public rethrows static struct subscript typealias var
break case catch continue default defer do else fallthrough for guard if in repeat return throw
switch where while as false is nil self Self super throws true try await async any some Any Type
Protocol
'''.split())

# Members every generated message (or enum) has; a field (or value) with one of these names would clash.
MESSAGE_MEMBERS = {'protoName', 'serializedBytes', 'protoJSON', 'hashValue', 'hash', 'cMessage', 'init'}
ENUM_MEMBERS = {'name', 'rawValue', 'hashValue', 'hash', 'description', 'init'}


def fail(msg):
    sys.stderr.write('gen-cri-swift: %s\n' % msg)
    sys.exit(1)


def esc(ident):
    return '`%s`' % ident if ident in SWIFT_KEYWORDS else ident


def lower_camel(name):
    """Proto field or enum value name -> Swift lowerCamelCase.

    Words are split at underscores; an all-caps word is lowered ("CDI_devices" -> "cdiDevices",
    "SANDBOX_READY" -> "sandboxReady"), a mixed-case word keeps its inner capitals
    ("uidMappings" -> "uidMappings", "RuntimeDefault" -> "runtimeDefault")."""
    words = [w for w in name.split('_') if w]
    out = []
    for i, w in enumerate(words):
        if w.upper() == w:
            w = w.lower()
        if i == 0:
            w = w[0].lower() + w[1:]
        else:
            w = w[0].upper() + w[1:]
        out.append(w)
    return ''.join(out)


def camel_to_lower(name):
    """protoc-c's rule for function names: "PodSandboxConfig" -> "pod_sandbox_config"."""
    out = ''
    was_upper = True
    for ch in name:
        upper = ch.isupper()
        if upper:
            if not was_upper:
                out += '_'
            out += ch.lower()
        else:
            out += ch
        was_upper = upper
    return out


# ---------------------------------------------------------------------------------------------
# Model


class Enum:
    def __init__(self, d, path, package, swift_prefix):
        self.path = path                                  # ['SecurityProfile', 'ProfileType']
        self.package = package
        self.full = package + '.' + '.'.join(path)
        self.swift = swift_prefix + '.'.join(esc(p) for p in path)
        self.values = [(v['name'], v['number']) for v in d['value']]
        if not any(n == 0 for _, n in self.values):
            fail('enum %s has no zero value' % self.full)


class Field:
    def __init__(self, d, msg):
        self.name = d['name']
        self.number = d['number']
        self.type = d['type']
        self.type_name = (d['type_name'] or '').lstrip('.')
        self.repeated = d['label'] == LABEL_REPEATED
        self.json_name = d['json_name'] or lower_camel(self.name)
        self.swift = lower_camel(self.name)
        self.msg = msg
        if d['oneof_index'] is not None or d['proto3_optional']:
            fail('%s.%s: oneof/optional fields are not supported by this generator' % (msg.full, self.name))
        if self.type in (T_GROUP,):
            fail('%s.%s: groups are not supported' % (msg.full, self.name))
        if self.swift in MESSAGE_MEMBERS:
            fail('%s.%s: Swift name %s clashes with a generated member' % (msg.full, self.name, self.swift))


def c_prefix(package):
    """protoc-c's struct name prefix: "runtime.v1" -> "Runtime__V1__"."""
    return ''.join(p[0].upper() + p[1:] + '__' for p in package.split('.'))


class Message:
    def __init__(self, d, path, package, model):
        self.path = path
        self.full = package + '.' + '.'.join(path)
        self.swift = model.swift_prefix + '.'.join(esc(p) for p in path)
        self.ctype = c_prefix(package) + '__'.join(path)
        self.cfunc = package.replace('.', '__') + '__' + '__'.join(camel_to_lower(p) for p in path)
        self.map_entry = bool(d['options'] and d['options']['map_entry'])
        self.nested_messages = []
        self.nested_enums = []
        model.messages[self.full] = self
        for e in d['enum_type']:
            en = Enum(e, path + [e['name']], package, model.swift_prefix)
            model.enums[en.full] = en
            self.nested_enums.append(en)
        for n in d['nested_type']:
            self.nested_messages.append(Message(n, path + [n['name']], package, model))
        self.fields = [Field(f, self) for f in d['field']]


class Model:
    def __init__(self, fds, namespace):
        if len(fds['file']) != 1:
            fail('expected exactly one file in the descriptor set (no imports), got %d' % len(fds['file']))
        f = fds['file'][0]
        self.package = f['package']
        self.namespace = namespace
        self.swift_prefix = namespace + '.' if namespace else ''
        self.messages = {}
        self.enums = {}
        self.top_messages = []
        self.top_enums = []
        for e in f['enum_type']:
            en = Enum(e, [e['name']], self.package, self.swift_prefix)
            self.enums[en.full] = en
            self.top_enums.append(en)
        for m in f['message_type']:
            self.top_messages.append(Message(m, [m['name']], self.package, self))
        self.services = f['service']

    def all_messages(self):
        """Messages in schema order (nested after their parent), without map entries."""
        out = []

        def walk(m):
            if not m.map_entry:
                out.append(m)
            for n in m.nested_messages:
                walk(n)
        for m in self.top_messages:
            walk(m)
        return out

    def all_enums(self):
        out = list(self.top_enums)
        for m in self.all_messages():
            out.extend(m.nested_enums)
        return out


# ---------------------------------------------------------------------------------------------
# C header: member names of each struct, and the functions that exist.


def parse_header(text):
    structs = {}
    for m in re.finditer(r'^struct\s+(\w+)\n\{\n(.*?)^\};', text, re.S | re.M):
        body = re.sub(r'/\*.*?\*/', '', m.group(2), flags=re.S)
        members = set()
        for line in body.split(';'):
            line = line.replace('PROTOBUF_C__DEPRECATED', '').strip()
            if not line:
                continue
            ident = re.findall(r'(\w+)\s*$', line)
            if ident:
                members.add(ident[0])
        structs[m.group(1)] = members
    funcs = set(re.findall(r'\b(\w+__(?:init|unpack|pack|get_packed_size|free_unpacked))\s*\n?\s*\(', text))
    return structs, funcs


class CNames:
    def __init__(self, header_text):
        self.structs, self.funcs = parse_header(header_text)

    def member(self, msg, field_name):
        members = self.structs.get(msg.ctype)
        if members is None:
            fail('struct %s not found in the protoc-c header' % msg.ctype)
        base = field_name.lower()
        for cand in (base, base + '_'):
            if cand in members:
                return cand
        fail('no C member for %s.%s in struct %s' % (msg.full, field_name, msg.ctype))

    def check_funcs(self, msg, only_init=False):
        for suffix in ('init',) if only_init else ('init', 'unpack', 'pack', 'get_packed_size', 'free_unpacked'):
            if '%s__%s' % (msg.cfunc, suffix) not in self.funcs:
                fail('function %s__%s not found in the protoc-c header' % (msg.cfunc, suffix))


# ---------------------------------------------------------------------------------------------
# Swift emission




class Gen:
    def __init__(self, model, cnames, source):
        self.model = model
        self.header = '// Generated by scripts/gen-proto from %s. Do not edit.\n' % source
        # Names of the RPC and message tables.
        self.tables = model.namespace or 'CRI'
        self.c = cnames
        self.messages = model.all_messages()
        self.enums = model.all_enums()
        for m in self.messages:
            if len(m.path) > 1:
                # protoc-c gives nested messages only __init; the bridge needs __pack/__unpack.
                fail('nested message %s is not supported (only nested enums and map entries)' % m.full)
            cnames.check_funcs(m)
            for f in m.fields:
                f.cname = cnames.member(m, f.name)
                if self.is_map(f):
                    entry = self.model.messages[f.type_name]
                    kf, vf = entry.fields
                    if kf.type != T_STRING or vf.type != T_STRING:
                        fail('%s.%s: only map<string, string> is supported' % (m.full, f.name))
                    entry.key_c = cnames.member(entry, 'key')
                    entry.value_c = cnames.member(entry, 'value')
                    cnames.check_funcs(entry, only_init=True)
        self.check_no_cycles()

    def is_map(self, f):
        if f.type != T_MESSAGE:
            return False
        return self.model.messages[f.type_name].map_entry

    def check_no_cycles(self):
        # Message fields are stored inline as Optional values, which needs an acyclic schema.
        state = {}

        def visit(m):
            if state.get(m.full) == 1:
                fail('message %s is part of a cycle; boxing is not implemented' % m.full)
            if state.get(m.full) == 2:
                return
            state[m.full] = 1
            for f in m.fields:
                if f.type == T_MESSAGE and not f.repeated:
                    visit(self.model.messages[f.type_name])
            state[m.full] = 2
        for m in self.messages:
            visit(m)

    # ---- types

    def swift_type(self, f):
        if self.is_map(f):
            return '[String: String]'
        if f.type == T_MESSAGE:
            base = self.model.messages[f.type_name].swift
        elif f.type == T_ENUM:
            base = self.model.enums[f.type_name].swift
        elif f.type in SWIFT_SCALAR:
            base = SWIFT_SCALAR[f.type]
        else:
            fail('%s.%s: unsupported field type %d' % (f.msg.full, f.name, f.type))
        if f.repeated:
            return '[%s]' % base
        if f.type == T_MESSAGE:
            return base + '?'
        return base

    def default(self, f):
        if self.is_map(f):
            return '[:]'
        if f.repeated:
            return '[]'
        if f.type == T_MESSAGE:
            return 'nil'
        if f.type == T_ENUM:
            return '%s(rawValue: 0)' % self.model.enums[f.type_name].swift
        return {'String': '""', '[UInt8]': '[]', 'Bool': 'false'}.get(SWIFT_SCALAR[f.type], '0')

    # ---- enums

    def emit_enum(self, e, out, indent):
        p = indent
        name = esc(e.path[-1])
        seen = set()
        out.append('%s/// Proto enum `%s`. Unknown numbers are kept as they are.' % (p, e.full))
        out.append('%spublic struct %s: CRIEnum {' % (p, name))
        out.append('%s    public var rawValue: Int32' % p)
        out.append('%s    public init(rawValue: Int32) { self.rawValue = rawValue }' % p)
        for vname, num in e.values:
            sname = lower_camel(vname)
            if sname in ENUM_MEMBERS or sname in seen:
                fail('enum %s value %s: Swift name %s clashes' % (e.full, vname, sname))
            seen.add(sname)
            out.append('%s    public static let %s = %s(rawValue: %d)' % (p, esc(sname), name, num))
        out.append('%s    /// The proto value name ("%s"), or the number for an unknown value.' % (p, e.values[0][0]))
        out.append('%s    public var name: String {' % p)
        out.append('%s        switch rawValue {' % p)
        done = set()
        for vname, num in e.values:
            if num in done:
                continue  # an alias: the first name wins, as in protoc's own output
            done.add(num)
            out.append('%s        case %d: "%s"' % (p, num, vname))
        out.append('%s        default: String(rawValue)' % p)
        out.append('%s        }' % p)
        out.append('%s    }' % p)
        out.append('%s    public init?(name: String) {' % p)
        out.append('%s        switch name {' % p)
        for vname, num in e.values:
            out.append('%s        case "%s": self.init(rawValue: %d)' % (p, vname, num))
        out.append('%s        default: return nil' % p)
        out.append('%s        }' % p)
        out.append('%s    }' % p)
        out.append('%s}' % p)

    # ---- messages

    def emit_message_struct(self, m, out, indent):
        p = indent
        name = esc(m.path[-1])
        out.append('%s/// Proto message `%s`.' % (p, m.full))
        out.append('%spublic struct %s: Sendable, Hashable {' % (p, name))
        for f in m.fields:
            out.append('%s    /// `%s = %d`' % (p, f.name, f.number))
            out.append('%s    public var %s: %s = %s' % (p, esc(f.swift), self.swift_type(f), self.default(f)))
        out.append('%s    public init() {}' % p)
        for e in m.nested_enums:
            out.append('')
            self.emit_enum(e, out, p + '    ')
        for n in m.nested_messages:
            if n.map_entry:
                continue
            out.append('')
            self.emit_message_struct(n, out, p + '    ')
        out.append('%s}' % p)

    def types_file(self):
        out = [self.header]
        ns = self.model.namespace
        indent = '    ' if ns else ''
        if ns:
            out.append('/// Messages and enums of proto package `%s`.' % self.model.package)
            out.append('public enum %s {' % ns)
        for e in self.model.top_enums:
            self.emit_enum(e, out, indent)
            out.append('')
        for m in self.model.top_messages:
            self.emit_message_struct(m, out, indent)
            out.append('')
        if ns:
            out[-1] = '}'
            out.append('')
        if any(e.path == ['Protocol'] for e in self.model.top_enums):
            out.append('/// `Protocol` needs backticks in Swift; this name does not.')
            out.append('public typealias %sProtocol = %s`Protocol`' % (self.tables, self.model.swift_prefix))
        return '\n'.join(out).rstrip('\n') + '\n'

    # ---- bridge

    def decode_lines(self, m):
        lines = []
        for f in m.fields:
            s = 'self.' + esc(f.swift)
            c = 'm.' + esc(f.cname)
            n = 'm.n_' + f.cname
            if self.is_map(f):
                e = self.model.messages[f.type_name]
                lines.append('%s = cMap(%s, %s) { (cString($0.pointee.%s), cString($0.pointee.%s)) }'
                             % (s, n, c, esc(e.key_c), esc(e.value_c)))
            elif f.repeated:
                if f.type == T_MESSAGE:
                    t = self.model.messages[f.type_name]
                    lines.append('%s = cMessages(%s, %s) { %s(c: $0) }' % (s, n, c, t.swift))
                elif f.type == T_STRING:
                    lines.append('%s = cStrings(%s, %s)' % (s, n, c))
                elif f.type == T_BYTES:
                    lines.append('%s = cArray(%s, %s).map(cBytes)' % (s, n, c))
                elif f.type == T_BOOL:
                    lines.append('%s = cArray(%s, %s).map { $0 != 0 }' % (s, n, c))
                elif f.type == T_ENUM:
                    t = self.model.enums[f.type_name]
                    lines.append('%s = cArray(%s, %s).map { %s(rawValue: Int32(bitPattern: $0.rawValue)) }'
                                 % (s, n, c, t.swift))
                else:
                    lines.append('%s = cArray(%s, %s)' % (s, n, c))
            elif f.type == T_MESSAGE:
                t = self.model.messages[f.type_name]
                lines.append('if let p = %s { %s = %s(c: p) }' % (c, s, t.swift))
            elif f.type == T_STRING:
                lines.append('%s = cString(%s)' % (s, c))
            elif f.type == T_BYTES:
                lines.append('%s = cBytes(%s)' % (s, c))
            elif f.type == T_BOOL:
                lines.append('%s = %s != 0' % (s, c))
            elif f.type == T_ENUM:
                t = self.model.enums[f.type_name]
                lines.append('%s = %s(rawValue: Int32(bitPattern: %s.rawValue))' % (s, t.swift, c))
            else:
                lines.append('%s = %s' % (s, c))
        return lines

    def encode_lines(self, m):
        lines = []
        for f in m.fields:
            s = 'self.' + esc(f.swift)
            c = 'm.pointee.' + esc(f.cname)
            n = 'm.pointee.n_' + f.cname
            if self.is_map(f):
                e = self.model.messages[f.type_name]
                lines.append('if !%s.isEmpty {' % s)
                lines.append('    (%s, %s) = a.pointers(%s.sorted { $0.key < $1.key }) { kv in' % (n, c, s))
                lines.append('        let e = a.alloc(%s.self)' % e.ctype)
                lines.append('        %s__init(e)' % e.cfunc)
                lines.append('        if !kv.key.isEmpty { e.pointee.%s = a.string(kv.key) }' % esc(e.key_c))
                lines.append('        if !kv.value.isEmpty { e.pointee.%s = a.string(kv.value) }' % esc(e.value_c))
                lines.append('        return e')
                lines.append('    }')
                lines.append('}')
            elif f.repeated:
                lines.append('if !%s.isEmpty {' % s)
                if f.type == T_MESSAGE:
                    lines.append('    (%s, %s) = a.pointers(%s) { $0.cMessage(a) }' % (n, c, s))
                elif f.type == T_STRING:
                    lines.append('    (%s, %s) = a.strings(%s)' % (n, c, s))
                elif f.type == T_BYTES:
                    lines.append('    (%s, %s) = a.array(%s.map { a.bytes($0) })' % (n, c, s))
                elif f.type == T_BOOL:
                    lines.append('    (%s, %s) = a.array(%s.map { $0 ? 1 : 0 })' % (n, c, s))
                elif f.type == T_ENUM:
                    t = self.model.enums[f.type_name]
                    lines.append('    (%s, %s) = a.array(%s.map { %s(rawValue: UInt32(bitPattern: $0.rawValue)) })'
                                 % (n, c, s, self.enum_ctype(t)))
                else:
                    lines.append('    (%s, %s) = a.array(%s)' % (n, c, s))
                lines.append('}')
            elif f.type == T_MESSAGE:
                lines.append('if let v = %s { %s = v.cMessage(a) }' % (s, c))
            elif f.type == T_STRING:
                lines.append('if !%s.isEmpty { %s = a.string(%s) }' % (s, c, s))
            elif f.type == T_BYTES:
                lines.append('if !%s.isEmpty { %s = a.bytes(%s) }' % (s, c, s))
            elif f.type == T_BOOL:
                lines.append('%s = %s ? 1 : 0' % (c, s))
            elif f.type == T_ENUM:
                t = self.model.enums[f.type_name]
                lines.append('%s = %s(rawValue: UInt32(bitPattern: %s.rawValue))' % (c, self.enum_ctype(t), s))
            else:
                lines.append('%s = %s' % (c, s))
        return lines

    def enum_ctype(self, e):
        return c_prefix(e.package) + '__'.join(e.path)

    def bridge_file(self):
        out = [self.header, 'import CRIProtoC', '']
        for m in self.messages:
            out.append('extension %s: CRIMessage {' % m.swift)
            out.append('    public static var protoName: String { "%s" }' % m.full)
            out.append('')
            out.append('    public init(serializedBytes bytes: [UInt8]) throws(CRICodecError) {')
            out.append('        self = try cDecode(bytes, Self.protoName, %s__unpack, %s__free_unpacked, Self.init(c:))'
                       % (m.cfunc, m.cfunc))
            out.append('    }')
            out.append('')
            out.append('    public func serializedBytes() -> [UInt8] {')
            out.append('        let a = CArena()')
            out.append('        return withExtendedLifetime(a) { cEncode(cMessage(a), %s__get_packed_size, %s__pack) }'
                       % (m.cfunc, m.cfunc))
            out.append('    }')
            out.append('')
            dec = self.decode_lines(m)
            out.append('    init(c: UnsafePointer<%s>) {' % m.ctype)
            out.append('        self.init()')
            if dec:
                out.append('        let m = c.pointee')
                out.extend('        ' + l for l in dec)
            out.append('    }')
            out.append('')
            enc = self.encode_lines(m)
            out.append('    /// A C copy of this message whose memory `a` owns.')
            out.append('    func cMessage(_ a: CArena) -> UnsafeMutablePointer<%s> {' % m.ctype)
            out.append('        let m = a.alloc(%s.self)' % m.ctype)
            out.append('        %s__init(m)' % m.cfunc)
            out.extend('        ' + l for l in enc)
            out.append('        return m')
            out.append('    }')
            out.append('}')
            out.append('')
        return '\n'.join(out)

    # ---- JSON

    def json_value_expr(self, f, v):
        """Swift expression turning one (non-repeated) value v of field f into ProtoJSON."""
        t = f.type
        if t == T_MESSAGE:
            return '%s.protoJSON(useProtoNames: useProtoNames)' % v
        if t == T_ENUM:
            return 'jsonEnum(%s)' % v
        if t == T_STRING:
            return '.string(%s)' % v
        if t == T_BYTES:
            return '.string(base64Encode(%s))' % v
        if t == T_BOOL:
            return '.bool(%s)' % v
        if t in (T_INT32, T_SINT32, T_SFIXED32):
            return '.int(Int64(%s))' % v
        if t in (T_UINT32, T_FIXED32):
            return '.uint(UInt64(%s))' % v
        if t in (T_INT64, T_SINT64, T_SFIXED64):
            return '.string(String(%s))' % v   # proto3 JSON: 64-bit integers are strings
        if t in (T_UINT64, T_FIXED64):
            return '.string(String(%s))' % v
        if t in (T_DOUBLE, T_FLOAT):
            return 'jsonDouble(Double(%s))' % v
        fail('unsupported JSON type %d' % t)

    def json_read_expr(self, f, v, where):
        t = f.type
        if t == T_MESSAGE:
            return 'try %s(protoJSON: %s)' % (self.model.messages[f.type_name].swift, v)
        if t == T_ENUM:
            return 'try readEnum(%s, %s)' % (v, where)
        if t == T_STRING:
            return 'try readString(%s, %s)' % (v, where)
        if t == T_BYTES:
            return 'try readBytes(%s, %s)' % (v, where)
        if t == T_BOOL:
            return 'try readBool(%s, %s)' % (v, where)
        if t in (T_INT32, T_SINT32, T_SFIXED32):
            return 'try readInteger(%s, %s, as: Int32.self)' % (v, where)
        if t in (T_UINT32, T_FIXED32):
            return 'try readInteger(%s, %s, as: UInt32.self)' % (v, where)
        if t in (T_INT64, T_SINT64, T_SFIXED64):
            return 'try readInteger(%s, %s, as: Int64.self)' % (v, where)
        if t in (T_UINT64, T_FIXED64):
            return 'try readInteger(%s, %s, as: UInt64.self)' % (v, where)
        if t == T_DOUBLE:
            return 'try readDouble(%s, %s)' % (v, where)
        if t == T_FLOAT:
            return 'Float(try readDouble(%s, %s))' % (v, where)
        fail('unsupported JSON type %d' % t)

    def zero_check(self, f, s):
        """Swift condition that is true when field f (expression s) is not at its default."""
        if self.is_map(f) or f.repeated:
            return '!%s.isEmpty' % s
        if f.type == T_MESSAGE:
            return None  # handled with if-let
        if f.type == T_ENUM:
            return '%s.rawValue != 0' % s
        if f.type in (T_STRING, T_BYTES):
            return '!%s.isEmpty' % s
        if f.type == T_BOOL:
            return s
        return '%s != 0' % s

    def json_file(self):
        out = [self.header]
        for m in self.messages:
            out.append('extension %s {' % m.swift)
            out.append('    public func protoJSON(useProtoNames: Bool) -> ProtoJSON {')
            if not m.fields:
                out.append('        .object([])')
            else:
                out.append('        var o: [(String, ProtoJSON)] = []')
                for f in m.fields:
                    s = 'self.' + esc(f.swift)
                    key = '"%s"' % f.name if f.name == f.json_name else \
                        '(useProtoNames ? "%s" : "%s")' % (f.name, f.json_name)
                    if self.is_map(f):
                        out.append('        if !%s.isEmpty { o.append((%s, jsonMap(%s))) }' % (s, key, s))
                    elif f.repeated:
                        out.append('        if !%s.isEmpty { o.append((%s, .array(%s.map { %s }))) }'
                                   % (s, key, s, self.json_value_expr(f, '$0')))
                    elif f.type == T_MESSAGE:
                        out.append('        if let v = %s { o.append((%s, %s)) }'
                                   % (s, key, self.json_value_expr(f, 'v')))
                    else:
                        out.append('        if %s { o.append((%s, %s)) }'
                                   % (self.zero_check(f, s), key, self.json_value_expr(f, s)))
                out.append('        return .object(o)')
            out.append('    }')
            out.append('')
            out.append('    public init(protoJSON json: ProtoJSON) throws(CRICodecError) {')
            out.append('        self.init()')
            if not m.fields:
                out.append('        _ = try jsonMembers(json, Self.protoName)')
            else:
                out.append('        for (key, value) in try jsonMembers(json, Self.protoName) {')
                out.append('            if case .null = value { continue }  // null means "default"')
                out.append('            switch key {')
                for f in m.fields:
                    s = 'self.' + esc(f.swift)
                    labels = ['"%s"' % f.name]
                    if f.json_name != f.name:
                        labels.append('"%s"' % f.json_name)
                    where = '"%s.%s"' % (m.full, f.name)
                    if self.is_map(f):
                        rhs = 'try readMap(value, %s)' % where
                    elif f.repeated:
                        rhs = 'try readArray(value, %s) { (v) throws(CRICodecError) in %s }' % (
                            where, self.json_read_expr(f, 'v', where))
                    else:
                        rhs = self.json_read_expr(f, 'value', where)
                    out.append('            case %s: %s = %s' % (', '.join(labels), s, rhs))
                out.append('            default: continue  // unknown keys are ignored, like crictl does')
                out.append('            }')
                out.append('        }')
            out.append('    }')
            out.append('}')
            out.append('')
        return '\n'.join(out)

    # ---- methods

    def methods_file(self):
        out = [self.header, 'import GRPCCore', '']
        out.append('/// Every RPC of %s.' % ' and '.join('`%s.%s`' % (self.model.package, s['name']) for s in self.model.services))
        out.append('public enum %sMethods {' % self.tables)
        names = []
        seen = set()
        for svc in self.model.services:
            sfull = '%s.%s' % (self.model.package, svc['name'])
            out.append('    // %s' % sfull)
            for meth in svc['method']:
                if meth['client_streaming']:
                    fail('%s/%s: client streaming is not supported' % (sfull, meth['name']))
                req = self.model.messages[meth['input_type'].lstrip('.')]
                resp = self.model.messages[meth['output_type'].lstrip('.')]
                sname = lower_camel(meth['name'])
                if sname in seen or sname == 'all':
                    fail('RPC name %s clashes' % sname)
                seen.add(sname)
                names.append(sname)
                stream = 'true' if meth['server_streaming'] else 'false'
                out.append('    public static let %s = CRIMethod<%s, %s>(' % (esc(sname), req.swift, resp.swift))
                out.append('        service: "%s", method: "%s", isServerStreaming: %s)' % (sfull, meth['name'], stream))
        out.append('')
        out.append('    public static let all: [(descriptor: MethodDescriptor, isServerStreaming: Bool)] = [')
        for n in names:
            out.append('        (%s.descriptor, %s.isServerStreaming),' % (esc(n), esc(n)))
        out.append('    ]')
        out.append('}')
        out.append('')
        out.append('/// Every message type of the schema (map entries excluded).')
        out.append('public enum %sMessageTypes {' % self.tables)
        out.append('    public static let all: [any CRIMessage.Type] = [')
        for m in self.messages:
            out.append('        %s.self,' % m.swift)
        out.append('    ]')
        out.append('}')
        return '\n'.join(out) + '\n'


def main():
    args = sys.argv[1:]
    options = {'--namespace': '', '--source': 'proto/runtime/v1/api.proto'}
    positional = []
    while args:
        a = args.pop(0)
        if a in options and args:
            options[a] = args.pop(0)
        elif a.startswith('-'):
            fail('unknown option %s' % a)
        else:
            positional.append(a)
    if len(positional) != 3:
        fail('usage: gen-cri-swift.py DESCRIPTOR_SET PROTOC_C_HEADER OUT_DIR [--namespace NAME] [--source PATH]')
    namespace = options['--namespace']
    if namespace and not re.match(r'^[A-Z][A-Za-z0-9]*$', namespace):
        fail('--namespace must be a Swift type name, got %r' % namespace)
    with open(positional[0], 'rb') as fh:
        fds = decode(fh.read(), FILE_SET)
    with open(positional[1]) as fh:
        header = fh.read()
    gen = Gen(Model(fds, namespace), CNames(header), options['--source'])
    outdir = positional[2]
    os.makedirs(outdir, exist_ok=True)
    files = {
        'Types.swift': gen.types_file(),
        'Bridge.swift': gen.bridge_file(),
        'JSON.swift': gen.json_file(),
        'Methods.swift': gen.methods_file(),
    }
    for name, text in sorted(files.items()):
        with open(os.path.join(outdir, namespace + name), 'w') as fh:
            fh.write(text)


if __name__ == '__main__':
    main()
