import Crypto
import Foundation

#if canImport(CCryptoBoringSSL)
import CCryptoBoringSSL
#endif

/// An AES-256-GCM key prepared once for many seals and opens.
///
/// `AES.GCM.seal` and `AES.GCM.open` prepare the key on every call: on Linux swift-crypto builds
/// a BoringSSL `EVP_AEAD_CTX` (the AES key schedule and the GHASH tables) for each message and
/// throws it away after. For a 64-byte link frame that preparation is most of the cost
/// (BENCHMARKS.md, "Where a round trip's extra ≈ 70 µs goes"). This type keeps one prepared
/// `EVP_AEAD_CTX` of BoringSSL's AES-256-GCM (`EVP_aead_aes_256_gcm`, the AEAD that `AES.GCM`
/// itself seals and opens through on Linux) for as long as its key is in use, so the bytes are
/// exactly those of `AES.GCM` (`AESGCMContextTests` compares both at every length, and the
/// Noise vectors and the GCM specification's vectors run through it).
///
/// Besides the `Data` forms it seals into and opens within memory the caller owns
/// (``seal(_:nonce:authenticating:into:)``, ``open(_:nonce:authenticating:into:)``): a link
/// seals a frame straight into the buffer written to the socket, where `AES.GCM` would return a
/// fresh buffer to copy from (BENCHMARKS.md, "Sealed where it lies").
///
/// Where swift-crypto does not build BoringSSL (Apple platforms, where it uses CryptoKit) the
/// type falls back to `AES.GCM` with the key, copying.
///
/// Thread safety: BoringSSL's seal and open read the context and never change it (they take a
/// `const EVP_AEAD_CTX *` and may be called concurrently), so one context may be used from
/// several threads at once.
public final class AESGCMContext: @unchecked Sendable {
    /// The key length: AES-256.
    public static let keyBytes = 32
    /// The nonce length.
    public static let nonceBytes = 12
    /// The tag length.
    public static let tagBytes = 16

    #if canImport(CCryptoBoringSSL)
    /// The prepared context; allocated here so that its address never changes.
    private let context: UnsafeMutablePointer<EVP_AEAD_CTX>
    #else
    private let key: SymmetricKey
    #endif

    /// Prepares `key`, which must be 32 bytes.
    public init(key: SymmetricKey) {
        precondition(key.bitCount == Self.keyBytes * 8, "an AES-256-GCM key is 32 bytes")
        #if canImport(CCryptoBoringSSL)
        context = .allocate(capacity: 1)
        let prepared = key.withUnsafeBytes { raw in
            CCryptoBoringSSL_EVP_AEAD_CTX_init(
                context, CCryptoBoringSSL_EVP_aead_aes_256_gcm(), raw.baseAddress?.assumingMemoryBound(to: UInt8.self),
                raw.count, Self.tagBytes, nil)
        }
        // BoringSSL refuses a context only for a key of the wrong length, checked above.
        precondition(prepared == 1, "AES-256-GCM refused a 32-byte key")
        #else
        self.key = key
        #endif
    }

    #if canImport(CCryptoBoringSSL)
    deinit {
        CCryptoBoringSSL_EVP_AEAD_CTX_cleanup(context)
        context.deallocate()
    }
    #endif

    /// Encrypts `plaintext` under `nonce` (12 bytes), authenticating `associatedData`, into
    /// `output`: the ciphertext (as long as the plaintext) followed by the 16-byte tag, so
    /// `output` is exactly `plaintext.count + 16` bytes. `output` may start where `plaintext`
    /// starts (sealed in place) but not overlap it otherwise.
    public func seal(
        _ plaintext: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        authenticating associatedData: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) {
        precondition(nonce.count == Self.nonceBytes, "an AES-GCM nonce is 12 bytes")
        precondition(output.count == plaintext.count + Self.tagBytes, "the output is the plaintext and the tag")
        Self.checkAliasing(plaintext, output)
        #if canImport(CCryptoBoringSSL)
        var written = 0
        let sealed = CCryptoBoringSSL_EVP_AEAD_CTX_seal(
            context, Self.bytes(output), &written, output.count, Self.bytes(nonce), nonce.count,
            Self.bytes(plaintext), plaintext.count, Self.bytes(associatedData), associatedData.count)
        // Sealing fails only for a bad nonce or output length, both checked: a failure is a bug.
        precondition(sealed == 1 && written == output.count, "AES-GCM sealing failed")
        #else
        do {
            let box = try AES.GCM.seal(
                Data(plaintext), using: key, nonce: try AES.GCM.Nonce(data: nonce),
                authenticating: Data(associatedData))
            box.ciphertext.copyBytes(to: output)
            box.tag.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: output[plaintext.count...]))
        } catch {
            preconditionFailure("AES-GCM sealing failed")
        }
        #endif
    }

    /// Decrypts `message` (`ciphertext ‖ 16-byte tag`, sealed under `nonce`) into `output`,
    /// checking the tag against `associatedData` first; returns the plaintext's length
    /// (`message.count − 16`). `output` is exactly that long, and may start where `message`
    /// starts (opened in place) but not overlap it otherwise. When the tag does not verify,
    /// BoringSSL zeroes `output` and nothing is returned.
    /// - Throws: ``AESGCMContextError/authenticationFailure``, also for a message shorter than the
    ///   tag or a nonce that is not 12 bytes.
    public func open(
        _ message: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        authenticating associatedData: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(AESGCMContextError) -> Int {
        guard nonce.count == Self.nonceBytes, message.count >= Self.tagBytes else { throw .authenticationFailure }
        precondition(output.count == message.count - Self.tagBytes, "the output is the ciphertext's length")
        Self.checkAliasing(message, output)
        #if canImport(CCryptoBoringSSL)
        var written = 0
        let opened = CCryptoBoringSSL_EVP_AEAD_CTX_open(
            context, Self.bytes(output), &written, output.count, Self.bytes(nonce), nonce.count,
            Self.bytes(message), message.count, Self.bytes(associatedData), associatedData.count)
        guard opened == 1, written == output.count else {
            // BoringSSL leaves an error on its thread's queue; nothing reads it.
            CCryptoBoringSSL_ERR_clear_error()
            throw .authenticationFailure
        }
        return written
        #else
        let split = message.count - Self.tagBytes
        do {
            let box = try AES.GCM.SealedBox(
                nonce: try AES.GCM.Nonce(data: nonce), ciphertext: Data(message[..<split]),
                tag: Data(message[split...]))
            let plaintext = try AES.GCM.open(box, using: key, authenticating: Data(associatedData))
            plaintext.copyBytes(to: output)
            return plaintext.count
        } catch {
            throw .authenticationFailure
        }
        #endif
    }

    /// Encrypts `plaintext` under `nonce` (12 bytes) and authenticates it with `associatedData`:
    /// the ciphertext (as long as the plaintext) and the 16-byte tag, in two buffers.
    public func seal(
        _ plaintext: some DataProtocol, nonce: UnsafeRawBufferPointer, authenticating associatedData: some DataProtocol
    ) -> (ciphertext: Data, tag: Data) {
        var sealed = Data(count: plaintext.count + Self.tagBytes)
        Self.withContiguous(plaintext) { plaintext in
            Self.withContiguous(associatedData) { associatedData in
                sealed.withUnsafeMutableBytes { output in
                    seal(plaintext, nonce: nonce, authenticating: associatedData, into: output)
                }
            }
        }
        let tag = sealed.suffix(Self.tagBytes)
        sealed.removeLast(Self.tagBytes)
        return (sealed, Data(tag))
    }

    /// Seals `plaintext` under a fresh random nonce (``SecureRandom``): `nonce (12) ‖ ciphertext ‖
    /// tag (16)`, the layout of swift-crypto's `AES.GCM.SealedBox.combined`, sealed straight into
    /// the one buffer returned.
    public func sealCombined(_ plaintext: some DataProtocol, authenticating associatedData: some DataProtocol) -> Data {
        Self.withContiguous(plaintext) { plaintext in
            Self.withContiguous(associatedData) { associatedData in
                sealCombined(plaintext, authenticating: associatedData)
            }
        }
    }

    /// ``sealCombined(_:authenticating:)`` for arrays: no generic code between the store's
    /// values and the cipher.
    public func sealCombined(_ plaintext: [UInt8], authenticating associatedData: [UInt8]) -> Data {
        plaintext.withUnsafeBytes { plaintext in
            associatedData.withUnsafeBytes { associatedData in
                sealCombined(plaintext, authenticating: associatedData)
            }
        }
    }

    private func sealCombined(
        _ plaintext: UnsafeRawBufferPointer, authenticating associatedData: UnsafeRawBufferPointer
    ) -> Data {
        var combined = Data(count: Self.nonceBytes + plaintext.count + Self.tagBytes)
        combined.withUnsafeMutableBytes { output in
            let nonce = UnsafeMutableRawBufferPointer(rebasing: output[..<Self.nonceBytes])
            SecureRandom.fill(nonce)
            seal(
                plaintext, nonce: UnsafeRawBufferPointer(nonce), authenticating: associatedData,
                into: UnsafeMutableRawBufferPointer(rebasing: output[Self.nonceBytes...]))
        }
        return combined
    }

    /// Opens `nonce (12) ‖ ciphertext ‖ tag (16)` (``sealCombined(_:authenticating:)``'s layout)
    /// into an array, in one pass over the bytes where they are.
    /// - Throws: ``AESGCMContextError/authenticationFailure``, also for fewer than 28 bytes.
    public func openCombined(
        _ combined: Data, authenticating associatedData: [UInt8]
    ) throws(AESGCMContextError)
        -> [UInt8]
    {
        let count = combined.count - Self.nonceBytes - Self.tagBytes
        guard count >= 0 else { throw .authenticationFailure }
        var opened = true
        let plaintext = combined.withUnsafeBytes { raw in
            associatedData.withUnsafeBytes { associatedData in
                [UInt8](unsafeUninitializedCapacity: count) { output, initialized in
                    do {
                        _ = try open(
                            UnsafeRawBufferPointer(rebasing: raw[Self.nonceBytes...]),
                            nonce: UnsafeRawBufferPointer(rebasing: raw[..<Self.nonceBytes]),
                            authenticating: associatedData, into: UnsafeMutableRawBufferPointer(output))
                    } catch {
                        opened = false
                        output.initialize(repeating: 0)
                    }
                    initialized = count
                }
            }
        }
        guard opened else { throw .authenticationFailure }
        return plaintext
    }

    /// Decrypts `ciphertext` sealed under `nonce` with `tag`, checking the tag against
    /// `associatedData` first. The ciphertext and tag are read in place (not copied).
    /// - Throws: ``AESGCMContextError/authenticationFailure`` when the tag does not verify (any
    ///   changed byte, another key, nonce or associated data), or the nonce or tag has the wrong
    ///   length.
    public func open(
        ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        authenticating associatedData: some DataProtocol
    ) throws(AESGCMContextError) -> Data {
        guard nonce.count == Self.nonceBytes, tag.count == Self.tagBytes else { throw .authenticationFailure }
        // BoringSSL opens `ciphertext ‖ tag` from one buffer: joined unless they are adjacent.
        let adjacent = ciphertext.count > 0 && ciphertext.baseAddress! + ciphertext.count == tag.baseAddress
        var plaintext = Data(count: ciphertext.count)
        let opened: Result<Int, AESGCMContextError> = Self.withContiguous(associatedData) { associatedData in
            plaintext.withUnsafeMutableBytes { output in
                func open(_ message: UnsafeRawBufferPointer) -> Result<Int, AESGCMContextError> {
                    Result { () throws(AESGCMContextError) in
                        try self.open(message, nonce: nonce, authenticating: associatedData, into: output)
                    }
                }
                if adjacent {
                    return open(
                        UnsafeRawBufferPointer(start: ciphertext.baseAddress, count: ciphertext.count + tag.count))
                }
                return (Array(ciphertext) + Array(tag)).withUnsafeBytes(open)
            }
        }
        _ = try opened.get()
        return plaintext
    }

    /// Opens `nonce (12) ‖ ciphertext ‖ tag (16)` (``sealCombined(_:authenticating:)``'s layout).
    /// - Throws: ``AESGCMContextError/authenticationFailure``, also for fewer than 28 bytes.
    public func open(
        combined: some ContiguousBytes, authenticating associatedData: some DataProtocol
    )
        throws(AESGCMContextError) -> Data
    {
        let opened: Result<Data, AESGCMContextError> = combined.withUnsafeBytes { raw in
            guard raw.count >= Self.nonceBytes + Self.tagBytes else { return .failure(.authenticationFailure) }
            let tagStart = raw.count - Self.tagBytes
            return Result { () throws(AESGCMContextError) in
                try open(
                    ciphertext: UnsafeRawBufferPointer(rebasing: raw[Self.nonceBytes..<tagStart]),
                    tag: UnsafeRawBufferPointer(rebasing: raw[tagStart...]),
                    nonce: UnsafeRawBufferPointer(rebasing: raw[..<Self.nonceBytes]),
                    authenticating: associatedData)
            }
        }
        return try opened.get()
    }

    /// The bytes of `data` as one contiguous buffer: in place when they are, copied once when
    /// not.
    private static func withContiguous<R>(_ data: some DataProtocol, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if data.regions.count <= 1, let region = data.regions.first {
            if let result = region.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
                return result
            }
        }
        if data.isEmpty { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return Array(data).withUnsafeBytes(body)
    }

    /// Input and output either start at the same byte (in place) or do not overlap: BoringSSL
    /// refuses anything else, and a bug here would otherwise corrupt the bytes.
    private static func checkAliasing(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer) {
        guard let start = input.baseAddress, let outputStart = output.baseAddress, input.count > 0, output.count > 0
        else { return }
        let inputEnd = start + input.count
        let outputEnd = UnsafeRawPointer(outputStart) + output.count
        precondition(
            UnsafeRawPointer(outputStart) == start || outputEnd <= start || inputEnd <= UnsafeRawPointer(outputStart),
            "AES-GCM input and output overlap without being in place")
    }

    #if canImport(CCryptoBoringSSL)
    /// The buffer's bytes as BoringSSL takes them (`nil` for none).
    private static func bytes(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8>? {
        buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }

    private static func bytes(_ buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<UInt8>? {
        buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }
    #endif
}

/// Why an AES-GCM open failed. Says nothing of the key or the bytes.
public enum AESGCMContextError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The tag does not verify.
    case authenticationFailure

    public var description: String {
        switch self {
        case .authenticationFailure: "the sealed bytes do not authenticate"
        }
    }
}
