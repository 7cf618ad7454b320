import Crypto
import Foundation
import PrivatusCrypto
import Testing

/// The chunks of a file transfer: sealed to their transfer and place.
@Suite struct FileChunkCipherTests {
    let key = FileChunkCipher.newKey()
    let transfer = [UInt8](repeating: 0xab, count: 16)

    @Test func chunksRoundTripAndEachSealIsFresh() throws {
        let cipher = try FileChunkCipher(key: key, transferID: transfer, chunkCount: 3)
        let chunk = [UInt8]((0..<1_000).map { UInt8(truncatingIfNeeded: $0) })
        let first = try cipher.seal(chunk, index: 1)
        let again = try cipher.seal(chunk, index: 1)
        #expect(first.count == chunk.count + FileChunkCipher.overheadBytes)
        #expect(first != again, "a resent chunk is sealed under a new nonce")
        #expect(try cipher.open(first, index: 1) == chunk)
        #expect(try cipher.open(again, index: 1) == chunk)
        #expect(try cipher.open(try cipher.seal([], index: 2), index: 2) == [])
    }

    @Test func aChunkChangedMovedOrFromAnotherTransferIsRefused() throws {
        let cipher = try FileChunkCipher(key: key, transferID: transfer, chunkCount: 3)
        let sealed = try cipher.seal([1, 2, 3, 4], index: 0)
        var flipped = sealed
        flipped[14] ^= 1
        #expect(throws: FileChunkError.refused) { try cipher.open(flipped, index: 0) }
        #expect(throws: FileChunkError.refused) { try cipher.open(sealed, index: 1) }
        let otherTransfer = try FileChunkCipher(key: key, transferID: [UInt8](repeating: 1, count: 16), chunkCount: 3)
        #expect(throws: FileChunkError.refused) { try otherTransfer.open(sealed, index: 0) }
        let otherLength = try FileChunkCipher(key: key, transferID: transfer, chunkCount: 4)
        #expect(throws: FileChunkError.refused) { try otherLength.open(sealed, index: 0) }
        let otherKey = try FileChunkCipher(key: FileChunkCipher.newKey(), transferID: transfer, chunkCount: 3)
        #expect(throws: FileChunkError.refused) { try otherKey.open(sealed, index: 0) }
    }

    @Test func sizesIndexesAndParametersAreCheckedFirst() throws {
        let cipher = try FileChunkCipher(key: key, transferID: transfer, chunkCount: 3)
        #expect(throws: FileChunkError.badIndex) { try cipher.seal([1], index: 3) }
        #expect(throws: FileChunkError.badIndex) { try cipher.open([UInt8](repeating: 0, count: 40), index: 3) }
        #expect(throws: FileChunkError.malformed) { try cipher.open([UInt8](repeating: 0, count: 27), index: 0) }
        let huge = [UInt8](repeating: 0, count: FileChunkCipher.maximumChunkBytes + FileChunkCipher.overheadBytes + 1)
        #expect(throws: FileChunkError.tooLarge) { try cipher.open(huge, index: 0) }
        #expect(throws: FileChunkError.tooLarge) {
            try cipher.seal([UInt8](repeating: 0, count: FileChunkCipher.maximumChunkBytes + 1), index: 0)
        }
        #expect(throws: FileChunkError.badParameters) {
            try FileChunkCipher(key: Array(key.dropLast()), transferID: transfer, chunkCount: 1)
        }
        #expect(throws: FileChunkError.badParameters) {
            try FileChunkCipher(key: key, transferID: Array(transfer.dropLast()), chunkCount: 1)
        }
        #expect(throws: FileChunkError.badParameters) {
            try FileChunkCipher(key: key, transferID: transfer, chunkCount: 0)
        }
        #expect(throws: FileChunkError.badParameters) {
            try FileChunkCipher(key: key, transferID: transfer, chunkCount: FileChunkCipher.maximumChunks + 1)
        }
    }

    /// The documented layout, built here from swift-crypto directly: a chunk sealed by anyone who
    /// follows docs/PROTOCOL.md opens.
    @Test func theSealedLayoutAndAssociatedDataAreAsDocumented() throws {
        let nonce = try AES.GCM.Nonce(data: [UInt8](repeating: 7, count: 12))
        var associated = Array("privatus-file-chunk-v1".utf8) + [0] + transfer  // form 0: as it is
        associated += [0, 0, 0, 2]  // index 2
        associated += [0, 0, 0, 5]  // of 5 chunks
        let box = try AES.GCM.seal([9, 8, 7], using: SymmetricKey(data: key), nonce: nonce, authenticating: associated)
        let sealed = Array(try #require(box.combined))
        #expect(Array(sealed.prefix(12)) == [UInt8](repeating: 7, count: 12))
        let cipher = try FileChunkCipher(key: key, transferID: transfer, chunkCount: 5)
        #expect(try cipher.open(sealed, index: 2) == [9, 8, 7])
        // The form byte: 1 for a deflated chunk.
        associated[22] = 1
        let deflated = try AES.GCM.seal([1], using: SymmetricKey(data: key), nonce: nonce, authenticating: associated)
        #expect(try cipher.open(Array(try #require(deflated.combined)), index: 2, compressed: true) == [1])
    }

    @Test func aChunkOpensOnlyInTheFormItWasSealedIn() throws {
        let cipher = try FileChunkCipher(key: key, transferID: transfer, chunkCount: 2)
        let stored = try cipher.seal([1, 2, 3], index: 0)
        let deflated = try cipher.seal([1, 2, 3], index: 0, compressed: true)
        #expect(throws: FileChunkError.refused) { try cipher.open(stored, index: 0, compressed: true) }
        #expect(throws: FileChunkError.refused) { try cipher.open(deflated, index: 0) }
        #expect(try cipher.open(deflated, index: 0, compressed: true) == [1, 2, 3])
    }
}
