import PrivatusProfile
import Testing

/// Names a sender offers never leave the downloads folder nor disguise what they are.
@Suite struct DownloadNameTests {
    @Test func hostileNamesBecomeOnePlainNameInsideTheFolder() {
        #expect(DownloadName.safe("../../etc/passwd") == "passwd")
        #expect(DownloadName.safe("..\\..\\Windows\\win.ini") == "win.ini")
        #expect(DownloadName.safe("/absolute/path/report.pdf") == "report.pdf")
        #expect(DownloadName.safe("..") == "file")
        #expect(DownloadName.safe("../") == "file")
        #expect(DownloadName.safe("") == "file")
        #expect(DownloadName.safe(".bashrc") == "bashrc", "no hidden files")
        #expect(DownloadName.safe("notes.txt. . ") == "notes.txt")
        // A right-to-left override makes "photo\u{202E}gpj.exe" look like "photoexe.jpg".
        #expect(DownloadName.safe("photo\u{202E}gpj.exe") == "photogpj.exe")
        #expect(DownloadName.safe("a\u{0}b\u{1B}[2Jc\u{200B}d\nx.txt") == "ab[2Jcdx.txt")
        #expect(DownloadName.safe("Zoë 🐢 résumé.pdf") == "Zoë 🐢 résumé.pdf")
    }

    @Test func longNamesKeepTheirExtensionAndCollisionsAreNumbered() {
        let long = String(repeating: "é", count: 300) + ".tar.gz"
        let safe = DownloadName.safe(long)
        #expect(safe.utf8.count <= DownloadName.maximumBytes)
        #expect(safe.hasSuffix("é.gz"))
        var taken: Set<String> = ["report.pdf", "report (1).pdf"]
        let next = DownloadName.safe("report.pdf") { taken.contains($0) }
        #expect(next == "report (2).pdf")
        taken.insert(next)
        #expect(DownloadName.safe("../report.pdf") { taken.contains($0) } == "report (3).pdf")
        #expect(DownloadName.safe("README") { $0 == "README" } == "README (1)")
    }
}
