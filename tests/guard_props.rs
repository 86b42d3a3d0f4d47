//! Property tests of custom guards: random guards from a grammar over the
//! view, random contexts (facts of any type, or none) and random intentions.
//! Evaluation never panics; a guard reads nothing outside the view (every
//! read of rule `custom` is a leaf its expression names); a guard too long
//! or too large is refused at install, never evaluated; live decisions equal
//! replayed ones.

use parley::command::Command;
use parley::guards::{GuardProblem, Guards, EXPR_LEN_MAX, NODES_MAX};
use parley::ledger::{Ledger, Options};
use parley::reader::LedgerRead;
use parley::record::{Body, Timeline};
use parley::replay::Replayer;
use parley::rules::{RuleSet, DEFAULT_RULES};
use parley::vocab::{Field, RuleId};
use proptest::prelude::*;
use serde_json::json;

const T0: u64 = 1_764_147_600_000;
const SKUS: [&str; 3] = ["S1", "S2", "S3"];

/// An integer-valued term of the view (or a literal); `ACTION_INT` is
/// `action.price_minor` for a price change, `action.discount_bp` for a
/// promotion.
fn int_term() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1000i64..1000).prop_map(|n| n.to_string()),
        Just("ACTION_INT".to_owned()),
        Just("sku.price_minor".to_owned()),
        Just("sku.cost_minor".to_owned()),
        Just("sku.stock".to_owned()),
        Just("intention.revenue_minor".to_owned()),
        Just("intention.impact.margin_minor".to_owned()),
        Just("agent.priority".to_owned()),
        Just("now_ms".to_owned()),
        Just("sku.facts.f1".to_owned()),
        Just("sku.facts.f2".to_owned()),
        Just("category.sku_count".to_owned()),
    ]
}

fn int_expr() -> impl Strategy<Value = String> {
    int_term().prop_recursive(3, 16, 2, |inner| {
        (
            inner.clone(),
            prop::sample::select(vec!["+", "-", "*", "/", "%"]),
            inner,
        )
            .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
    })
}

fn bool_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (
            int_expr(),
            prop::sample::select(vec!["<", "<=", ">", ">=", "==", "!="]),
            int_expr()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        prop::sample::select(vec!["f1", "f2", "f3"]).prop_map(|f| format!("has(sku.facts.{f})")),
        prop::sample::select(vec![
            "sku.id",
            "sku.category",
            "sku.lifecycle",
            "intention.objective",
            "agent.domain",
            "sku.facts.f3"
        ])
        .prop_map(|p| format!("{p} == 'x'")),
        Just("sku.id.startsWith('S')".to_owned()),
        Just("size(sku.category) > 3".to_owned()),
        Just("sku.category in ['a', 'b']".to_owned()),
        Just("action.type == 'set_price'".to_owned()),
        Just("sku.facts.f3".to_owned()),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

/// A fact value of any type, or none.
fn fact() -> impl Strategy<Value = Option<serde_json::Value>> {
    prop_oneof![
        Just(None),
        (-100i64..100).prop_map(|n| Some(json!(n))),
        Just(Some(json!("x"))),
        any::<bool>().prop_map(|b| Some(json!(b))),
        Just(Some(json!(i64::MAX))),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    when: String,
    then: &'static str,
    facts: Vec<(usize, &'static str, Option<serde_json::Value>)>,
    prices: Vec<(usize, i64, i64)>,
    /// Category promotions (the guard checks each of their skus) instead of
    /// price changes.
    promotions: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        bool_expr(),
        prop::sample::select(vec!["refuse", "escalate"]),
        prop::collection::vec(
            (
                0..3usize,
                prop::sample::select(vec!["f1", "f2", "f3"]),
                fact(),
            ),
            0..6,
        ),
        // Prices keep the margin (cost is half the list price, 1,000 to 3,000),
        // so no built-in rule settles the first intention on a sku first.
        prop::collection::vec((0..3usize, 2_000i64..20_000, -600_000i64..600_000), 1..6),
        any::<bool>(),
    )
        .prop_map(|(when, then, facts, prices, promotions)| {
            let field = if promotions {
                "action.discount_bp"
            } else {
                "action.price_minor"
            };
            Case {
                when: when.replace("ACTION_INT", field),
                then,
                facts,
                prices,
                promotions,
            }
        })
}

fn rules_text(when: &str, then: &str) -> String {
    rules_for(when, then, "set_price")
}

fn rules_for(when: &str, then: &str, kind: &str) -> String {
    let when = toml::Value::String(when.to_owned());
    format!(
        "{DEFAULT_RULES}\n[[custom]]\nid = \"g\"\napplies_to = [\"{kind}\"]\nwhen = {when}\nthen = \"{then}\"\nmessage = \"m\"\n"
    )
}

fn append(ledger: &Ledger, v: serde_json::Value) -> Option<u64> {
    ledger
        .append(Command::parse(&v.to_string()).unwrap())
        .ok()
        .map(|a| a.seq)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn guards_never_panic_read_only_their_view_and_replay(c in case()) {
        let kind = if c.promotions { "launch_promotion" } else { "set_price" };
        let text = rules_for(&c.when, c.then, kind);
        let parsed = RuleSet::parse_compiled(&text);
        let Ok((_, guards)) = parsed else {
            // Refused at install: a clean error naming the guard.
            let e = parsed.unwrap_err();
            prop_assert!(e.field == "custom.g", "{e}");
            return Ok(());
        };
        let guard = guards.iter().next().unwrap();
        let opts = Options {
            initial_rules: Some(text.clone()),
            genesis_at_ms: Some(T0),
            timeline: Timeline::Scripted,
            first_admin: "ops".into(),
            auto_clock: false,
            ..Options::default()
        };
        let ledger = Ledger::in_memory(opts).unwrap();
        let mut t = T0 + 1000;
        append(&ledger, json!({"producer":"ops","at_ms":t,"kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}));
        append(&ledger, json!({"producer":"ops","at_ms":t,"kind":"agent_registered","profile":{"agent":"merch","domain":"merchandising","priority":40}}));
        for (i, sku) in SKUS.iter().enumerate() {
            let price = 1000 * (i as i64 + 1);
            append(&ledger, json!({"producer":"merch","at_ms":t,"kind":"catalog","sku":sku,"category":if i == 0 {"a"} else {"speakers"},"cost_minor":price / 2,"price_minor":price,"stock":10,"lifecycle":"active"}));
        }
        for (sku, name, value) in &c.facts {
            t += 1000;
            if let Some(v) = value {
                append(&ledger, json!({"producer":"merch","at_ms":t,"kind":"fact","entity":format!("sku:{}", SKUS[*sku]),"attribute":name,"value":v}));
            }
        }
        for (n, (sku, price, revenue)) in c.prices.iter().enumerate() {
            t += 60_000;
            let action = if c.promotions {
                // Over "speakers" (S2 and S3), in windows that do not overlap;
                // discounts up to 40 % keep the margin (cost is half the price).
                let start = T0 + 86_400_000 * (n as u64 + 1);
                json!({"type":"launch_promotion","target":{"category":"speakers"},"discount_bp":1 + price % 4_000,"starts_at_ms":start,"ends_at_ms":start + 3_600_000})
            } else {
                json!({"type":"set_price","sku":SKUS[*sku],"price_minor":price})
            };
            append(&ledger, json!({"producer":"pricing","at_ms":t,"kind":"intend","intention":{"action":action,"reasoning":"r","impact":{"revenue_minor":revenue,"margin_minor":0},"objective":"sales-growth"}}));
        }
        let mut replay = Replayer::default();
        let mut custom_steps = 0;
        ledger.scan(1, u64::MAX, &mut |r| {
            if let Body::Decision { decision } = &r.record.body {
                for step in decision.trace.iter().filter(|s| s.rule == RuleId::Custom) {
                    custom_steps += 1;
                    // A promotion over the category checks each of its skus.
                    if let parley::vocab::Finding::CustomPassed { checked, .. }
                    | parley::vocab::Finding::CustomFired { checked, .. } = &step.finding
                    {
                        assert_eq!(*checked, if c.promotions { 2 } else { 1 });
                    }
                    for read in &step.reads {
                        let Field::View(p) = &read.field else {
                            panic!("a custom guard read {:?}", read.field);
                        };
                        assert!(guard.paths.contains(p), "{p} is not named by {}", c.when);
                        assert!(read.seq <= decision.context_seq);
                    }
                }
            }
            replay.feed(&r).unwrap_or_else(|d| panic!("replay diverges: {d:#?}"));
            Ok(())
        }).unwrap();
        replay.finish().unwrap();
        // The first intention on each sku reaches the guard (no earlier rule
        // settles a set_price by a registered agent on a known sku).
        prop_assert!(custom_steps > 0, "the guard was never evaluated");
    }

    #[test]
    fn long_deep_or_large_expressions_are_refused_at_install(
        n in 1usize..600,
        shape in prop::sample::select(vec!["1 + ", "(", "sku.id == 'a' || ", "!", "-"]),
    ) {
        let when = match shape {
            "(" => format!("{}1{} > 0", "(".repeat(n), ")".repeat(n)),
            s => format!("{}1 > 0", s.repeat(n)),
        };
        let text = rules_text(&when, "refuse");
        match RuleSet::parse(&text) {
            Ok(_) => prop_assert!(when.len() <= EXPR_LEN_MAX && n <= NODES_MAX),
            Err(e) => prop_assert!(
                e.message.contains("longer than") || e.message.contains("more than")
                    || e.message.contains("true or false") || e.message.contains("overload"),
                "{e}"
            ),
        }
    }
}

/// The problems an install-time check names, one per kind of mistake.
#[test]
fn install_errors_name_the_guard_and_what_is_wrong() {
    use parley::guards::GuardText;
    let guard = |id: &str, when: &str| GuardText {
        id: id.into(),
        applies_to: vec![parley::vocab::ActionKind::SetPrice],
        when: when.into(),
        then: parley::vocab::guard::Then::Refuse,
        message: "m".into(),
    };
    type Want = fn(&GuardProblem) -> bool;
    let cases: Vec<(GuardText, Want)> = vec![
        (guard("Bad Id", "true"), |p| {
            matches!(p, GuardProblem::BadId(_))
        }),
        (guard("f", "sku.price_minor < 1.5"), |p| {
            matches!(p, GuardProblem::Float)
        }),
        (guard("u", "sku.price_minor < 1u"), |p| {
            matches!(p, GuardProblem::Literal(_))
        }),
        (guard("l", "[1, 2].all(x, x > 0)"), |p| {
            matches!(p, GuardProblem::Loop(_))
        }),
        (guard("fn", "matches(sku.id, 'a')"), |p| {
            matches!(p, GuardProblem::Function(..))
        }),
        (guard("n", "skus.price_minor > 1"), |p| {
            matches!(p, GuardProblem::UnknownName(..))
        }),
        (guard("fl", "sku.pricee > 1"), |p| {
            matches!(p, GuardProblem::UnknownField(..))
        }),
        (guard("leaf", "sku > 1"), |p| {
            matches!(p, GuardProblem::NotALeaf(..))
        }),
        (guard("k", "order.total_minor > 1"), |p| {
            matches!(p, GuardProblem::NotForKind { .. })
        }),
        (guard("t", "sku.price_minor < 'x'"), |p| {
            matches!(p, GuardProblem::Type(_))
        }),
        (guard("b", "sku.price_minor + 1"), |p| {
            matches!(p, GuardProblem::Type(_))
        }),
        (guard("s", "sku.price_minor <"), |p| {
            matches!(p, GuardProblem::Syntax(_))
        }),
        (guard("m", "{'a': 1}.a == 1"), |p| {
            matches!(p, GuardProblem::Literal(_))
        }),
    ];
    for (g, want) in cases {
        let e = Guards::compile(std::slice::from_ref(&g)).unwrap_err();
        assert!(want(&e.problem), "{}: {e}", g.when);
        assert_eq!(e.id, g.id);
        assert!(e.to_string().contains(&format!("`{}`", g.id)), "{e}");
    }
    let twice = vec![guard("a", "true"), guard("a", "false")];
    let e = Guards::compile(&twice).unwrap_err();
    assert!(
        matches!(e.problem, GuardProblem::DuplicateId(_)) && e.index == 1,
        "{e}"
    );
    // A rule set never installs half: the good guard before a bad one is not kept.
    let text = format!(
        "{DEFAULT_RULES}\n[[custom]]\nid = \"ok\"\napplies_to = [\"set-price\"]\nwhen = \"true\"\nthen = \"refuse\"\nmessage = \"m\"\n\n[[custom]]\nid = \"bad\"\napplies_to = [\"set-price\"]\nwhen = \"sku.nope > 1\"\nthen = \"refuse\"\nmessage = \"m\"\n"
    );
    let e = RuleSet::parse(&text).unwrap_err();
    assert_eq!(e.field, "custom.bad");
    let line = text.lines().position(|l| l.contains("sku.nope")).unwrap() + 1;
    assert_eq!(e.line, line, "{e}");
    assert!(e.message.starts_with("column 9:"), "{e}");
}
