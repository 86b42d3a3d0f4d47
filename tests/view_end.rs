//! A read-only view of a cleanly closed ledger takes the end of the log
//! from the close's evidence (`recovery::closed_head`) instead of walking
//! the last segment: it must find the very head recovery's full analysis
//! finds, fall back to that analysis whenever anything near the end
//! disagrees (then every outcome is the analysis's, damage named at the
//! same seq), and still refuse damage it did not walk, at its seq, when a
//! read reaches it.

mod common;

use std::path::Path;

use common::{copy_dir, flip_byte, frame_map, unclean};
use parley::ledger::{Ledger, Options};
use parley::log::recovery::{analyze, Proof};
use parley::log::{Head, LogError};
use parley::reader::{EndCheck, LedgerRead, LogView, ViewError};

fn opts() -> Options {
    common::small_segments("ldg-view-end")
}

/// The demo store, stock movements, and last a price intention: its
/// decision is written in the same write unit, so the final unit holds two
/// records or more. Returns the head the writer closed at.
fn build(dir: &Path) -> Head {
    let (ledger, _) = Ledger::open(dir, opts()).unwrap();
    common::append_store(&ledger);
    let mut at = 1_764_147_700_000u64;
    for i in 0..200 {
        at += 1_000;
        ledger.append(common::stock_change(at, i)).unwrap();
    }
    let text = format!(
        r#"{{"producer":"pricing","at_ms":{},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"SKU-2","price_minor":5100}},"reasoning":"last","impact":{{"revenue_minor":100,"margin_minor":100}},"objective":"sales-growth"}}}}"#,
        at + 1_000
    );
    ledger
        .append(parley::Command::parse(&text).unwrap())
        .unwrap();
    let head = ledger.head().unwrap();
    ledger.close().unwrap();
    head
}

/// What recovery's full analysis finds: the head, or the seq it refuses.
fn analysis(dir: &Path) -> Result<Option<Head>, Option<u64>> {
    let log = dir.join("log");
    let proof = Proof::gather(&log, &dir.join("derived")).map_err(|e| e.corrupt_seq())?;
    analyze(&log, proof)
        .map(|t| t.head)
        .map_err(|e| e.corrupt_seq())
}

/// What a view finds, the same way, and how it found the end.
fn view(dir: &Path) -> (Result<Option<Head>, Option<u64>>, Option<EndCheck>) {
    match LogView::open(dir) {
        Ok((v, report)) => (Ok(v.head()), Some(report.end)),
        Err(ViewError::Log(e)) => (Err(e.corrupt_seq()), None),
        Err(other) => panic!("view: {other}"),
    }
}

/// The frames of the final write unit (contiguous frames end to end, the
/// unit header before the first): (seq, path, offset, len).
fn final_unit(dir: &Path) -> Vec<(u64, std::path::PathBuf, usize, usize)> {
    let frames = frame_map(&dir.join("log"));
    let mut start = frames.len() - 1;
    while start > 0 && frames[start - 1].2 + frames[start - 1].3 == frames[start].2 {
        start -= 1;
    }
    frames[start..].to_vec()
}

#[test]
fn a_closed_ledger_is_read_to_the_head_its_close_names() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("clean");
    let head = build(&dir);
    let (found, end) = view(&dir);
    assert_eq!(end, Some(EndCheck::ClosedEvidence));
    assert_eq!(found, Ok(Some(head)));
    assert_eq!(analysis(&dir), Ok(Some(head)));
    // Every record reads back, through the view, to the same head.
    let (v, _) = LogView::open(&dir).unwrap();
    let mut seen = 0;
    v.scan(1, u64::MAX, &mut |_| {
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, head.seq);
}

#[test]
fn damage_in_the_final_unit_is_judged_by_the_full_analysis() {
    let base = tempfile::tempdir().unwrap();
    let clean = base.path().join("clean");
    build(&clean);
    let unit = final_unit(&clean);
    assert!(
        unit.len() >= 2,
        "the intention and its decision share a unit"
    );
    let (first, last) = (unit[0].clone(), unit[unit.len() - 1].clone());
    let trailer_at = last.2 + last.3;
    // (where, the seq the analysis names): the unit header, a byte inside
    // the first frame's payload (only the unit's piece checks cover it
    // before the frame is read), the last frame and the trailer.
    let cases = [
        ("unit header", &first.1, first.2 - 10, first.0),
        ("first frame", &first.1, first.2 + 60, first.0),
        ("last frame", &last.1, last.2 + 60, last.0),
        ("trailer", &last.1, trailer_at + 12, last.0),
    ];
    for (n, (what, path, offset, seq)) in cases.into_iter().enumerate() {
        let dir = base.path().join(format!("flip-{n}"));
        copy_dir(&clean, &dir);
        flip_byte(&dir.join("log").join(path.file_name().unwrap()), offset);
        let expected = analysis(&dir);
        assert_eq!(expected, Err(Some(seq)), "{what}: the analysis names it");
        assert_eq!(view(&dir), (expected, None), "{what}");
    }
}

#[test]
fn anything_unexpected_at_the_end_falls_back_to_the_walk() {
    let base = tempfile::tempdir().unwrap();
    let clean = base.path().join("clean");
    let head = build(&clean);
    let last = final_unit(&clean).pop().unwrap();
    let trailer_len = {
        let bytes = std::fs::read(&last.1).unwrap();
        parley::log::unit::trailer_len(&bytes[last.2 + last.3..]).unwrap()
    };
    let case = |name: &str, damage: &dyn Fn(&Path)| {
        let dir = base.path().join(name);
        copy_dir(&clean, &dir);
        damage(&dir);
        let (found, end) = view(&dir);
        assert_eq!(found, analysis(&dir), "{name}: the analysis's outcome");
        assert_ne!(end, Some(EndCheck::ClosedEvidence), "{name}");
        found
    };
    // Data after the final unit, where a closed log holds only zeros.
    let seg = last.1.file_name().unwrap().to_owned();
    let after = last.2 + last.3 + trailer_len + 100;
    let found = case("data-after", &|d| {
        flip_byte(&d.join("log").join(&seg), after)
    });
    assert_eq!(found, Err(Some(last.0 + 1)), "data where none may be");
    // No index file names the last record: walked, same head.
    let found = case("no-index", &|d| {
        std::fs::remove_dir_all(d.join("index")).unwrap()
    });
    assert_eq!(found, Ok(Some(head)));
    // A writer that did not close: walked, same head.
    let found = case("unclean", &|d| unclean(d, head.seq, head.hash));
    assert_eq!(found, Ok(Some(head)));
}

#[test]
fn damage_before_the_final_unit_is_refused_when_a_read_reaches_it() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("flip");
    let head = build(&dir);
    // A record of the last segment before the final unit.
    let unit_first = final_unit(&dir)[0].0;
    let frames = frame_map(&dir.join("log"));
    let last_path = frames.last().unwrap().1.clone();
    let (seq, path, at, _) = frames
        .iter()
        .rev()
        .find(|f| f.1 == last_path && f.0 < unit_first)
        .cloned()
        .expect("the last segment holds a unit before the final one");
    flip_byte(&path, at + 60);
    // The full analysis walks the last segment and refuses it there.
    assert_eq!(analysis(&dir), Err(Some(seq)));
    // The view takes the head from the close and refuses the record when
    // a read reaches it: by seq, and in a scan.
    let (v, report) = LogView::open(&dir).unwrap();
    assert_eq!(report.end, EndCheck::ClosedEvidence);
    assert_eq!(v.head(), Some(head));
    let named = |e: LogError| e.corrupt_seq();
    assert_eq!(v.read(&[seq]).map(|_| ()).map_err(named), Err(Some(seq)));
    let scanned = v.scan(1, u64::MAX, &mut |_| Ok(()));
    assert_eq!(scanned.map_err(named), Err(Some(seq)));
    // And `verify` names it.
    let out = common::parley(&["verify", "--data", dir.to_str().unwrap(), "--json"], "");
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("\"first_bad_seq\":{seq}")),
        "{}",
        out.stdout
    );
}

#[test]
fn a_read_by_seq_walks_no_further_than_the_records_it_wants() {
    // A running writer's next write unit, caught mid-`pwrite`: its header is
    // in the page cache, its frames not yet. A reader beside that writer
    // reads up to the head it published, before that unit.
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("ledger");
    let head = build(&dir);
    let log = dir.join("log");
    let tail = analyze(&log, Proof::gather(&log, &dir.join("derived")).unwrap()).unwrap();
    let last = tail.last.unwrap();
    let room = last.capacity - last.end;
    assert!(room > 200, "room after the last unit: {room}");
    let body = u32::try_from((room - 100).min(4096)).unwrap();
    let mut bytes = std::fs::read(&last.path).unwrap();
    let at = usize::try_from(last.end).unwrap();
    bytes[at..at + 20].copy_from_slice(&parley::log::unit::encode_header(body, head.seq + 1));
    std::fs::write(&last.path, &bytes).unwrap();
    // No index file: the read finds its records by walking the segment.
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    let files = parley::log::read::LogFiles::new(&log, &dir.join("index"));
    use parley::log::LogReader;
    let got = files.read(&[head.seq - 1, head.seq], head.seq).unwrap();
    let seqs: Vec<u64> = got.iter().map(|r| r.record.envelope.seq).collect();
    assert_eq!(seqs, vec![head.seq - 1, head.seq]);
}
