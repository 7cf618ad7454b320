import Crypto
import PrivatusCore

/// Starting a session as the initiator: PQXDH with the peer's bundle, the first ratchet step,
/// and the first message, which carries the PQXDH header before the ratchet message.
public enum SessionStart {
    /// Returns the initiator's session (already advanced past the first message) and the bytes of
    /// the first message: ``InitialHeader`` ‖ ``RatchetMessage``.
    public static func initiate(
        keys: IdentityKeys,
        bundle: PrekeyBundle,
        firstPlaintext: some Collection<UInt8>,
        now: UInt64,
        ratchetKeys: inout some RatchetKeySource,
        ephemeral: Curve25519.KeyAgreement.PrivateKey = .init(),
        kem: some KEMEncapsulating = MLKEMEncapsulation()
    ) throws(SessionError) -> (session: RatchetSession, message: [UInt8]) {
        let initiation = try PQXDH.initiate(from: keys, to: bundle, now: now, ephemeral: ephemeral, kem: kem)
        let session = try RatchetSession.initiator(
            sharedSecret: initiation.sharedSecret,
            associatedData: initiation.associatedData,
            responderRatchetKey: initiation.responderRatchetKey,
            keys: &ratchetKeys
        )
        let (advanced, message) = try session.encrypting(firstPlaintext)
        return (advanced, initiation.header.encoded + message.encoded)
    }
}
