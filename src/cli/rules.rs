//! `parley rules check | diff | install | history`: the store's rule set as
//! its owners handle it, with errors that name the line, the field and, for
//! a custom guard, its id and column.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use serde_json::json;

use super::place::{At, Place};
use crate::command::{Command, CommandEnvelope};
use crate::reader::LedgerRead as _;
use crate::record::Body;
use crate::rules::diff::{diff, lines};
use crate::rules::{rules_hash, RuleSet};

#[derive(clap::Subcommand)]
pub(super) enum RulesCmd {
    /// Check a rule-set file (no ledger needed): every section, and every
    /// custom guard's expression, as installing it would.
    Check {
        /// The rule-set file (TOML).
        file: PathBuf,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// What differs between two rule-set files, field by field.
    Diff {
        /// The rule set before the change.
        before: PathBuf,
        /// The rule set after it.
        after: PathBuf,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// Install a rule set as an admin, with the rationale recorded in its
    /// `[change]` table.
    Install {
        #[command(flatten)]
        place: Place,
        /// Install through a running `parley serve` (token from PARLEY_TOKEN,
        /// an admin's; `--as` must be its identity).
        #[arg(long, conflicts_with_all = ["data", "store", "ledger", "at"])]
        server: Option<String>,
        /// The rule-set file (TOML) to install.
        file: PathBuf,
        /// The admin installing it.
        #[arg(long = "as")]
        admin: String,
        /// Why: recorded with the rule set.
        #[arg(long)]
        why: String,
        /// The installation's time (RFC 3339), required on a scripted ledger.
        #[arg(long)]
        at: Option<String>,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
    /// The rule sets the ledger installed: who, when, why, and what changed.
    History {
        #[command(flatten)]
        place: Place,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn dispatch(cmd: RulesCmd) -> Result<ExitCode> {
    match cmd {
        RulesCmd::Check { file, json } => check(&file, json),
        RulesCmd::Diff {
            before,
            after,
            json,
        } => diff_files(&before, &after, json),
        RulesCmd::Install {
            place,
            server,
            file,
            admin,
            why,
            at,
            json,
        } => {
            let text = with_rationale(&file, &why)?;
            match server {
                Some(url) => install_remote(&url, &admin, text, json),
                None => install(&place.at()?, &admin, text, at.as_deref(), json),
            }
        }
        RulesCmd::History { place, json } => history(&place.at()?, json),
    }
}

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))
}

fn parse(file: &Path) -> Result<RuleSet> {
    let text = read(file)?;
    RuleSet::parse(&text).with_context(|| file.display().to_string())
}

/// `parley rules check FILE`: exit 0 and a summary when it would install.
fn check(file: &Path, json_out: bool) -> Result<ExitCode> {
    let text = read(file)?;
    match RuleSet::parse(&text) {
        Ok(rules) => {
            let ids: Vec<&str> = rules.custom.iter().map(|g| g.id.as_str()).collect();
            let hash = rules_hash(&text);
            if json_out {
                println!("{}", json!({"ok": true, "hash": hash, "custom": ids}));
            } else {
                println!(
                    "{}: ok ({} custom guard(s){}{})",
                    file.display(),
                    ids.len(),
                    if ids.is_empty() { "" } else { ": " },
                    ids.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json_out {
                let err = json!({"line": e.line, "field": e.field, "message": e.message});
                println!("{}", json!({"ok": false, "error": err}));
            } else {
                eprintln!("{}: {e}", file.display());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn diff_files(before: &Path, after: &Path, json_out: bool) -> Result<ExitCode> {
    let changes = diff(&parse(before)?, &parse(after)?);
    if json_out {
        println!("{}", serde_json::to_string(&changes)?);
    } else if changes.is_empty() {
        println!("no rule differs");
    } else {
        lines(&changes).iter().for_each(|l| println!("{l}"));
    }
    Ok(ExitCode::SUCCESS)
}

/// The file's text with `[change] why = …` added (the file must check, and
/// must not say why itself).
fn with_rationale(file: &Path, why: &str) -> Result<String> {
    let text = read(file)?;
    crate::rules::with_rationale(&text, why).with_context(|| file.display().to_string())
}

fn command(admin: &str, text: String) -> Command {
    Command {
        envelope: CommandEnvelope {
            producer: admin.to_owned(),
            ..CommandEnvelope::default()
        },
        body: Body::RulesInstalled { text },
    }
}

fn install(
    place: &At,
    admin: &str,
    text: String,
    at: Option<&str>,
    json_out: bool,
) -> Result<ExitCode> {
    let hash = crate::digest::to_hex(&rules_hash(&text).0);
    let body = Body::RulesInstalled { text };
    let answer = super::write::append_one(place, admin, body, at)?
        .context("the rule set was not installed")?;
    if json_out {
        println!("{}", json!({"seq": answer.seq, "hash": hash}));
    } else {
        println!("rule set {hash} installed at seq {}", answer.seq);
    }
    Ok(ExitCode::SUCCESS)
}

fn install_remote(url: &str, admin: &str, text: String, json_out: bool) -> Result<ExitCode> {
    let hash = crate::digest::to_hex(&rules_hash(&text).0);
    let answer =
        super::remote::post_command(url, &command(admin, text), "the rule set was not installed")?;
    if json_out {
        println!("{}", json!({"seq": answer["seq"], "hash": hash}));
    } else {
        println!("rule set {hash} installed at seq {}", answer["seq"]);
    }
    Ok(ExitCode::SUCCESS)
}

fn history(place: &At, json_out: bool) -> Result<ExitCode> {
    let view = place.view()?;
    let ctx = view.context_at(view.head_seq())?;
    let list = crate::rules::history::history(&ctx, &view)?;
    if json_out {
        println!("{}", serde_json::to_string(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    for i in &list {
        println!(
            "seq {} at {} by {}: {}",
            i.seq,
            crate::time::format_rfc3339(i.recorded_at_ms),
            i.by,
            i.why.as_deref().unwrap_or("(no rationale)")
        );
        lines(&i.changes).iter().for_each(|l| println!("    {l}"));
    }
    Ok(ExitCode::SUCCESS)
}
