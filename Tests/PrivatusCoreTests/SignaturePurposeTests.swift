import PrivatusCore
import Testing

@Suite struct SignaturePurposeTests {
    @Test func signedMessageIsPrefixPurposeNulFields() {
        let message = SignaturePurpose.noiseStatic.signedMessage(over: [1, 2, 3])
        #expect(message == Array("Privatus-v1/noise-static".utf8) + [0, 1, 2, 3])
    }

    @Test func purposesAreDistinctAndNoneContainsNul() {
        let names = SignaturePurpose.all.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { !$0.utf8.contains(0) && !$0.isEmpty })
    }

    @Test func purposeAndFieldsAreRecoveredByTheFirstNul() {
        // The encoding is unambiguous: splitting at the first NUL after the prefix gives back the
        // purpose and the fields, whatever bytes the fields hold (NULs included).
        let prefix = Array(SignaturePurpose.domainPrefix.utf8)
        for purpose in SignaturePurpose.all {
            let fields: [UInt8] = [0, 1, 0, 0x2f, 0xff]
            let message = purpose.signedMessage(over: fields)
            #expect(Array(message.prefix(prefix.count)) == prefix)
            let rest = message.dropFirst(prefix.count)
            let nul = rest.firstIndex(of: 0)!
            #expect(String(decoding: rest[..<nul], as: UTF8.self) == purpose.name)
            #expect(Array(rest[(nul + 1)...]) == fields)
        }
    }
}

@Suite struct BytesTests {
    @Test func hexRoundTripsAndRejectsBadText() {
        let bytes: [UInt8] = [0x00, 0x0f, 0xa0, 0xff]
        #expect(Hex.encode(bytes) == "000fa0ff")
        #expect(Hex.decodeLowercase("000fa0ff") == bytes)
        #expect(Hex.decodeLowercase("000FA0FF") == nil)
        #expect(Hex.decodeLowercase("abc") == nil)
        #expect(Hex.decodeLowercase("zz") == nil)
    }

    @Test func byteReaderNeverReadsPastTheEnd() {
        var reader = ByteReader([0x01, 0x02, 0x03, 0x04, 0x05])
        #expect(reader.readUInt16() == 0x0102)
        #expect(reader.readUInt32() == nil)
        #expect(reader.remaining == 3)
        #expect(reader.read(-1) == nil)
        #expect(reader.read(3) == [0x03, 0x04, 0x05])
        #expect(reader.readUInt8() == nil)
    }

    @Test func bigEndianAppendsMatchReads() {
        var bytes: [UInt8] = []
        bytes.appendBigEndian(UInt16(0xbeef))
        bytes.appendBigEndian(UInt32(0xdeadc0de))
        var reader = ByteReader(bytes)
        #expect(reader.readUInt16() == 0xbeef)
        #expect(reader.readUInt32() == 0xdeadc0de)
    }
}
