import Foundation
import PrivatusStore
import PrivatusWire

/// A file offer or update as a chat message carries it inside the end-to-end session
/// (docs/PROTOCOL.md, "Files").
enum FileMessage: Sendable, Equatable {
    case offer(FileOffer)
    case update(FileUpdate)

    /// The message's file part, or nil for a text message.
    init?(_ content: ChatContent) {
        if content.hasFileOffer {
            self = .offer(content.fileOffer)
        } else if content.hasFileUpdate {
            self = .update(content.fileUpdate)
        } else {
            return nil
        }
    }

    /// As the store keeps it with the message (so a message encrypted again, after a session
    /// restart, carries it again): `kind u8 (1 offer, 2 update) ‖ the protobuf message`.
    var encoded: [UInt8] {
        switch self {
        case .offer(let offer): [1] + ((try? offer.serializedBytes()) ?? [])
        case .update(let update): [2] + ((try? update.serializedBytes()) ?? [])
        }
    }

    init?(encoded: [UInt8]) {
        guard let kind = encoded.first else { return nil }
        let rest = encoded.dropFirst()
        switch kind {
        case 1:
            guard let offer = try? FileOffer(serializedBytes: Array(rest)) else { return nil }
            self = .offer(offer)
        case 2:
            guard let update = try? FileUpdate(serializedBytes: Array(rest)) else { return nil }
            self = .update(update)
        default:
            return nil
        }
    }

    var transferID: [UInt8] {
        switch self {
        case .offer(let offer): Array(offer.transferID)
        case .update(let update): Array(update.transferID)
        }
    }
}

extension FileOffer {
    /// The longest name and media type an offer may carry.
    static let maximumNameBytes = 1024
    static let maximumMediaTypeBytes = 128

    /// Whether every field is in range (sizes the store and the chunk cipher accept).
    var isWellFormed: Bool {
        transferID.count == 16 && key.count == 32 && sha256.count == 32 && !name.isEmpty
            && name.utf8.count <= Self.maximumNameBytes && mediaType.utf8.count <= Self.maximumMediaTypeBytes
            && chunkSize == FileTransfers.chunkSize
            && size <= Store.maximumFileBytes
            && size / UInt64(chunkSize) + (size % UInt64(chunkSize) == 0 ? 0 : 1)
                <= UInt64(Store.maximumChunks)
    }
}

extension FileUpdate {
    static let maximumReasonBytes = 256

    var isWellFormed: Bool {
        transferID.count == 16 && reason.utf8.count <= Self.maximumReasonBytes
            && [.accepted, .rejected, .cancelled, .complete, .failed].contains(kind)
    }

    init(_ id: [UInt8], _ kind: Kind, reason: String = "") {
        self.init()
        self.transferID = Data(id)
        self.kind = kind
        self.reason = String(decoding: Array(reason.utf8.prefix(Self.maximumReasonBytes)), as: UTF8.self)
    }
}
