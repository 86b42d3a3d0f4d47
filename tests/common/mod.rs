//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use parley::command::{Command, CommandEnvelope};
use parley::log::frame::{parse_frame, Parsed};
use parley::log::scan::{list_segments, SEGMENT_HEADER_BYTES};
use parley::record::Body;
use parley::value::Value;

/// A fact command with an explicit time and optional idempotency key.
pub fn fact(
    producer: &str,
    at_ms: u64,
    key: Option<&str>,
    entity: &str,
    attr: &str,
    value: i64,
) -> Command {
    Command {
        envelope: CommandEnvelope {
            producer: producer.into(),
            at_ms: Some(at_ms),
            idempotency_key: key.map(Into::into),
            causation: None,
            correlation: None,
        },
        body: Body::Fact {
            entity: parley::entity::EntityRef::parse(entity).unwrap(),
            attribute: attr.into(),
            value: Value::Int(value),
        },
    }
}

/// Where each record's frame lies: (seq, segment path, offset, length).
pub fn frame_map(log_dir: &Path) -> Vec<(u64, PathBuf, usize, usize)> {
    let mut out = Vec::new();
    for (first_seq, path) in list_segments(log_dir).unwrap() {
        let frames = parley::log::read::walk_frames(&path, first_seq, u64::MAX).unwrap();
        for (seq, (at, len)) in (first_seq..).zip(frames) {
            out.push((seq, path.clone(), at as usize, len as usize));
        }
    }
    out
}

/// Flips the bits of one byte of a file.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[offset] ^= 0xff;
    std::fs::write(path, data).unwrap();
}

/// The `parley` binary built for these tests.
pub fn parley_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_parley"))
}

/// What one run of the binary did.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Stdout parsed as one JSON value (`Null` when it is not one).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or(serde_json::Value::Null)
    }
}

/// Runs `parley args…` with `stdin` as its input and waits: the one test
/// runner of the binary.
pub fn parley(args: &[&str], stdin: &str) -> Ran {
    let out = parley_output(args, stdin);
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// As [`parley`], with the raw output. `stdin` is fed from another thread: a
/// child that refuses and stops reading is no error here.
pub fn parley_output(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(parley_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let text = stdin.to_owned();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// Makes `log/head` say a writer was running in this boot (no clean close)
/// with records up to `seq` acknowledged, its evidence and live head both
/// there: the state a crash leaves behind when nothing after `seq` was
/// acknowledged.
pub fn unclean(dir: &Path, seq: u64, hash: [u8; 32]) {
    use parley::log::head::{self, HeadWriter, State};
    let log = dir.join("log");
    let last = head::read(&log).unwrap().evidence;
    let mut w = HeadWriter::open(&log, last).unwrap();
    w.record(State::Open, seq, hash).unwrap();
    w.publish_live(seq, hash).unwrap();
}

/// The hash of seq 1.
pub fn genesis_hash(dir: &Path) -> [u8; 32] {
    let data = std::fs::read(dir.join("log").join("00000000000000000001.seg")).unwrap();
    let at = SEGMENT_HEADER_BYTES + parley::log::unit::UNIT_HEADER_BYTES;
    match parse_frame(&data[at..]) {
        Parsed::Frame(f) => f.hash,
        _ => panic!("no genesis frame"),
    }
}

/// How a write in flight is left on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// The process was killed mid-`pwrite`: a prefix up to a page
    /// boundary, zeros after it.
    Killed,
    /// The power was cut before the `fdatasync` returned: one whole sector
    /// in the middle of the unit never reached the disk.
    PowerCut,
}

/// Writes a write unit of two records after the last valid one, torn as
/// `tear` says, where the writer would have put it (a new segment when the
/// last has no room). Returns the seq of its first record and its offset.
pub fn write_torn_batch(dir: &Path, tear: Tear) -> (u64, usize) {
    use parley::log::encode_record;
    use parley::log::frame::write_frame;
    use parley::log::recovery::{analyze, Proof};
    use parley::log::scan::{segment_header, segment_name};
    use parley::log::unit::{append_trailer, encode_header};
    use parley::record::{Envelope, Record, FORMAT_VERSION};
    let log = dir.join("log");
    let tail = analyze(&log, Proof::default()).unwrap();
    let head = tail.head.unwrap();
    let last = tail.last.unwrap();
    let mut prev = head.hash;
    let mut frames = Vec::new();
    for s in [head.seq + 1, head.seq + 2] {
        let record = Record {
            envelope: Envelope {
                format: FORMAT_VERSION,
                seq: s,
                recorded_at_ms: head.recorded_at_ms,
                producer: "a".into(),
                idempotency_key: None,
                causation: None,
                correlation: None,
                credential: None,
            },
            body: Body::Fact {
                entity: parley::entity::EntityRef::parse("shelf:T").unwrap(),
                attribute: "n".into(),
                value: Value::Text("t".repeat(3000)),
            },
        };
        let enc = encode_record(&record, &prev).unwrap();
        prev = enc.hash;
        write_frame(&mut frames, head.seq + 1, &enc);
    }
    let unit_len = 20 + frames.len() + 44 + 4 * (frames.len() / 512 + 3);
    let (path, start) = if last.end as usize + unit_len <= last.capacity as usize {
        (last.path.clone(), last.end as usize)
    } else {
        let path = log.join(segment_name(head.seq + 1));
        let mut data = segment_header(head.seq + 1, 16384).to_vec();
        data.resize(16384, 0);
        std::fs::write(&path, &data).unwrap();
        (path, 64)
    };
    let mut unit = encode_header(u32::try_from(frames.len()).unwrap(), head.seq + 1).to_vec();
    unit.extend_from_slice(&frames);
    let mut trailer = Vec::new();
    append_trailer(&mut trailer, start as u64, &unit, 2);
    unit.extend_from_slice(&trailer);
    match tear {
        Tear::Killed => {
            let cut = (start / 4096 + 1) * 4096 - start;
            assert!(
                cut > 20 && cut < unit.len(),
                "the unit spans a page boundary"
            );
            unit[cut..].fill(0);
        }
        Tear::PowerCut => {
            let sector = (start / 512 + 2) * 512 - start;
            assert!(sector + 512 < unit.len() - trailer.len());
            unit[sector..sector + 512].fill(0);
        }
    }
    let mut data = std::fs::read(&path).unwrap();
    data[start..start + unit.len()].copy_from_slice(&unit);
    std::fs::write(&path, &data).unwrap();
    (head.seq + 1, start)
}

/// Like [`unclean`], but the writer ran in another boot: the machine lost
/// power (or rebooted) since, so unsynced writes may be torn at any sector.
pub fn unclean_other_boot(dir: &Path, seq: u64, hash: [u8; 32]) {
    use parley::log::head::{self, HeadWriter, State};
    let log = dir.join("log");
    let last = head::read(&log).unwrap().evidence;
    let mut w = HeadWriter::open(&log, last).unwrap().in_boot(Some([7; 16]));
    w.record(State::Open, seq, hash).unwrap();
    w.publish_live(seq, hash).unwrap();
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir` with its bytes (to prove a command wrote nothing).
pub fn snapshot_files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot_files(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}
pub mod load;

/// A wall clock a test moves by hand.
pub struct TestClock(pub std::sync::atomic::AtomicU64);

impl parley::sequencer::Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Makes `ledger` defer a price intention: three agents, sku `S`, and a
/// promotion on `S` from `t0_ms` to `t0_ms + 60_000` that the price change
/// waits for. Returns the acknowledgement of the deferred intention.
pub fn defer_a_price(ledger: &parley::Ledger, t0_ms: u64) -> parley::sequencer::Ack {
    for c in [
        serde_json::json!({"producer":"ops","kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":1}}),
        serde_json::json!({"producer":"ops","kind":"agent_registered","profile":{"agent":"marketing","domain":"marketing","priority":1}}),
        serde_json::json!({"producer":"ops","kind":"agent_registered","profile":{"agent":"merchandising","domain":"merchandising","priority":1}}),
        serde_json::json!({"producer":"merchandising","kind":"catalog","sku":"S","category":"c","cost_minor":100,"price_minor":500,"stock":1,"lifecycle":"active"}),
        serde_json::json!({"producer":"marketing","kind":"intend","intention":{"action":{"type":"launch_promotion","target":{"skus":["S"]},"discount_bp":1000,"starts_at_ms":t0_ms,"ends_at_ms":t0_ms + 60_000},"reasoning":"r","impact":{"revenue_minor":1,"margin_minor":1},"objective":"sales-growth"}}),
    ] {
        ledger.append(cmd(c)).unwrap();
    }
    let ack = ledger
        .append(cmd(serde_json::json!({"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"S","price_minor":450},"reasoning":"r","impact":{"revenue_minor":1,"margin_minor":1},"objective":"sales-growth"}})))
        .unwrap();
    let (_, first) = ack.decision().unwrap();
    assert_eq!(first.outcome.name(), "deferred");
    ack
}

/// A command from its JSON form.
pub fn cmd(json: serde_json::Value) -> Command {
    Command::parse(&json.to_string()).unwrap()
}

pub mod browser;
pub mod patroni;
pub mod server;
pub mod traced;

/// Appends `command`; a refusal of the command itself (invalid, refused by
/// admission, a time or key conflict, too large) is fine, but the ledger
/// failing, closing or losing track of an outcome is a test failure: a test
/// that ignores its appends' results must still notice a broken writer.
pub fn append_or_refused(ledger: &parley::Ledger, command: Command) -> Option<u64> {
    use parley::AppendError as E;
    match ledger.append(command) {
        Ok(ack) => Some(ack.seq),
        Err(
            E::Invalid(_)
            | E::Refused(_)
            | E::TimeBackwards { .. }
            | E::TimeAhead { .. }
            | E::TimeMissing
            | E::TimeJump { .. }
            | E::KeyConflict { .. }
            | E::Record(_),
        ) => None,
        Err(
            e @ (E::Failed(_) | E::OutcomeUnknown(_) | E::Closed | E::Busy | E::NotTheWriter(_)),
        ) => {
            panic!("the ledger itself failed: {e}")
        }
    }
}
pub mod pg;

/// Options for a small on-disk ledger of many 16 KiB segments, on scripted
/// time (the recovery, seal and view tests).
pub fn small_segments(ledger_id: &str) -> parley::ledger::Options {
    parley::ledger::Options {
        segment_bytes: 16 << 10,
        ledger_id: Some(ledger_id.into()),
        genesis_at_ms: Some(1_764_147_600_000),
        timeline: parley::record::Timeline::Scripted,
        first_admin: "ops".into(),
        ..parley::ledger::Options::default()
    }
}

/// A stock movement of the demo store at `at_ms`: stock `n` of
/// `SKU-{1 + n % 3}` (the recovery and view tests' filler).
pub fn stock_change(at_ms: u64, n: u64) -> Command {
    let text = format!(
        r#"{{"producer":"inventory","at_ms":{at_ms},"kind":"stock_changed","sku":"SKU-{}","stock":{n}}}"#,
        1 + n % 3
    );
    Command::parse(&text).unwrap()
}

/// Appends the demo store (`tests/scenarios/_store.jsonl`), one command at a time.
pub fn append_store(ledger: &parley::Ledger) {
    let store = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/_store.jsonl"
    ))
    .unwrap();
    for l in store.lines() {
        ledger.append(Command::parse(l).unwrap()).unwrap();
    }
}
