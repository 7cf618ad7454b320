import Foundation

/// A fresh directory under the system's temporary directory, removed by ``remove()``.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ prefix: String = "privatus-test") throws {
        let base = FileManager.default.temporaryDirectory.path
        // mkdtemp replaces the six trailing placeholder characters.
        var template = Array("\(base)/\(prefix)-\(String(repeating: "X", count: 6))".utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        self.path = String(cString: made)
    }

    /// A path inside the directory (not created).
    public func child(_ name: String) -> String { path + "/" + name }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// What a user could see of one entry: its bytes (files), mode and modification time.
    public struct Entry: Equatable, Sendable {
        public var bytes: Data?
        public var mode: Int
        public var modified: Date
    }

    /// Every entry below `directory` (default: this directory), keyed by relative path.
    public func snapshot(of directory: String? = nil) throws -> [String: Entry] {
        let root = directory ?? path
        var entries: [String: Entry] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return entries }
        while let relative = walker.nextObject() as? String {
            let full = root + "/" + relative
            let attributes = try FileManager.default.attributesOfItem(atPath: full)
            let isFile = attributes[.type] as? FileAttributeType == .typeRegular
            entries[relative] = Entry(
                bytes: isFile ? try Data(contentsOf: URL(fileURLWithPath: full)) : nil,
                mode: (attributes[.posixPermissions] as? Int) ?? -1,
                modified: (attributes[.modificationDate] as? Date) ?? .distantPast
            )
        }
        return entries
    }
}
