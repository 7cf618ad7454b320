/// The cost of the scrypt derivation that protects the keystore.
///
/// Bounds are checked before any derivation: `2^10 ≤ N ≤ 2^22`, `r = 8`, `1 ≤ p ≤ 4`. The default
/// for a new keystore never goes below ``floor`` (N = 2^17, about 128 MiB of memory); only an
/// explicit testing option may choose less.
public struct ScryptParameters: Hashable, Sendable, CustomStringConvertible {
    /// log2 of the CPU/memory cost N.
    public let log2N: UInt8
    /// The block size r; always 8.
    public let r: UInt8
    /// The parallelism p.
    public let p: UInt8

    /// The smallest log2 N a keystore may carry at all (test profiles only).
    public static let minimumLog2N: UInt8 = 10
    /// The largest log2 N accepted: N = 2^22 needs 4 GiB of memory.
    public static let maximumLog2N: UInt8 = 22
    /// The only block size accepted.
    public static let blockSize: UInt8 = 8
    /// The largest parallelism accepted.
    public static let maximumParallelism: UInt8 = 4

    /// The floor of every keystore created without a testing option: N = 2^17, r = 8, p = 1.
    public static let floor = ScryptParameters(checked: 17, r: 8, p: 1)

    /// Validates the parameters.
    /// - Throws: ``KeystoreError/parametersOutOfRange`` when they are outside the bounds.
    public init(log2N: UInt8, r: UInt8 = 8, p: UInt8 = 1) throws(KeystoreError) {
        guard (Self.minimumLog2N...Self.maximumLog2N).contains(log2N), r == Self.blockSize,
            (1...Self.maximumParallelism).contains(p)
        else {
            throw KeystoreError.parametersOutOfRange
        }
        self.init(checked: log2N, r: r, p: p)
    }

    private init(checked log2N: UInt8, r: UInt8, p: UInt8) {
        self.log2N = log2N
        self.r = r
        self.p = p
    }

    /// N = 2^log2N.
    public var n: Int { 1 << Int(log2N) }

    /// Whether these parameters are at least as costly as ``floor``.
    public var meetsFloor: Bool { log2N >= Self.floor.log2N }

    /// The same parameters with N doubled, or `nil` past the maximum.
    public var doubled: ScryptParameters? {
        log2N < Self.maximumLog2N ? ScryptParameters(checked: log2N + 1, r: r, p: p) : nil
    }

    public var description: String { "N=2^\(log2N), r=\(r), p=\(p)" }
}

/// Chooses the scrypt cost for this machine.
public enum ScryptCalibration {
    /// The time one derivation should take on the machine that creates the keystore.
    public static let target: ClosedRange<Duration> = .milliseconds(250) ... .milliseconds(750)

    /// Runs the derivation at ``ScryptParameters/floor`` and doubles N while a derivation takes
    /// less than the lower end of ``target`` (scrypt's time is linear in N, so a doubling from
    /// below 250 ms lands below 500 ms). A machine slower than the target keeps the floor.
    ///
    /// - Parameter derive: performs one real derivation with the given parameters and reports
    ///   its result and how long it took. The last result is returned, so no work is wasted.
    public static func calibrate<Result>(
        starting: ScryptParameters = .floor,
        derive: (ScryptParameters) throws -> (result: Result, took: Duration)
    ) rethrows -> (parameters: ScryptParameters, result: Result) {
        var parameters = starting
        var (result, took) = try derive(parameters)
        while took < target.lowerBound, let next = parameters.doubled {
            parameters = next
            (result, took) = try derive(parameters)
        }
        return (parameters, result)
    }
}
