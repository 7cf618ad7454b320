/// All sessions with one peer, most recently decrypted first, and the rules that make two peers
/// converge (docs/PROTOCOL.md, "Simultaneous initiation and healing").
///
/// - **Send** on the first session that can send: the one that last decrypted a message.
/// - **Receive** by trying each session in order; the one that decrypts moves to the front.
/// - **A new valid initial message** (PQXDH) adds its session at the front: that is how a peer
///   that lost its state heals the conversation, and how two peers that initiated at the same
///   time end up on one session (each sends on the other's initiation until a message on one of
///   them is decrypted, which moves it to the front on both sides).
/// - At most ``maximumSessions`` are kept; the least recently used is dropped.
public struct PeerSessions: Sendable {
    public static let maximumSessions = 5

    public private(set) var sessions: [RatchetSession]

    public init(_ sessions: [RatchetSession] = []) {
        self.sessions = Array(sessions.prefix(Self.maximumSessions))
    }

    /// Adds a session (one this side initiated, or one a new initial message created) in front.
    public func adding(_ session: RatchetSession) -> PeerSessions {
        PeerSessions([session] + sessions)
    }

    /// Encrypts on the active session.
    public func encrypting(
        _ plaintext: some Collection<UInt8>
    ) throws(SessionError) -> (sessions: PeerSessions, message: RatchetMessage) {
        guard let index = sessions.firstIndex(where: \.canSend) else { throw .cannotSendYet }
        let (session, message) = try sessions[index].encrypting(plaintext)
        var next = sessions
        next[index] = session
        return (PeerSessions(next), message)
    }

    /// Decrypts with whichever session the message belongs to and makes it the active one. On
    /// failure nothing changes.
    /// - Parameter skippedKeyAllowance: the most skipped keys all of this peer's sessions may hold
    ///   together (a node passes what is left of its own budget).
    public func decrypting(
        _ message: RatchetMessage,
        now: UInt64,
        keys: inout some RatchetKeySource,
        skippedKeyAllowance: Int = RatchetSession.maximumStoredSkippedKeys
    ) throws(SessionError) -> (sessions: PeerSessions, plaintext: [UInt8]) {
        var lastError = SessionError.decryptionFailed
        let held = sessions.map(\.skippedKeyCount)
        let total = held.reduce(0, +)
        for index in sessions.indices {
            do {
                let (session, plaintext) = try sessions[index].decrypting(
                    message,
                    now: now,
                    keys: &keys,
                    skippedKeyAllowance: skippedKeyAllowance - (total - held[index])
                )
                var rest = sessions
                rest.remove(at: index)
                return (PeerSessions([session] + rest), plaintext)
            } catch .tooManySkippedMessages {
                lastError = .tooManySkippedMessages
            } catch {
                continue
            }
        }
        throw lastError
    }

    /// Every session without its expired skipped keys (for the node's maintenance).
    public func expiringSkippedKeys(now: UInt64) -> PeerSessions {
        PeerSessions(sessions.map { $0.expiringSkippedKeys(now: now) })
    }
}
