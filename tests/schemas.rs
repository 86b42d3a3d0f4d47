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

#[test]
fn the_command_schema_describes_every_kind() {
    let (_, text) = parley::schema::all()
        .into_iter()
        .find(|(n, _)| *n == "command.schema.json")
        .unwrap();
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
