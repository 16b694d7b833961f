#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CRIProtoC

// The bridge between Swift values and protobuf-c's C structs. Generated code (Generated/Bridge.swift)
// calls only these helpers and the per-message protobuf-c functions.

/// Owns every C allocation made while building one message for packing; frees them all at once.
///
/// A bump allocator over a few zeroed chunks: a ListContainers answer of 1000 items needs ~30 000
/// small allocations, and one malloc + free per string and struct was half of its encoding time.
/// Keep it alive (`withExtendedLifetime`) until the pack call returns: the C structs point into it.
final class CArena {
    private var chunks: [UnsafeMutableRawPointer] = []
    private var cursor: UnsafeMutableRawPointer?
    private var remaining = 0
    /// Size of the next chunk: small messages stay in one small chunk, big ones double up to the cap.
    private var nextChunk = 2048
    private static let maxChunk = 256 * 1024

    init() {}

    deinit {
        for chunk in chunks {
            free(chunk)
        }
    }

    /// `size` zeroed bytes aligned to `alignment` (a power of two).
    private func raw(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer {
        if let c = cursor {
            let pad = (alignment - Int(bitPattern: c) & (alignment - 1)) & (alignment - 1)
            if pad + size <= remaining {
                cursor = c + pad + size
                remaining -= pad + size
                return c + pad
            }
        }
        // Large requests get a chunk of their own; the current chunk stays in use.
        if size > Self.maxChunk / 4 { return own(calloc(1, size)) }
        while nextChunk < size + alignment { nextChunk *= 2 }
        let chunk = own(calloc(1, nextChunk))
        let start = chunk  // calloc memory is aligned for every type the C structs hold
        cursor = start + size
        remaining = nextChunk - size
        nextChunk = min(nextChunk * 2, Self.maxChunk)
        return start
    }

    private func own(_ p: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer {
        // Allocation failure is not recoverable here (same policy as Swift's own allocator).
        guard let p else { fatalError("CRI codec: out of memory") }
        chunks.append(p)
        return p
    }

    /// Zeroed storage for `count` values of `T`.
    func alloc<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let size = max(1, MemoryLayout<T>.stride * count)
        return raw(size, alignment: max(MemoryLayout<T>.alignment, 1)).bindMemory(to: T.self, capacity: count)
    }

    /// A NUL-terminated copy. protobuf-c strings are C strings: an embedded NUL ends the string.
    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        var s = s
        return s.withUTF8 { utf8 in
            let p = raw(utf8.count + 1, alignment: 1)  // zeroed: the NUL is already there
            if let base = utf8.baseAddress { p.copyMemory(from: base, byteCount: utf8.count) }
            return p.bindMemory(to: CChar.self, capacity: utf8.count + 1)
        }
    }

    func bytes(_ b: [UInt8]) -> ProtobufCBinaryData {
        let p = alloc(UInt8.self, count: b.count)
        b.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { p.update(from: base, count: b.count) }
        }
        return ProtobufCBinaryData(len: b.count, data: p)
    }

    /// A C array of plain values (numbers, enums, binary data).
    func array<T>(_ values: [T]) -> (Int, UnsafeMutablePointer<T>?) {
        let p = alloc(T.self, count: values.count)
        for (i, v) in values.enumerated() {
            (p + i).initialize(to: v)
        }
        return (values.count, p)
    }

    func strings(_ values: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        pointers(values) { string($0) }
    }

    /// A C array of pointers, each made by `make` (nested messages, map entries, strings).
    func pointers<S, T>(
        _ values: S, _ make: (S.Element) -> UnsafeMutablePointer<T>
    ) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) where S: Collection {
        let p = alloc(UnsafeMutablePointer<T>?.self, count: values.count)
        for (i, v) in values.enumerated() {
            (p + i).initialize(to: make(v))
        }
        return (values.count, p)
    }
}

// ---- decoding: copy out of the unpacked C message (freed by the caller right after)

@inline(__always)
func cString(_ p: UnsafePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(cString: p)
}

func cBytes(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard b.len > 0, let data = b.data else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: b.len))
}

func cArray<T>(_ n: Int, _ p: UnsafeMutablePointer<T>?) -> [T] {
    guard n > 0, let p else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

func cStrings(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
    cArray(n, p).map { cString($0) }
}

func cMessages<C, T>(
    _ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<C>?>?, _ make: (UnsafePointer<C>) -> T
) -> [T] {
    cArray(n, p).compactMap { $0.map { make(UnsafePointer($0)) } }
}

func cMap<C>(
    _ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<C>?>?,
    _ entry: (UnsafeMutablePointer<C>) -> (String, String)
) -> [String: String] {
    var out: [String: String] = [:]
    out.reserveCapacity(n)
    for e in cArray(n, p) {
        guard let e else { continue }
        let (k, v) = entry(e)
        out[k] = v  // a repeated key: the last one wins, as the protobuf spec says
    }
    return out
}

/// Unpacks `bytes` with a protobuf-c `__unpack` function, converts, and frees the C message.
func cDecode<C, T>(
    _ bytes: [UInt8], _ protoName: String,
    _ unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<C>?,
    _ freeUnpacked: (UnsafeMutablePointer<C>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void,
    _ make: (UnsafePointer<C>) -> T
) throws(CRICodecError) -> T {
    let msg = bytes.withUnsafeBufferPointer { buf -> UnsafeMutablePointer<C>? in
        if let base = buf.baseAddress {
            return unpack(nil, buf.count, base)
        }
        // protobuf-c wants a non-nil pointer even for an empty message.
        var zero: UInt8 = 0
        return withUnsafePointer(to: &zero) { unpack(nil, 0, $0) }
    }
    guard let msg else {
        throw CRICodecError(
            "malformed \(protoName): protobuf-c could not unpack \(bytes.count) bytes "
                + "(truncated, wrong wire type or bad length)")
    }
    defer { freeUnpacked(msg, nil) }
    return make(UnsafePointer(msg))
}

/// Packs a C message with protobuf-c's `__get_packed_size` and `__pack`.
func cEncode<C>(
    _ msg: UnsafeMutablePointer<C>,
    _ packedSize: (UnsafePointer<C>?) -> Int,
    _ pack: (UnsafePointer<C>?, UnsafeMutablePointer<UInt8>?) -> Int
) -> [UInt8] {
    let size = packedSize(msg)
    guard size > 0 else { return [] }
    return [UInt8](unsafeUninitializedCapacity: size) { buf, count in
        count = pack(msg, buf.baseAddress)
        precondition(count == size, "protobuf-c packed \(count) bytes, announced \(size)")
    }
}
