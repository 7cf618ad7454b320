import PrivatusCore
import Testing

@Suite struct HexTests {
    /// Every byte value: two lowercase digits, read back by the strict decoder.
    @Test func everyByteIsTwoLowercaseDigitsAndDecodesBack() {
        let all = (0...255).map { UInt8($0) }
        let encoded = Hex.encode(all)
        #expect(encoded.utf8.count == 512)
        for byte in all {
            let digits = String(byte, radix: 16)
            #expect(Hex.encode([byte]) == (digits.count == 1 ? "0" + digits : digits))
        }
        #expect(Hex.decodeLowercase(encoded) == all)
        #expect(Hex.encode([UInt8]()) == "")
        // A sequence that is not a collection, and a slice, encode the same way.
        #expect(Hex.encode(AnySequence(all)) == encoded)
        #expect(Hex.encode(all[16..<32]) == String(encoded.dropFirst(32).prefix(32)))
    }

    @Test func onlyLowercaseEvenLengthHexDecodes() {
        #expect(Hex.decodeLowercase("0A") == nil)
        #expect(Hex.decodeLowercase("abc") == nil)
        #expect(Hex.decodeLowercase("0g") == nil)
        #expect(Hex.decodeLowercase("") == [])
    }
}
