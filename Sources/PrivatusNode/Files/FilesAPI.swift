import Foundation
import Hummingbird
import PrivatusCore
import PrivatusStore

/// A transfer as `files list --json` and the control API show it.
public struct FileView: Codable, Sendable, Equatable, ResponseEncodable {
    /// The transfer id, 32 hex digits.
    public var id: String
    public var peerId: String
    /// `sent` or `received`.
    public var direction: String
    /// The file's name (made safe on the receiving side).
    public var name: String
    public var size: UInt64
    public var mediaType: String
    /// `offered`, `transferring`, `complete`, `failed`, `cancelled` or `rejected`.
    public var state: String
    public var bytesDone: UInt64
    public var chunksDone: Int
    public var chunks: Int
    /// The SHA-256 of the file, 64 hex digits.
    public var sha256: String
    /// Sent: the file offered. Received and complete: where it is.
    public var path: String?
    /// Why it failed or was refused.
    public var reason: String?
    /// Chunks sent / received by this run of the node (absent when none).
    public var chunksSent: Int?
    public var chunksReceived: Int?
    /// Unix ms.
    public var createdAt: UInt64

    init(_ transfer: FileTransfer, chunksSent: Int?, chunksReceived: Int?) {
        id = Hex.encode(transfer.id)
        peerId = transfer.peer.hex
        direction = transfer.direction == .sent ? "sent" : "received"
        name = transfer.name
        size = transfer.size
        mediaType = transfer.mediaType
        state = transfer.state.name
        bytesDone = transfer.bytesDone
        chunksDone = transfer.chunksDone
        chunks = transfer.chunkCount
        sha256 = Hex.encode(transfer.hash)
        let showsPath = transfer.direction == .sent || transfer.state == .complete
        path = showsPath && !transfer.path.isEmpty ? transfer.path : nil
        reason = transfer.reason.isEmpty ? nil : transfer.reason
        self.chunksSent = chunksSent
        self.chunksReceived = chunksReceived
        createdAt = transfer.createdAt
    }
}

/// `POST /api/v1/files`.
public struct SendFileRequest: Codable, Sendable {
    public var peer: String
    /// An absolute path the node can read.
    public var path: String
    public init(peer: String, path: String) {
        self.peer = peer
        self.path = path
    }
}

/// `POST /api/v1/files/{id}/accept`.
public struct AcceptFileRequest: Codable, Sendable {
    /// An absolute folder (default: the downloads folder).
    public var to: String?
    public init(to: String?) { self.to = to }
}

extension FileTransfers {
    /// The file endpoints of the control API (docs/API.md, "Files").
    nonisolated func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        let api = router.group("/api/v1")
        api.get("/files") { _, _ in try await self.mapping { try await self.list() } }
        api.post("/files") { request, context in
            let body = try await request.decode(as: SendFileRequest.self, context: context)
            guard body.path.hasPrefix("/") else { throw HTTPError(.badRequest, message: "the path must be absolute") }
            return try await self.mapping { try await self.view(self.send(path: body.path, to: body.peer)) }
        }
        api.post("/files/{id}/{action}") { request, context in
            let text = try context.parameters.require("id")
            guard text.utf8.count == 32, let id = Hex.decodeLowercase(text) else {
                throw HTTPError(.badRequest, message: "a transfer id is 32 hex digits")
            }
            switch try context.parameters.require("action") {
            case "accept":
                let body = try await request.decode(as: AcceptFileRequest.self, context: context)
                if let folder = body.to, !folder.hasPrefix("/") {
                    throw HTTPError(.badRequest, message: "the folder must be absolute")
                }
                return try await self.mapping { try await self.view(self.accept(id, to: body.to)) }
            case "reject": return try await self.mapping { try await self.view(self.reject(id)) }
            case "cancel": return try await self.mapping { try await self.view(self.cancel(id)) }
            default: throw HTTPError(.notFound, message: "no such file action")
            }
        }
    }

    func view(_ transfer: FileTransfer) -> FileView {
        let current = receiving[transfer.id]?.transfer ?? transfer
        return FileView(current, chunksSent: chunksSent[transfer.id], chunksReceived: chunksReceived[transfer.id])
    }

    /// Runs `body`, turning typed errors into HTTP errors with their message (the chat layer's
    /// as the messenger maps them).
    nonisolated func mapping<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await messenger.mapping(body)
        } catch let error as FileTransferError {
            switch error {
            case .unknownTransfer: throw HTTPError(.notFound, message: error.description)
            case .notOffered, .alreadyOver: throw HTTPError(.conflict, message: error.description)
            case .notEnoughSpace:
                throw HTTPError(.init(code: 507, reasonPhrase: "Insufficient Storage"), message: error.description)
            default: throw HTTPError(.badRequest, message: error.description)
            }
        }
    }
}
