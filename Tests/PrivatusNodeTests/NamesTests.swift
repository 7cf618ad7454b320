import Testing

@testable import PrivatusNode

@Suite struct NamesTests {
    @Test func namesThatLookTheSameCompareTheSame() {
        let alice = Messenger.comparable("Alice")
        for disguise in ["alice", "ALICE ", " a l i c e", "ａｌｉｃｅ", "ali\u{200B}ce", "Álice", "alice\u{202E}"] {
            #expect(Messenger.comparable(disguise) == alice, "\(disguise)")
        }
        #expect(Messenger.comparable("Alicia") != alice)
    }

    @Test func namesRefuseControlAndFormatCharacters() {
        for bad in ["", "   ", "a\u{1B}[2J", "a\u{202E}b", "a\u{200B}", String(repeating: "a", count: 65)] {
            #expect(throws: ChatError.badName) { try Messenger.checkName(bad) }
        }
        #expect(throws: Never.self) { try Messenger.checkName("Zoë 🐢") }
    }
}
