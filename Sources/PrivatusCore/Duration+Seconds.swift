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
}
