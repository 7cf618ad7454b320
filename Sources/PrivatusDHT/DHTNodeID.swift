import PrivatusCore

/// A node's identifier in the DHT: 256 bits chosen at random by each node, unrelated to its
/// PeerID, so routing tables and lookups do not say who a node belongs to (DESIGN.md, "Privacy
/// architecture"). Record keys (hashes) live in the same space.
///
/// Held as four big-endian 64-bit words, so that XOR distance and its order are four word
/// operations.
public struct DHTNodeID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public static let byteCount = 32
    public static let bitCount = 256

    /// The four words, most significant first.
    public let words: (UInt64, UInt64, UInt64, UInt64)

    public init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// An identifier from exactly 32 bytes (big-endian).
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        var values: [UInt64] = [0, 0, 0, 0]
        for (offset, byte) in bytes.enumerated() {
            values[offset / 8] = values[offset / 8] << 8 | UInt64(byte)
        }
        words = (values[0], values[1], values[2], values[3])
    }

    /// A random identifier from `generator` (the system's for a real node; a seeded one in the
    /// simulator).
    public static func random(using generator: inout some RandomNumberGenerator) -> DHTNodeID {
        DHTNodeID(words: (generator.next(), generator.next(), generator.next(), generator.next()))
    }

    /// A random identifier from the system's generator.
    public static func random() -> DHTNodeID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// The 32 bytes, big-endian.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.byteCount)
        for word in [words.0, words.1, words.2, words.3] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return out
    }

    /// The XOR distance to `other`, itself a 256-bit number.
    public func distance(to other: DHTNodeID) -> DHTNodeID {
        DHTNodeID(
            words: (words.0 ^ other.words.0, words.1 ^ other.words.1, words.2 ^ other.words.2, words.3 ^ other.words.3))
    }

    /// How many leading bits this identifier shares with `other` (256 for itself): the index of
    /// the routing-table bucket `other` belongs in.
    public func commonPrefixLength(with other: DHTNodeID) -> Int {
        let distance = distance(to: other)
        for (index, word) in [distance.words.0, distance.words.1, distance.words.2, distance.words.3].enumerated()
        where word != 0 {
            return index * 64 + word.leadingZeroBitCount
        }
        return Self.bitCount
    }

    /// Whether `a` is closer to this identifier than `b` (XOR metric; ties broken by identity,
    /// so the order is total and deterministic).
    public func isCloser(_ a: DHTNodeID, than b: DHTNodeID) -> Bool {
        let da = distance(to: a)
        let db = distance(to: b)
        return da < db
    }

    /// A random identifier that shares exactly `prefix` leading bits with this one (a target
    /// that falls in bucket `prefix`, for refreshing it).
    public func random(sharingPrefix prefix: Int, using generator: inout some RandomNumberGenerator) -> DHTNodeID {
        precondition((0..<Self.bitCount).contains(prefix))
        let noise = DHTNodeID.random(using: &generator)
        var result = [words.0, words.1, words.2, words.3]
        let noiseWords = [noise.words.0, noise.words.1, noise.words.2, noise.words.3]
        let word = prefix / 64
        let bit = prefix % 64
        // Bits before `prefix` kept, bit `prefix` flipped, the rest random.
        let keep: UInt64 = bit == 0 ? 0 : ~UInt64(0) << UInt64(64 - bit)
        let flip: UInt64 = 1 << UInt64(63 - bit)
        let rest = ~keep & ~flip
        result[word] = (result[word] & keep) | (~result[word] & flip) | (noiseWords[word] & rest)
        for index in (word + 1)..<4 { result[index] = noiseWords[index] }
        return DHTNodeID(words: (result[0], result[1], result[2], result[3]))
    }

    public static func < (lhs: DHTNodeID, rhs: DHTNodeID) -> Bool {
        if lhs.words.0 != rhs.words.0 { return lhs.words.0 < rhs.words.0 }
        if lhs.words.1 != rhs.words.1 { return lhs.words.1 < rhs.words.1 }
        if lhs.words.2 != rhs.words.2 { return lhs.words.2 < rhs.words.2 }
        return lhs.words.3 < rhs.words.3
    }

    public static func == (lhs: DHTNodeID, rhs: DHTNodeID) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
            && lhs.words.3 == rhs.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    /// The first 8 hex digits: enough to tell nodes apart in a debug log or a test failure.
    public var description: String { Hex.encode(Array(bytes.prefix(4))) }
}
