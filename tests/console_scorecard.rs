//! The scorecard page in a real headless Chromium, on a demo ledger (its
//! shoppers' sales and returns are outcome records): every plotted point,
//! bar and tick carries the number the API gave (`GET /v1/scorecard`), the
//! suggestions show with their previews, and an admin installs one; the
//! rule set then in force cites the seq the suggestion was computed at. A
//! screenshot goes to `target/console-screenshots/scorecard.png`.
//!
//! Needs the browser, so `cargo test` lists it ignored and `.ci/run` runs it
//! (`cargo test --test console_scorecard -- --ignored`).

mod common;

use common::browser::{browser, chromedriver, click, shot, sign_in, text, viewport, wait_for};
use common::server::{parley, token, Server};
use fantoccini::{Client, Locator};
use serde_json::Value;

/// The `data-value` of every element `css` names, in page order.
async fn values(c: &Client, css: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        let v = e.attr("data-value").await.unwrap().expect("data-value");
        out.push(v.parse().unwrap());
    }
    out
}

fn get(server: &Server, path: &str, token: &str) -> Value {
    let (status, _, text) = server.request("GET", path, Some(token), "");
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run installs them and runs it"]
fn the_scorecard_page_plots_the_apis_numbers_and_installs_a_suggestion() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("demo");
    let d = dir.to_str().unwrap();
    parley(&["demo", "--data", d, "--json"], "");
    let admin = token(&dir, "ops", "admin");
    let server = Server::start(&dir);
    let card = get(&server, "/v1/scorecard", &admin);
    let days = card["days"].as_array().unwrap().clone();
    assert!(
        days.len() > 5,
        "the demo sells on many days: {}",
        days.len()
    );
    let suggestions = get(&server, "/v1/suggestions", &admin);
    let first = suggestions["suggestions"][0].clone();
    assert!(
        first["id"].is_string(),
        "the demo ledger calls for a suggestion: {suggestions}"
    );
    let url = format!("http://{}/#/scorecard", server.addr);
    let (_driver, port) = chromedriver();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = browser(port).await;
        c.goto(&url).await.unwrap();
        sign_in(&c, &admin).await;
        wait_for(&c, "#plot-daily").await;
        let field = |k: &str| {
            days.iter()
                .map(|d| d[k].as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(values(&c, ".dot-revenue").await, field("revenue_minor"));
        assert_eq!(values(&c, ".dot-margin").await, field("margin_minor"));
        assert_eq!(values(&c, ".escalation-bar").await, field("escalations"));
        let decided: Vec<i64> = card["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["from_ms"].as_i64().unwrap())
            .collect();
        assert_eq!(values(&c, ".decision-mark").await, decided);
        let biases: Vec<i64> = card["agents"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["bias_bp"].as_i64())
            .collect();
        assert!(!biases.is_empty());
        assert_eq!(values(&c, ".forecast-bar").await, biases);
        let errors: Vec<i64> = card["agents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["bias_bp"].is_i64())
            .map(|a| a["mean_abs_error_minor"].as_i64().unwrap())
            .collect();
        assert_eq!(values(&c, ".forecast-error").await, errors);
        let summary = text(&c, "#scorecard-summary").await;
        assert!(
            summary.contains(&card["realized"]["units"].to_string()),
            "{summary}"
        );

        let id = first["id"].as_str().unwrap();
        let css = format!(".suggestion[data-id='{id}']");
        wait_for(&c, &css).await;
        let words = text(&c, &css).await;
        assert!(words.contains("case(s) support it"), "{words}");
        viewport(&c, 1280, 2200).await;
        shot(&c, "scorecard", (1280, 2200)).await;
        click(&c, &format!("{css} .install-suggestion")).await;
        let done = wait_for(&c, &format!("{css} .installed-suggestion")).await;
        assert!(done.text().await.unwrap().starts_with("Installed at seq"));
        c.close().await.unwrap();
    });
    let history = get(&server, "/v1/rules/history", &admin);
    let last = history.as_array().unwrap().last().unwrap().clone();
    let why = last["why"].as_str().unwrap();
    let at = suggestions["ledger_seq"].as_u64().unwrap();
    assert_eq!(
        why,
        format!(
            "parley suggest, as of seq {at}: {}",
            first["id"].as_str().unwrap()
        )
    );
    server.stop();
}
