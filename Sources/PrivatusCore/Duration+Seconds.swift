extension Duration {
    /// The duration in seconds as a floating-point number.
    public var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }

    /// The duration in milliseconds, rounded to the microsecond (the `tookMs` of CLI output).
    public var milliseconds: Double {
        (seconds * 1_000_000).rounded() / 1000
    }

    /// The duration in whole nanoseconds (what swift-metrics' timers record).
    public var nanoseconds: Int64 {
        let (whole, attoseconds) = components
        return whole * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
