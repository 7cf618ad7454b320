import Crypto
import CryptoExtras
import Foundation
import PrivatusCore

/// Where a ratchet gets its new DH key pairs: the system's randomness in the product, fixed keys
/// in tests and vectors.
public protocol RatchetKeySource {
    mutating func nextKeyPair() -> Curve25519.KeyAgreement.PrivateKey
}

/// Fresh random key pairs.
public struct SystemRatchetKeys: RatchetKeySource {
    public init() {}
    public mutating func nextKeyPair() -> Curve25519.KeyAgreement.PrivateKey { .init() }
}

/// One Double Ratchet session (Signal's specification, section 3) as a value: every operation
/// returns the new state beside its result, and a failed decryption leaves the state untouched.
///
/// KDFs (docs/PROTOCOL.md, "Double Ratchet"):
/// - `KDF_RK(rk, dh)` = HKDF-SHA256(salt: rk, ikm: dh, info: "Privatus-v1/ratchet-root", 64) → (rk, ck)
/// - `KDF_CK(ck)` = (HMAC-SHA256(ck, 0x02) as the next ck, HMAC-SHA256(ck, 0x01) as mk)
/// - message keys: HKDF-SHA256(salt: 32 zero bytes, ikm: mk, info: "Privatus-v1/message-key", 44)
///   → AES-256-GCM-SIV key (32) ‖ nonce (12)
/// - AEAD associated data: the session's PQXDH associated data ‖ the encoded header.
public struct RatchetSession: Sendable {
    /// The most message keys one message may make the receiver derive and store.
    public static let maximumSkip: UInt32 = 1000
    /// The most skipped message keys one session keeps; the oldest go first.
    public static let maximumStoredSkippedKeys = 2000
    /// Skipped keys are dropped after this long (7 days)…
    public static let skippedKeyLifetime: UInt64 = 7 * 24 * 3600
    /// …or after this many DH ratchet steps.
    public static let skippedKeyMaximumSteps: UInt64 = 5

    struct Chain: Sendable, Equatable {
        var key: [UInt8]
        var count: UInt32
    }

    struct SkippedKey: Sendable, Equatable {
        var ratchetKey: [UInt8]
        var messageNumber: UInt32
        var messageKey: [UInt8]
        var storedAt: UInt64
        var step: UInt64
    }

    /// The PQXDH associated data that prefixes every message's AD.
    public let associatedData: [UInt8]
    var rootKey: [UInt8]
    var sendingKey: Curve25519.KeyAgreement.PrivateKey
    var receivingKey: [UInt8]?
    var sending: Chain?
    var receiving: Chain?
    var previousChainLength: UInt32
    var skipped: [SkippedKey]
    /// How many DH ratchet steps this session has taken (for skipped-key expiry).
    var step: UInt64

    static let rootInfo = Array("Privatus-v1/ratchet-root".utf8)
    static let messageInfo = Array("Privatus-v1/message-key".utf8)

    /// The initiator's session after PQXDH: the responder's signed prekey is its first ratchet key.
    public static func initiator(
        sharedSecret: [UInt8],
        associatedData: [UInt8],
        responderRatchetKey: Curve25519.KeyAgreement.PublicKey,
        keys: inout some RatchetKeySource
    ) throws(SessionError) -> RatchetSession {
        let sendingKey = keys.nextKeyPair()
        let dh = try PQXDH.agree(sendingKey, responderRatchetKey)
        let (root, chain) = kdfRoot(sharedSecret, dh)
        return RatchetSession(
            associatedData: associatedData,
            rootKey: root,
            sendingKey: sendingKey,
            receivingKey: Array(responderRatchetKey.rawRepresentation),
            sending: Chain(key: chain, count: 0),
            receiving: nil,
            previousChainLength: 0,
            skipped: [],
            step: 0
        )
    }

    /// The responder's session after PQXDH: its signed prekey pair is its first ratchet key. It
    /// can send once it has decrypted the initiator's first message.
    public static func responder(
        sharedSecret: [UInt8],
        associatedData: [UInt8],
        signedPrekey: Curve25519.KeyAgreement.PrivateKey
    ) -> RatchetSession {
        RatchetSession(
            associatedData: associatedData,
            rootKey: sharedSecret,
            sendingKey: signedPrekey,
            receivingKey: nil,
            sending: nil,
            receiving: nil,
            previousChainLength: 0,
            skipped: [],
            step: 0
        )
    }

    /// How many skipped message keys this session holds.
    public var skippedKeyCount: Int { skipped.count }

    /// Whether this session can encrypt now.
    public var canSend: Bool { sending != nil }

    /// Pads and encrypts `plaintext`; returns the advanced state with the message, to be committed
    /// together before the message leaves the node.
    public func encrypting(
        _ plaintext: some Collection<UInt8>
    ) throws(SessionError) -> (session: RatchetSession, message: RatchetMessage) {
        guard var chain = sending else { throw .cannotSendYet }
        guard chain.count < UInt32.max else { throw .sessionExhausted }
        var next = self
        let messageKey = Self.kdfChain(&chain)
        let header = RatchetHeader(
            ratchetKey: Array(sendingKey.publicKey.rawRepresentation),
            previousChainLength: previousChainLength,
            messageNumber: chain.count - 1
        )
        next.sending = chain
        let ciphertext = try Self.seal(
            Padding.pad(plaintext), messageKey: messageKey, associatedData: associatedData(for: header))
        return (next, RatchetMessage(header: header, ciphertext: ciphertext))
    }

    /// Decrypts a message; returns the advanced state with the plaintext. On any failure the
    /// caller keeps its old state: nothing here mutates `self`.
    ///
    /// The skip bounds are checked before any key is derived, and the sending half of a DH
    /// ratchet step (a new key pair and its agreement) runs only after the message has been
    /// authenticated, so a forged header costs at most the receiving half.
    /// - Parameter skippedKeyAllowance: the most skipped keys this session may hold afterwards
    ///   (at most ``maximumStoredSkippedKeys``); the holder of many sessions passes what is left
    ///   of its overall budget, and the oldest keys go first.
    /// - Throws: ``SessionError/decryptionFailed`` for altered, replayed or foreign messages,
    ///   ``SessionError/tooManySkippedMessages`` before deriving keys past ``maximumSkip``.
    public func decrypting(
        _ message: RatchetMessage,
        now: UInt64,
        keys: inout some RatchetKeySource,
        skippedKeyAllowance: Int = RatchetSession.maximumStoredSkippedKeys
    ) throws(SessionError) -> (session: RatchetSession, plaintext: [UInt8]) {
        var next = self.expiringSkippedKeys(now: now)
        let header = message.header
        let ad = associatedData(for: header)
        if let index = next.skipped.firstIndex(where: {
            $0.ratchetKey == header.ratchetKey && $0.messageNumber == header.messageNumber
        }) {
            let plaintext = try Self.open(
                message.ciphertext, messageKey: next.skipped[index].messageKey, associatedData: ad)
            next.skipped.remove(at: index)
            return (next, try Padding.unpad(plaintext))
        }
        let isNewRatchetKey = header.ratchetKey != next.receivingKey
        try checkSkipBounds(header, isNewRatchetKey: isNewRatchetKey)
        let cap = max(0, min(Self.maximumStoredSkippedKeys, skippedKeyAllowance))
        var remoteKey: Curve25519.KeyAgreement.PublicKey?
        if isNewRatchetKey {
            next.skipMessageKeys(until: header.previousChainLength, now: now, cap: cap)
            remoteKey = try next.receivingStep(remoteKey: header.ratchetKey)
        }
        next.skipMessageKeys(until: header.messageNumber, now: now, cap: cap)
        guard var chain = next.receiving else { throw .decryptionFailed }
        guard chain.count == header.messageNumber else { throw .decryptionFailed }  // an already-used number: a replay
        let messageKey = Self.kdfChain(&chain)
        next.receiving = chain
        let plaintext = try Self.open(message.ciphertext, messageKey: messageKey, associatedData: ad)
        let unpadded = try Padding.unpad(plaintext)
        if let remoteKey { try next.sendingStep(remoteKey: remoteKey, keys: &keys) }
        return (next, unpadded)
    }

    /// This session without the skipped keys that are 7 days old or 5 DH steps behind; the
    /// node's maintenance calls it for sessions that receive nothing.
    public func expiringSkippedKeys(now: UInt64) -> RatchetSession {
        var next = self
        next.skipped.removeAll { key in
            (now >= key.storedAt && now - key.storedAt >= Self.skippedKeyLifetime)
                || (step >= key.step && step - key.step >= Self.skippedKeyMaximumSteps)
        }
        return next
    }

    // MARK: - Steps

    /// Refuses, before any derivation, a header that would skip more than ``maximumSkip`` keys
    /// on either chain or whose number could not be followed by another.
    func checkSkipBounds(_ header: RatchetHeader, isNewRatchetKey: Bool) throws(SessionError) {
        guard header.messageNumber < UInt32.max else { throw .tooManySkippedMessages }
        let current = receiving?.count ?? 0
        func tooFar(_ target: UInt32, from count: UInt32) -> Bool {
            target > count && target - count > Self.maximumSkip
        }
        if isNewRatchetKey {
            if receiving != nil, tooFar(header.previousChainLength, from: current) { throw .tooManySkippedMessages }
            if tooFar(header.messageNumber, from: 0) { throw .tooManySkippedMessages }
        } else if tooFar(header.messageNumber, from: current) {
            throw .tooManySkippedMessages
        }
    }

    /// Advances the receiving chain to `target`, keeping the skipped keys (at most `cap` in all,
    /// the oldest dropped first). Bounds were checked by ``checkSkipBounds(_:isNewRatchetKey:)``.
    mutating func skipMessageKeys(until target: UInt32, now: UInt64, cap: Int) {
        guard var chain = receiving, let ratchetKey = receivingKey else { return }
        while chain.count < target {
            let messageKey = Self.kdfChain(&chain)
            skipped.append(
                SkippedKey(
                    ratchetKey: ratchetKey, messageNumber: chain.count - 1, messageKey: messageKey, storedAt: now,
                    step: step))
        }
        if skipped.count > cap { skipped.removeFirst(skipped.count - cap) }
        receiving = chain
    }

    /// The receiving half of a DH ratchet step: `(RK, CKr) = KDF_RK(RK, DH(DHs, DHr))`.
    mutating func receivingStep(remoteKey: [UInt8]) throws(SessionError) -> Curve25519.KeyAgreement.PublicKey {
        let remote: Curve25519.KeyAgreement.PublicKey
        do {
            remote = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: remoteKey)
        } catch {
            throw .malformedMessage
        }
        previousChainLength = sending?.count ?? 0
        receivingKey = remoteKey
        let (root, receivingChain) = Self.kdfRoot(rootKey, try PQXDH.agree(sendingKey, remote))
        receiving = Chain(key: receivingChain, count: 0)
        rootKey = root
        step += 1
        return remote
    }

    /// The sending half, after the message that brought the new key was authenticated:
    /// `DHs = new; (RK, CKs) = KDF_RK(RK, DH(DHs, DHr))`.
    mutating func sendingStep(
        remoteKey: Curve25519.KeyAgreement.PublicKey, keys: inout some RatchetKeySource
    ) throws(SessionError) {
        sendingKey = keys.nextKeyPair()
        let (root, sendingChain) = Self.kdfRoot(rootKey, try PQXDH.agree(sendingKey, remoteKey))
        sending = Chain(key: sendingChain, count: 0)
        rootKey = root
    }

    /// The AEAD associated data of a message: the session's AD ‖ the encoded header, built in
    /// one allocation.
    func associatedData(for header: RatchetHeader) -> [UInt8] {
        var ad = [UInt8]()
        ad.reserveCapacity(associatedData.count + RatchetHeader.encodedSize)
        ad += associatedData
        header.append(to: &ad)
        return ad
    }

    // MARK: - KDFs and AEAD

    static func kdfRoot(_ rootKey: [UInt8], _ dhOutput: [UInt8]) -> (root: [UInt8], chain: [UInt8]) {
        let output = SHA256KDF.hkdf(inputKeyMaterial: dhOutput, salt: rootKey, info: rootInfo, outputByteCount: 64)
        return (Array(output[0..<32]), Array(output[32..<64]))
    }

    /// Advances `chain` and returns the message key for the number it had.
    static func kdfChain(_ chain: inout Chain) -> [UInt8] {
        let messageKey = SHA256KDF.hmac(key: chain.key, data: messageKeyInput)
        chain.key = SHA256KDF.hmac(key: chain.key, data: chainKeyInput)
        chain.count += 1
        return messageKey
    }

    static let messageKeyInput: [UInt8] = [0x01]
    static let chainKeyInput: [UInt8] = [0x02]
    static let messageKeySalt = [UInt8](repeating: 0, count: 32)

    /// The AEAD key (32 bytes) and nonce (12) of a message key: HKDF-SHA256 output, the key first.
    static func aeadKeyAndNonce(_ messageKey: [UInt8]) -> [UInt8] {
        SHA256KDF.hkdf(inputKeyMaterial: messageKey, salt: messageKeySalt, info: messageInfo, outputByteCount: 44)
    }

    static func seal(_ plaintext: [UInt8], messageKey: [UInt8], associatedData: [UInt8]) throws(SessionError) -> [UInt8]
    {
        aeadKeyAndNonce(messageKey).withUnsafeBytes { output in
            AESGCMSIV.seal(
                plaintext, key: UnsafeRawBufferPointer(rebasing: output[..<32]),
                nonce: UnsafeRawBufferPointer(rebasing: output[32...]), authenticating: associatedData)
        }
    }

    static func open(
        _ ciphertext: [UInt8], messageKey: [UInt8], associatedData: [UInt8]
    ) throws(SessionError) -> [UInt8] {
        let opened: [UInt8]? = aeadKeyAndNonce(messageKey).withUnsafeBytes { output in
            try? AESGCMSIV.open(
                ciphertext, key: UnsafeRawBufferPointer(rebasing: output[..<32]),
                nonce: UnsafeRawBufferPointer(rebasing: output[32...]), authenticating: associatedData)
        }
        guard let opened else { throw .decryptionFailed }
        return opened
    }
}
