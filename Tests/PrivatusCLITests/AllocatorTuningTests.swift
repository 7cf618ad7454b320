import CPrivatusSystem
import Testing

@Suite struct AllocatorTuningTests {
    /// `privatus` keeps glibc from trimming the heap after every large seal (BENCHMARKS.md,
    /// "AES-GCM seal"); on Linux both settings must take effect.
    @Test(.enabled(if: isLinux)) func allocatorTuningAppliesOnLinux() {
        #expect(privatus_tune_allocator() == 1)
    }
}

#if os(Linux)
let isLinux = true
#else
let isLinux = false
#endif
