//! Storage that never destroys what it acknowledged (ARCHITECTURE.md,
//! "Recovery"): bit flips anywhere are reported at their seq by every
//! command and cut off by none; read commands write nothing; rebuild writes
//! nothing to the log; missing data is refused; readers next to a running
//! writer see a consistent prefix and no false damage.
//!
//! `PARLEY_FLIPS=N` sets how many flips the bit-flip test tries (default 24;
//! `tools/bitflip-test` runs more).

// These tests wait on the wall clock (bounded waits, wall-time envelopes).
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use common::{copy_dir, frame_map, parley_bin, snapshot_files, unclean};
use parley::ledger::{Ledger, LedgerError, Options};
use parley::log::LogError;

fn opts() -> Options {
    common::small_segments("ldg-flip")
}

/// A ledger of several segments and many batches: the demo store, then
/// pipelined facts and intentions (so batches hold many records).
fn build(dir: &Path) -> u64 {
    let (ledger, _) = Ledger::open(dir, opts()).unwrap();
    common::append_store(&ledger);
    let mut at = 1_764_147_700_000u64;
    for round in 0..12 {
        let tickets: Vec<_> = (0..40)
            .map(|i| {
                at += 1_000;
                let text = if i % 4 == 0 {
                    format!(r#"{{"producer":"pricing","at_ms":{at},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"SKU-2","price_minor":{}}},"reasoning":"round {round}","impact":{{"revenue_minor":100,"margin_minor":100}},"objective":"sales-growth"}}}}"#, 5000 + i)
                } else {
                    format!(r#"{{"producer":"inventory","at_ms":{at},"kind":"stock_changed","sku":"SKU-{}","stock":{i}}}"#, 1 + i % 3)
                };
                ledger.submit(parley::Command::parse(&text).unwrap()).unwrap()
            })
            .collect();
        for t in tickets {
            t.wait().unwrap();
        }
    }
    let head = ledger.head().unwrap().seq;
    ledger.close().unwrap();
    head
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let r = common::parley(args, "");
    (r.code, r.stdout + &r.stderr)
}

/// The read commands that read the whole log, on `d`.
fn read_commands(d: &str) -> Vec<Vec<&str>> {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.toml");
    vec![
        vec!["verify", "--data", d, "--json"],
        vec!["replay", "--data", d, "--json"],
        vec!["state", "--data", d, "--json"],
        vec!["log", "--data", d, "--json"],
        vec!["export", "--data", d],
        vec!["escalations", "--data", d, "--json"],
        vec!["whatif", "--data", d, "--rules", rules, "--json"],
    ]
}

/// A small deterministic generator (no randomness crate in the tests' path).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One entity each record names (to point audit at the damaged record).
fn entities_by_seq(dir: &Path) -> BTreeMap<u64, String> {
    let (view, _) = parley::reader::LogView::open(dir).unwrap();
    let mut out = BTreeMap::new();
    use parley::reader::LedgerRead;
    view.scan(1, u64::MAX, &mut |r| {
        let e = r
            .record
            .index_entities()
            .into_iter()
            .find(|e| e.kind() == Some("sku"));
        if let Some(e) = e {
            out.insert(r.record.envelope.seq, e.to_string());
        }
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn every_flip_is_reported_at_its_seq_and_nothing_is_cut_off() {
    let base = tempfile::tempdir().unwrap();
    let clean = base.path().join("clean");
    build(&clean);
    let regions = regions(&clean.join("log"));
    assert!(
        regions
            .iter()
            .map(|r| &r.path)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 3,
        "several segments"
    );
    let entities = entities_by_seq(&clean);
    let flips: u64 = std::env::var("PARLEY_FLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed = std::env::var("PARLEY_FLIP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("bit flips: {flips}, PARLEY_FLIP_SEED={seed}");
    let mut rng = Rng(seed);
    // The final write unit: its header, frames and trailer.
    let final_unit: Vec<&Region> = regions.iter().filter(|r| r.final_unit).collect();
    let (mut in_final_unit, mut in_markers) = (0, 0);
    for n in 0..flips {
        let work = base.path().join(format!("flip-{n}"));
        copy_dir(&clean, &work);
        // Every other flip lands in the final write unit of the last segment.
        let region = if n % 2 == 0 {
            final_unit[rng.below(final_unit.len() as u64) as usize]
        } else {
            &regions[rng.below(regions.len() as u64) as usize]
        };
        in_final_unit += u64::from(region.final_unit);
        in_markers += u64::from(!region.record);
        let path = work.join("log").join(region.path.file_name().unwrap());
        let offset = region.start + rng.below((region.end - region.start) as u64) as usize;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset] ^= 1 << rng.below(8);
        std::fs::write(&path, &bytes).unwrap();
        let seq = region.seq;
        let before = snapshot_files(&work.join("log"));
        let d = work.to_str().unwrap();
        let mut commands = read_commands(d);
        // Audit reads only the records its entity's index names (each one
        // checked): pointed at the damaged record's sku, it must refuse too.
        if let Some(e) = entities.get(&seq).filter(|_| region.record) {
            commands.push(vec!["audit", "--data", d, e, "--json"]);
            commands.push(vec!["log", "--data", d, "--entity", e]);
        }
        for args in commands {
            let (code, out) = run(&args);
            assert_eq!(
                code,
                Some(1),
                "flip {n} at seq {seq} ({}): {args:?} did not refuse: {out}",
                region.what
            );
            assert!(
                names_seq(&out, seq),
                "flip {n} ({}): {args:?} does not name seq {seq}: {out}",
                region.what
            );
        }
        match Ledger::open(&work, opts()) {
            Err(LedgerError::Log(e)) => assert_eq!(
                e.corrupt_seq(),
                Some(seq),
                "flip {n} ({}): {e}",
                region.what
            ),
            Err(other) => panic!("flip {n} at seq {seq}: writer open failed otherwise: {other}"),
            Ok(_) => panic!("flip {n} at seq {seq}: a writer opened a damaged ledger"),
        }
        assert!(
            snapshot_files(&work.join("log")) == before,
            "flip {n}: a byte of log/ changed"
        );
        std::fs::remove_dir_all(&work).unwrap();
    }
    assert!(
        in_final_unit >= flips / 2,
        "flips reached the final write unit"
    );
    println!(
        "{flips} bit flips ({in_final_unit} in the final write unit, {in_markers} in unit headers or trailers): every read command, verify and a writer's open named the flipped record's seq exactly; no byte of log/ changed"
    );
}

/// True when `out` names exactly `seq` ("seq 12", not "seq 123").
fn names_seq(out: &str, seq: u64) -> bool {
    let exact = |needle: &str| {
        out.match_indices(needle).any(|(i, _)| {
            !out[i + needle.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
    };
    exact(&format!("seq {seq}")) || exact(&format!("\"first_bad_seq\":{seq}"))
}

/// A byte range of a segment and the seq damage there is named at.
struct Region {
    path: PathBuf,
    start: usize,
    end: usize,
    seq: u64,
    /// A record's frame (else a unit header or trailer).
    record: bool,
    /// Part of the last write unit of the last segment.
    final_unit: bool,
    what: &'static str,
}

/// Every frame, unit header and unit trailer of the log: a header is named
/// at its unit's first record, a trailer at its last.
fn regions(log: &Path) -> Vec<Region> {
    let mut out = Vec::new();
    for (first, path) in parley::log::segment::segments(log).unwrap() {
        let bytes = std::fs::read(&path).unwrap();
        let frames = parley::log::read::walk_frames(&path, first, u64::MAX).unwrap();
        let mut prev_end = None;
        let region = |start, end, seq, record, what| Region {
            path: path.clone(),
            start,
            end,
            seq,
            record,
            final_unit: false,
            what,
        };
        for (seq, (at, len)) in (first..).zip(frames) {
            let (at, len) = (at as usize, len as usize);
            if prev_end != Some(at) {
                if let Some(end) = prev_end {
                    out.push(region(end, at - 20, seq - 1, false, "a unit trailer"));
                }
                out.push(region(at - 20, at, seq, false, "a unit header"));
            }
            out.push(region(at, at + len, seq, true, "a record's frame"));
            prev_end = Some(at + len);
        }
        if let Some(end) = prev_end {
            let len = parley::log::unit::trailer_len(&bytes[end..]).unwrap();
            let seq = out.last().unwrap().seq;
            out.push(region(end, end + len, seq, false, "a unit trailer"));
        }
    }
    // The final unit: from the last unit header on.
    let last = out.iter().rposition(|r| r.what == "a unit header").unwrap();
    for r in &mut out[last..] {
        r.final_unit = true;
    }
    out
}

#[test]
fn a_flip_in_the_last_unit_is_refused_even_where_no_evidence_reaches() {
    // The testers' case: a crash, then one flipped bit in the final write
    // unit, with no evidence covering it (log/head and the derived store
    // both behind it). Earlier builds took it for a torn write and cut
    // acknowledged records. Now the unit's trailer shows it was written
    // whole, so it is damage: refused, in this boot or after a power cut.
    for other_boot in [false, true] {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("l");
        build(&dir);
        let frames = frame_map(&dir.join("log"));
        let (last_seq, path, at, len) = frames.last().unwrap().clone();
        let batch_first = {
            let data = std::fs::read(&path).unwrap();
            u64::from_le_bytes(data[at + 8..at + 16].try_into().unwrap())
        };
        let acked = batch_first - 1;
        let acked_hash = {
            let (_, p, a, l) = frames.iter().find(|f| f.0 == acked).unwrap().clone();
            let data = std::fs::read(&p).unwrap();
            <[u8; 32]>::try_from(&data[a + l - 32..a + l]).unwrap()
        };
        if other_boot {
            common::unclean_other_boot(&dir, acked, acked_hash);
        } else {
            unclean(&dir, acked, acked_hash);
        }
        std::fs::remove_dir_all(dir.join("derived")).unwrap();
        common::flip_byte(&path, at + len / 2);
        let d = dir.to_str().unwrap();
        let before = snapshot_files(&dir.join("log"));
        let (code, out) = run(&["verify", "--data", d, "--json"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains("\"damage\":\"corrupt\"")
                && out.contains(&format!("\"first_bad_seq\":{last_seq}")),
            "{out}"
        );
        let err = Ledger::open(&dir, opts()).err().expect("refused");
        assert!(
            matches!(&err, LedgerError::Log(LogError::Corrupt { seq, .. }) if *seq == last_seq),
            "{err}"
        );
        assert!(
            snapshot_files(&dir.join("log")) == before,
            "nothing under log/ changed"
        );
    }
}

/// Runs every read command on `d` and checks that no file under it changed.
fn reads_write_nothing(dir: &Path) -> Vec<(Option<i32>, String)> {
    let d = dir.to_str().unwrap();
    let before = snapshot_files(dir);
    let mut commands = read_commands(d);
    commands.push(vec!["audit", "--data", d, "sku:SKU-1", "price", "--json"]);
    commands.push(vec!["log", "--data", d, "--entity", "sku:SKU-2"]);
    commands.push(vec!["state", "--data", d, "sku:SKU-2"]);
    commands.push(vec!["verify", "--data", d, "--derived"]);
    let out: Vec<_> = commands.iter().map(|a| run(a)).collect();
    let after = snapshot_files(dir);
    let changed: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(changed.is_empty(), "read commands changed {changed:?}");
    out
}

#[test]
fn read_commands_change_nothing_whatever_they_find() {
    let base = tempfile::tempdir().unwrap();
    let clean = base.path().join("clean");
    build(&clean);
    // Healthy: every read succeeds.
    for (code, out) in reads_write_nothing(&clean) {
        assert_eq!(code, Some(0), "{out}");
    }
    let case = |name: &str, damage: &dyn Fn(&Path)| {
        let dir = base.path().join(name);
        copy_dir(&clean, &dir);
        damage(&dir);
        (dir.clone(), reads_write_nothing(&dir))
    };
    // Derived state gone: reads still work from the log, and rebuild nothing.
    let (dir, out) = case("no-derived", &|d| {
        std::fs::remove_dir_all(d.join("derived")).unwrap();
        std::fs::remove_dir_all(d.join("index")).unwrap();
    });
    let verify_derived = out.last().unwrap();
    assert_eq!(
        verify_derived.0,
        Some(1),
        "verify --derived reports a missing store"
    );
    assert!(!dir.join("derived").exists() && !dir.join("index").exists());
    for (code, o) in &out[..out.len() - 1] {
        assert_eq!(*code, Some(0), "{o}");
    }
    // An empty leftover temp segment: read, not removed.
    let (dir, out) = case("tmp", &|d| {
        let mut b = vec![0u8; 4096];
        b[..8].copy_from_slice(b"PARLEYSG");
        std::fs::write(d.join("log").join("00000000000000999999.seg.tmp"), b).unwrap();
    });
    assert!(dir
        .join("log")
        .join("00000000000000999999.seg.tmp")
        .exists());
    assert!(out.iter().all(|(c, _)| *c == Some(0)));
    let segments: Vec<PathBuf> = parley::log::scan::list_segments(&clean.join("log"))
        .unwrap()
        .into_iter()
        .map(|s| s.1)
        .collect();
    let last = segments.last().unwrap().file_name().unwrap().to_owned();
    // The last segment deleted, or renamed to .seg.tmp: records acknowledged
    // (log/head) are missing; every read command says so; nothing is removed.
    for (name, rename) in [("deleted", false), ("renamed", true)] {
        let (dir, out) = case(name, &|d| {
            let p = d.join("log").join(&last);
            if rename {
                std::fs::rename(&p, p.with_extension("seg.tmp")).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        });
        for (code, o) in &out {
            assert_eq!(*code, Some(1), "{name}: {o}");
            assert!(
                o.contains("were acknowledged") || o.contains("missing"),
                "{name}: {o}"
            );
        }
        if rename {
            assert!(dir
                .join("log")
                .join(&last)
                .with_extension("seg.tmp")
                .exists());
            let err = Ledger::open(&dir, opts())
                .err()
                .expect("a writer refuses too");
            assert!(
                err.to_string().contains("holds data") || err.to_string().contains("acknowledged"),
                "{err}"
            );
        }
    }
    // No segments at all: reads say so and create nothing.
    let (dir, out) = case("empty-log", &|d| {
        for s in &segments {
            std::fs::remove_file(d.join("log").join(s.file_name().unwrap())).unwrap();
        }
    });
    assert!(out.iter().all(|(c, _)| *c == Some(1)));
    assert!(
        std::fs::read_dir(dir.join("log")).unwrap().count() == 1,
        "only log/head is there"
    );
    // One byte short: verify and open agree.
    let (dir, out) = case("short", &|d| {
        let p = d.join("log").join(&last);
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
    });
    let verify = &out[0];
    let opened = Ledger::open(&dir, opts());
    assert_eq!(
        verify.0 == Some(0),
        opened.is_ok(),
        "verify ({}) and open ({:?}) agree",
        verify.1,
        opened.as_ref().err()
    );
}

#[test]
fn rebuild_writes_nothing_to_the_log() {
    let base = tempfile::tempdir().unwrap();
    // A demo ledger, and a wall-clock one with a deferral long overdue: a
    // writer would append a clock record and a decision; rebuild must not.
    let demo = base.path().join("demo");
    assert_eq!(
        run(&["demo", "--data", demo.to_str().unwrap(), "--json"]).0,
        Some(0)
    );
    let wall = base.path().join("wall");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let script = format!(
        "{}\n{}\n{}\n",
        r#"{"producer":"merchandising","kind":"catalog","sku":"S","category":"c","cost_minor":100,"price_minor":500,"stock":5,"lifecycle":"active"}"#,
        format_args!(
            r#"{{"producer":"marketing","kind":"intend","intention":{{"action":{{"type":"launch_promotion","target":{{"skus":["S"]}},"discount_bp":100,"starts_at_ms":{now},"ends_at_ms":{}}},"reasoning":"r","impact":{{"revenue_minor":1,"margin_minor":1}},"objective":"sales-growth"}}}}"#,
            now + 2_000
        ),
        r#"{"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"S","price_minor":450},"reasoning":"r","impact":{"revenue_minor":1,"margin_minor":1},"objective":"sales-growth"}}"#,
    );
    let reg = r#"{"producer":"admin","kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":1}}
{"producer":"admin","kind":"agent_registered","profile":{"agent":"marketing","domain":"marketing","priority":1}}
{"producer":"admin","kind":"agent_registered","profile":{"agent":"merchandising","domain":"merchandising","priority":1}}
"#;
    let mut child = Process::new(parley_bin())
        .args(["run", "--data", wall.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all((reg.to_owned() + &script).as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    for dir in [&demo, &wall] {
        let before = snapshot_files(&dir.join("log"));
        std::fs::remove_dir_all(dir.join("derived")).unwrap();
        let (code, out) = run(&["rebuild", "--data", dir.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{out}");
        assert!(
            snapshot_files(&dir.join("log")) == before,
            "rebuild changed log/ of {}",
            dir.display()
        );
        assert_eq!(
            run(&["verify", "--data", dir.to_str().unwrap(), "--derived"]).0,
            Some(0)
        );
    }
}

#[test]
fn one_writer_and_readers_beside_it_see_no_false_damage() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("busy");
    let d = dir.to_str().unwrap().to_owned();
    let mut writer = Process::new(parley_bin())
        .args(["run", "--data", &d, "--segment-mib", "1", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = writer.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..40_000u64 {
            let line = format!(
                r#"{{"producer":"feed","kind":"fact","entity":"shelf:{}","attribute":"n","value":{i}}}"#,
                i % 50
            );
            if writeln!(input, "{line}").is_err() {
                break;
            }
            if i % 500 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    });
    // Wait for the writer to publish its head.
    let start = std::time::Instant::now();
    while run(&["verify", "--data", &d, "--json"]).0 != Some(0) {
        assert!(start.elapsed().as_secs() < 20, "the writer never came up");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = run(&["run", "--data", &d, "-"]);
    assert_eq!(second.0, Some(1));
    assert!(
        second.1.contains("in use by another parley writer"),
        "{}",
        second.1
    );
    let mut runs = 0;
    while !feeder.is_finished() || runs < 30 {
        let (code, out) = run(&["verify", "--data", &d, "--json"]);
        assert_eq!(code, Some(0), "false alarm next to a writer: {out}");
        assert!(
            out.contains("\"writer_running\":true") || feeder.is_finished(),
            "{out}"
        );
        let (code, out) = run(&["log", "--data", &d, "--entity", "shelf:7"]);
        assert_eq!(code, Some(0), "{out}");
        runs += 1;
        if runs > 400 {
            break;
        }
    }
    feeder.join().unwrap();
    assert!(writer.wait().unwrap().success());
    assert!(runs >= 30, "verify ran {runs} times");
    assert_eq!(run(&["verify", "--data", &d]).0, Some(0));
}

#[test]
fn readers_refuse_what_the_writer_refuses_from_the_same_evidence() {
    let base = tempfile::tempdir().unwrap();
    let clean = base.path().join("clean");
    build(&clean);
    // The last segment and log/head both deleted: the derived store's marker
    // still says what was acknowledged, for verify as for a writer.
    let dir = base.path().join("no-tail");
    copy_dir(&clean, &dir);
    let segments = parley::log::segment::segments(&dir.join("log")).unwrap();
    let (last_first, last_path) = segments.last().unwrap().clone();
    std::fs::remove_file(&last_path).unwrap();
    std::fs::remove_file(dir.join("log").join("head")).unwrap();
    let d = dir.to_str().unwrap();
    let (code, out) = run(&["verify", "--data", d, "--json"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("\"first_bad_seq\":{last_first}")),
        "{out}"
    );
    match Ledger::open(&dir, opts()) {
        Err(LedgerError::Log(e)) => assert_eq!(e.corrupt_seq(), Some(last_first), "{e}"),
        other => panic!("the writer must refuse: {:?}", other.err()),
    }
    // The first segment deleted: indexed reads (log --entity, audit) refuse
    // rather than answer with part of the history.
    let dir = base.path().join("no-head");
    copy_dir(&clean, &dir);
    std::fs::remove_file(dir.join("log").join(segments[0].1.file_name().unwrap())).unwrap();
    let d = dir.to_str().unwrap();
    for args in [
        vec!["log", "--data", d, "--entity", "sku:SKU-2"],
        vec!["audit", "--data", d, "sku:SKU-2", "price", "--json"],
        vec!["verify", "--data", d, "--json"],
    ] {
        let (code, out) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {out}");
        assert!(
            out.contains("seq 1") || out.contains("\"first_bad_seq\":1"),
            "{args:?}: {out}"
        );
    }
}

#[test]
fn repair_cuts_only_what_no_evidence_shows_was_acknowledged() {
    let base = tempfile::tempdir().unwrap();
    let clean = base.path().join("clean");
    let head = build(&clean);
    let tail = parley::log::recovery::analyze(
        &clean.join("log"),
        parley::log::recovery::Proof::gather(&clean.join("log"), &clean.join("derived")).unwrap(),
    )
    .unwrap();
    let last = tail.last.unwrap();

    // A flip in the zeros after the data of a cleanly closed ledger: no
    // record is damaged, yet every command refuses it. Repair shows, then cuts.
    let dir = base.path().join("zeros");
    copy_dir(&clean, &dir);
    let seg = dir.join("log").join(last.path.file_name().unwrap());
    let len = std::fs::metadata(&seg).unwrap().len();
    assert!(last.end + 64 < len, "zeros after the data");
    common::flip_byte(&seg, ((last.end + len) / 2) as usize);
    let d = dir.to_str().unwrap();
    assert_eq!(run(&["verify", "--data", d]).0, Some(1));
    assert!(Ledger::open(&dir, opts()).is_err());
    let before = snapshot_files(&dir.join("log"));
    let (code, out) = run(&["repair", "--data", d]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("would cut") && out.contains("--yes"), "{out}");
    assert!(
        snapshot_files(&dir.join("log")) == before,
        "a plan changes nothing"
    );
    let (code, out) = run(&["repair", "--data", d, "--yes"]);
    assert_eq!(code, Some(0), "{out}");
    let kept = std::fs::read_dir(dir.join("repair")).unwrap().count();
    assert_eq!(kept, 2, "the cut bytes and the plan are kept");
    let (code, out) = run(&["verify", "--data", d, "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("\"head_seq\":{head}")),
        "every record kept: {out}"
    );
    assert_eq!(
        run(&["repair", "--data", d]).0,
        Some(0),
        "nothing left to repair"
    );

    // A flip in a unit's trailer: its records all check, so the trailer is
    // written again and nothing is cut.
    let dir = base.path().join("trailer");
    copy_dir(&clean, &dir);
    let seg = dir.join("log").join(last.path.file_name().unwrap());
    common::flip_byte(&seg, last.end as usize - 6);
    let d = dir.to_str().unwrap();
    assert_eq!(run(&["verify", "--data", d]).0, Some(1));
    let (code, out) = run(&["repair", "--data", d, "--yes"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("trailer"), "{out}");
    let (code, out) = run(&["verify", "--data", d, "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("\"head_seq\":{head}")), "{out}");

    // Damage inside acknowledged records: repair says so and stops.
    let dir = base.path().join("acked");
    copy_dir(&clean, &dir);
    let frames = frame_map(&dir.join("log"));
    let (seq, path, at, len) = frames[frames.len() / 2].clone();
    common::flip_byte(&path, at + len / 2);
    let d = dir.to_str().unwrap();
    let before = snapshot_files(&dir.join("log"));
    for args in [
        vec!["repair", "--data", d],
        vec!["repair", "--data", d, "--yes"],
    ] {
        let (code, out) = run(&args);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains(&format!("seq {seq}")) && out.contains("replica"),
            "{out}"
        );
    }
    assert!(
        snapshot_files(&dir.join("log")) == before,
        "nothing changed"
    );
    assert!(!dir.join("repair").exists());
}
