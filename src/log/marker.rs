//! The derived store's applied marker, as a file beside sled's
//! (`derived/applied`): (the genesis hash of its ledger, seq, that seq's
//! hash), written by the derived store after the log was durable, read here
//! without opening sled. Recovery evidence for a writer's open and for every
//! read command alike (`recovery::Proof::gather`).

use std::path::Path;

use crate::record::Hash;

/// The marker file's name in the derived store's directory.
pub const MARKER_FILE: &str = "applied";
const MARKER_MAGIC: &[u8; 8] = b"PARLEYAP";
const MARKER_BYTES: usize = 96;

/// The marker file's bytes.
pub fn encode(genesis: &Hash, seq: u64, hash: &Hash) -> [u8; MARKER_BYTES] {
    let mut b = [0u8; MARKER_BYTES];
    b[..8].copy_from_slice(MARKER_MAGIC);
    b[8..40].copy_from_slice(genesis);
    b[40..48].copy_from_slice(&seq.to_le_bytes());
    b[48..80].copy_from_slice(hash);
    let check = blake3::hash(&b[..80]);
    b[80..96].copy_from_slice(&check.as_bytes()[..16]);
    b
}

/// The derived store's applied marker, read from its file in `dir` without
/// opening sled: (the genesis hash of its ledger, seq, that seq's hash).
/// `None` when the file is missing, cut or damaged: no evidence.
pub fn read(dir: &Path) -> Option<(Hash, u64, Hash)> {
    let b = std::fs::read(dir.join(MARKER_FILE)).ok()?;
    if b.len() != MARKER_BYTES || &b[..8] != MARKER_MAGIC {
        return None;
    }
    if blake3::hash(&b[..80]).as_bytes()[..16] != b[80..96] {
        return None;
    }
    let genesis: Hash = b[8..40].try_into().ok()?;
    let seq = u64::from_le_bytes(b[40..48].try_into().ok()?);
    let hash: Hash = b[48..80].try_into().ok()?;
    Some((genesis, seq, hash))
}
