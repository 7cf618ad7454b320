import Foundation

/// The two cipher states of an established Noise session: one sends, one receives.
///
/// Each transport message is AES-256-GCM with empty associated data under the direction's key
/// and its message counter as nonce, so messages must be decrypted in the order they were
/// encrypted: a reordered, replayed, dropped or altered message fails with
/// ``NoiseError/decryptionFailed`` and changes nothing.
///
/// Every ``rekeyInterval`` messages (default 2^20) each direction replaces its key with
/// `REKEY(k)` (Noise revision 34, §4.2 and §11.3): the sender after encrypting, the receiver after
/// decrypting that many messages, so both sides stay in step without a signal. The nonce keeps
/// counting across rekeys.
///
/// The type is not copyable: a copy of a cipher state would encrypt under nonces already used.
public struct NoiseTransport: ~Copyable, Sendable {
    /// The default number of messages per direction between two rekeys.
    public static let defaultRekeyInterval: UInt64 = 1 << 20
    /// The largest transport message, tag included (§3).
    public static let maximumMessageLength = NoiseHandshakeState.maximumMessageLength
    /// The AES-GCM tag length.
    public static let tagLength = NoiseCipherState.tagLength
    /// The largest plaintext one message carries: 65,535 − 16 bytes.
    public static let maximumPlaintextLength = maximumMessageLength - tagLength

    /// The number of messages per direction between two rekeys.
    public let rekeyInterval: UInt64
    var sendCipher: NoiseCipherState
    var receiveCipher: NoiseCipherState

    private static let emptyAssociatedData = Data()

    init(send: NoiseCipherState, receive: NoiseCipherState, rekeyInterval: UInt64) {
        precondition(rekeyInterval > 0, "the rekey interval is at least one message")
        self.sendCipher = send
        self.receiveCipher = receive
        self.rekeyInterval = rekeyInterval
    }

    /// The number of messages encrypted so far.
    public var messagesSent: UInt64 { sendCipher.nonce }

    /// The number of messages decrypted so far.
    public var messagesReceived: UInt64 { receiveCipher.nonce }

    /// Encrypts the next message: ciphertext ‖ 16-byte tag.
    /// - Throws: ``NoiseError/messageTooLarge`` for more than ``maximumPlaintextLength`` bytes;
    ///   ``NoiseError/nonceExhausted`` after 2^64 − 1 messages.
    public mutating func encrypt(_ plaintext: some DataProtocol) throws(NoiseError) -> Data {
        var (ciphertext, tag) = try seal(plaintext)
        ciphertext.append(tag)
        return ciphertext
    }

    /// Encrypts the next message, as ``encrypt(_:)``, returning the ciphertext and the 16-byte tag
    /// in two buffers: the message is `ciphertext ‖ tag`.
    mutating func seal(_ plaintext: some DataProtocol) throws(NoiseError) -> (ciphertext: Data, tag: Data) {
        guard plaintext.count <= Self.maximumPlaintextLength else { throw .messageTooLarge }
        let sealed = try sendCipher.seal(associatedData: Self.emptyAssociatedData, plaintext: plaintext)
        if sendCipher.nonce % rekeyInterval == 0 { sendCipher.rekey() }
        return sealed
    }

    /// Encrypts the next message into `output`, which is exactly `plaintext.count + 16` bytes
    /// (`ciphertext ‖ tag`) and may start where `plaintext` does: a link seals a frame straight
    /// into the buffer written to the socket.
    /// - Throws: as ``encrypt(_:)``; nothing is written then.
    mutating func seal(
        _ plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(NoiseError) {
        guard plaintext.count <= Self.maximumPlaintextLength else { throw .messageTooLarge }
        try sendCipher.seal(plaintext, into: output)
        if sendCipher.nonce % rekeyInterval == 0 { sendCipher.rekey() }
    }

    /// Decrypts the next message from the peer into `output` (exactly `message.count − 16`
    /// bytes): the plaintext's length is returned. The same checks and outcome as
    /// ``decrypt(_:)``.
    mutating func open(
        _ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(NoiseError) -> Int {
        guard message.count <= Self.maximumMessageLength else { throw .messageTooLarge }
        let length = try receiveCipher.open(message, into: output)
        if receiveCipher.nonce % rekeyInterval == 0 { receiveCipher.rekey() }
        return length
    }

    /// Decrypts the next message from the peer.
    /// - Throws: ``NoiseError/messageTooLarge`` for more than 65,535 bytes (checked first);
    ///   ``NoiseError/malformedMessage`` for fewer than 16; ``NoiseError/decryptionFailed`` when it
    ///   is not the next message under this session's keys; ``NoiseError/nonceExhausted``. A failure
    ///   changes nothing.
    public mutating func decrypt(_ message: some DataProtocol) throws(NoiseError) -> Data {
        guard message.count <= Self.maximumMessageLength else { throw .messageTooLarge }
        let plaintext = try receiveCipher.decrypt(associatedData: Self.emptyAssociatedData, ciphertext: message)
        if receiveCipher.nonce % rekeyInterval == 0 { receiveCipher.rekey() }
        return plaintext
    }

}
