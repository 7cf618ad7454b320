import Foundation
import Testing

@testable import PrivatusNode

/// The send request's direct reader agrees with `JSONDecoder` on every body it reads, reads the
/// bodies clients write, and leaves everything else to the decoder.
@Suite struct SendRequestParsingTests {
    static func direct(_ body: [UInt8]) -> SendRequest? {
        body.withUnsafeBytes(SendRequest.init(plainJSON:))
    }

    static func decoded(_ body: [UInt8]) -> SendRequest? {
        try? JSONDecoder().decode(SendRequest.self, from: Data(body))
    }

    /// What clients write, read directly and as the decoder reads it.
    @Test(arguments: [
        #"{"peer":"bob","text":"hello"}"#,
        #"{"text":"hello","peer":"bob"}"#,
        " {\n\t\"peer\" : \"bob\" ,\r\n \"text\":\"hi\" } \n",
        #"{"peer":"","text":""}"#,
        #"{"peer":"Bob Smith","text":"grüße, 👋, ünïcödé / slash"}"#,
        "{\"peer\":\"bob\",\"text\":\"" + String(repeating: "x", count: 65_536) + "\"}",
    ])
    func plainBodiesAreReadDirectlyAsTheDecoderReadsThem(body: String) throws {
        let bytes = Array(body.utf8)
        let direct = try #require(Self.direct(bytes))
        let decoded = try #require(Self.decoded(bytes))
        #expect(direct.peer == decoded.peer)
        #expect(direct.text == decoded.text)
    }

    /// Escapes, other keys, a key twice or missing, other types, truncation, trailing bytes,
    /// invalid UTF-8: not read directly (the decoder reads or refuses them).
    @Test(arguments: [
        #"{"peer":"bob","text":"a \"quote\""}"#,
        #"{"peer":"bob","text":"line\nbreak"}"#,
        #"{"peer":"bob","text":"\u00e9"}"#,
        #"{"peer":"bob","text":"hi","extra":1}"#,
        #"{"peer":"bob","text":"hi","extra":"x"}"#,
        #"{"peer":"bob","peer":"eve","text":"hi"}"#,
        #"{"peer":"bob"}"#,
        #"{"text":"hi"}"#,
        #"{"peer":"bob","text":5}"#,
        #"{"peer":null,"text":"hi"}"#,
        #"{"peer":"bob","text":"hi""#,
        #"{"peer":"bob","text":"hi}"#,
        #"{"peer":"bob","text":"hi"}x"#,
        #"{"peer":"bob","text":"hi"}{}"#,
        #"{"peer":"bob",,"text":"hi"}"#,
        #"{"peer":"bob","text":"hi",}"#,
        #"{"peer""bob","text":"hi"}"#,
        #"["bob","hi"]"#,
        "{}",
        "",
        "   ",
        "{\"peer\":\"bob\",\"text\":\"tab\there\"}",
    ])
    func anythingElseIsLeftToTheDecoder(body: String) {
        #expect(Self.direct(Array(body.utf8)) == nil)
    }

    @Test func invalidUTF8IsLeftToTheDecoderWhichRefusesIt() {
        let body = Array(#"{"peer":"bob","text":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(Self.direct(body) == nil)
        #expect(Self.decoded(body) == nil)
    }

    /// Every prefix of a plain body is refused directly (none is a whole object), and every
    /// body the direct reader reads is one the decoder reads the same way.
    @Test func noPrefixIsReadAndWhatIsReadAgreesWithTheDecoder() throws {
        let body = Array(#"{ "peer" : "bob" , "text" : "hello there" }"#.utf8)
        for end in 0..<body.count {
            #expect(Self.direct(Array(body[..<end])) == nil, "prefix of \(end) bytes")
        }
        // Each byte replaced by each of a few troublesome ones.
        for index in body.indices {
            for byte in [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "}"), UInt8(ascii: ","), 0x00, 0xFF] {
                var changed = body
                changed[index] = byte
                if let direct = Self.direct(changed) {
                    let decoded = try #require(Self.decoded(changed), "byte \(index) as \(byte)")
                    #expect(direct.peer == decoded.peer && direct.text == decoded.text)
                }
            }
        }
    }
}
