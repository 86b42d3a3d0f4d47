//! The committed JSON Schemas in `schemas/` must be what the code generates.
//! After a deliberate change: `cargo run -- schema --out schemas`.

use std::path::Path;

#[test]
fn committed_schemas_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for (name, text) in parley::schema::all() {
        let path = dir.join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo run -- schema --out schemas`",
                path.display()
            )
        });
        assert!(committed == text, "{name} drifted from the code; run `cargo run -- schema --out schemas` and review the diff");
    }
}

/// The command schema as `parley schema` writes it.
fn command_schema() -> String {
    parley::schema::all()
        .into_iter()
        .find(|(n, _)| *n == "command.schema.json")
        .map(|(_, text)| text)
        .unwrap()
}

#[test]
fn the_command_schema_describes_every_kind() {
    let text = command_schema();
    for needle in [
        "\"fact\"",
        "\"broadcast\"",
        "idempotency_key",
        "at_ms",
        "producer",
    ] {
        assert!(text.contains(needle), "command schema lacks {needle}");
    }
}

/// The command schema offers exactly the kinds a producer may send: none that
/// parley writes itself (schemathesis sent a schema-valid `checkpoint` when
/// the schema still listed it, and the server refused it).
#[test]
fn the_command_schema_offers_no_kind_parley_writes_itself() {
    let text = command_schema();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut offered: Vec<String> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| {
            v.pointer("/properties/kind/const")?
                .as_str()
                .map(String::from)
        })
        .collect();
    offered.sort();
    let mut producer: Vec<String> = parley::record::Body::KINDS
        .iter()
        .filter(|k| !parley::record::Body::is_system_kind(k))
        .map(|k| (*k).to_owned())
        .collect();
    producer.sort();
    assert_eq!(offered, producer);
    for system in ["genesis", "decision", "checkpoint", "run_finished"] {
        assert!(parley::record::Body::is_system_kind(system), "{system}");
        assert!(!offered.iter().any(|k| k == system), "{system} offered");
    }
}

/// `parley state --json` (and an entity view) on a demo ledger validate
/// against their committed schemas.
#[test]
fn state_json_of_a_demo_ledger_validates_against_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let d = data.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_parley");
    let out = std::process::Command::new(bin)
        .args(["demo", "--data", d, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let check = |schema: &str,
                 args: &[&str],
                 pick: &dyn Fn(serde_json::Value) -> serde_json::Value| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(schemas.join(schema)).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&s).unwrap();
        let instance = pick(v);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{schema}: {errors:?}");
        instance
    };
    let state = check(
        "state.schema.json",
        &["state", "--data", d, "--json"],
        &|v| v,
    );
    assert!(state["skus"].as_array().unwrap().len() > 20);
    assert!(state["runs"].as_array().is_some());
    for entity in [
        "sku:S1",
        "run:sale-hp",
        "agent:pricing",
        "category:speakers",
    ] {
        check(
            "entity.schema.json",
            &["state", "--data", d, entity, "--json"],
            &|v| v["entity"].clone(),
        );
    }
    // The scorecard and the suggestions validate; the scorecard's realized
    // margin is the demo's own "with parley" figure (the same sales, recorded
    // as outcome records and folded by the ledger).
    let demo: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = data.join("whatif-rules.toml");
    let card = check(
        "scorecard.schema.json",
        &[
            "scorecard",
            "--data",
            d,
            "--rules",
            rules.to_str().unwrap(),
            "--json",
        ],
        &|v| v,
    );
    let with = &demo["with_orchestration"];
    assert!(with["margin_minor"].as_i64().unwrap() > 0);
    assert_eq!(card["realized"]["margin_minor"], with["margin_minor"]);
    assert_eq!(card["realized"]["revenue_minor"], with["revenue_minor"]);
    assert_eq!(card["realized"]["units"], with["units_sold"]);
    assert_eq!(card["alternatives"][0]["is_estimate"], true);
    let s = check(
        "suggest.schema.json",
        &["suggest", "--data", d, "--json"],
        &|v| v,
    );
    assert!(s["suggestions"].as_array().is_some());
}
