import Foundation

/// The name a received file gets in the downloads folder (issue 9): whatever the sender offered,
/// a single plain file name inside that folder.
///
/// Only the last path component counts (`/` and `\` both separate, so `../../x` is `x`); control,
/// format (bidirectional overrides, zero-width characters) and line-separator characters go;
/// leading dots (hidden files, `..`) and trailing dots and spaces go; what is left is cut to 255
/// bytes of UTF-8 keeping the extension; an empty result is `file`. A name already taken becomes
/// `name (1).ext`, `name (2).ext`, ….
public enum DownloadName {
    /// The longest name most file systems take (bytes of UTF-8).
    public static let maximumBytes = 255

    /// A safe name for `offered`; `taken` says whether a name is in use in the folder.
    public static func safe(_ offered: String, taken: (String) -> Bool = { _ in false }) -> String {
        let base = clean(offered)
        guard taken(base) else { return base }
        let (stem, suffix) = split(base)
        for number in 1...9_999 {
            let candidate = fit(stem, suffix: " (\(number))" + suffix)
            if !taken(candidate) { return candidate }
        }
        return fit(stem, suffix: " (\(UUID().uuidString.prefix(8)))" + suffix)
    }

    static func clean(_ offered: String) -> String {
        let last = offered.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        var scalars = String.UnicodeScalarView()
        for scalar in last.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                continue
            default:
                scalars.append(scalar)
            }
        }
        var name = String(scalars).trimmingCharacters(in: .whitespaces)
        while name.hasPrefix(".") { name.removeFirst() }
        while name.hasSuffix(".") || name.hasSuffix(" ") { name.removeLast() }
        if name.isEmpty { return "file" }
        let (stem, suffix) = split(name)
        return fit(stem, suffix: suffix)
    }

    /// `name` as stem and extension (with its dot; empty when there is none or it is long).
    static func split(_ name: String) -> (stem: String, suffix: String) {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return (name, "") }
        let suffix = String(name[dot...])
        guard suffix.utf8.count <= 16 else { return (name, "") }
        return (String(name[..<dot]), suffix)
    }

    /// `stem + suffix`, the stem cut (at a character boundary) so the whole fits.
    static func fit(_ stem: String, suffix: String) -> String {
        var stem = stem
        while stem.utf8.count + suffix.utf8.count > maximumBytes, !stem.isEmpty { stem.removeLast() }
        let name = stem + suffix
        return name.isEmpty ? "file" : name
    }
}
