import CZlib

/// A zlib failure: the step and zlib's own code and message.
public struct ZlibError: Error, CustomStringConvertible, Equatable {
    public let step: String
    public let code: Int32
    public let message: String

    public var description: String { "zlib \(step): \(message) (code \(code))" }
}

/// One compression context (SPDY/3 keeps one per direction for the whole connection): every call
/// compresses its input and ends with a sync flush, so the output is a complete unit the peer can
/// inflate at once, while the LZ77 window carries over to the next call.
public final class ZlibDeflater {
    private let stream: UnsafeMutablePointer<z_stream>

    public init(dictionary: [UInt8]? = nil, level: Int32 = Z_DEFAULT_COMPRESSION) throws(ZlibError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = czlib_deflate_init(stream, level)
        guard rc == Z_OK else {
            stream.deallocate()
            throw ZlibError(step: "deflateInit", code: rc, message: "cannot initialise")
        }
        if let dictionary {
            var dict = dictionary
            let rc = dict.withUnsafeMutableBufferPointer { deflateSetDictionary(stream, $0.baseAddress, uInt($0.count)) }
            guard rc == Z_OK else {
                deflateEnd(stream)
                stream.deallocate()
                throw ZlibError(step: "deflateSetDictionary", code: rc, message: "rejected the dictionary")
            }
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// Compresses `input` and sync-flushes (Z_SYNC_FLUSH).
    public func compress(_ input: [UInt8]) throws(ZlibError) -> [UInt8] {
        var source = input
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let rc: Int32 = source.withUnsafeMutableBufferPointer { src in
            stream.pointee.next_in = src.baseAddress
            stream.pointee.avail_in = uInt(src.count)
            defer {
                stream.pointee.next_in = nil
                stream.pointee.avail_in = 0
            }
            while true {
                let (rc, produced) = chunk.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = uInt(out.count)
                    let rc = deflate(stream, Z_SYNC_FLUSH)
                    let produced = out.count - Int(stream.pointee.avail_out)
                    stream.pointee.next_out = nil
                    stream.pointee.avail_out = 0
                    return (rc, produced)
                }
                // Z_BUF_ERROR only means "no progress possible": all input consumed and flushed.
                guard rc == Z_OK || rc == Z_BUF_ERROR else { return rc }
                output += chunk[0..<produced]
                if produced < chunk.count { return Z_OK }
            }
        }
        guard rc == Z_OK else { throw ZlibError(step: "deflate", code: rc, message: Self.message(stream, rc)) }
        return output
    }

    static func message(_ stream: UnsafeMutablePointer<z_stream>, _ rc: Int32) -> String {
        if let msg = stream.pointee.msg { return String(cString: msg) }
        return rc == Z_STREAM_ERROR ? "inconsistent stream state" : "error"
    }
}

/// The inflating side: a zlib stream spread over many calls. When the stream asks for a preset
/// dictionary (Z_NEED_DICT), the one given at init is supplied.
public final class ZlibInflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let dictionary: [UInt8]?

    public init(dictionary: [UInt8]? = nil) throws(ZlibError) {
        self.dictionary = dictionary
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = czlib_inflate_init(stream)
        guard rc == Z_OK else {
            stream.deallocate()
            throw ZlibError(step: "inflateInit", code: rc, message: "cannot initialise")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Inflates everything `input` completes; fails past `limit` output bytes (a decompression bomb).
    public func decompress(_ input: [UInt8], limit: Int = 1 << 20) throws(ZlibError) -> [UInt8] {
        var source = input
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var failure: ZlibError?
        source.withUnsafeMutableBufferPointer { src in
            stream.pointee.next_in = src.baseAddress
            stream.pointee.avail_in = uInt(src.count)
            defer {
                stream.pointee.next_in = nil
                stream.pointee.avail_in = 0
            }
            while true {
                let (rc, produced) = chunk.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = uInt(out.count)
                    let rc = inflate(stream, Z_SYNC_FLUSH)
                    let produced = out.count - Int(stream.pointee.avail_out)
                    stream.pointee.next_out = nil
                    stream.pointee.avail_out = 0
                    return (rc, produced)
                }
                output += chunk[0..<produced]
                if output.count > limit {
                    failure = ZlibError(step: "inflate", code: Z_DATA_ERROR, message: "output exceeds \(limit) bytes")
                    return
                }
                switch rc {
                case Z_NEED_DICT:
                    guard var dict = dictionary else {
                        failure = ZlibError(step: "inflate", code: rc, message: "stream needs a dictionary and none was given")
                        return
                    }
                    let set = dict.withUnsafeMutableBufferPointer { inflateSetDictionary(stream, $0.baseAddress, uInt($0.count)) }
                    if set != Z_OK {
                        failure = ZlibError(step: "inflateSetDictionary", code: set, message: "dictionary does not match the stream's")
                        return
                    }
                case Z_OK:
                    if stream.pointee.avail_in == 0 && produced < chunk.count { return }
                case Z_BUF_ERROR:
                    // No progress: input used up (a block may continue in the next call).
                    return
                case Z_STREAM_END:
                    return
                default:
                    failure = ZlibError(step: "inflate", code: rc, message: ZlibDeflater.message(stream, rc))
                    return
                }
            }
        }
        if let failure { throw failure }
        return output
    }
}
