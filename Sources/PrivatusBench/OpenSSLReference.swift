import Foundation
import PrivatusCore

/// The same primitives measured by `openssl speed` in the same run, as the reference beside our
/// figures. Returns nothing when `openssl` is not installed.
public enum OpenSSLReference {
    /// `openssl speed` invocations and how to read their machine-readable (`-mr`) output.
    static let runs: [(arguments: [String], read: @Sendable (String) -> [String: Double])] = [
        (["-bytes", "1024", "-evp", "aes-256-gcm"], { throughput($0, as: "openssl_aes_gcm_1k_mb_s") }),
        (["-bytes", "1048576", "-evp", "aes-256-gcm"], { throughput($0, as: "openssl_aes_gcm_1m_mb_s") }),
        (
            ["-bytes", "1048576", "-decrypt", "-evp", "aes-256-gcm"],
            { throughput($0, as: "openssl_aes_gcm_open_1m_mb_s") }
        ),
        (["-bytes", "1048576", "-evp", "chacha20-poly1305"], { throughput($0, as: "openssl_chachapoly_1m_mb_s") }),
        (["-bytes", "1048576", "-evp", "sha256"], { throughput($0, as: "openssl_sha256_1m_mb_s") }),
        (
            ["-bytes", "64", "-hmac", "sha256"],
            { perSecond(throughput($0, as: "x")["x"], bytes: 64, as: "openssl_hmac_sha256_64_per_s") }
        ),
        (["ecdhx25519"], { field($0, prefix: "+F5:", index: 3, as: "openssl_x25519_per_s") }),
        (
            ["ed25519"],
            {
                field($0, prefix: "+F6:", index: 4, as: "openssl_ed25519_sign_per_s")
                    .merging(field($0, prefix: "+F6:", index: 5, as: "openssl_ed25519_verify_per_s")) { $1 }
            }
        ),
    ]

    /// Runs each measurement for one second.
    public static func run() -> [String: Double] {
        guard let openssl = locate() else { return [:] }
        var figures: [String: Double] = [:]
        for (arguments, read) in runs {
            guard let output = execute(openssl, ["speed", "-mr", "-seconds", "1"] + arguments) else { continue }
            figures.merge(read(output)) { $1 }
        }
        return figures
    }

    /// `+F:index:name:bytes-per-second` → MB/s.
    static func throughput(_ output: String, as name: String) -> [String: Double] {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("+F:") }),
            let value = line.split(separator: ":").last.flatMap({ Double($0) })
        else { return [:] }
        return [name: value / 1_000_000]
    }

    static func perSecond(_ megabytesPerSecond: Double?, bytes: Int, as name: String) -> [String: Double] {
        guard let megabytesPerSecond else { return [:] }
        return [name: megabytesPerSecond * 1_000_000 / Double(bytes)]
    }

    static func field(_ output: String, prefix: String, index: Int, as name: String) -> [String: Double] {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix(prefix) }) else { return [:] }
        let parts = line.split(separator: ":")
        guard parts.count > index, let value = Double(parts[index]) else { return [:] }
        return [name: value]
    }

    static func locate() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/openssl" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// Runs a command and returns its standard output, or `nil` when it fails. Started through
    /// ``ChildProcess``: `openssl speed` needs SIGALRM unblocked to end each measurement.
    static func execute(_ executable: String, _ arguments: [String]) -> String? {
        guard let result = try? ChildProcess.run(executable, arguments: arguments), result.status == 0 else {
            return nil
        }
        return String(decoding: result.stdout, as: UTF8.self)
    }
}
