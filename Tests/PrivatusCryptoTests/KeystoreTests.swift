import Crypto
import Foundation
import PrivatusCore
import PrivatusCrypto
import Testing

/// Keystores here use N = 2^10 so the suite stays fast; the cost itself is tested separately.
@Suite struct KeystoreTests {
    static let cheap = try! ScryptParameters(log2N: 10)
    static let password = "correct horse battery staple"

    /// Byte offsets of the version-1 format (docs/PROTOCOL.md).
    enum Region: String, CaseIterable, Sendable {
        case magic, version, kdf, log2N, r, p, salt, check, nonce, length, ciphertext, tag, digest

        func range(in file: [UInt8]) -> Range<Int> {
            let ciphertextEnd = file.count - 32 - 16
            switch self {
            case .magic: return 0..<8
            case .version: return 8..<10
            case .kdf: return 10..<11
            case .log2N: return 11..<12
            case .r: return 12..<13
            case .p: return 13..<14
            case .salt: return 14..<46
            case .check: return 46..<78
            case .nonce: return 78..<90
            case .length: return 90..<94
            case .ciphertext: return 94..<ciphertextEnd
            case .tag: return ciphertextEnd..<(ciphertextEnd + 16)
            case .digest: return (file.count - 32)..<file.count
            }
        }
    }

    static func sealed(name: String = "alice") throws -> (KeystoreContents, [UInt8]) {
        let contents = KeystoreContents(keys: IdentityKeys(), name: name)
        return (contents, try Keystore.seal(contents, password: password, parameters: cheap))
    }

    /// Recomputes the trailing digest, as someone altering the file on purpose would.
    static func redigested(_ file: [UInt8]) -> [UInt8] {
        let body = Array(file[0..<(file.count - 32)])
        return body + Array(SHA256.hash(data: body))
    }

    static func secrets(of keys: IdentityKeys) -> [[UInt8]] {
        [
            Array(keys.identity.seed),
            Array(keys.identityDH.rawRepresentation),
            Array(keys.noiseStatic.rawRepresentation),
            keys.databaseKey.withUnsafeBytes { Array($0) },
        ]
    }

    @Test func roundTripRestoresEveryKeyAndTheName() throws {
        let (contents, file) = try Self.sealed(name: "Zoë 🐢")
        let opened = try Keystore.open(file, password: Self.password)
        #expect(opened.name == "Zoë 🐢")
        #expect(Self.secrets(of: opened.keys) == Self.secrets(of: contents.keys))
        #expect(opened.keys.publicIdentity.peerID == contents.keys.publicIdentity.peerID)
        #expect(try Keystore.parameters(of: file) == Self.cheap)
    }

    @Test func fileContainsNoPrivateKeyInAnyEncoding() throws {
        let (contents, file) = try Self.sealed()
        let text = String(decoding: file, as: UTF8.self)
        for secret in Self.secrets(of: contents.keys) {
            // Any 8-byte window of a raw key would show it leaked, even in part.
            for start in 0...(secret.count - 8) {
                let window = Array(secret[start..<(start + 8)])
                #expect(!file.indices.dropLast(7).contains { Array(file[$0..<($0 + 8)]) == window })
            }
            #expect(!text.contains(Hex.encode(secret)))
            #expect(!text.lowercased().contains(Hex.encode(secret.prefix(8))))
            #expect(!text.contains(Data(secret).base64EncodedString().dropLast(4)))
            #expect(!text.contains(Data(secret).base64EncodedString(options: []).prefix(12)))
        }
    }

    @Test func wrongPasswordIsToldApartFromDamage() throws {
        let (_, file) = try Self.sealed()
        #expect(throws: KeystoreError.wrongPassword) { try Keystore.open(file, password: "wrong") }
        #expect(throws: KeystoreError.wrongPassword) { try Keystore.open(file, password: Self.password + " ") }
    }

    @Test func passwordIsComparedAfterUnicodeNormalization() throws {
        let contents = KeystoreContents(keys: IdentityKeys(), name: "n")
        let file = try Keystore.seal(contents, password: "caf\u{E9}", parameters: Self.cheap)
        let opened = try Keystore.open(file, password: "cafe\u{301}")
        #expect(opened.keys.publicIdentity.peerID == contents.keys.publicIdentity.peerID)
    }

    @Test(arguments: Region.allCases)
    func accidentalDamageToAnyRegionIsDetected(_ region: Region) throws {
        let (_, original) = try Self.sealed()
        var file = original
        let range = region.range(in: file)
        file[range.upperBound - 1] ^= 0x01
        let expected: KeystoreError =
            switch region {
            case .magic: .notAKeystore
            case .version: .unsupportedVersion(0)
            case .length: .truncated  // the 148-byte payload now claims 149: the file is too short for it
            default: .damaged
            }
        #expect(throws: expected) { try Keystore.open(file, password: Self.password) }
    }

    @Test(arguments: Region.allCases.filter { ![.magic, .version, .digest].contains($0) })
    func deliberateAlterationWithAFreshDigestIsStillRefused(_ region: Region) throws {
        let (_, original) = try Self.sealed()
        var file = original
        let range = region.range(in: file)
        switch region {
        case .log2N: file[range.lowerBound] = 11  // a valid cost, but not the one the check was made with
        case .p: file[range.lowerBound] = 2
        case .length: file[range.upperBound - 1] &-= 1  // the sizes no longer agree
        default: file[range.lowerBound] ^= 0x80
        }
        let expected: KeystoreError =
            switch region {
            case .kdf, .r: .parametersOutOfRange
            case .log2N, .p, .salt, .check: .wrongPassword
            default: .damaged
            }
        #expect(throws: expected) { try Keystore.open(Self.redigested(file), password: Self.password) }
    }

    @Test func everyTruncationIsRefused() throws {
        let (_, file) = try Self.sealed()
        for length in 0..<file.count {
            let cut = Array(file.prefix(length))
            let expected: KeystoreError = length < 10 ? .notAKeystore : .truncated
            #expect(throws: expected, "length \(length)") { try Keystore.open(cut, password: Self.password) }
        }
    }

    @Test func unknownVersionIsNamedAsSuch() throws {
        let (_, original) = try Self.sealed()
        var file = original
        file[8] = 0x00
        file[9] = 0x07
        #expect(throws: KeystoreError.unsupportedVersion(7)) { try Keystore.open(file, password: Self.password) }
        #expect(throws: KeystoreError.unsupportedVersion(7)) {
            try Keystore.open(Self.redigested(file), password: Self.password)
        }
    }

    @Test(arguments: [
        (UInt8(9), UInt8(8), UInt8(1)), (23, 8, 1), (64, 8, 1), (255, 8, 1), (17, 7, 1), (17, 16, 1), (17, 8, 0),
        (17, 8, 5),
    ])
    func outOfRangeParametersAreRefusedBeforeAnyDerivation(_ log2N: UInt8, _ r: UInt8, _ p: UInt8) throws {
        // N = 2^64 or 2^255 could not even be derived: the refusal must come first.
        let (_, original) = try Self.sealed()
        var file = original
        file[11] = log2N
        file[12] = r
        file[13] = p
        let altered = Self.redigested(file)
        #expect(throws: KeystoreError.parametersOutOfRange) { try Keystore.open(altered, password: Self.password) }
        #expect(throws: KeystoreError.parametersOutOfRange) { try Keystore.parameters(of: altered) }
        #expect(throws: KeystoreError.parametersOutOfRange) { try ScryptParameters(log2N: log2N, r: r, p: p) }
    }

    @Test func oversizedFileIsRefusedBeforeParsing() throws {
        let (_, file) = try Self.sealed()
        let huge = file + [UInt8](repeating: 0, count: Keystore.maximumFileSize)
        #expect(throws: KeystoreError.tooLarge) { try Keystore.open(huge, password: Self.password) }
    }

    @Test func emptyPasswordsAndBadNamesAreRefused() {
        let keys = IdentityKeys()
        #expect(throws: KeystoreError.emptyPassword) {
            try Keystore.seal(KeystoreContents(keys: keys, name: "a"), password: "", parameters: Self.cheap)
        }
        for name in ["", String(repeating: "x", count: 65), "tab\there", "line\nbreak"] {
            #expect(throws: KeystoreError.invalidName) {
                try Keystore.seal(KeystoreContents(keys: keys, name: name), password: "p", parameters: Self.cheap)
            }
        }
    }

    @Test func eachSealUsesAFreshSaltAndNonce() throws {
        let contents = KeystoreContents(keys: IdentityKeys(), name: "a")
        let first = try Keystore.seal(contents, password: Self.password, parameters: Self.cheap)
        let second = try Keystore.seal(contents, password: Self.password, parameters: Self.cheap)
        #expect(first[14..<46] != second[14..<46])
        #expect(first[78..<90] != second[78..<90])
    }
}

@Suite struct ScryptCostTests {
    @Test func floorIsTwoToTheSeventeenWithREightPOne() {
        #expect(ScryptParameters.floor.n == 1 << 17)
        #expect(ScryptParameters.floor.r == 8)
        #expect(ScryptParameters.floor.p == 1)
        #expect(ScryptParameters.floor.meetsFloor)
    }

    /// A simulated machine where a derivation at N = 2^17 takes `atFloor`; time doubles with N.
    static func calibrate(atFloor: Duration) -> (ScryptParameters, [UInt8]) {
        var tried: [UInt8] = []
        let (parameters, _) = ScryptCalibration.calibrate { parameters in
            tried.append(parameters.log2N)
            return ((), atFloor * (1 << Int(parameters.log2N - 17)))
        }
        return (parameters, tried)
    }

    @Test func machineWithinTheTargetKeepsTheFloor() {
        let (parameters, tried) = Self.calibrate(atFloor: .milliseconds(360))
        #expect(parameters == .floor)
        #expect(tried == [17])
    }

    @Test func slowMachineNeverGoesBelowTheFloor() {
        let (parameters, _) = Self.calibrate(atFloor: .seconds(2))
        #expect(parameters == .floor)
    }

    @Test func fastMachineDoublesIntoTheTarget() {
        let (parameters, tried) = Self.calibrate(atFloor: .milliseconds(40))
        // 40 → 80 → 160 → 320 ms: the first cost inside 250–750 ms is N = 2^20.
        #expect(parameters.log2N == 20)
        #expect(tried == [17, 18, 19, 20])
        #expect(ScryptCalibration.target.contains(.milliseconds(320)))
    }

    @Test func veryFastMachineStopsAtTheMaximum() {
        let (parameters, tried) = Self.calibrate(atFloor: .microseconds(10))
        #expect(parameters.log2N == ScryptParameters.maximumLog2N)
        #expect(tried.last == 22)
    }

    @Test func calibratedSealOnThisMachineMeetsTheFloor() throws {
        let contents = KeystoreContents(keys: IdentityKeys(), name: "a")
        let (file, parameters) = try Keystore.sealCalibrated(contents, password: "p")
        #expect(parameters.meetsFloor)
        #expect(try Keystore.parameters(of: file) == parameters)
        #expect(try Keystore.open(file, password: "p").name == "a")
    }
}
