import PrivatusCrypto
import Testing

/// The ids and nonces drawn from ``SecureRandom`` are as long as asked, never repeat and cover
/// every byte value, on every thread.
@Suite struct SecureRandomTests {
    @Test func drawsAreAsLongAsAskedAndNeverRepeat() {
        #expect(SecureRandom.bytes(0).isEmpty)
        #expect(SecureRandom.bytes(1).count == 1)
        var seen = Set<[UInt8]>()
        for _ in 0..<10_000 {
            let id = SecureRandom.bytes(16)
            #expect(id.count == 16)
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
    }

    /// 64 KiB drawn at once: each of the 256 byte values appears (a value missing by chance has
    /// a probability of about 2^-360), and no byte is left as it was.
    @Test func aLargeDrawCoversEveryByteValue() {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        buffer.withUnsafeMutableBytes { SecureRandom.fill($0) }
        #expect(Set(buffer).count == 256)
        let zeros = buffer.count { $0 == 0 }
        // Expected 256; far from both 0 and the 65,536 an unfilled buffer would have.
        #expect((64...1_024).contains(zeros))
    }

    @Test func threadsDrawDifferentBytes() async {
        let drawn = await withTaskGroup(of: [[UInt8]].self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<500).map { _ in SecureRandom.bytes(16) } }
            }
            return await group.reduce(into: [[UInt8]]()) { $0 += $1 }
        }
        #expect(drawn.count == 4_000)
        #expect(Set(drawn).count == 4_000)
    }
}
