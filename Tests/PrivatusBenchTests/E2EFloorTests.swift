import Testing

@testable import PrivatusBench

#if canImport(Glibc)
import Glibc
#endif

/// The parts of the e2e latency floor that need no other process (the whole floor runs in
/// PrivatusCLITests' `bench e2e` test, between real processes).
@Suite struct E2EFloorTests {
    @Test func whatASocketGivesIsCutIntoWholeRecordsAndTheRestKept() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        var reassembly = E2EFloor.Reassembly(unit: 8)
        let first = [UInt8](0..<12)
        #expect(first.withUnsafeBytes { send(fds[0], $0.baseAddress, $0.count, 0) } == 12)
        #expect(reassembly.read(from: fds[1]) == Array(0..<8), "one whole record, four bytes kept")
        let second = [UInt8](12..<24)
        #expect(second.withUnsafeBytes { send(fds[0], $0.baseAddress, $0.count, 0) } == 12)
        #expect(reassembly.read(from: fds[1]) == Array(8..<24), "the kept four and the next twelve")
        let third = [UInt8](24..<27)
        #expect(third.withUnsafeBytes { send(fds[0], $0.baseAddress, $0.count, 0) } == 3)
        #expect(reassembly.read(from: fds[1]) == [], "less than a record: nothing yet")
        shutdown(fds[0], Int32(SHUT_WR))
        #expect(reassembly.read(from: fds[1]) == nil, "the end of the stream")
    }
}
