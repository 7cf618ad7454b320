import PrivatusCrypto
import Testing

@testable import PrivatusBench

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

@Suite struct OpenSSLReferenceTests {
    @Test func machineReadableOutputIsParsed() {
        let cipher = "+DT:aes-256-gcm:1:1024\n+R:1:aes-256-gcm:1.0\n+H:1024\n+F:25:AES-256-GCM:1731478528.00\n"
        #expect(OpenSSLReference.throughput(cipher, as: "x_mb_s") == ["x_mb_s": 1731.478528])
        let eddsa = "+F6:0:253:Ed25519:27202.000000:9583.000000\n"
        #expect(OpenSSLReference.field(eddsa, prefix: "+F6:", index: 4, as: "sign") == ["sign": 27202])
        #expect(OpenSSLReference.field(eddsa, prefix: "+F6:", index: 5, as: "verify") == ["verify": 9583])
        #expect(OpenSSLReference.field("garbage", prefix: "+F6:", index: 5, as: "verify").isEmpty)
    }

    @Test func spawnedCommandsSeeNoBlockedSignals() throws {
        // `openssl speed` ends each measurement with SIGALRM; a blocked signal would hang it.
        let status = try #require(OpenSSLReference.execute("/bin/cat", ["/proc/self/status"]))
        let blocked = status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") }
        #expect(blocked == "SigBlk:\t0000000000000000")
        #expect(OpenSSLReference.execute("/bin/false", []) == nil)
    }
}

@Suite struct SessionsSuiteTests {
    @Test func suitePrintsEveryFigureBesideItsCeiling() throws {
        // Each primitive of a ceiling is timed for 2 ms here: one preemption of the test's thread
        // in that time (a fresh-clone CI once saw a ceiling of 2,419/s against 4,358 measured)
        // makes it meaningless. A ceiling computed wrongly fails every run; a preempted one passes
        // when measured again, so the suite runs up to three times.
        var figures = try SessionsSuite(budget: .milliseconds(2)).run()
        for _ in 0..<2 where figures["encrypt_per_s"] ?? 0 >= 10 * (figures["ceiling_encrypt_per_s"] ?? 0) {
            figures = try SessionsSuite(budget: .milliseconds(2)).run()
        }
        for key in [
            "encrypt_per_s", "decrypt_per_s", "pingpong_per_s", "pqxdh_per_s", "ceiling_encrypt_per_s",
            "ceiling_decrypt_per_s", "ceiling_pingpong_per_s", "encrypt_of_ceiling_pct",
        ] {
            #expect((figures[key] ?? 0) > 0, "\(key)")
        }
        // A ceiling is the sum of the primitive costs: it bounds the figure from above (with slack
        // for noise on a shared machine: the operation itself cannot be ten times faster).
        #expect(figures["encrypt_per_s"]! < 10 * figures["ceiling_encrypt_per_s"]!)
        #expect(figures["ceiling_pingpong_per_s"]! < figures["ceiling_encrypt_per_s"]!)
    }
}

@Suite struct StorageSuiteTests {
    @Test func suitePrintsEveryFigureOnASmallDatabase() throws {
        let figures = try StorageSuite(messages: 500, conversations: 10).run()
        for key in [
            "insert_per_s", "raw_insert_per_s", "index_per_s", "page_p99_ms", "search_p50_ms", "bytes_per_message",
            "open_ms",
        ] {
            #expect((figures[key] ?? 0) > 0, "\(key)")
        }
        #expect(figures["messages"] == 500)
    }
}
