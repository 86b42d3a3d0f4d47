//! The evidence of acknowledgement besides the frames themselves:
//! `log/head`'s slots and live head, and the derived store's marker. A
//! writer's open and every reader gather it alike.

use std::path::Path;

use crate::log::head::{self, Evidence, State};
use crate::log::scan::{list_segments, scan_dir};
use crate::log::LogError;
use crate::record::Hash;

/// Everything that proves acknowledgement, besides the frames themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Proof {
    /// `log/head`'s newest fsynced evidence.
    pub head_file: Option<Evidence>,
    /// `log/head`'s live head: the last batch durable before its acks.
    pub live: Option<(u64, Hash)>,
    /// The derived store's applied marker, when it names this ledger.
    pub derived: Option<(u64, Hash)>,
    /// `Some(true)`: the last writer did not close and ran in this boot, so
    /// no power was lost since (`None`: unknown).
    pub same_boot: Option<bool>,
}

impl Proof {
    /// The evidence a writer and every reader use alike: `log/head` and the
    /// derived store's marker file in `derived_dir` (bound to this log's
    /// genesis record; a marker of another ledger is no evidence).
    pub fn gather(log_dir: &Path, derived_dir: &Path) -> Result<Proof, LogError> {
        let file = head::read(log_dir)?;
        let same_boot = match file.evidence {
            Some(e) if e.state == State::Open => match (e.boot, head::boot_id()) {
                (Some(then), Some(now)) => Some(then == now),
                _ => None,
            },
            _ => None,
        };
        let derived = crate::log::marker::read(derived_dir).and_then(|(genesis, seq, hash)| {
            (genesis_hash(log_dir) == Some(genesis)).then_some((seq, hash))
        });
        Ok(Proof {
            head_file: file.evidence,
            live: file.live,
            derived,
            same_boot,
        })
    }

    /// The (seq, hash) pairs the evidence names, with where each comes from.
    pub(super) fn claims(&self) -> Vec<(u64, Hash, &'static str)> {
        let mut out = Vec::new();
        if let Some(e) = self.head_file {
            out.push((e.seq, e.hash, "log/head"));
        }
        if let Some((s, h)) = self.live {
            out.push((s, h, "log/head's live head"));
        }
        if let Some((s, h)) = self.derived {
            out.push((s, h, "the derived store's applied marker"));
        }
        out
    }

    /// Every seq up to this was acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.claims().iter().map(|c| c.0).max().unwrap_or(0)
    }

    /// The last writer closed cleanly: nothing was written after its evidence.
    pub fn clean(&self) -> bool {
        self.head_file.is_some_and(|e| e.state == State::Closed)
    }
}

/// The hash of seq 1 in `log_dir`, when the first segment holds it intact.
pub fn genesis_hash(log_dir: &Path) -> Option<Hash> {
    let segments = list_segments(log_dir).ok()?;
    if segments.first().map(|s| s.0) != Some(1) {
        return None;
    }
    let mut hash = None;
    scan_dir(log_dir, 1, 1, &mut |r| {
        hash = Some(r.hash);
        Ok(())
    })
    .ok()?;
    hash
}
