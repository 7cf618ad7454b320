import Foundation
import PrivatusStore
import PrivatusWire

/// Offers and updates a transfer owes its peer (docs/PROTOCOL.md, "Offers and updates owed").
extension FileTransfers {
    /// The record of an update owed (``FileTransfer/pendingUpdate``).
    static func owe(_ kind: FileUpdate.Kind) -> UInt8 { UInt8(truncatingIfNeeded: kind.rawValue) }

    /// The record of an offer not yet in the outbox.
    static let offerOwed = FileTransfer.offerOwed

    /// Sends what the transfer `id` owes its peer, if anything (read from the store now, not
    /// from a copy that may be stale): its offer, or the update of its last state change. A
    /// failed send stays owed and is tried again each tick; a peer that is no longer a contact
    /// is owed nothing.
    func notify(_ id: [UInt8]) async {
        do {
            try await sendOwed(id)
        } catch ChatError.notAContact, ChatError.unknownPeer {
            // Blocked or removed meanwhile: nobody to tell.
            if let pending = try? store.fileTransferIfAny(id)?.pendingUpdate {
                _ = try? store.clearPendingUpdate(pending, of: id)
            }
            owed.remove(id)
        } catch {
            owed.insert(id)
            logger.debug("file message not sent yet", metadata: ["error": "\(error)"])
        }
    }

    /// Commits the message the transfer `id` owes (see ``notify(_:)``) and clears the debt.
    /// Throws only when the message was not committed.
    func sendOwed(_ id: [UInt8]) async throws {
        guard notifying.insert(id).inserted else {
            // Another message of this transfer is being sent: this one waits for the next tick
            // (which reads what is owed then).
            owed.insert(id)
            return
        }
        defer { notifying.remove(id) }
        guard let transfer = try store.fileTransferIfAny(id), transfer.pendingUpdate != 0 else {
            owed.remove(id)
            return
        }
        let pending = transfer.pendingUpdate
        let message: FileMessage
        let text: String
        if pending == Self.offerOwed {
            let offer = FileOffer.with {
                $0.transferID = Data(id)
                $0.name = transfer.name
                $0.size = transfer.size
                $0.mediaType = transfer.mediaType
                $0.sha256 = Data(transfer.hash)
                $0.key = Data(transfer.key)
                $0.chunkSize = transfer.chunkSize
            }
            (message, text) = (.offer(offer), Self.describe(offer))
        } else {
            guard let kind = FileUpdate.Kind(rawValue: Int(pending)) else {
                // Not a kind this version knows (a record from a newer one): nothing to send.
                _ = try? store.clearPendingUpdate(pending, of: id)
                owed.remove(id)
                return
            }
            let reason = kind == .rejected || kind == .failed ? transfer.reason : ""
            message = .update(FileUpdate(id, kind, reason: reason))
            text =
                switch kind {
                case .accepted: "Accepted the file \(transfer.name)"
                case .rejected:
                    reason.isEmpty
                        ? "Declined the file \(transfer.name)" : "Declined the file \(transfer.name): \(reason)"
                case .cancelled: "Cancelled the file \(transfer.name)"
                case .complete: "Received the file \(transfer.name)"
                case .failed: "The file \(transfer.name) failed: \(reason)"
                default: "File update for \(transfer.name)"
                }
        }
        _ = try await messenger.sendFile(message, describedAs: text, to: transfer.peer)
        // A later state change may owe another message meanwhile: then it stays owed. (The
        // message is committed: a clear that fails is not retried in this run, which would
        // send it again every second; the next start sends it once more.)
        do {
            if try store.clearPendingUpdate(pending, of: id) {
                owed.remove(id)
            } else {
                owed.insert(id)
            }
        } catch {
            owed.remove(id)
            logger.debug("owed file message not cleared", metadata: ["error": "\(error)"])
        }
    }
}
