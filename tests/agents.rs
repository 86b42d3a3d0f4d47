//! `examples/agents.py` (Python standard library only) runs the pricing,
//! marketing and customer-service agents as separate processes against a
//! real `parley serve`, and must end with the seed's conflict decided as in
//! `parley demo`, on a catalog merchandising lists and on one the store's
//! platform feeds through signed webhooks. Needs python3, so `cargo test`
//! lists it ignored and `.ci/run` runs it (`cargo test --test agents --
//! --ignored`).

mod common;

use common::server::{parley, Server};

/// A new ledger with an admin token, served with `serve_args`, and the
/// script run against it with `script_args`: (its stdout, the server, the
/// ledger's directory).
fn run_agents(
    base: &std::path::Path,
    serve_args: &[&str],
    script_args: &[&str],
) -> (String, Server, std::path::PathBuf) {
    let dir = base.join("store");
    let d = dir.to_str().unwrap();
    // On a new directory `token create` makes the ledger, then the server serves it.
    let admin = parley(
        &[
            "token", "create", "--data", d, "--name", "admin", "--role", "admin",
        ],
        "",
    );
    let server = Server::start_with(&dir, serve_args);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(["--server", &format!("http://{}", server.addr)])
        .args(["--admin-token", admin.trim()])
        .args(script_args)
        .output()
        .expect("python3 must be installed to run this test (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "agents.py failed:\n{stdout}\n{stderr}"
    );
    (stdout, server, dir)
}

#[test]
#[ignore = "needs python3; .ci/run runs it"]
fn the_example_agents_settle_the_price_war_over_http() {
    let base = tempfile::tempdir().unwrap();
    let (stdout, server, dir) = run_agents(base.path(), &[], &[]);
    assert!(
        stdout.contains("price war decided as in `parley demo`"),
        "{stdout}"
    );
    for line in [
        "set E2 to £53.99: approved by approve",
        "15 % off category earbuds: rejected by guard.margin",
        "15 % off E1, E3: approved by approve",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    let (code, _) = server.stop();
    assert_eq!(code, Some(0));
    // Every decision the agents saw is in the log.
    let d = dir.to_str().unwrap();
    let log = parley(&["log", "--data", d, "--kind", "decision", "--json"], "");
    assert_eq!(log.lines().count(), 4, "{log}");
}

#[test]
#[ignore = "needs python3; .ci/run runs it"]
fn the_example_agents_decide_on_a_catalog_fed_by_shopify_webhooks() {
    let base = tempfile::tempdir().unwrap();
    let secret = base.path().join("shopify-secret");
    std::fs::write(&secret, "agents-example-secret").unwrap();
    let serve = [
        "--webhooks-as",
        "store-sync",
        "--shopify-secret-file",
        secret.to_str().unwrap(),
    ];
    let script = ["--shopify-secret", "agents-example-secret"];
    let (stdout, _server, _) = run_agents(base.path(), &serve, &script);
    assert!(stdout.contains("from Shopify webhooks"), "{stdout}");
    assert!(
        stdout.contains("15 % off category earbuds: rejected by guard.margin"),
        "the margin guard read the webhook's cost:\n{stdout}"
    );
    assert!(
        stdout.contains("pricing's decision read E2's cost from the Shopify webhook's record #"),
        "{stdout}"
    );
}
