//! `parley repair`: shows what it would cut or rewrite and why; does it
//! only with `--yes` (`crate::repair`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::repair::{apply, plan, Plan};

fn describe(p: &Plan) -> String {
    match p {
        Plan::Nothing => "nothing to repair: the log opens as it is".into(),
        Plan::Cut {
            segment,
            offset,
            bytes,
            first_seq,
            never_written,
            why,
        } => format!(
            "would cut {bytes} bytes of {} from offset {offset} (where seq {first_seq} would begin), zeroing them in place: {why}{}",
            segment.display(),
            if *never_written {
                ""
            } else {
                "\nWARNING: these bytes were written whole; if the commands in them were acknowledged, cutting them loses them"
            }
        ),
        Plan::RewriteTrailer {
            segment,
            offset,
            records,
            why,
            ..
        } => format!(
            "would write the unit trailer at {} offset {offset} again from the unit's {records} records: {why}; no record changes",
            segment.display()
        ),
        Plan::Refuse { seq, why } => format!("cannot repair (seq {seq}): {why}"),
    }
}

/// `parley repair --data DIR [--yes] [--json]`.
pub(super) fn run(data: &Path, yes: bool, json: bool) -> Result<ExitCode> {
    let shown = plan(data).with_context(|| format!("plan a repair of {}", data.display()))?;
    let needed = !matches!(shown, Plan::Nothing);
    if !yes || !needed || matches!(shown, Plan::Refuse { .. }) {
        if json {
            println!("{}", serde_json::to_string(&shown)?);
        } else {
            println!("{}", describe(&shown));
            if needed && !matches!(shown, Plan::Refuse { .. }) {
                println!("run again with --yes to do it (a copy of every byte it replaces is kept under {})", data.join("repair").display());
            }
        }
        return Ok(if needed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let done = apply(data, &shown).with_context(|| format!("repair {}", data.display()))?;
    if json {
        println!("{}", serde_json::to_string(&done)?);
    } else {
        println!("{}", describe(&done.plan).replacen("would ", "", 1));
        if let Some(saved) = &done.saved {
            println!("the bytes replaced are kept in {}", saved.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
