import PrivatusDHT
import Testing

/// The UDP endpoint's stateless cookies and its rule against amplification.
@Suite struct CookieJarTests {
    let alice = DHTAddress(ipv4: 198, 51, 100, 1, port: 4_000)
    let mallory = DHTAddress(ipv4: 198, 51, 100, 1, port: 4_001)

    @Test func aCookieIsAcceptedOnlyFromItsAddressForUpToTwoRotations() {
        var jar = CookieJar(now: 0, rotation: 1_000)
        let cookie = jar.cookie(for: alice)
        #expect(cookie.count == CookieJar.cookieBytes)
        #expect(jar.cookie(for: alice) == cookie, "recomputed, not remembered")
        #expect(jar.accepts(cookie, from: alice))
        #expect(!jar.accepts(cookie, from: mallory), "another port is another source")
        #expect(!jar.accepts(Array(cookie.dropLast()), from: alice))
        var forged = cookie
        forged[0] ^= 1
        #expect(!jar.accepts(forged, from: alice))

        let rotated999 = jar.rotateIfDue(now: 999)
        #expect(!rotated999)
        let rotated1000 = jar.rotateIfDue(now: 1_000)
        #expect(rotated1000)
        #expect(jar.cookie(for: alice) != cookie)
        #expect(jar.accepts(cookie, from: alice), "the previous secret still counts")
        let rotated2000 = jar.rotateIfDue(now: 2_000)
        #expect(rotated2000)
        #expect(!jar.accepts(cookie, from: alice), "two rotations later it does not")
        // After a long idle time both secrets are new.
        let recent = jar.cookie(for: alice)
        let rotated10000 = jar.rotateIfDue(now: 10_000)
        #expect(rotated10000)
        #expect(!jar.accepts(recent, from: alice))
    }

    @Test func anUnverifiedSourceGetsNoMoreBytesThanItSent() {
        #expect(CookieJar.replyLimit(requestBytes: 60, sourceVerified: false, maximum: 1_400) == 60)
        #expect(CookieJar.replyLimit(requestBytes: 60, sourceVerified: true, maximum: 1_400) == 1_400)
        #expect(CookieJar.replyLimit(requestBytes: 9_000, sourceVerified: false, maximum: 1_400) == 1_400)
    }
}
