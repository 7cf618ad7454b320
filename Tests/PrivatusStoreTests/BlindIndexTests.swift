import Testing

@testable import PrivatusStore

@Suite struct BlindIndexTests {
    @Test(arguments: [
        "", "x", "Hello, World! hello world", "MiXeD cAsE 123abc 4-5_6.7", "tabs\tand\nnew\rlines",
        String(repeating: "x", count: 64), String(repeating: "y", count: 65) + " short",
        "don't stop-believing; e-mail: a@b.c /path/to?q=1&r=2 ~`!#$%^*()[]{}|\\\"'<>,",
    ])
    func asciiWordsAreTheWordsTheUnicodePathFinds(_ text: String) {
        #expect(BlindIndex.asciiWords(of: text) == BlindIndex.unicodeWords(of: text))
    }

    @Test func everyASCIIByteSplitsOrJoinsWordsAsUnicodeSays() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let text = String(
                decoding: (0..<Int.random(in: 0..<80, using: &generator)).map { _ in
                    UInt8.random(in: 1..<0x80, using: &generator)
                }, as: UTF8.self)
            #expect(BlindIndex.asciiWords(of: text) == BlindIndex.unicodeWords(of: text), "\(Array(text.utf8))")
        }
        // Non-ASCII text takes the Unicode path: NFKC folds the full-width letters.
        #expect(BlindIndex.words(of: "ＡＢＣ café") == ["abc", "café"])
    }
}
