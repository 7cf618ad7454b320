import Crypto
import Foundation

/// Noise's `HandshakeState` (revision 34, §5.3) for the XX pattern with 25519, AESGCM and SHA256:
/// the engine behind ``NoiseHandshake``.
///
/// ```
/// XX:
///   -> e
///   <- e, ee, s, es
///   -> s, se
/// ```
///
/// It is a plain value: the public wrapper runs each step on a copy and keeps the copy only when
/// the step succeeded.
struct NoiseHandshakeState: Sendable {
    /// The tokens of §7.1.
    enum Token: Sendable {
        case e, s, ee, es, se
    }

    /// The full protocol name (§8), which seeds `h`.
    static let protocolName = "Noise_XX_25519_AESGCM_SHA256"
    /// XX's message patterns (§7.5); even indices are written by the initiator.
    static let messagePatterns: [[Token]] = [[.e], [.e, .ee, .s, .es], [.s, .se]]
    /// `DHLEN` for 25519.
    static let dhLength = 32
    /// The largest Noise message (§3).
    static let maximumMessageLength = 65_535

    let role: NoiseHandshake.Role
    private(set) var symmetric: NoiseSymmetricState
    let localStatic: Curve25519.KeyAgreement.PrivateKey
    /// The ephemeral key this side will send; fixed only by test vectors.
    private var pendingEphemeral: Curve25519.KeyAgreement.PrivateKey?
    private var localEphemeral: Curve25519.KeyAgreement.PrivateKey?
    private(set) var remoteStatic: Curve25519.KeyAgreement.PublicKey?
    private var remoteEphemeral: Curve25519.KeyAgreement.PublicKey?
    /// The index of the next message pattern.
    private(set) var messageIndex = 0

    /// `Initialize(handshake_pattern, initiator, prologue, s, e)`: XX has no pre-messages, so
    /// after `MixHash(prologue)` nothing else is mixed in.
    init(
        role: NoiseHandshake.Role,
        prologue: some DataProtocol,
        staticKey: Curve25519.KeyAgreement.PrivateKey,
        ephemeralKey: Curve25519.KeyAgreement.PrivateKey?
    ) {
        self.role = role
        self.localStatic = staticKey
        self.pendingEphemeral = ephemeralKey
        self.symmetric = NoiseSymmetricState(protocolName: Self.protocolName)
        symmetric.mixHash(prologue)
    }

    /// Whether all three messages have been written or read.
    var isComplete: Bool { messageIndex == Self.messagePatterns.count }

    /// Whether the next message is this side's to write.
    var isMyTurn: Bool {
        !isComplete && (messageIndex % 2 == 0) == (role == .initiator)
    }

    /// `WriteMessage(payload, message_buffer)`.
    mutating func writeMessage(payload: some DataProtocol) throws(NoiseError) -> Data {
        guard isMyTurn else { throw .outOfTurn }
        guard payload.count <= Self.maximumMessageLength else { throw .messageTooLarge }
        var message = Data()
        for token in Self.messagePatterns[messageIndex] {
            switch token {
            case .e:
                let ephemeral = pendingEphemeral ?? Curve25519.KeyAgreement.PrivateKey()
                pendingEphemeral = nil
                localEphemeral = ephemeral
                let publicKey = ephemeral.publicKey.rawRepresentation
                message.append(publicKey)
                symmetric.mixHash(publicKey)
            case .s:
                message.append(try symmetric.encryptAndHash(localStatic.publicKey.rawRepresentation))
            case .ee, .es, .se:
                try mixDH(token)
            }
        }
        message.append(try symmetric.encryptAndHash(payload))
        guard message.count <= Self.maximumMessageLength else { throw .messageTooLarge }
        messageIndex += 1
        return message
    }

    /// `ReadMessage(message, payload_buffer)`: returns the decrypted payload.
    mutating func readMessage(_ message: some DataProtocol) throws(NoiseError) -> Data {
        guard !isComplete, !isMyTurn else { throw .outOfTurn }
        guard message.count <= Self.maximumMessageLength else { throw .messageTooLarge }
        let bytes = Data(message)
        var offset = bytes.startIndex
        func take(_ count: Int) throws(NoiseError) -> Data {
            guard bytes.endIndex - offset >= count else { throw .malformedMessage }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }
        for token in Self.messagePatterns[messageIndex] {
            switch token {
            case .e:
                let publicKey = try take(Self.dhLength)
                remoteEphemeral = try Self.publicKey(publicKey)
                symmetric.mixHash(publicKey)
            case .s:
                let length = Self.dhLength + (symmetric.cipher.hasKey ? NoiseCipherState.tagLength : 0)
                remoteStatic = try Self.publicKey(try symmetric.decryptAndHash(try take(length)))
            case .ee, .es, .se:
                try mixDH(token)
            }
        }
        let payload = try symmetric.decryptAndHash(bytes[offset...])
        messageIndex += 1
        return payload
    }

    /// `Split()`, once the handshake is complete: (sending, receiving) cipher states for this side.
    func split() -> (send: NoiseCipherState, receive: NoiseCipherState) {
        precondition(isComplete, "Split comes after the last handshake message")
        let (first, second) = symmetric.split()
        return role == .initiator ? (first, second) : (second, first)
    }

    /// `MixKey(DH(…))` for a DH token; which keys meet depends on the role (§5.3).
    private mutating func mixDH(_ token: Token) throws(NoiseError) {
        let local: Curve25519.KeyAgreement.PrivateKey?
        let remote: Curve25519.KeyAgreement.PublicKey?
        switch (token, role) {
        case (.ee, _): (local, remote) = (localEphemeral, remoteEphemeral)
        case (.es, .initiator): (local, remote) = (localEphemeral, remoteStatic)
        case (.es, .responder): (local, remote) = (localStatic, remoteEphemeral)
        case (.se, .initiator): (local, remote) = (localStatic, remoteEphemeral)
        case (.se, .responder): (local, remote) = (localEphemeral, remoteStatic)
        case (.e, _), (.s, _): preconditionFailure("not a DH token")
        }
        guard let local, let remote else { preconditionFailure("XX always has both keys of a DH token") }
        symmetric.mixKey(try Self.agree(local, remote))
    }

    /// X25519, refusing an all-zero result (a low-order public key), which §12.1 allows.
    static func agree(
        _ privateKey: Curve25519.KeyAgreement.PrivateKey, _ publicKey: Curve25519.KeyAgreement.PublicKey
    ) throws(NoiseError) -> SymmetricKey {
        let shared: SharedSecret
        do {
            shared = try privateKey.sharedSecretFromKeyAgreement(with: publicKey)
        } catch {
            throw .invalidPublicKey
        }
        // OR every byte together, without an early exit, so the check takes the same time for any
        // secret.
        let accumulated = shared.withUnsafeBytes { $0.reduce(UInt8(0)) { $0 | $1 } }
        guard accumulated != 0 else { throw .invalidPublicKey }
        return shared.withUnsafeBytes { SymmetricKey(data: $0) }
    }

    private static func publicKey(_ bytes: Data) throws(NoiseError) -> Curve25519.KeyAgreement.PublicKey {
        do {
            return try Curve25519.KeyAgreement.PublicKey(rawRepresentation: bytes)
        } catch {
            throw .malformedMessage
        }
    }
}
