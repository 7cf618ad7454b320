import CompressNIO
import NIOCore
import PrivatusCrypto

/// Deflating file chunks (raw zlib, fastest level) for files whose media type says they are
/// text-like; never used for chat (docs/PROTOCOL.md, "Files").
enum ChunkCompression {
    static let algorithm = CompressionAlgorithm.deflate(
        configuration: ZlibConfiguration(compressionLevel: .fastestCompression))

    /// Media types worth trying: text and the structured text formats. Images, audio, video and
    /// archives are compressed already.
    static func isCompressible(_ mediaType: String) -> Bool {
        mediaType.hasPrefix("text/")
            || ["application/json", "application/xml", "image/svg+xml", "application/javascript"].contains(mediaType)
    }

    /// The chunk deflated, if that saves at least 1/16 of it; else nil (sent as it is).
    static func compress(_ chunk: [UInt8]) -> [UInt8]? {
        var input = ByteBuffer(bytes: chunk)
        guard let output = try? input.compress(with: algorithm), output.readableBytes <= chunk.count - chunk.count / 16
        else { return nil }
        return Array(output.readableBytesView)
    }

    /// Inflates a chunk that must come out exactly `length` bytes long (no more is ever
    /// produced: a chunk that would inflate further is refused).
    static func decompress(_ data: [UInt8], length: Int) throws -> [UInt8] {
        var input = ByteBuffer(bytes: data)
        // A byte to spare: zlib reports the end of the stream only with room left in the output.
        var output = ByteBufferAllocator().buffer(capacity: length + 1)
        do {
            try input.decompress(to: &output, with: algorithm)
        } catch {
            throw FileChunkError.malformed
        }
        guard output.readableBytes == length, input.readableBytes == 0 else { throw FileChunkError.malformed }
        return Array(output.readableBytesView)
    }
}
