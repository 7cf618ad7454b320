import CCryptoBoringSSL

/// AES-256-GCM-SIV (RFC 8452) under a key used once: the ratchet's message AEAD.
///
/// `AES.GCM._SIV` builds a `SymmetricKey`, a `Data` sealed box (nonce, ciphertext and tag joined,
/// then split again) and a `Data` result around each call; a received message's decryption spent
/// more time in those copies than in opening it (BENCHMARKS.md, session 15). This type calls the
/// AEAD that `AES.GCM._SIV` calls, BoringSSL's `EVP_aead_aes_256_gcm_siv`, with a
/// context on the stack and `[UInt8]` in and out, so the bytes are exactly `AES.GCM._SIV`'s
/// (`AESGCMSIVTests` compares both at many lengths and checks RFC 8452's vectors). swift-crypto
/// builds BoringSSL on every platform (its `CryptoExtras`, which provides `AES.GCM._SIV`, depends
/// on it), so there is no other path.
public enum AESGCMSIV {
    /// The key length: AES-256.
    public static let keyBytes = 32
    /// The nonce length.
    public static let nonceBytes = 12
    /// The tag length.
    public static let tagBytes = 16

    /// Encrypts `plaintext` under `key` (32 bytes) and `nonce` (12 bytes), authenticating
    /// `associatedData`: the ciphertext followed by the 16-byte tag.
    public static func seal(
        _ plaintext: [UInt8], key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        authenticating associatedData: [UInt8]
    ) -> [UInt8] {
        precondition(key.count == keyBytes, "an AES-256-GCM-SIV key is 32 bytes")
        precondition(nonce.count == nonceBytes, "an AES-GCM-SIV nonce is 12 bytes")
        let count = plaintext.count + tagBytes
        return [UInt8](unsafeUninitializedCapacity: count) { output, initialized in
            withContext(key: key) { context in
                plaintext.withUnsafeBufferPointer { plaintext in
                    associatedData.withUnsafeBufferPointer { associatedData in
                        var written = 0
                        let sealed = CCryptoBoringSSL_EVP_AEAD_CTX_seal(
                            context, output.baseAddress, &written, count, bytes(nonce), nonce.count,
                            plaintext.baseAddress, plaintext.count, associatedData.baseAddress, associatedData.count)
                        // Sealing fails only for a wrong nonce or output length, both checked: a
                        // failure is a bug.
                        precondition(sealed == 1 && written == count, "AES-GCM-SIV sealing failed")
                    }
                }
            }
            initialized = count
        }
    }

    /// Decrypts `message` (ciphertext ‖ 16-byte tag) sealed under `key` and `nonce`, checking the
    /// tag against `associatedData` first.
    /// - Throws: ``AESGCMContextError/authenticationFailure`` when the tag does not verify or
    ///   the message is shorter than a tag.
    public static func open(
        _ message: [UInt8], key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        authenticating associatedData: [UInt8]
    ) throws(AESGCMContextError) -> [UInt8] {
        precondition(key.count == keyBytes, "an AES-256-GCM-SIV key is 32 bytes")
        guard nonce.count == nonceBytes, message.count >= tagBytes else { throw .authenticationFailure }
        let count = message.count - tagBytes
        var opened = false
        let plaintext = [UInt8](unsafeUninitializedCapacity: count) { output, initialized in
            withContext(key: key) { context in
                message.withUnsafeBufferPointer { message in
                    associatedData.withUnsafeBufferPointer { associatedData in
                        var written = 0
                        opened =
                            CCryptoBoringSSL_EVP_AEAD_CTX_open(
                                context, output.baseAddress, &written, count, bytes(nonce), nonce.count,
                                message.baseAddress, message.count, associatedData.baseAddress, associatedData.count)
                            == 1 && written == count
                    }
                }
            }
            // GCM-SIV decrypts before it can verify the tag; BoringSSL wipes the output when the
            // tag does not verify, and it is zeroed here as well (nothing unauthenticated or
            // uninitialized is ever returned).
            if !opened { output.initialize(repeating: 0) }
            initialized = count
        }
        guard opened else {
            CCryptoBoringSSL_ERR_clear_error()
            throw .authenticationFailure
        }
        return plaintext
    }

    private static func bytes(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8>? {
        buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }

    /// Runs `body` with BoringSSL's AES-256-GCM-SIV prepared for `key`, in memory that does not
    /// move while it is used (the prepared state is aligned within it by address).
    private static func withContext<R>(
        key: UnsafeRawBufferPointer, _ body: (UnsafeMutablePointer<EVP_AEAD_CTX>) -> R
    ) -> R {
        withUnsafeTemporaryAllocation(of: EVP_AEAD_CTX.self, capacity: 1) { buffer in
            let context = buffer.baseAddress!
            CCryptoBoringSSL_EVP_AEAD_CTX_zero(context)
            let prepared = CCryptoBoringSSL_EVP_AEAD_CTX_init(
                context, CCryptoBoringSSL_EVP_aead_aes_256_gcm_siv(), bytes(key),
                key.count, tagBytes, nil)
            // BoringSSL refuses a context only for a key of the wrong length, checked by the callers.
            precondition(prepared == 1, "AES-256-GCM-SIV refused a 32-byte key")
            defer {
                CCryptoBoringSSL_EVP_AEAD_CTX_cleanup(context)
                // The expanded message key: GCM-SIV's cleanup leaves it in place.
                CCryptoBoringSSL_OPENSSL_cleanse(context, MemoryLayout<EVP_AEAD_CTX>.size)
            }
            return body(context)
        }
    }
}
