//! The rules editor in a real headless Chromium: an admin raises the
//! escalation threshold and adds a custom guard (a mistake in it shows under
//! the field as it is typed); the preview's figures equal `parley whatif
//! --json` over the same window; the admin installs with a rationale; a new
//! intention is decided by the new guard; a human sees the rules read-only,
//! and neither a human's nor a reader's token can install (the log is
//! unchanged). Screenshots of the editor and the preview go to
//! `target/console-screenshots/`. An admin also sets an agent's autonomy
//! for one action, and the agent's next such intention follows it.
//!
//! Needs the browser, so `cargo test` lists it ignored and `.ci/run` runs it
//! (`cargo test --test console_rules -- --ignored`).

mod common;

use std::time::Duration;

use common::browser::{browser, chromedriver, click, shot, sign_in, text, viewport, wait_for};
use common::server::{ledger, parley, token, token_via, Server};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

/// Intentions over the last days: two big cuts that the default threshold
/// (GBP 5,000) escalates, and small ones it approves.
fn history(server: &Server, pricing: &str) {
    for (price, revenue) in [
        (1900, -10_000),
        (1800, -700_000),
        (1850, -20_000),
        (1700, -900_000),
    ] {
        let body = json!({"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"S1","price_minor":price},"reasoning":"follow the market","impact":{"revenue_minor":revenue,"margin_minor":revenue / 2},"objective":"sales-growth"}});
        let (status, _, answer) = server.post(Some(pricing), &body.to_string());
        assert_eq!(status, 200, "{answer}");
    }
}

fn head(server: &Server, token: &str) -> u64 {
    let (_, _, text) = server.request("GET", "/v1/cluster", Some(token), "");
    serde_json::from_str::<Value>(&text).unwrap()["head_seq"]
        .as_u64()
        .unwrap()
}

/// Types into the input `css` names, replacing what it held.
async fn type_into(c: &Client, css: &str, text: &str) {
    let e = wait_for(c, css).await;
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

/// The page's figure in the preview's summary row `k`, column `col`.
async fn figure(c: &Client, k: &str, col: &str) -> String {
    text(c, &format!("#preview-summary tr[data-k='{k}'] td.{col}")).await
}

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run installs them and runs it"]
fn an_admin_edits_previews_and_installs_rules_in_the_console() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let d = dir.to_str().unwrap().to_owned();
    let admin = token(&dir, "admin", "admin");
    let maya = token(&dir, "maya", "human");
    let reader = token(&dir, "audit", "reader");
    let pricing = token(&dir, "pricing", "agent");
    let server = Server::start(&dir);
    history(&server, &pricing);
    let url = format!("http://{}/#/rules", server.addr);
    let (_driver, port) = chromedriver();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = browser(port).await;
        c.goto(&url).await.unwrap();
        sign_in(&c, &admin).await;
        wait_for(&c, "#rules-form").await;

        // The threshold, in pounds: GBP 5,000.00 becomes GBP 10,000.00.
        type_into(&c, "#f-threshold-escalate_above_minor", "10000.00").await;
        // A guard with a mistake: the error shows under it as it is typed.
        click(&c, "#add-guard").await;
        type_into(&c, "#g-0-id", "no-below-cost").await;
        type_into(&c, "#g-0-when", "action.price_minor < sku.cost_minr").await;
        let error = wait_for(&c, "#g-0-error:not(:empty)")
            .await
            .text()
            .await
            .unwrap();
        assert!(error.contains("cost_minr"), "{error}");
        type_into(&c, "#g-0-when", "action.price_minor < sku.cost_minor").await;
        type_into(&c, "#g-0-message", "never below cost").await;
        wait_for(&c, "#draft-ok").await;
        let changes = text(&c, "#draft-changes").await;
        assert!(
            changes.contains("threshold.escalate_above_minor: 500000 → 1000000"),
            "{changes}"
        );
        assert!(changes.contains("custom.no-below-cost: added"), "{changes}");
        shot(&c, "rules-editor-1280x800", (1280, 800)).await;
        viewport(&c, 1280, 800).await;

        // Preview the last 7 days; the figures are what `parley whatif` says.
        click(&c, "#preview-button").await;
        let window = wait_for(&c, "#preview-window").await;
        let from: u64 = window
            .attr("data-from")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        let to: u64 = window
            .attr("data-to")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        let draft = c.execute("return R.draft;", vec![]).await.unwrap();
        let (_, _, checked) = server.request(
            "POST",
            "/v1/rules/check",
            Some(&admin),
            &json!({"rules": draft}).to_string(),
        );
        let checked: Value = serde_json::from_str(&checked).unwrap();
        let file = base.path().join("draft.toml");
        std::fs::write(&file, checked["text"].as_str().unwrap()).unwrap();
        let cli: Value = serde_json::from_str(&parley(
            &[
                "whatif",
                "--data",
                &d,
                "--rules",
                file.to_str().unwrap(),
                "--from",
                &from.to_string(),
                "--to",
                &to.to_string(),
                "--json",
            ],
            "",
        ))
        .unwrap();
        let money = |minor: &Value| {
            let v = minor.as_i64().unwrap();
            format!(
                "{}£{}.{:02}",
                if v < 0 { "-" } else { "" },
                group(v.unsigned_abs() / 100),
                v.unsigned_abs() % 100
            )
        };
        for (k, col, side) in [
            ("approved", "recorded", "recorded"),
            ("approved", "whatif", "whatif"),
            ("escalations", "recorded", "recorded"),
            ("escalations", "whatif", "whatif"),
        ] {
            assert_eq!(
                figure(&c, k, col).await,
                cli["summary"][side][k].to_string(),
                "{k} {side}"
            );
        }
        for k in [
            "approved_revenue_impact_minor",
            "approved_margin_impact_minor",
        ] {
            assert_eq!(
                figure(&c, k, "whatif").await,
                money(&cli["summary"]["whatif"][k]),
                "{k}"
            );
            assert_eq!(
                figure(&c, k, "recorded").await,
                money(&cli["summary"]["recorded"][k]),
                "{k}"
            );
        }
        let rows = c
            .find_all(Locator::Css("#preview-changed tbody tr"))
            .await
            .unwrap();
        assert_eq!(rows.len(), cli["changed"].as_array().unwrap().len());
        assert!(
            !rows.is_empty(),
            "the higher threshold changes the big cuts"
        );
        wait_for(&c, "#preview-chart").await;
        shot(&c, "rules-preview-1280x800", (1280, 800)).await;
        viewport(&c, 1280, 800).await;

        // Autonomy: merchandising may no longer discontinue alone.
        let select = wait_for(&c, "#a-merchandising-discontinue").await;
        select.select_by_value("manual").await.unwrap();
        click(&c, "#save-autonomy").await;
        wait_for(&c, "#autonomy-saved").await;

        // Install with a rationale.
        type_into(
            &c,
            "#install-why",
            "sale week: fewer escalations, never below cost",
        )
        .await;
        click(&c, "#install-button").await;
        wait_for(&c, "#installed").await;
        let history = text(&c, "#rules-history").await;
        assert!(
            history.contains("sale week: fewer escalations"),
            "{history}"
        );

        // Roll back: load the earlier rule set into the editor, install it.
        let first = wait_for(&c, "#rules-history li:last-child button").await;
        first.click().await.unwrap();
        c.wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::XPath(
                "//input[@id='f-threshold-escalate_above_minor' and @value='5000.00']",
            ))
            .await
            .expect("the earlier threshold is back in the form");
        assert!(
            c.find(Locator::Css("#g-0-id")).await.is_err(),
            "the earlier set had no guard"
        );
        wait_for(&c, "#draft-ok").await;
        type_into(&c, "#install-why", "roll back after the sale week").await;
        click(&c, "#install-button").await;
        wait_for(&c, "#installed").await;
        let latest = text(&c, "#rules-history li:first-child").await;
        assert!(latest.contains("roll back after the sale week"), "{latest}");
        assert!(latest.contains("custom.no-below-cost: removed"), "{latest}");
        c.close().await.unwrap();
    });
    // The guard is gone again: install it once more for the checks below.
    let again = format!(
        "{}\n[[custom]]\nid = \"no-below-cost\"\napplies_to = [\"set-price\"]\nwhen = \"action.price_minor < sku.cost_minor\"\nthen = \"refuse\"\nmessage = \"never below cost\"\n",
        parley::rules::DEFAULT_RULES
    );
    let body = json!({"text": again, "why": "back on"}).to_string();
    let (status, _, text) = server.request("POST", "/v1/rules", Some(&admin), &body);
    assert_eq!(status, 200, "{text}");

    // A new intention below cost is refused by the new guard.
    let below = json!({"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"S1","price_minor":900},"reasoning":"clearance","impact":{"revenue_minor":-1000,"margin_minor":-1000},"objective":"sales-growth"}});
    let (status, _, answer) = server.post(Some(&pricing), &below.to_string());
    assert_eq!(status, 200, "{answer}");
    let decision = &answer["decision"];
    assert_eq!(
        (
            decision["outcome"]["kind"].as_str(),
            decision["rule"].as_str()
        ),
        (Some("rejected"), Some("custom")),
        "{answer}"
    );

    // The saved autonomy decides merchandising's next discontinuation.
    let merch = token_via(&server, &admin, "merchandising", "agent");
    let stop = json!({"producer":"merchandising","kind":"intend","intention":{"action":{"type":"discontinue","sku":"S1"},"reasoning":"end of line","impact":{"revenue_minor":0,"margin_minor":0},"objective":"cost-optimisation"}});
    let (status, _, answer) = server.post(Some(&merch), &stop.to_string());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["decision"]["rule"], "autonomy", "{answer}");
    assert_eq!(
        answer["decision"]["outcome"]["kind"], "rejected",
        "{answer}"
    );

    // A human sees the rules read-only; neither a human nor a reader installs.
    rt.block_on(async {
        let c = browser(port).await;
        c.goto(&url).await.unwrap();
        sign_in(&c, &maya).await;
        wait_for(&c, "#rules-read-only").await;
        assert!(c.find(Locator::Css("#install-button")).await.is_err());
        c.close().await.unwrap();
    });
    let before = head(&server, &admin);
    for t in [&maya, &reader] {
        let body = json!({"text": parley::rules::DEFAULT_RULES, "why": "try"});
        let (status, _, text) = server.request("POST", "/v1/rules", Some(t), &body.to_string());
        assert_eq!(status, 403, "{text}");
    }
    assert_eq!(head(&server, &admin), before, "the log is unchanged");
    std::thread::sleep(Duration::from_millis(10));
}

/// Thousands separated as en-GB does.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
