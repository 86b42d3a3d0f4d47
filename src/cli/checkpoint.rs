//! `parley checkpoint keygen|export` and `verify --key [--checkpoint]`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use super::place::At;
use crate::checkpoint::{self, Exported};

#[derive(clap::Subcommand)]
pub(super) enum CheckpointCmd {
    /// Write a new ed25519 key pair: DIR/signing.key (mode 600) and DIR/signing.pub.
    Keygen {
        /// The directory to write the key pair into (created if missing).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Write the newest signed checkpoint as a small JSON file to keep elsewhere.
    Export {
        #[command(flatten)]
        place: super::place::Place,
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

pub(super) fn keygen(dir: &Path) -> Result<ExitCode> {
    let (private, public) = checkpoint::keygen(dir)?;
    println!(
        "wrote {} (keep it private) and {}",
        private.display(),
        dir.join("signing.pub").display()
    );
    println!("public key: {}", public.to_hex());
    println!(
        "sign with: parley serve --signing-key {} …   (or PARLEY_SIGNING_KEY={})",
        private.display(),
        private.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn export(at: &At, out: Option<&Path>) -> Result<ExitCode> {
    let view = at.view()?;
    let newest = checkpoint::newest(&view)?;
    let text = serde_json::to_string_pretty(&newest)? + "\n";
    match out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("write {}", path.display()))?;
            eprintln!(
                "wrote the checkpoint of seq {} (record seq {}) to {}",
                newest.checkpoint.seq,
                newest.record_seq,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `verify --key K [--checkpoint FILE]`: the chain first, then the
/// checkpoints signed by K, and that the log extends the file's head.
pub(super) fn verify(at: &At, key: &str, file: Option<&Path>, json: bool) -> Result<ExitCode> {
    let key = checkpoint::public_key(key)?;
    let signed = file.map(Exported::read).transpose()?;
    let view = at.view()?;
    let proven = checkpoint::prove(&view, &key, signed.as_ref())?;
    if json {
        println!("{}", serde_json::to_string(&proven)?);
    } else if proven.ok {
        println!(
            "ok: the log extends the signed head at seq {} ({} checkpoints signed by this key hold, the last vouching for seq {}; the log ends at seq {})",
            proven.signed_seq, proven.checkpoints_held, proven.vouched_to, proven.log_head
        );
    } else {
        let at = match (proven.departs_from, proven.departs_by) {
            (Some(a), Some(b)) if a == b => format!(" at seq {a}"),
            (Some(a), Some(b)) => format!(" between seq {a} and seq {b}"),
            _ => String::new(),
        };
        println!(
            "NOT SIGNED: the log departs from what was signed{at}: {}",
            proven.reason.as_deref().unwrap_or("")
        );
    }
    Ok(if proven.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
