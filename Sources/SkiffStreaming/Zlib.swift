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
        var output: [UInt8] = []
        let rc = ZlibPump.run(stream, input, step: { deflate($0, Z_SYNC_FLUSH) }) { rc, produced, chunkSize -> Int32? in
            // Z_BUF_ERROR only means "no progress possible": all input consumed and flushed.
            guard rc == Z_OK || rc == Z_BUF_ERROR else { return rc }
            output += produced
            return produced.count < chunkSize ? Z_OK : nil
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
        var output: [UInt8] = []
        let dictionary = dictionary
        let failure = ZlibPump.run(stream, input, step: { inflate($0, Z_SYNC_FLUSH) }) { rc, produced, chunkSize -> ZlibError?? in
            output += produced
            if output.count > limit {
                return .some(ZlibError(step: "inflate", code: Z_DATA_ERROR, message: "output exceeds \(limit) bytes"))
            }
            switch rc {
            case Z_NEED_DICT:
                guard var dict = dictionary else {
                    return .some(ZlibError(step: "inflate", code: rc, message: "stream needs a dictionary and none was given"))
                }
                let set = dict.withUnsafeMutableBufferPointer { inflateSetDictionary(stream, $0.baseAddress, uInt($0.count)) }
                if set != Z_OK {
                    return .some(ZlibError(step: "inflateSetDictionary", code: set, message: "dictionary does not match the stream's"))
                }
                return nil
            case Z_OK:
                return stream.pointee.avail_in == 0 && produced.count < chunkSize ? .some(nil) : nil
            case Z_BUF_ERROR, Z_STREAM_END:
                // Z_BUF_ERROR: no progress, the input is used up (a block may continue in the next call).
                return .some(nil)
            default:
                return .some(ZlibError(step: "inflate", code: rc, message: ZlibDeflater.message(stream, rc)))
            }
        }
        if let failure { throw failure }
        return output
    }
}

/// The loop both directions share: `input` goes in, `step` (deflate or inflate) writes into a 4 KiB chunk
/// at a time, and `next` sees each step's code and output and returns nil to go on, or the outcome.
enum ZlibPump {
    static let chunkSize = 4096

    static func run<Outcome>(
        _ stream: UnsafeMutablePointer<z_stream>, _ input: [UInt8],
        step: (UnsafeMutablePointer<z_stream>) -> Int32,
        next: (_ rc: Int32, _ produced: ArraySlice<UInt8>, _ chunkSize: Int) -> Outcome?
    ) -> Outcome {
        var source = input
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        return source.withUnsafeMutableBufferPointer { src in
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
                    let rc = step(stream)
                    let produced = out.count - Int(stream.pointee.avail_out)
                    stream.pointee.next_out = nil
                    stream.pointee.avail_out = 0
                    return (rc, produced)
                }
                if let outcome = next(rc, chunk[0..<produced], chunkSize) { return outcome }
            }
        }
    }
}
