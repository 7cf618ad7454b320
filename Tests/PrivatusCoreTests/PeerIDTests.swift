import Foundation
import PrivatusCore
import Testing

@Suite struct PeerIDTests {
    /// RFC 8032, section 7.1, test 1: the Ed25519 public key; its SHA-256 computed independently.
    static let rfc8032PublicKey = Hex.decodeLowercase(
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")!
    static let rfc8032PeerID = "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9"

    @Test func peerIDIsSHA256OfTheIdentityKey() {
        #expect(PeerID(identityPublicKey: Self.rfc8032PublicKey).hex == Self.rfc8032PeerID)
        #expect(
            PeerID(identityPublicKey: [UInt8](repeating: 0, count: 32)).hex
                == "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        )
    }

    @Test func parsingRoundTripsTheHexForm() throws {
        let peer = try PeerID(parsing: Self.rfc8032PeerID)
        #expect(peer.hex == Self.rfc8032PeerID)
        #expect(peer == PeerID(identityPublicKey: Self.rfc8032PublicKey))
    }

    static let malformed: [String] = {
        let valid = rfc8032PeerID
        let short = String(valid.dropLast())
        let shorter = String(valid.dropLast(2))
        return [
            "", short, valid + "0", valid.uppercased(), " " + short, short + "\n", "0x" + shorter,
            short + "g", "privatus://" + valid, shorter + "\u{E9}",
        ]
    }()

    @Test(arguments: malformed)
    func parsingRejectsAnythingButSixtyFourLowercaseHexDigits(_ text: String) {
        #expect(throws: PeerIDError.malformed) { try PeerID(parsing: text) }
    }

    @Test func fingerprintGroupsFourHexDigits() throws {
        let peer = try PeerID(parsing: Self.rfc8032PeerID)
        let groups = peer.fingerprint.split(separator: " ")
        #expect(groups.count == 16)
        #expect(groups.allSatisfy { $0.count == 4 })
        #expect(groups.joined() == Self.rfc8032PeerID)
    }

    @Test func descriptionNeverRevealsTheIdentifier() throws {
        let peer = try PeerID(parsing: Self.rfc8032PeerID)
        #expect(!"\(peer)".contains(String(Self.rfc8032PeerID.prefix(8))))
        #expect(!String(describing: peer).contains(String(Self.rfc8032PeerID.prefix(8))))
    }

    @Test func codableUsesTheHexFormAndRejectsOthers() throws {
        let peer = try PeerID(parsing: Self.rfc8032PeerID)
        let json = try JSONEncoder().encode([peer])
        #expect(String(decoding: json, as: UTF8.self) == "[\"\(Self.rfc8032PeerID)\"]")
        #expect(try JSONDecoder().decode([PeerID].self, from: json) == [peer])
        let upper = Data("[\"\(Self.rfc8032PeerID.uppercased())\"]".utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([PeerID].self, from: upper) }
    }
}
