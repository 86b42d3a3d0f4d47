//! The golden log: bytes and hashes every future version must read, verify and
//! write identically. `tests/golden/commands.jsonl` is appended into a fresh
//! ledger with fixed options; the segment files must equal `tests/golden/log/`
//! byte for byte, and the export must equal `tests/golden/export.jsonl`.
//! Regenerate (only for a deliberate format change, with a new FORMAT_VERSION)
//! with `PARLEY_BLESS=1 cargo test --test golden`.

use std::path::{Path, PathBuf};

use parley::command::Command;
use parley::ledger::{Ledger, Options};
use parley::log::scan::list_segments;
use parley::verify::verify_dir;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn options() -> Options {
    Options {
        segment_bytes: 4096,
        ledger_id: Some("ldg-golden".into()),
        genesis_at_ms: Some(1_764_147_600_000),
        initial_rules: None,
        initial_workflows: Vec::new(),
        // Scripted time only: a wall-clock record would make the bytes differ run to run.
        auto_clock: false,
        ..Options::default()
    }
}

fn build(dir: &Path) -> Vec<u8> {
    let (ledger, _) = Ledger::open(dir, options()).unwrap();
    let commands = std::fs::read_to_string(golden().join("commands.jsonl")).unwrap();
    for line in commands.lines() {
        ledger.append(Command::parse(line).unwrap()).unwrap();
    }
    let mut export = Vec::new();
    parley::export::export(&ledger, &mut export).unwrap();
    ledger.close().unwrap();
    export
}

#[test]
fn the_golden_log_is_written_read_and_verified_identically() {
    let dir = tempfile::tempdir().unwrap();
    let export = build(dir.path());
    let built = list_segments(&dir.path().join("log")).unwrap();
    assert!(built.len() >= 2, "the golden log spans a segment rollover");
    let golden_log = golden().join("log");
    if std::env::var_os("PARLEY_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&golden_log);
        std::fs::create_dir_all(&golden_log).unwrap();
        for (_, path) in &built {
            std::fs::copy(path, golden_log.join(path.file_name().unwrap())).unwrap();
        }
        std::fs::write(golden().join("export.jsonl"), &export).unwrap();
        let report = verify_dir(&golden()).unwrap();
        std::fs::write(
            golden().join("head_hash.txt"),
            report.head_hash.unwrap() + "\n",
        )
        .unwrap();
        return;
    }
    let stored = list_segments(&golden_log).unwrap();
    assert_eq!(stored.len(), built.len());
    for ((_, a), (_, b)) in built.iter().zip(&stored) {
        assert_eq!(a.file_name(), b.file_name());
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{} differs from the golden bytes",
            a.display()
        );
    }
    let golden_export = std::fs::read(golden().join("export.jsonl")).unwrap();
    assert!(
        export == golden_export,
        "export differs from tests/golden/export.jsonl"
    );

    // The committed bytes themselves verify to the committed head hash.
    let report = verify_dir(&golden()).unwrap();
    let head = std::fs::read_to_string(golden().join("head_hash.txt")).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, Some(64));
    assert_eq!(report.head_hash.as_deref(), Some(head.trim()));
}
