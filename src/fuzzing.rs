//! The bodies of the cargo-fuzz targets in `fuzz/`, kept in the library so they
//! build and run (on a seed corpus) with the ordinary tests, and so a fuzzer
//! finding is reproducible as a unit test.

use crate::command::Command;
use crate::log::frame::{parse_frame, Parsed};
use crate::record::Record;

/// Record decoder: never panics; whatever decodes re-encodes to the same bytes
/// (the encoding is canonical), and frame parsing never panics either.
pub fn record_decoder(data: &[u8]) {
    // The count is for the seed test; the fuzzer looks for panics.
    let _decoded = decode_checked(data);
}

/// What `record_decoder` checks. Returns how many records decoded: the bytes
/// as a record payload, and the payload of a frame standing at their start.
fn decode_checked(data: &[u8]) -> u32 {
    let mut decoded = u32::from(canonical(data));
    if let Parsed::Frame(f) = parse_frame(data) {
        let valid = f.self_valid();
        let payload = canonical(f.payload);
        debug_assert!(
            !valid || payload,
            "a self-valid frame holds a decodable record"
        );
        decoded += u32::from(payload);
    }
    decoded
}

/// Decodes `bytes` as a record; when it decodes, asserts it re-encodes to
/// exactly `bytes`.
fn canonical(bytes: &[u8]) -> bool {
    let Ok(record) = Record::decode(bytes) else {
        return false;
    };
    let again = record.canonical_bytes();
    assert_eq!(
        again.as_deref(),
        Ok(bytes),
        "decoded record does not re-encode to its bytes"
    );
    true
}

/// JSON command parser: never panics; whatever parses round-trips through its
/// JSON form to an equal command.
pub fn command_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cmd) = Command::parse(text) {
        let again = Command::parse(&cmd.to_json());
        assert_eq!(
            again.as_ref(),
            Ok(&cmd),
            "command does not round-trip through JSON"
        );
    }
}

/// Rules parser: never panics; whatever parses also validates, and an error
/// always names a line within the text.
pub fn rules_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = crate::rules::RuleSet::parse(text) {
        let lines = text.lines().count().max(1);
        assert!(
            e.line >= 1 && e.line <= lines + 1,
            "error line {} outside 1..={lines}",
            e.line
        );
    }
}

/// Workflow definition parser: never panics; an error always names a line
/// within the text; whatever parses has its dependencies pointing backwards.
pub fn workflow_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match crate::workflow::Definition::parse(text) {
        Err(e) => {
            let lines = text.lines().count().max(1);
            assert!(
                e.line >= 1 && e.line <= lines + 1,
                "error line {} outside 1..={lines}",
                e.line
            );
        }
        Ok(def) => {
            for (i, s) in def.steps.iter().enumerate() {
                for d in &s.depends_on {
                    assert!(
                        def.steps[..i].iter().any(|o| &o.name == d),
                        "cycle possible"
                    );
                }
            }
        }
    }
}

/// Custom guard expressions: checking never panics (nor exhausts the
/// stack); what passes the checks evaluates on a fixed context, for every
/// subject of a price change and of a category promotion, without panicking,
/// and reads only the leaves the expression names.
pub fn guard_expression(data: &[u8]) {
    use crate::guards::{evaluate, GuardText, Guards, Subject};
    use crate::vocab::{guard::Then, ActionKind, Field};
    let Ok(when) = std::str::from_utf8(data) else {
        return;
    };
    let text = GuardText {
        id: "fuzz".into(),
        applies_to: vec![ActionKind::SetPrice, ActionKind::LaunchPromotion],
        when: when.to_owned(),
        then: Then::Refuse,
        message: "m".into(),
    };
    let Ok(guards) = Guards::compile(&[text]) else {
        return;
    };
    let Some((ctx, intentions)) = guard_context() else {
        return;
    };
    for g in guards.iter() {
        for s in intentions.iter().filter_map(|seq| ctx.intentions.get(*seq)) {
            for subject in Subject::of(ctx, s) {
                let (_, reads) = evaluate(g, ctx, s, &subject);
                for r in reads {
                    let Field::View(p) = &r.field else {
                        panic!("a guard read {:?}", r.field);
                    };
                    assert!(g.paths.contains(p), "{p} is not named by {when}");
                }
            }
        }
    }
}

/// HTTP command bodies (`POST /v1/commands` and `/v1/commands/batch`, as
/// the agent `pricing`): never panics; what is accepted is a valid command
/// written as the caller (a batch of 1 to `BATCH_MAX`), and what is refused
/// is a 400 (malformed), 403 (another identity's) or 422 (an invalid
/// command) problem naming why. The first byte picks the route.
pub fn http_body(data: &[u8]) {
    use crate::server::auth::Caller;
    use crate::server::writes::{command_as, parse_batch};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let caller = Caller {
        grant: 7,
        identity: "pricing".into(),
        role: crate::record::Role::Agent,
    };
    let parsed = if pick % 2 == 0 {
        command_as(&caller, text).map(|c| vec![c])
    } else {
        parse_batch(&caller, text)
    };
    match parsed {
        Ok(commands) => {
            assert!(!commands.is_empty());
            for c in &commands {
                let c = c.command();
                assert_eq!(c.envelope.producer, "pricing", "written as the caller");
                assert_eq!(c.validate(), Ok(()), "an accepted command is valid");
            }
        }
        Err(p) => {
            assert!(matches!(p.status, 400 | 403 | 422), "status {}", p.status);
            assert!(!p.detail.is_empty(), "a refusal says why");
        }
    }
}

/// Store platforms' payloads: mapping a delivery of any topic, and reading
/// a CSV export of either format, never panics; what maps is within the
/// bounds a command is held to, and round-trips as a command through JSON.
/// The first byte picks the platform's topic or the CSV format.
pub fn platform_payload(data: &[u8]) {
    use crate::integration::{self, catalog, shopify, woocommerce, Currency, Mapped};
    use crate::vocab::Platform;
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Ok(gbp) = Currency::parse("GBP") else {
        return;
    };
    let topics: Vec<(Platform, &str)> = shopify::TOPICS
        .iter()
        .map(|t| (Platform::Shopify, *t))
        .chain(
            woocommerce::TOPICS
                .iter()
                .map(|t| (Platform::Woocommerce, *t)),
        )
        .collect();
    let i = usize::from(pick) % (topics.len() + 2);
    if let Some(&(platform, topic)) = topics.get(i) {
        if let Ok(Mapped::Object(synced)) = integration::map(platform, topic, body, gbp) {
            let command = Command {
                envelope: crate::command::CommandEnvelope {
                    producer: "store-sync".into(),
                    ..crate::command::CommandEnvelope::default()
                },
                body: crate::record::Body::Synced { synced },
            };
            assert_eq!(
                command.validate(),
                Ok(()),
                "a mapped delivery is a valid command"
            );
            assert_eq!(Command::parse(&command.to_json()).as_ref(), Ok(&command));
        }
        return;
    }
    let format = if i == topics.len() {
        catalog::CsvFormat::ShopifyCsv
    } else {
        catalog::CsvFormat::WoocommerceCsv
    };
    if let Ok(rows) = catalog::read(format, body, gbp) {
        for e in rows.iter().filter_map(|r| r.entry.as_ref().ok()) {
            assert!(crate::bounds::check_id("sku", &e.sku).is_ok());
            assert!(
                (1..=crate::bounds::MONEY_MAX_MINOR).contains(&e.price_minor) || e.price_minor == 0
            );
        }
    }
}

/// A small store (two skus with facts, one category) and two intentions on
/// it: a price change and a category promotion. Built once.
fn guard_context() -> Option<&'static (crate::context::Context, Vec<u64>)> {
    static CONTEXT: std::sync::OnceLock<Option<(crate::context::Context, Vec<u64>)>> =
        std::sync::OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let opts = crate::ledger::Options {
                genesis_at_ms: Some(1_764_147_600_000),
                timeline: crate::record::Timeline::Scripted,
                first_admin: "ops".into(),
                auto_clock: false,
                ..crate::ledger::Options::default()
            };
            let ledger = crate::ledger::Ledger::in_memory(opts).ok()?;
            let t = 1_764_147_601_000u64;
            let lines = [
                format!(r#"{{"producer":"ops","at_ms":{t},"kind":"agent_registered","profile":{{"agent":"pricing","domain":"pricing","priority":50}}}}"#),
                format!(r#"{{"producer":"ops","at_ms":{t},"kind":"agent_registered","profile":{{"agent":"m","domain":"merchandising","priority":40}}}}"#),
                format!(r#"{{"producer":"m","at_ms":{t},"kind":"catalog","sku":"S1","category":"c","cost_minor":500,"price_minor":1000,"stock":5,"lifecycle":"active"}}"#),
                format!(r#"{{"producer":"m","at_ms":{t},"kind":"catalog","sku":"S2","category":"c","cost_minor":900,"price_minor":2000,"stock":0,"lifecycle":"discontinuing"}}"#),
                format!(r#"{{"producer":"m","at_ms":{t},"kind":"fact","entity":"sku:S1","attribute":"rating_x10","value":25}}"#),
                format!(r#"{{"producer":"m","at_ms":{t},"kind":"fact","entity":"sku:S2","attribute":"rating_x10","value":"n/a"}}"#),
                format!(r#"{{"producer":"pricing","at_ms":{t},"kind":"intend","intention":{{"action":{{"type":"set_price","sku":"S1","price_minor":900}},"reasoning":"r","impact":{{"revenue_minor":-100,"margin_minor":-100}},"objective":"sales-growth"}}}}"#),
                format!(r#"{{"producer":"m","at_ms":{t},"kind":"intend","intention":{{"action":{{"type":"launch_promotion","target":{{"category":"c"}},"discount_bp":1500,"starts_at_ms":{},"ends_at_ms":{}}},"reasoning":"r","impact":{{"revenue_minor":100,"margin_minor":-10}},"objective":"sales-growth"}}}}"#, t + 1000, t + 2000),
            ];
            let mut intentions = Vec::new();
            for l in &lines {
                let ack = ledger.append(Command::parse(l).ok()?).ok()?;
                if l.contains("\"intend\"") {
                    intentions.push(ack.seq);
                }
            }
            let ctx = ledger.context_at(u64::MAX).ok()?;
            Some((ctx, intentions))
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broadcast whose two detail entries are stored out of order.
    fn unsorted_map_record() -> Vec<u8> {
        use crate::record::{Body, Envelope, FORMAT_VERSION};
        use crate::value::Value;
        let mut detail = std::collections::BTreeMap::new();
        detail.insert("a".to_owned(), Value::Int(1));
        detail.insert("b".to_owned(), Value::Int(2));
        let record = Record {
            envelope: Envelope {
                format: FORMAT_VERSION,
                seq: 2,
                recorded_at_ms: 1,
                producer: "p".into(),
                idempotency_key: None,
                causation: None,
                correlation: None,
                credential: None,
            },
            body: Body::Broadcast {
                topic: "t".into(),
                entity: None,
                detail,
            },
        };
        let bytes = record.canonical_bytes().unwrap();
        // Each entry: key (u64 length, 1 byte) + value (u32 tag, i64): 25 bytes.
        let entry = 8 + 1 + 4 + 8;
        let end = bytes.len();
        let mut out = bytes.clone();
        out[end - 2 * entry..end - entry].copy_from_slice(&bytes[end - entry..]);
        out[end - entry..].copy_from_slice(&bytes[end - 2 * entry..end - entry]);
        assert_ne!(out, bytes);
        out
    }

    /// Every frame of the golden ledger, fed to the decoder from its first
    /// byte: each holds a record, which must decode and re-encode exactly.
    #[test]
    fn the_decoder_re_encodes_every_golden_record() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/log");
        let mut frames = 0u32;
        let mut decoded = 0u32;
        for (first_seq, path) in crate::log::scan::list_segments(&dir).unwrap() {
            let bytes = std::fs::read(&path).unwrap();
            for offset in crate::log::read::walk_offsets(&path, first_seq, u64::MAX).unwrap() {
                let at = usize::try_from(offset).unwrap();
                frames += 1;
                decoded += decode_checked(&bytes[at..]);
                record_decoder(&bytes[at..]);
            }
        }
        assert!(frames > 100, "the golden ledger's frames: {frames}");
        assert_eq!(decoded, frames, "every golden frame's record decoded");
    }

    #[test]
    fn http_body_seed_corpus_runs_clean() {
        let lines: Vec<String> = include_str!("../tests/golden/commands.jsonl")
            .lines()
            .map(|l| l.replacen(r#""producer":"#, r#""producer":"pricing","was":"#, 1))
            .chain([r#"{"producer":"pricing","kind":"fact","entity":"sku:S1","attribute":"a","value":1}"#.to_owned()])
            .collect();
        let mut accepted = 0;
        for line in &lines {
            http_body(&[&[0u8][..], line.as_bytes()].concat());
            http_body(&[&[0u8][..], &line.as_bytes()[..line.len() / 2]].concat());
            accepted += u32::from(
                crate::server::writes::command_as(
                    &crate::server::auth::Caller {
                        grant: 7,
                        identity: "pricing".into(),
                        role: crate::record::Role::Agent,
                    },
                    line,
                )
                .is_ok(),
            );
        }
        assert!(accepted >= 1, "some seeds are accepted");
        // Found by the fuzzer (the target had expected only 400 or 403): an
        // invalid command (a promotion ending before it starts) is a 422.
        let ends_first = r#"{"producer":"pricing","kind":"intend","intention":{"action":{"type":"launch_promotion","target":{"category":"speakers"},"discount_bp":2500,"starts_at_ms":1764154799999,"ends_at_ms":17640000},"reasoning":"r","impact":{"revenue_minor":1,"margin_minor":-1},"objective":"sales-growth"}}"#;
        http_body(&[&[0u8][..], ends_first.as_bytes()].concat());
        let batch = format!("[{}]", lines.join(","));
        for body in [
            batch.as_str(),
            "[]",
            "[1]",
            "{}",
            "[{\"producer\":\"marketing\",\"kind\":\"clock\"}]",
        ] {
            http_body(&[&[1u8][..], body.as_bytes()].concat());
        }
    }

    #[test]
    fn platform_seed_corpus_runs_clean() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/store-webhooks");
        let mut seeds = Vec::new();
        for sub in ["shopify", "woocommerce"] {
            for e in std::fs::read_dir(dir.join(sub)).unwrap() {
                seeds.push(std::fs::read(e.unwrap().path()).unwrap());
            }
        }
        for csv in ["shopify-products.csv", "woocommerce-products.csv"] {
            seeds.push(std::fs::read(dir.join(csv)).unwrap());
        }
        seeds.push(br#"{"id":1,"updated_at":"2026-01-01T00:00:00Z","variants":[{"sku":" ","price":"1e3"}]}"#.to_vec());
        seeds.push(br#"{"id":18446744073709551615,"currency":"GBP","total_price":"99999999999.99","updated_at":"9999-12-31T23:59:59Z"}"#.to_vec());
        for seed in &seeds {
            for pick in 0..=20u8 {
                let mut data = vec![pick];
                data.extend_from_slice(seed);
                platform_payload(&data);
                platform_payload(&data[..data.len() / 2]);
            }
        }
    }

    #[test]
    fn seed_corpus_runs_clean() {
        let golden = include_bytes!("../tests/golden/log/00000000000000000001.seg");
        record_decoder(golden);
        for start in (64..golden.len().min(2048)).step_by(7) {
            record_decoder(&golden[start..]);
            record_decoder(&golden[start..(start + 200).min(golden.len())]);
        }
        for line in include_str!("../tests/golden/commands.jsonl").lines() {
            command_parser(line.as_bytes());
            command_parser(&line.as_bytes()[..line.len() / 2]);
        }
        command_parser(
            b"{\"producer\":\"a\",\"kind\":\"broadcast\",\"topic\":\"t\",\"detail\":{\"k\":-0}}",
        );
        command_parser(&[0xff, 0xfe]);
        // Found by the fuzzer: map entries out of order decoded to a record
        // whose canonical bytes differ. Such bytes are refused.
        let unsorted = unsorted_map_record();
        assert_eq!(
            Record::decode(&unsorted),
            Err(crate::record::RecordError::NotCanonical)
        );
        record_decoder(&unsorted);
        let rules = crate::rules::DEFAULT_RULES;
        rules_parser(rules.as_bytes());
        for cut in (0..rules.len()).step_by(13) {
            rules_parser(&rules.as_bytes()[..cut]);
        }
        rules_parser(b"[priority]\nobjectives = [\"risk\"\n");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/examples");
        let mut evaluated = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let with = format!("{rules}\n{text}");
            rules_parser(with.as_bytes());
            for cut in (0..with.len()).step_by(97) {
                rules_parser(&with.as_bytes()[..cut]);
            }
            let parsed: toml::Value = toml::from_str(&text).unwrap();
            for g in parsed["custom"].as_array().unwrap() {
                let when = g["when"].as_str().unwrap();
                guard_expression(when.as_bytes());
                evaluated += 1;
                for cut in 0..when.len() {
                    guard_expression(&when.as_bytes()[..cut]);
                }
            }
        }
        assert!(evaluated >= 6, "the example guards");
        assert!(guard_context().is_some(), "the fuzz context builds");
        for text in [
            "sku.facts.rating_x10 < 30",
            "(((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))) > 0",
            "sku.price_minor * 9223372036854775807 > 0",
            "sku.id + sku.id == 'S1S1'",
            "action.discount_bp / 0 > 1",
        ] {
            guard_expression(text.as_bytes());
        }
        for text in crate::workflow::SHIPPED {
            workflow_parser(text.as_bytes());
            for cut in (0..text.len()).step_by(11) {
                workflow_parser(&text.as_bytes()[..cut]);
            }
        }
    }
}
