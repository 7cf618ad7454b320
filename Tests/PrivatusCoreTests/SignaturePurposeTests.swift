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

    @Test func messagesOfDifferentPurposesNeverCoincide() {
        // With the NUL separator, purpose "a" over fields "b…" can never equal purpose "ab" over "…".
        for first in SignaturePurpose.all {
            for second in SignaturePurpose.all where first != second {
                let fields = Array(second.name.utf8)
                #expect(first.signedMessage(over: fields) != second.signedMessage(over: []))
                #expect(first.signedMessage(over: [9, 9]) != second.signedMessage(over: [9, 9]))
            }
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
