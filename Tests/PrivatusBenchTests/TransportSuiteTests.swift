import PrivatusCore
import PrivatusWire
import Testing

@testable import PrivatusBench

/// The parts of `bench transport` that need no second process (the whole suite runs in
/// PrivatusCLITests, between two real processes).
@Suite struct TransportSuiteTests {
    @Test func percentilesAreNearestRank() {
        let samples = (1...100).map(Double.init).shuffled()
        #expect(TransportSuite.percentile(samples, 50) == 50)
        #expect(TransportSuite.percentile(samples, 99) == 99)
        #expect(TransportSuite.percentile(samples, 100) == 100)
        #expect(TransportSuite.percentile([7], 99) == 7)
        #expect(TransportSuite.percentile([], 50) == 0)
    }

    @Test(arguments: [64, 1024, WireLimits.maxFragmentPayload])
    func chatBodiesFillTheirSizeAndOneFrame(size: Int) throws {
        let encoded = try WireCodec.encode(Envelope(TransportSuite.chatBody(encodedBytes: size))).count
        #expect(encoded <= size && encoded >= size - 3)
        #expect(encoded <= WireLimits.maxFragmentPayload)
    }

    @Test func thePeerEchoesSmallMessagesAndDropsBulkData() {
        #expect(TransportPeer.isEcho(TransportSuite.chatBody(encodedBytes: 64)))
        #expect(!TransportPeer.isEcho(TransportSuite.chatBody(encodedBytes: WireLimits.maxFragmentPayload)))
        #expect(TransportPeer.isEcho(.ping(Ping(nonce: 1))))
    }

    @Test func residentMemoryIsReadFromProcStatus() {
        let status = "Name:\tprivatus\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 100 kB\n"
        #expect(ProcessResources.residentKiB(status: status) == 12345)
        #expect(ProcessResources.residentKiB(status: "Name:\tx\n") == nil)
        #if os(Linux)
        #expect((ProcessResources.residentKiB() ?? 0) > 0)
        #expect(ProcessResources.raiseOpenFileLimit() >= 1024)
        #endif
    }
}
