import NIOCore
import PrivatusCore
import Synchronization

/// Per-address limits on connection attempts, inbound and outbound: a token bucket per IPv4
/// address or IPv6 /64 (a burst, then a steady rate), and for outbound dials an exponential backoff after
/// each failure. Loopback addresses are exempt unless ``limitsLoopback`` is set, so that tests
/// and local networks of many nodes are not throttled; tests of the limits set it and use
/// distinct 127.0.0.x addresses.
///
/// Memory is bounded: at most ``maximumTrackedAddresses`` addresses are remembered; past that,
/// the ones seen longest ago are forgotten first.
public final class AddressRateLimiter: Sendable {
    public struct Policy: Sendable {
        /// Attempts allowed at once from (or to) one address.
        public var burst = 10.0
        /// Attempts per second regained.
        public var perSecond = 1.0
        /// Backoff after the first failed dial; doubles with each further failure.
        public var initialBackoff = Duration.seconds(1)
        /// The longest backoff.
        public var maximumBackoff = Duration.seconds(300)
        /// Whether loopback addresses are limited too.
        public var limitsLoopback = false
        /// Addresses remembered at most.
        public var maximumTrackedAddresses = 10_000

        public init() {}
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
        var failures = 0
        var retryAfter: ContinuousClock.Instant?
    }

    public let policy: Policy
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Takes one attempt for `address`; false when it is over its rate or in backoff.
    public func allow(_ address: SocketAddress, at now: ContinuousClock.Instant = .now) -> Bool {
        guard let key = key(for: address) else { return true }
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: policy.burst, updated: now)
            if let retryAfter = bucket.retryAfter, now < retryAfter { return false }
            let elapsed = (now - bucket.updated).seconds
            bucket.tokens = min(policy.burst, bucket.tokens + max(0, elapsed) * policy.perSecond)
            bucket.updated = now
            guard bucket.tokens >= 1 else {
                buckets[key] = bucket
                return false
            }
            bucket.tokens -= 1
            if buckets[key] == nil, buckets.count >= policy.maximumTrackedAddresses { evictOldest(&buckets) }
            buckets[key] = bucket
            return true
        }
    }

    /// Records a failed dial to `address`: the next is allowed only after the backoff.
    public func recordFailure(_ address: SocketAddress, at now: ContinuousClock.Instant = .now) {
        guard let key = key(for: address) else { return }
        buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: policy.burst, updated: now)
            bucket.failures += 1
            let factor = 1 << min(bucket.failures - 1, 20)
            bucket.retryAfter = now + min(policy.maximumBackoff, policy.initialBackoff * factor)
            buckets[key] = bucket
        }
    }

    /// Records a successful dial: the backoff starts over.
    public func recordSuccess(_ address: SocketAddress) {
        guard let key = key(for: address) else { return }
        buckets.withLock { buckets in
            buckets[key]?.failures = 0
            buckets[key]?.retryAfter = nil
        }
    }

    /// The bucket key: an IPv4 address without the port, or an IPv6 address's /64 (one host
    /// commonly holds a whole /64); nil when exempt.
    private func key(for address: SocketAddress) -> String? {
        guard let ip = address.ipAddress else { return nil }
        if !policy.limitsLoopback, Self.isLoopback(address) { return nil }
        if case .v6(let v6) = address {
            let prefix = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0.prefix(8)) }
            return "v6/" + prefix.map { String($0, radix: 16) }.joined(separator: ":")
        }
        return ip
    }

    static func isLoopback(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4(let v4): return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6: return address.ipAddress == "::1"
        default: return false
        }
    }

    private func evictOldest(_ buckets: inout [String: Bucket]) {
        guard let oldest = buckets.min(by: { $0.value.updated < $1.value.updated })?.key else { return }
        buckets[oldest] = nil
    }
}
