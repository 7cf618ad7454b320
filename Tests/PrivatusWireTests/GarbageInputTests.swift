import PrivatusCore
import PrivatusWire
import Testing

/// Random and mutated input, from fixed seeds: the decoders answer with a result or a
/// ``WireError`` and never trap. Bounded loops, so the suite stays quick in debug builds.
@Suite struct GarbageInputTests {
    static func randomBytes(_ rng: inout SplitMix64, maxCount: Int) -> [UInt8] {
        let count = Int.random(in: 0...maxCount, using: &rng)
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
    }

    /// Flips, replaces, inserts or cuts a few bytes of `bytes`.
    static func mutate(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var out = bytes
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0 where !out.isEmpty:
                out[Int.random(in: out.indices, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1 where !out.isEmpty:
                out[Int.random(in: out.indices, using: &rng)] = UInt8.random(in: .min ... .max, using: &rng)
            case 2:
                out.insert(UInt8.random(in: .min ... .max, using: &rng), at: Int.random(in: 0...out.count, using: &rng))
            default:
                out = Array(out.prefix(Int.random(in: 0...out.count, using: &rng)))
            }
        }
        return out
    }

    @Test func randomFramesNeverCrashAndDecodedFramesReencodeExactly() throws {
        var rng = SplitMix64(seed: 0x5EED_F4A3)
        var decoded = 0
        for _ in 0..<20_000 {
            var bytes = Self.randomBytes(&rng, maxCount: 12)
            // Half the inputs start with a valid header, so the bodies get exercised too.
            if bytes.count >= 2, Bool.random(using: &rng) {
                bytes[0] = UInt8.random(in: 0...3, using: &rng)
                bytes[1] = UInt8.random(in: 0...3, using: &rng)
            }
            guard let frame = try? StreamFrame(decoding: bytes) else { continue }
            decoded += 1
            // The layout has one encoding per frame: whatever decodes re-encodes to the same bytes.
            #expect(try frame.encoded() == bytes)
        }
        #expect(decoded > 1_000)
    }

    @Test func randomAndMutatedEnvelopesNeverCrash() throws {
        var rng = SplitMix64(seed: 0xE1_7E10_9E)
        let id: [UInt8] = Array(repeating: 0xAB, count: 16)
        let valid: [[UInt8]] = try [
            Envelope(.ping(Ping(nonce: 42))),
            Envelope(.errorReply(ErrorReply(code: .malformed, kind: 5))),
            Envelope(.chatMessage(ChatMessage(messageID: id, sealed: Array(repeating: 0x5A, count: 40)))),
            Envelope(.receipt(Receipt(messageIDs: [id], state: .read))),
            Envelope(
                .signedObject(SignedObject(body: [1, 2, 3], signature: Array(repeating: 7, count: 64), purpose: 6))),
        ].map { try WireCodec.encode($0) }

        var outcomes: [String: Int] = [:]
        for round in 0..<20_000 {
            let bytes =
                round.isMultiple(of: 2)
                ? Self.randomBytes(&rng, maxCount: 64)
                : Self.mutate(valid[round / 2 % valid.count], &rng)
            do {
                let result = try WireCodec.decode(bytes, maxBytes: 4_096)
                switch result {
                case .message(let body):
                    outcomes["message", default: 0] += 1
                    // Whatever is accepted as a message can be sent on again.
                    _ = try WireCodec.encode(Envelope(body))
                case .unsupportedVersion: outcomes["version", default: 0] += 1
                case .unknownKind: outcomes["kind", default: 0] += 1
                }
            } catch {
                outcomes["\(error)", default: 0] += 1
            }
        }
        // The mutations reach every outcome, so the loop exercises more than the parser's first byte.
        #expect(outcomes["message", default: 0] > 100)
        #expect(outcomes["version", default: 0] > 100)
        #expect(outcomes["kind", default: 0] > 10)
        #expect(outcomes[WireError.malformedEnvelope.description, default: 0] > 100)
    }

    @Test func randomFrameSequencesNeverOverfillTheReassembler() {
        var rng = SplitMix64(seed: 0xBAD_F00D)
        let limit = 2_000
        var reassembler = Reassembler(maxMessageBytes: limit)
        for _ in 0..<20_000 {
            let payload = Self.randomBytes(&rng, maxCount: 700)
            let body: StreamFrame.Body
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: body = .reset(code: 0)
            case 1...3: body = .final(payload)
            default: body = .fragment(payload)
            }
            do {
                if let message = try reassembler.receive(body) { #expect(message.count <= limit) }
            } catch {
                #expect(error == .messageTooLarge || error == .emptyFragment)
            }
            #expect(reassembler.bufferedBytes <= limit)
        }
    }
}
