import Foundation
import PrivatusCore

/// Loads the JSON files of `Tests/TestVectors/` (written by `Tests/Vectors/generate.py` or
/// copied from published specifications).
public enum TestVectors {
    /// The folder, found from this source file's location in the checkout.
    public static var directory: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // PrivatusTesting
            .deletingLastPathComponent()  // Sources
            .deletingLastPathComponent()  // package root
            .appendingPathComponent("Tests/TestVectors")
    }

    /// The parsed JSON object of `name`.
    public static func load(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return object
    }
}

extension Dictionary where Key == String, Value == Any {
    /// The bytes of a hex string field.
    public func bytes(_ key: String) throws -> [UInt8] {
        guard let text = self[key] as? String, let bytes = Hex.decodeLowercase(text) else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSDebugDescriptionErrorKey: "field \(key)"])
        }
        return bytes
    }

    /// A nested object.
    public func object(_ key: String) throws -> [String: Any] {
        guard let value = self[key] as? [String: Any] else { throw CocoaError(.fileReadCorruptFile) }
        return value
    }

    /// A nested array of objects.
    public func objects(_ key: String) throws -> [[String: Any]] {
        guard let value = self[key] as? [[String: Any]] else { throw CocoaError(.fileReadCorruptFile) }
        return value
    }

    /// An integer field.
    public func integer(_ key: String) throws -> Int {
        guard let value = self[key] as? Int else { throw CocoaError(.fileReadCorruptFile) }
        return value
    }
}
