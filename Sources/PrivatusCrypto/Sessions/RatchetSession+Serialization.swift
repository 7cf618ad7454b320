import Crypto
import PrivatusCore

extension RatchetSession {
    /// The version of ``serialized``.
    public static let stateVersion: UInt8 = 1
    /// The largest serialized state accepted, checked before parsing.
    public static let maximumSerializedSize = 512 + maximumStoredSkippedKeys * 84

    /// The state as bytes, for sealed storage (docs/PROTOCOL.md, "Session state"):
    ///
    /// ```
    /// version u8 (1) ‖ AD length u16 ‖ AD ‖ root key (32) ‖ sending private key (32)
    /// ‖ receiving key flag u8 ‖ [receiving key (32)]
    /// ‖ sending chain flag u8 ‖ [chain key (32) ‖ count u32]
    /// ‖ receiving chain flag u8 ‖ [chain key (32) ‖ count u32]
    /// ‖ PN u32 ‖ step u64 ‖ skipped count u16
    /// ‖ per skipped key: ratchet key (32) ‖ N u32 ‖ message key (32) ‖ stored at u64 ‖ step u64
    /// ```
    public var serialized: [UInt8] {
        var out: [UInt8] = [Self.stateVersion]
        out.appendBigEndian(UInt16(associatedData.count))
        out += associatedData
        out += rootKey
        out += Array(sendingKey.rawRepresentation)
        if let receivingKey {
            out.append(1)
            out += receivingKey
        } else {
            out.append(0)
        }
        for chain in [sending, receiving] {
            if let chain {
                out.append(1)
                out += chain.key
                out.appendBigEndian(chain.count)
            } else {
                out.append(0)
            }
        }
        out.appendBigEndian(previousChainLength)
        out.appendBigEndian(step)
        out.appendBigEndian(UInt16(skipped.count))
        for key in skipped {
            out += key.ratchetKey
            out.appendBigEndian(key.messageNumber)
            out += key.messageKey
            out.appendBigEndian(key.storedAt)
            out.appendBigEndian(key.step)
        }
        return out
    }

    /// Restores a state from ``serialized``.
    /// - Throws: ``SessionError/malformedState`` for damaged or unknown data.
    public init(serialized bytes: [UInt8]) throws(SessionError) {
        guard bytes.count <= Self.maximumSerializedSize else { throw .malformedState }
        var reader = ByteReader(bytes)
        guard reader.readUInt8() == Self.stateVersion, let adLength = reader.readUInt16(),
            let ad = reader.read(Int(adLength)), let root = reader.read(32), let sendingRaw = reader.read(32),
            let sendingKey = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: sendingRaw)
        else { throw .malformedState }
        let receivingKey: [UInt8]? = try Self.readOptional(&reader) { $0.read(32) }
        let sending: Chain? = try Self.readOptional(&reader) { reader in
            guard let key = reader.read(32), let count = reader.readUInt32() else { return nil }
            return Chain(key: key, count: count)
        }
        let receiving: Chain? = try Self.readOptional(&reader) { reader in
            guard let key = reader.read(32), let count = reader.readUInt32() else { return nil }
            return Chain(key: key, count: count)
        }
        guard let previous = reader.readUInt32(), let step = reader.readUInt64(), let count = reader.readUInt16(),
            Int(count) <= Self.maximumStoredSkippedKeys
        else { throw .malformedState }
        var skipped: [SkippedKey] = []
        for _ in 0..<count {
            guard let ratchetKey = reader.read(32), let number = reader.readUInt32(), let messageKey = reader.read(32),
                let storedAt = reader.readUInt64(), let keyStep = reader.readUInt64()
            else { throw .malformedState }
            skipped.append(
                SkippedKey(
                    ratchetKey: ratchetKey, messageNumber: number, messageKey: messageKey, storedAt: storedAt,
                    step: keyStep))
        }
        guard reader.remaining == 0 else { throw .malformedState }
        self.init(
            associatedData: ad,
            rootKey: root,
            sendingKey: sendingKey,
            receivingKey: receivingKey,
            sending: sending,
            receiving: receiving,
            previousChainLength: previous,
            skipped: skipped,
            step: step
        )
    }

    static func readOptional<T>(_ reader: inout ByteReader, _ body: (inout ByteReader) -> T?) throws(SessionError) -> T?
    {
        switch reader.readUInt8() {
        case 0: return nil
        case 1:
            guard let value = body(&reader) else { throw .malformedState }
            return value
        default: throw .malformedState
        }
    }

}
