//! The PostgreSQL engine against a real PostgreSQL server (started here from
//! the distribution's packages; `.ci/run` installs them):
//! `cargo test --test postgres -- --ignored`.
//!
//! Each test starts its own cluster in a scratch directory and fails loudly
//! when it cannot.

mod common;

use std::path::{Path, PathBuf};

use common::pg::Cluster;
use parley::command::Command;
use parley::entity::EntityRef;
use parley::ledger::{Ledger, Options};
use parley::log::postgres::{PgLog, PgOptions, PgReader, PgStore};
use parley::log::{encode_record, EncodedRecord, LogEngine, LogError, LogReader};
use parley::record::{Body, Envelope, Timeline, FORMAT_VERSION};
use parley::value::Value;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn golden_commands() -> Vec<Command> {
    std::fs::read_to_string(golden().join("commands.jsonl"))
        .unwrap()
        .lines()
        .map(|l| Command::parse(l).unwrap())
        .collect()
}

/// The golden ledger's options (as tests/golden.rs builds it).
fn golden_options() -> Options {
    Options {
        ledger_id: Some("ldg-golden".into()),
        genesis_at_ms: golden_commands()[0].envelope.at_ms,
        timeline: Timeline::Scripted,
        first_admin: "ops".into(),
        initial_rules: None,
        initial_workflows: Vec::new(),
        resolver_version: 1,
        ..Options::default()
    }
}

fn opts(ledger: &str) -> PgOptions {
    PgOptions {
        lease_ms: 60_000,
        ..PgOptions::new(ledger)
    }
}

fn open(store: &PgStore, ledger: &str, o: Options) -> Ledger {
    let engine = PgLog::open(store, opts(ledger)).unwrap();
    Ledger::with_engine(Box::new(engine), o).unwrap()
}

fn export_of(ledger: &Ledger) -> Vec<u8> {
    let mut out = Vec::new();
    parley::export::export(ledger, &mut out).unwrap();
    out
}

/// Writes the golden commands into `ledger` on the store and closes it.
fn write_golden(store: &PgStore, ledger: &str) -> Vec<u8> {
    let l = open(store, ledger, golden_options());
    for c in golden_commands() {
        l.append(c).unwrap();
    }
    let export = export_of(&l);
    l.close().unwrap();
    export
}

#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn the_golden_commands_through_postgres_export_byte_identical() {
    let pg = Cluster::start_scratch();
    let store = PgStore::parse(&pg.url("postgres")).unwrap();
    let export = write_golden(&store, "golden");
    let expected = std::fs::read(golden().join("export.jsonl")).unwrap();
    assert!(
        export == expected,
        "the export differs from tests/golden/export.jsonl"
    );
    // Reopened, the ledger continues from its head and reads the same.
    let again = open(&store, "golden", golden_options());
    assert_eq!(export_of(&again), expected);
    let head = again.head().unwrap();
    assert_eq!(
        parley::record::to_hex(&head.hash),
        std::fs::read_to_string(golden().join("head_hash.txt"))
            .unwrap()
            .trim()
    );
    again.close().unwrap();
    // Every stored frame is the segment engine's bytes for that record.
    let frames = pg.psql("SELECT count(*) FROM parley_record WHERE ledger = 'golden'");
    assert_eq!(frames.trim(), head.seq.to_string());
}

/// Runs `sql` against the one row of `seq`.
fn on_row(pg: &Cluster, ledger: &str, seq: u64, set: &str) {
    pg.psql(&format!(
        "UPDATE parley_record SET {set} WHERE ledger = '{ledger}' AND seq = {seq}"
    ));
}

fn corrupt_seq(e: &LogError) -> Option<u64> {
    e.corrupt_seq()
}

#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn a_changed_byte_in_a_stored_frame_is_refused_at_its_seq_by_every_read() {
    let pg = Cluster::start_scratch();
    let store = PgStore::parse(&pg.url("postgres")).unwrap();
    write_golden(&store, "g");
    let reader = PgReader::new(store.clone(), "g");
    let head = reader.head().unwrap().unwrap().seq;
    let mut trials = 0;
    for seq in (1..=head).step_by(5) {
        let len: usize = pg
            .psql(&format!(
                "SELECT length(frame) FROM parley_record WHERE ledger = 'g' AND seq = {seq}"
            ))
            .trim()
            .parse()
            .unwrap();
        // The header, the prev hash, the payload's first and last byte, the hash.
        for at in [0, 9, 17, 30, 52, len - 33, len - 1] {
            let flip = format!("frame = set_byte(frame, {at}, get_byte(frame, {at}) # 1)");
            on_row(&pg, "g", seq, &flip);
            let scan = reader.scan(1, head, &mut |_| Ok(()));
            assert_eq!(
                scan.as_ref().err().and_then(corrupt_seq),
                Some(seq),
                "byte {at} of seq {seq}: {scan:?}"
            );
            let read = reader.read(&[seq], head);
            assert_eq!(read.as_ref().err().and_then(corrupt_seq), Some(seq));
            // A writer refuses to open on it (its fold reads every record).
            let opened = PgLog::open(&store, opts("g"))
                .map_err(parley::ledger::LedgerError::from)
                .and_then(|e| Ledger::with_engine(Box::new(e), golden_options()));
            assert!(opened.is_err(), "a writer opened over damage at seq {seq}");
            on_row(&pg, "g", seq, &flip);
            trials += 1;
        }
        // The hash column alone.
        let flip = "hash = set_byte(hash, 0, get_byte(hash, 0) # 1)";
        on_row(&pg, "g", seq, flip);
        let scan = reader.scan(1, head, &mut |_| Ok(()));
        assert_eq!(scan.as_ref().err().and_then(corrupt_seq), Some(seq));
        on_row(&pg, "g", seq, flip);
    }
    assert!(trials >= 7);
    reader.scan(1, head, &mut |_| Ok(())).unwrap();
    // A missing row is a gap, named at its seq.
    pg.psql(&format!(
        "DELETE FROM parley_record WHERE ledger = 'g' AND seq = {}",
        head / 2
    ));
    let scan = reader.scan(1, head, &mut |_| Ok(()));
    assert_eq!(scan.as_ref().err().and_then(corrupt_seq), Some(head / 2));
}

/// A fact record continuing `prev` (seq, hash), as a sequencer would encode it.
fn fact_after(seq: u64, prev: &parley::record::Hash, at_ms: u64, value: i64) -> EncodedRecord {
    let record = parley::record::Record {
        envelope: Envelope {
            format: FORMAT_VERSION,
            seq,
            recorded_at_ms: at_ms,
            producer: "ops".into(),
            idempotency_key: None,
            causation: None,
            correlation: None,
            credential: None,
        },
        body: Body::Fact {
            entity: EntityRef::parse("sku:SKU-1").unwrap(),
            attribute: "rating_x10".into(),
            value: Value::Int(value),
        },
    };
    encode_record(&record, prev).unwrap()
}

fn next_of(engine: &PgLog, value: i64) -> Vec<EncodedRecord> {
    let h = engine.head().unwrap();
    vec![fact_after(h.seq + 1, &h.hash, h.recorded_at_ms, value)]
}

fn rows(pg: &Cluster, ledger: &str) -> u64 {
    pg.psql(&format!(
        "SELECT count(*) FROM parley_record WHERE ledger = '{ledger}'"
    ))
    .trim()
    .parse()
    .unwrap()
}

#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn a_writer_whose_lease_was_taken_or_ran_out_appends_nothing() {
    let pg = Cluster::start_scratch();
    let store = PgStore::parse(&pg.url("postgres")).unwrap();
    write_golden(&store, "f");
    let mut a = PgLog::open(&store, opts("f")).unwrap();
    a.begin().unwrap();
    a.append(&next_of(&a, 1), &mut Vec::new()).unwrap();
    let before = rows(&pg, "f");
    // While A's lease is live, nobody else may write.
    match PgLog::open(&store, opts("f")) {
        Err(LogError::LeaseHeld { epoch, .. }) => assert_eq!(epoch, a.epoch()),
        other => panic!("a second writer opened: {:?}", other.map(|e| e.epoch())),
    }
    // A's lease runs out by the database's clock (as for a process paused
    // past it): A's next append is refused, and nothing is written.
    pg.psql("UPDATE parley_lease SET expires_at = clock_timestamp() - interval '1 second' WHERE ledger = 'f'");
    let refused = a.append(&next_of(&a, 2), &mut Vec::new());
    assert!(
        matches!(&refused, Err(LogError::Fenced { why, .. }) if why.contains("expired")),
        "{refused:?}"
    );
    assert_eq!(rows(&pg, "f"), before);
    // B takes over with a new epoch and writes; A, waking, still cannot.
    let mut b = PgLog::open(&store, opts("f")).unwrap();
    assert_eq!(b.epoch(), a.epoch() + 1);
    b.append(&next_of(&b, 3), &mut Vec::new()).unwrap();
    let refused = a.append(&next_of(&a, 4), &mut Vec::new());
    assert!(
        matches!(&refused, Err(LogError::Fenced { why, .. }) if why.contains("took it")),
        "{refused:?}"
    );
    assert_eq!(rows(&pg, "f"), before + 1);
    // A's release (on drop) does not end B's lease.
    drop(a);
    b.append(&next_of(&b, 5), &mut Vec::new()).unwrap();
    // B's clean close releases its lease at once: the next writer needs no wait.
    drop(b);
    let c = PgLog::open(&store, opts("f")).unwrap();
    assert_eq!(c.head().unwrap().seq, before + 2);
    let reader = PgReader::new(store.clone(), "f");
    reader.scan(1, before + 2, &mut |_| Ok(())).unwrap();
}

#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn a_writer_cannot_skip_or_rewrite_the_head_it_continues() {
    let pg = Cluster::start_scratch();
    let store = PgStore::parse(&pg.url("postgres")).unwrap();
    write_golden(&store, "h");
    let mut a = PgLog::open(&store, opts("h")).unwrap();
    let head = a.head().unwrap();
    // A row appears behind the writer's back (an operator's insert): the
    // writer's next batch no longer continues the ledger's head.
    let stray = fact_after(head.seq + 1, &head.hash, head.recorded_at_ms, 9);
    let mut frame = Vec::new();
    parley::log::frame::write_frame(&mut frame, stray.seq, &stray);
    pg.psql(&format!(
        "INSERT INTO parley_record VALUES ('h', {}, '\\x{}', '\\x{}')",
        stray.seq,
        parley::record::to_hex(&stray.hash),
        parley::record::to_hex(&frame)
    ));
    let refused = a.append(&next_of(&a, 1), &mut Vec::new());
    assert!(
        matches!(&refused, Err(LogError::Fenced { why, .. }) if why.contains("last record")),
        "{refused:?}"
    );
    assert_eq!(rows(&pg, "h"), head.seq + 1);
}

#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn one_database_holds_many_ledgers_each_its_own_chain() {
    let pg = Cluster::start_scratch();
    let store = PgStore::parse(&pg.url("postgres")).unwrap();
    let names: Vec<String> = (0..5).map(|i| format!("store-{i}")).collect();
    let ledgers: Vec<Ledger> = names
        .iter()
        .map(|n| {
            open(
                &store,
                n,
                Options {
                    ledger_id: Some(n.clone()),
                    ..Options::default()
                },
            )
        })
        .collect();
    for (i, l) in ledgers.iter().enumerate() {
        for k in 0..=i {
            let mut c = common::fact("pricing", 0, None, "sku:SKU-1", "rating_x10", k as i64);
            c.envelope.at_ms = None;
            l.append(c).unwrap_or_else(|e| panic!("ledger {i}: {e}"));
        }
    }
    let heads: Vec<u64> = ledgers.iter().map(|l| l.head().unwrap().seq).collect();
    for l in ledgers {
        l.close().unwrap();
    }
    assert_eq!(store.ledgers().unwrap(), names);
    for (i, n) in names.iter().enumerate() {
        let reader = PgReader::new(store.clone(), n);
        assert_eq!(reader.head().unwrap().unwrap().seq, heads[i]);
        reader.scan(1, heads[i], &mut |_| Ok(())).unwrap();
    }
    // Ledger i got i + 1 facts after the same first records: the chains are separate.
    for w in heads.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{heads:?}");
    }
}

/// The command line on both engines: the same commands give the same export,
/// an export imports into either, damage is reported at its seq, and the
/// store's password appears in no output.
#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn the_command_line_works_the_same_on_both_engines() {
    let pg = Cluster::start_scratch();
    let url = pg
        .url("postgres")
        .replace("postgres@", "postgres:s3cret-pw@");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("seg");
    let commands = golden().join("commands.jsonl");
    let commands = commands.to_str().unwrap();
    let create = ["--bare", "--ledger-id", "ldg-golden", "--admin", "ops"];
    let mut outputs = Vec::new();
    let seg_run = [
        &["run", "--data", data.to_str().unwrap(), commands][..],
        &create,
    ]
    .concat();
    let pg_run = [
        &["run", "--store", &url, "--ledger", "shop", commands][..],
        &create,
    ]
    .concat();
    for args in [seg_run, pg_run] {
        let ran = common::parley(&args, "");
        outputs.push(ran.stdout);
        assert!(!ran.stderr.contains("s3cret-pw"), "{}", ran.stderr);
    }
    assert_eq!(outputs[0], outputs[1], "`parley run` answered differently");
    let seg_export = common::parley(&["export", "--data", data.to_str().unwrap()], "").stdout;
    let pg_export = common::parley(&["export", "--store", &url, "--ledger", "shop"], "").stdout;
    assert!(seg_export == pg_export, "the exports differ");
    // The segment ledger's export imports into PostgreSQL (the migration path)…
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &seg_export).unwrap();
    let f = file.to_str().unwrap();
    let ran = common::parley(&["import", "--store", &url, "--ledger", "moved", f], "");
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let moved = common::parley(&["export", "--store", &url, "--ledger", "moved"], "").stdout;
    assert!(moved == seg_export);
    // …only once, and back into a directory.
    let again = common::parley(&["import", "--store", &url, "--ledger", "moved", f], "");
    assert_eq!(again.code, Some(1));
    assert!(
        again.stderr.contains("already holds records"),
        "{}",
        again.stderr
    );
    let back = dir.path().join("back");
    let ran = common::parley(&["import", "--data", back.to_str().unwrap(), f], "");
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    // Reads through PARLEY_STORE and PARLEY_LEDGER.
    let out = std::process::Command::new(common::parley_bin())
        .args(["replay", "--json"])
        .env("PARLEY_STORE", &url)
        .env("PARLEY_LEDGER", "shop")
        .env_remove("PARLEY_DATA")
        .output()
        .unwrap();
    let replay: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replay["divergent"], 0, "{replay}");
    // A flipped byte: verify names its seq, exit 1.
    pg.psql("UPDATE parley_record SET frame = set_byte(frame, 60, get_byte(frame, 60) # 4) WHERE ledger = 'shop' AND seq = 40");
    let ran = common::parley(
        &["verify", "--store", &url, "--ledger", "shop", "--json"],
        "",
    );
    assert_eq!(ran.code, Some(1));
    assert_eq!(ran.json()["first_bad_seq"], 40, "{}", ran.stdout);
    // Errors name the store without its password.
    let closed = url.replace(&pg.port.to_string(), &common::pg::free_port().to_string());
    for args in [
        vec!["verify", "--store", &closed, "--ledger", "shop"],
        vec!["state", "--store", &url, "--ledger", "nope"],
        vec!["export", "--store", &url],
        vec!["verify", "--data", "x", "--store", &url, "--ledger", "shop"],
    ] {
        let ran = common::parley(&args, "");
        assert_eq!(ran.code, Some(1), "{args:?}");
        assert!(
            ran.stderr.starts_with("parley: error: "),
            "{args:?}: {}",
            ran.stderr
        );
        assert!(!ran.stderr.contains("s3cret-pw"), "{}", ran.stderr);
    }
}

/// A node's `--data` beside `--store` keeps each ledger's derived state
/// across restarts (the same context, idempotency answered from it), and a
/// cache of another ledger by the same name is rebuilt, never used.
#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn a_nodes_data_directory_caches_derived_state_and_is_rebuilt_when_it_does_not_match() {
    use common::server::Server;
    let pg = Cluster::start_scratch();
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("node");
    let token = || {
        let args = [
            "token", "create", "--store", &url, "--ledger", "shop", "--name", "admin", "--role",
            "admin",
        ];
        let ran = common::parley(&args, "");
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        ran.stdout.trim().to_owned()
    };
    let admin = token();
    let start = |n: usize| {
        let log = dir.path().join(format!("node-{n}.log"));
        let extra = ["--data", cache.to_str().unwrap()];
        (Server::start_node(&url, "shop", &extra, &log), log)
    };
    let write = r#"{"producer":"admin","idempotency_key":"k1","kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}"#;
    // Liveness bounds (60 s), not targets.
    let view = |s: &Server, token: &str| -> serde_json::Value {
        for _ in 0..1200 {
            let (status, _, body) = s.request("GET", "/v1/cluster", Some(token), "");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if status == 200 && v["role"] == "writer" {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the node did not become the writer");
    };
    let (node, _) = start(0);
    view(&node, &admin);
    let (status, _, first) = node.request("POST", "/v1/commands", Some(&admin), write);
    assert!(status == 200 || status == 201, "{status} {first}");
    let before = view(&node, &admin);
    assert_eq!(node.stop().0, Some(0));
    assert!(cache.join("ledgers/shop/derived").is_dir());

    // Restarted on its cache: the context a node without one folds from the
    // log; the retried write answered with its first seq.
    let (node, log) = start(1);
    view(&node, &admin);
    let plain = Server::start_node(&url, "shop", &[], &dir.path().join("plain.log"));
    let same = (0..1200).any(|_| {
        let cluster = |s: &Server| {
            let (_, _, body) = s.request("GET", "/v1/cluster", Some(&admin), "");
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()
        };
        let (a, b) = (cluster(&node), cluster(&plain));
        std::thread::sleep(std::time::Duration::from_millis(50));
        a["context_seq"] == b["context_seq"] && a["context_hash"] == b["context_hash"]
    });
    assert!(
        same,
        "the cached node's context differs from a fold of the log"
    );
    assert_eq!(plain.stop().0, Some(0));
    let (_, _, again) = node.request("POST", "/v1/commands", Some(&admin), write);
    // The seq and the record's hash an answer names.
    let seq = |t: &str| {
        let v = serde_json::from_str::<serde_json::Value>(t).unwrap();
        (v["seq"].clone(), v["hash"].clone())
    };
    assert_eq!(seq(&again), seq(&first), "{again}");
    assert_eq!(node.stop().0, Some(0));
    assert!(!std::fs::read_to_string(&log).unwrap().contains("rebuilt"));

    // Another ledger by the same name: the cache is not used.
    pg.psql("DELETE FROM parley_record; DELETE FROM parley_lease;");
    let admin = token();
    let (node, log) = start(2);
    let fresh = view(&node, &admin);
    assert_ne!(fresh["context_hash"], before["context_hash"]);
    let (_, _, third) = node.request("POST", "/v1/commands", Some(&admin), write);
    assert_ne!(
        seq(&third),
        seq(&first),
        "an idempotency key of the old ledger answered: {third}"
    );
    assert_eq!(node.stop().0, Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("rebuilt"), "{text}");
}

/// A commit wakes whoever listens for that ledger (LISTEN/NOTIFY), and
/// only for that ledger.
#[test]
#[ignore = "needs PostgreSQL's server (.ci/run installs it)"]
fn a_commit_notifies_the_listeners_of_its_ledger() {
    let pg = Cluster::start_scratch();
    let store = PgStore::parse(&pg.url("postgres")).unwrap();
    // The tables exist before anyone listens.
    drop(PgLog::open(&store, opts("other")).unwrap());
    let (tx, rx) = crossbeam_channel::bounded(16);
    let (other_tx, other_rx) = crossbeam_channel::bounded(16);
    store.on_commit("shop", tx);
    store.on_commit("other", other_tx);
    // The listener is up once a notification gets through: commit until one
    // does (bounded), then drain.
    let ledger = open(&store, "shop", Options::default());
    let mut woken = false;
    for value in 0..300 {
        let mut c = common::fact("pricing", 0, None, "sku:SKU-1", "rating_x10", value);
        c.envelope.at_ms = None;
        ledger.append(c).unwrap();
        if rx
            .recv_timeout(std::time::Duration::from_millis(100))
            .is_ok()
        {
            woken = true;
            break;
        }
    }
    assert!(woken, "no commit to shop woke its listener");
    assert!(
        other_rx.try_recv().is_err(),
        "a commit to shop woke the listener of other"
    );
    ledger.close().unwrap();
}
