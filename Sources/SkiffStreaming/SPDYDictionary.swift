/// The preset zlib dictionary of SPDY/3 header blocks (draft 3, section 2.6.10.1): a list of words, each
/// preceded by its 32-bit big-endian length, then a run of plain text. Built from those two parts here
/// rather than spelt out byte by byte; `StreamingTests` pins its length and Adler-32 (the DICTID every
/// SPDY/3 peer puts in the zlib header of its first header block).
public enum SPDYDictionary {
    static let words = [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
        "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
        "content-base", "content-encoding", "content-language", "content-length", "content-location",
        "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
        "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
        "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
        "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
        "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
        "public", "set-cookie", "keep-alive", "origin",
    ]

    static let tail =
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        + "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
        + "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
        + "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
        + "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
        + "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
        + "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."

    public static let bytes: [UInt8] = {
        var out: [UInt8] = []
        for word in words {
            let n = UInt32(word.utf8.count)
            out += [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]
            out += Array(word.utf8)
        }
        return out + Array(tail.utf8)
    }()
}
