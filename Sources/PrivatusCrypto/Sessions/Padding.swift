/// Pads plaintexts to a few sizes before encryption, so a ciphertext's length says little about
/// its message (docs/PROTOCOL.md, "Padding").
///
/// The plaintext is followed by one `0x80` byte and then zero bytes up to the bucket: 160 bytes,
/// then powers of two up to 64 KiB, then multiples of 64 KiB. Removal strips the zeros and the
/// `0x80`, so any plaintext (trailing zeros and `0x80` bytes included) comes back exactly.
public enum Padding {
    /// The smallest bucket: a typical short chat message fits.
    public static let smallestBucket = 160
    /// Above this, sizes grow in steps of this much.
    public static let largestPowerOfTwoBucket = 64 * 1024
    /// The largest plaintext accepted (1 MiB); larger payloads are files, sent in chunks.
    public static let maximumPlaintext = 1024 * 1024

    /// The padded size of a plaintext of `count` bytes.
    public static func bucket(for count: Int) -> Int {
        let needed = count + 1
        if needed <= smallestBucket { return smallestBucket }
        if needed <= largestPowerOfTwoBucket {
            var size = 256
            while size < needed { size *= 2 }
            return size
        }
        return (needed + largestPowerOfTwoBucket - 1) / largestPowerOfTwoBucket * largestPowerOfTwoBucket
    }

    /// Pads `plaintext` to its bucket.
    /// - Throws: ``SessionError/plaintextTooLarge`` above ``maximumPlaintext``.
    public static func pad(_ plaintext: some Collection<UInt8>) throws(SessionError) -> [UInt8] {
        guard plaintext.count <= maximumPlaintext else { throw .plaintextTooLarge }
        var padded = [UInt8]()
        padded.reserveCapacity(bucket(for: plaintext.count))
        padded.append(contentsOf: plaintext)
        padded.append(0x80)
        padded.append(contentsOf: repeatElement(0, count: bucket(for: plaintext.count) - padded.count))
        return padded
    }

    /// Removes the padding.
    /// - Throws: ``SessionError/badPadding`` when no `0x80` marker ends the content.
    public static func unpad(_ padded: [UInt8]) throws(SessionError) -> [UInt8] {
        guard let marker = padded.lastIndex(where: { $0 != 0 }), padded[marker] == 0x80 else {
            throw .badPadding
        }
        return Array(padded[..<marker])
    }
}
