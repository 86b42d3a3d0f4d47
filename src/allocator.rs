//! The C allocator's one setting: what the `parley` binary sets at start
//! (and the benchmark's processes, which stand for it). Shell only.
//!
//! glibc serves a block above its mmap threshold (128 KiB at start) with a
//! mapping of its own, returned to the kernel when freed. By default it
//! then raises the threshold to the size of that freed block (up to
//! 32 MiB). A writer frees a context snapshot of tens of MB every 131,072
//! records, so after the first one every buffer below that size comes from
//! the heap, and what is freed there stays resident. Setting the threshold
//! fixes it and turns the raising off. At 1 MiB, a batch's buffers (a write
//! unit of 1,024 small records, a projector batch) still come from the
//! heap, with no `mmap` per batch; a snapshot, a segment's scan buffer and
//! an index file are mapped and returned when freed.
//!
//! Measured with `figures gen-child DIR 10000000 10000 catalog 1000000
//! 4000000 6000000 10000000` (the writer's resident memory at 1 M, 4 M,
//! 6 M and 10 M records, in MiB): glibc's default 123, 156, 222, 223
//! (1.81x from 1 M to 10 M); fixed at 128 KiB 99, 127, 136, 137 (1.38x);
//! fixed at 1 MiB 113, 136, 148, 144 (1.28x).

/// Blocks from this size on are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 1024 * 1024;

/// Fixes glibc's mmap threshold (no effect elsewhere). `false` when the
/// allocator refused the setting (nothing changed then).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_large_blocks_mapped() -> bool {
    // SAFETY: mallopt takes two integers, sets one allocator parameter under
    // the allocator's own lock and touches no memory of ours.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 }
}

/// Fixes glibc's mmap threshold (no effect elsewhere).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_large_blocks_mapped() -> bool {
    true
}
