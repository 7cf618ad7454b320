import PrivatusCore
import PrivatusNode
import Testing

@Suite struct InviteTests {
    static let peer = PeerID(identityPublicKey: [3])

    @Test func invitesRoundTripWithTheirAddresses() throws {
        let invite = Invite(peerID: Self.peer, addresses: ["127.0.0.1:4000", "[::1]:4001", "node.example:9"])
        #expect(invite.description == "privatus://\(Self.peer.hex)?a=127.0.0.1:4000&a=[::1]:4001&a=node.example:9")
        #expect(try Invite(parsing: invite.description) == invite)
        #expect(try Invite(parsing: "  \(invite.description)\n") == invite, "pasted with spaces")
        #expect(try Invite(parsing: Self.peer.hex) == Invite(peerID: Self.peer, addresses: []))
        #expect(try Invite(parsing: "privatus://\(Self.peer.hex)") == Invite(peerID: Self.peer, addresses: []))
    }

    @Test(arguments: [
        ("privatus://zz", InviteError.badPeerID),
        ("privatus://\(peer.hex.uppercased())", .badPeerID),
        ("privatus://\(peer.hex)?a=127.0.0.1", .badAddress),
        ("privatus://\(peer.hex)?a=127.0.0.1:0", .badAddress),
        ("privatus://\(peer.hex)?a=127.0.0.1:65536", .badAddress),
        ("privatus://\(peer.hex)?a=::1:80", .badAddress),
        ("privatus://\(peer.hex)?a=[::1:80", .badAddress),
        ("privatus://\(peer.hex)?a=host name:80", .badAddress),
        ("privatus://\(peer.hex)?b=127.0.0.1:80", .badAddress),
        (
            "privatus://\(peer.hex)?" + Array(repeating: "a=127.0.0.1:80", count: 9).joined(separator: "&"),
            .tooManyAddresses
        ),
        (String(repeating: "a", count: 1025), .tooLong),
    ])
    func malformedInvitesAreRefusedWithTheirReason(_ text: String, _ reason: InviteError) {
        #expect(throws: reason) { try Invite(parsing: text) }
    }

    @Test func hostPortKeepsIPv6InBrackets() throws {
        let address = try #require(HostPort(parsing: "[fe80::1]:443"))
        #expect(address.host == "fe80::1" && address.port == 443)
        #expect(address.description == "[fe80::1]:443")
        #expect(HostPort(parsing: String(repeating: "a", count: 63) + ":1") == nil, "over 64 bytes")
        #expect(HostPort(parsing: String(repeating: "a", count: 62) + ":1") != nil, "64 bytes")
    }
}
