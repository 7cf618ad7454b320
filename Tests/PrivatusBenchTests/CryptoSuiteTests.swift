import PrivatusBench
import PrivatusCrypto
import Testing

@Suite struct CryptoSuiteTests {
    @Test func suiteMeasuresEveryPrimitive() throws {
        let suite = CryptoSuite(
            budget: .milliseconds(2), unlockRuns: 1, unlockParameters: try ScryptParameters(log2N: 10))
        let figures = try suite.run()
        for key in [
            "aes_gcm_1k_mb_s", "aes_gcm_1m_mb_s", "aes_gcm_open_1m_mb_s", "aes_gcm_siv_1k_mb_s", "chachapoly_1m_mb_s",
            "x25519_per_s", "x25519_keygen_per_s", "ed25519_sign_per_s", "ed25519_verify_per_s",
            "hmac_sha256_64_per_s", "hkdf_per_s", "mlkem768_encap_per_s", "mlkem768_decap_per_s", "keystore_unlock_ms",
        ] {
            #expect((figures[key] ?? 0) > 0, "\(key)")
        }
        #expect(figures["keystore_scrypt_log2_n"] == 10)
    }

    @Test func reportPutsFiguresBesideTheMachine() throws {
        let report = BenchReport(suite: "crypto", figures: ["x_per_s": 1234.567, "y_ms": 0.12345])
        #expect(report.text.contains("x_per_s"))
        #expect(report.text.contains("1235.0"))
        #expect(report.text.contains("0.123"))
        #expect(!report.machine.isEmpty)
    }
}
