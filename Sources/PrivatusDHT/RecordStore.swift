/// The records a DHT node stores for others: checked before they are kept, bounded in every
/// dimension, dropped when they expire. Pure: the time (Unix seconds) is passed in.
///
/// A record is refused (``DHTRecordError``) when it does not parse or verify (``DHTRecord``), has
/// expired, claims to live longer than its kind may, has a sequence number (its signing time,
/// Unix ms) more than 10 minutes ahead, is not newer than the stored record at its key, or would take its publisher past `perPublisher` records or the network it was stored
/// from (an IPv4 /24 or IPv6 /48) past `perSubnet`, or the store past `capacity`.
public struct RecordStore: Sendable {
    public struct Configuration: Sendable {
        public var capacity = 20_000
        public var perPublisher = 4
        public var perSubnet = 256
        /// Exempts loopback sources from `perSubnet` (local networks and tests).
        public var exemptLoopback = false

        public init() {}
    }

    struct Stored: Sendable {
        var record: DHTRecord
        var subnet: [UInt8]
    }

    public let configuration: Configuration
    var records: [DHTNodeID: Stored] = [:]
    var byPublisher: [[UInt8]: Int] = [:]
    var bySubnet: [[UInt8]: Int] = [:]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public var count: Int { records.count }

    /// How far ahead of this node's clock a record's sequence (signing time) may be (seconds).
    public static let maximumClockAhead: UInt64 = 600

    /// Keeps `record`, stored by `source` at `now`, replacing an older one at its key.
    public mutating func put(_ record: DHTRecord, from source: DHTAddress, now: UInt64) throws(DHTRecordError) {
        guard record.expires > now else { throw .expired }
        try record.verify()
        guard record.expires - now <= record.kind.maximumLifetime else { throw .lifetimeTooLong }
        // A sequence number is the signing time in Unix ms: one far ahead would make every real
        // record after it "not newer" (a contact holding a presence secret could do that).
        guard record.sequence <= (now + Self.maximumClockAhead) * 1_000 else { throw .fromTheFuture }
        let subnet = source.subnet
        let existing = records[record.key]
        if let existing {
            guard record.sequence > existing.record.sequence else { throw .notNewer }
        } else {
            guard records.count < configuration.capacity else { throw .full }
        }
        // Counted without the record it replaces (the same publisher: the key is bound to it).
        let publisherCount = byPublisher[record.publisher, default: 0] - (existing == nil ? 0 : 1)
        guard publisherCount < configuration.perPublisher else { throw .overQuota }
        let exempt = configuration.exemptLoopback && source.isLoopback
        let subnetCount = bySubnet[subnet, default: 0] - (existing?.subnet == subnet ? 1 : 0)
        guard exempt || subnetCount < configuration.perSubnet else { throw .overQuota }
        remove(record.key)
        records[record.key] = Stored(record: record, subnet: exempt ? [] : subnet)
        byPublisher[record.publisher, default: 0] += 1
        if !exempt { bySubnet[subnet, default: 0] += 1 }
    }

    /// The record at `key`, unless it has expired.
    public func get(_ key: DHTNodeID, now: UInt64) -> DHTRecord? {
        guard let stored = records[key], stored.record.expires > now else { return nil }
        return stored.record
    }

    /// Drops every expired record; returns how many.
    @discardableResult
    public mutating func expire(now: UInt64) -> Int {
        let expired = records.filter { $0.value.record.expires <= now }.map(\.key)
        for key in expired { remove(key) }
        return expired.count
    }

    mutating func remove(_ key: DHTNodeID) {
        guard let stored = records.removeValue(forKey: key) else { return }
        byPublisher[stored.record.publisher, default: 1] -= 1
        if byPublisher[stored.record.publisher] == 0 { byPublisher[stored.record.publisher] = nil }
        if !stored.subnet.isEmpty {
            bySubnet[stored.subnet, default: 1] -= 1
            if bySubnet[stored.subnet] == 0 { bySubnet[stored.subnet] = nil }
        }
    }
}
