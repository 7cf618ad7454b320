import Foundation
import Synchronization

/// A bounded cache of decrypted results (latest pages of conversations, contacts), never stale:
/// each entry carries the generation of its key at the time its read began, and a write bumps
/// the generation only after it has committed. A read that raced a write is either stored under
/// the old generation (and never served) or not stored at all.
final class PageCache<Value: Sendable>: Sendable {
    struct Key: Hashable, Sendable {
        var scope: Data
        var detail: [Int64]
    }

    private struct State {
        var generations: [Data: UInt64] = [:]
        var globalGeneration: UInt64 = 0
        var entries: [Key: (generation: UInt64, value: Value)] = [:]
        var order: [Key] = []
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The generation a read of `scope` should be stored under; take it before reading.
    func generation(of scope: Data) -> UInt64 {
        state.withLock { $0.generations[scope, default: 0] &+ $0.globalGeneration }
    }

    func value(for key: Key) -> Value? {
        state.withLock { state in
            guard let entry = state.entries[key],
                entry.generation == state.generations[key.scope, default: 0] &+ state.globalGeneration
            else { return nil }
            if let position = state.order.firstIndex(of: key) {
                state.order.remove(at: position)
                state.order.append(key)
            }
            return entry.value
        }
    }

    func store(_ value: Value, for key: Key, generation: UInt64) {
        state.withLock { state in
            guard generation == state.generations[key.scope, default: 0] &+ state.globalGeneration else { return }
            if state.entries.updateValue((generation, value), forKey: key) == nil { state.order.append(key) }
            while state.order.count > capacity { state.entries[state.order.removeFirst()] = nil }
        }
    }

    /// Call after a write to `scope` has committed.
    func invalidate(_ scope: Data) {
        state.withLock { state in
            state.generations[scope, default: 0] &+= 1
            state.order.removeAll { key in
                guard key.scope == scope else { return false }
                state.entries[key] = nil
                return true
            }
        }
    }

    /// Call after a write that stored `value` under `key` has committed, instead of
    /// ``invalidate(_:)``: drops the scope's other entries and keeps `value`, which is what a
    /// read would now find, under the new generation (a read that began before the write never
    /// stores over it).
    func replace(_ value: Value, for key: Key) {
        state.withLock { state in
            state.generations[key.scope, default: 0] &+= 1
            state.order.removeAll { other in
                guard other.scope == key.scope else { return false }
                state.entries[other] = nil
                return true
            }
            state.entries[key] = (state.generations[key.scope, default: 0] &+ state.globalGeneration, value)
            state.order.append(key)
            while state.order.count > capacity { state.entries[state.order.removeFirst()] = nil }
        }
    }

    /// Call after a write that may touch any scope has committed.
    func invalidateAll() {
        state.withLock { state in
            state.globalGeneration &+= 1
            state.entries.removeAll()
            state.order.removeAll()
        }
    }
}
