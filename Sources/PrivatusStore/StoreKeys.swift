import Crypto
import Foundation

/// The per-purpose keys of the database, each derived from the keystore's database key with
/// HKDF-SHA256 (salt: none, info: `"Privatus-v1/store/" ‖ purpose`), so no key serves two
/// purposes (docs/PROTOCOL.md, "Storage").
public struct StoreKeys: Sendable {
    /// Seals values (AES-256-GCM).
    let seal: SymmetricKey
    /// Keys the blind index columns that find peers and conversations (HMAC-SHA256).
    let index: SymmetricKey
    /// Keys the search tokens (HMAC-SHA256).
    let search: SymmetricKey

    public init(databaseKey: SymmetricKey) {
        func derive(_ purpose: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(
                inputKeyMaterial: databaseKey,
                info: Array("Privatus-v1/store/\(purpose)".utf8),
                outputByteCount: 32
            )
        }
        self.seal = derive("seal")
        self.index = derive("index")
        self.search = derive("search")
    }
}
