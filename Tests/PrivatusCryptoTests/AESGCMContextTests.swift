import Crypto
import Foundation
import PrivatusCrypto
import Testing

/// The kept AES-256-GCM context seals and opens exactly as swift-crypto's `AES.GCM` does, for
/// every length a link frame or a stored value has, and refuses whatever was changed.
@Suite struct AESGCMContextTests {
    static let lengths = [0, 1, 15, 16, 17, 63, 64, 100, 4095, 4096, 65_519]

    @Test(arguments: lengths) func sealsTheBytesAESGCMSeals(length: Int) throws {
        let key = SymmetricKey(size: .bits256)
        let context = AESGCMContext(key: key)
        let plaintext = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let associatedData = Array("privatus".utf8)
        for counter in [UInt8(0), 1, 255] {
            let nonce = [UInt8](repeating: 0, count: 11) + [counter]
            let reference = try AES.GCM.seal(
                plaintext, using: key, nonce: AES.GCM.Nonce(data: nonce), authenticating: associatedData)
            let sealed = nonce.withUnsafeBytes { context.seal(plaintext, nonce: $0, authenticating: associatedData) }
            #expect(sealed.ciphertext == reference.ciphertext)
            #expect(sealed.tag == reference.tag)
            // And what AES.GCM sealed, the context opens.
            let opened = try context.open(combined: reference.combined!, authenticating: associatedData)
            #expect(Array(opened) == plaintext)
        }
    }

    /// Sealing into the caller's memory, out of place and in place, gives `AES.GCM`'s bytes;
    /// opening into it (also in place) gives the plaintext back.
    @Test(arguments: lengths) func sealsAndOpensInTheCallersMemory(length: Int) throws {
        let key = SymmetricKey(size: .bits256)
        let context = AESGCMContext(key: key)
        let plaintext = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let associatedData = Array("frame".utf8)
        let nonce = [UInt8](repeating: 0, count: 11) + [UInt8(length % 256)]
        let reference = try AES.GCM.seal(
            plaintext, using: key, nonce: AES.GCM.Nonce(data: nonce), authenticating: associatedData)
        let expected = Array(reference.ciphertext) + Array(reference.tag)

        var output = [UInt8](repeating: 0xEE, count: length + 16)
        plaintext.withUnsafeBytes { input in
            nonce.withUnsafeBytes { nonce in
                associatedData.withUnsafeBytes { ad in
                    output.withUnsafeMutableBytes { context.seal(input, nonce: nonce, authenticating: ad, into: $0) }
                }
            }
        }
        #expect(output == expected)

        var inPlace = plaintext + [UInt8](repeating: 0, count: 16)
        nonce.withUnsafeBytes { nonce in
            associatedData.withUnsafeBytes { ad in
                inPlace.withUnsafeMutableBytes { raw in
                    context.seal(
                        UnsafeRawBufferPointer(rebasing: raw[..<length]), nonce: nonce, authenticating: ad, into: raw)
                }
            }
        }
        #expect(inPlace == expected)

        let opened = try nonce.withUnsafeBytes { nonce in
            try associatedData.withUnsafeBytes { ad in
                try inPlace.withUnsafeMutableBytes { raw in
                    try context.open(
                        UnsafeRawBufferPointer(raw), nonce: nonce, authenticating: ad,
                        into: UnsafeMutableRawBufferPointer(rebasing: raw[..<length]))
                }
            }
        }
        #expect(opened == length)
        #expect(Array(inPlace[..<length]) == plaintext)
    }

    /// An open into the caller's memory refuses a changed byte, a short message and another
    /// nonce, and leaves no plaintext behind.
    @Test func openingIntoTheCallersMemoryRefusesWhatWasChanged() throws {
        let context = AESGCMContext(key: SymmetricKey(size: .bits256))
        let plaintext = [UInt8](repeating: 0x41, count: 100)
        let nonce = [UInt8](repeating: 3, count: 12)
        let (ciphertext, tag) = nonce.withUnsafeBytes { context.seal(plaintext, nonce: $0, authenticating: [UInt8]()) }
        let message = Array(ciphertext) + Array(tag)
        func open(_ message: [UInt8], nonce: [UInt8]) throws -> [UInt8] {
            var output = [UInt8](repeating: 0xEE, count: max(0, message.count - 16))
            do {
                _ = try message.withUnsafeBytes { message in
                    try nonce.withUnsafeBytes { nonce in
                        try output.withUnsafeMutableBytes {
                            try context.open(
                                message, nonce: nonce, authenticating: UnsafeRawBufferPointer(start: nil, count: 0),
                                into: $0)
                        }
                    }
                }
            } catch {
                #expect(!output.contains(0x41), "no plaintext is left in the output")
                throw error
            }
            return output
        }
        #expect(try open(message, nonce: nonce) == plaintext)
        for index in [0, 50, 99, 100, 115] {
            var changed = message
            changed[index] ^= 1
            #expect(throws: AESGCMContextError.authenticationFailure) { try open(changed, nonce: nonce) }
        }
        #expect(throws: AESGCMContextError.authenticationFailure) { try open(Array(message.prefix(15)), nonce: nonce) }
        #expect(throws: AESGCMContextError.authenticationFailure) {
            try open(message, nonce: [UInt8](repeating: 4, count: 12))
        }
        #expect(throws: AESGCMContextError.authenticationFailure) {
            try open(message, nonce: [UInt8](repeating: 3, count: 11))
        }
    }

    @Test func combinedFormOpensWithAESGCMAndBack() throws {
        let key = SymmetricKey(size: .bits256)
        let context = AESGCMContext(key: key)
        let value = Array("a stored value".utf8)
        let first = context.sealCombined(value, authenticating: [1, 2, 3])
        let second = context.sealCombined(value, authenticating: [1, 2, 3])
        #expect(first.count == 12 + value.count + 16)
        #expect(first.prefix(12) != second.prefix(12), "every seal draws a fresh nonce")
        let box = try AES.GCM.SealedBox(combined: first)
        #expect(Array(try AES.GCM.open(box, using: key, authenticating: [1, 2, 3])) == value)
        #expect(Array(try context.open(combined: second, authenticating: [1, 2, 3])) == value)
    }

    /// Every length a stored value has, sealed into one buffer, opens with `AES.GCM` under the
    /// nonce it starts with.
    @Test(arguments: lengths) func combinedFormOfEveryLengthOpensWithAESGCM(length: Int) throws {
        let key = SymmetricKey(size: .bits256)
        let context = AESGCMContext(key: key)
        let value = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let sealed = context.sealCombined(value, authenticating: [9, 9])
        #expect(sealed.count == 12 + length + 16)
        let box = try AES.GCM.SealedBox(combined: sealed)
        #expect(Array(try AES.GCM.open(box, using: key, authenticating: [9, 9])) == value)
        // The generic form seals the same way, and both open into arrays.
        let generic = context.sealCombined(Data(value), authenticating: Data([9, 9]))
        #expect(try context.openCombined(generic, authenticating: [9, 9]) == value)
        #expect(try context.openCombined(sealed, authenticating: [9, 9]) == value)
        var changed = sealed
        changed[changed.startIndex + changed.count - 1] ^= 1
        #expect(throws: AESGCMContextError.authenticationFailure) {
            try context.openCombined(changed, authenticating: [9, 9])
        }
        #expect(throws: AESGCMContextError.authenticationFailure) {
            try context.openCombined(sealed.prefix(27), authenticating: [9, 9])
        }
    }

    @Test func anythingChangedDoesNotOpen() throws {
        let context = AESGCMContext(key: SymmetricKey(size: .bits256))
        let sealed = Array(context.sealCombined(Array("hello, bob".utf8), authenticating: [7]))
        for index in sealed.indices {
            var altered = sealed
            altered[index] ^= 0x01
            #expect(throws: AESGCMContextError.authenticationFailure) {
                try context.open(combined: altered, authenticating: [7])
            }
        }
        #expect(throws: AESGCMContextError.authenticationFailure) {
            try context.open(combined: sealed, authenticating: [8])
        }
        #expect(throws: AESGCMContextError.authenticationFailure) {
            try AESGCMContext(key: SymmetricKey(size: .bits256)).open(combined: sealed, authenticating: [7])
        }
        // Too short to hold a nonce and a tag, and a truncated message.
        for count in [0, 1, 27] {
            #expect(throws: AESGCMContextError.authenticationFailure) {
                try context.open(combined: Array(sealed.prefix(count)), authenticating: [7])
            }
        }
        #expect(throws: AESGCMContextError.authenticationFailure) {
            try context.open(combined: Array(sealed.dropLast()), authenticating: [7])
        }
        // The original still opens: a failed open changes nothing.
        #expect(Array(try context.open(combined: sealed, authenticating: [7])) == Array("hello, bob".utf8))
    }

    @Test func oneContextServesManyThreads() async throws {
        let key = SymmetricKey(size: .bits256)
        let context = AESGCMContext(key: key)
        let opened = try await withThrowingTaskGroup(of: Bool.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for round in 0..<200 {
                        let value = Array("task \(task) round \(round)".utf8)
                        let sealed = context.sealCombined(value, authenticating: [UInt8(task)])
                        guard Array(try context.open(combined: sealed, authenticating: [UInt8(task)])) == value else {
                            return false
                        }
                    }
                    return true
                }
            }
            return try await group.reduce(true) { $0 && $1 }
        }
        #expect(opened)
    }
}
