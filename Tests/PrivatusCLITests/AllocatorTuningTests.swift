import CPrivatusSystem
import Testing

@Suite struct AllocatorTuningTests {
    /// The shim `privatus` calls at startup to keep glibc from trimming the heap after every
    /// large seal (BENCHMARKS.md, "AES-GCM seal"): on Linux both settings must take effect. (That
    /// the executable calls it shows in `bench crypto`'s 1 MiB GCM-SIV figure.)
    @Test(.enabled(if: isLinux)) func allocatorShimAppliesBothSettingsOnLinux() {
        #expect(privatus_tune_allocator() == 1)
    }
}

#if os(Linux)
let isLinux = true
#else
let isLinux = false
#endif
