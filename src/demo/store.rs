//! The embedded default store: the seed's agents, one human, and a catalog of
//! five categories. Every scenario runs against it.

use std::path::Path;

use anyhow::{bail, Context as _, Result};

use crate::ledger::{Ledger, Options};
use crate::record::{Body, Timeline};
use crate::vocab::{ActionKind, AgentProfile, Autonomy, Domain, Lifecycle};

/// The demo's first moment (2025-11-26T09:00:00Z); scenarios follow it.
pub const T0_MS: u64 = 1_764_147_600_000;
pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;
/// The store manager who settles escalations.
pub const HUMAN: &str = "maya";
/// The operator who registers the agents and the human.
pub const ADMIN: &str = "ops";

/// A sku of the default catalog.
#[derive(Clone, Debug)]
pub struct Sku {
    pub id: String,
    pub category: &'static str,
    pub cost_minor: i64,
    pub price_minor: i64,
    pub stock: i64,
}

/// (category, sku prefix, cost as % of price, prices).
const CATALOG: [(&str, &str, i64, &[i64]); 5] = [
    (
        "headphones",
        "H",
        70,
        &[7999, 12999, 4999, 19999, 9999, 5999],
    ),
    // Thin margins: the seed's stacking problem bites here first.
    ("earbuds", "E", 80, &[8999, 5999, 12999]),
    (
        "speakers",
        "S",
        78,
        &[24999, 9999, 14999, 4999, 34999, 7999],
    ),
    (
        "cameras",
        "C",
        75,
        &[49999, 29999, 19999, 89999, 14999, 9999],
    ),
    (
        "wearables",
        "W",
        65,
        &[19999, 14999, 9999, 24999, 4999, 29999],
    ),
];

pub fn catalog() -> Vec<Sku> {
    let mut out = Vec::new();
    for (category, prefix, cost_pct, prices) in CATALOG {
        for (i, price) in prices.iter().enumerate() {
            out.push(Sku {
                id: format!("{prefix}{}", i + 1),
                category,
                cost_minor: price * cost_pct / 100,
                price_minor: *price,
                stock: 120 + 40 * i64::try_from(i).unwrap_or(0),
            });
        }
    }
    out
}

/// (agent, domain, priority).
pub const AGENTS: [(&str, Domain, u32); 9] = [
    ("pricing", Domain::Pricing, 50),
    ("marketing", Domain::Marketing, 40),
    ("inventory", Domain::Inventory, 30),
    ("customer-service", Domain::CustomerService, 20),
    ("orders", Domain::Orders, 20),
    ("fraud", Domain::Fraud, 60),
    ("merchandising", Domain::Merchandising, 45),
    ("competitor-tracking", Domain::CompetitorTracking, 10),
    ("supply", Domain::Supply, 10),
];

/// A new ledger in `dir` on the demo's scripted time line (it starts at
/// [`T0_MS`]; clock records come from the script, never from the wall clock).
pub fn new_ledger(dir: &Path) -> Result<Ledger> {
    new_ledger_at(dir, crate::resolver::CURRENT)
}

/// [`new_ledger`] starting with resolver `version` (the golden corpus pins
/// its simulated ledger to a released version).
pub fn new_ledger_at(dir: &Path, version: u32) -> Result<Ledger> {
    if dir.join("log").exists() {
        bail!(
            "{} already holds a ledger; give --data a new directory",
            dir.display()
        );
    }
    let opts = Options {
        genesis_at_ms: Some(T0_MS),
        timeline: Timeline::Scripted,
        first_admin: ADMIN.into(),
        ledger_id: Some("demo".into()),
        resolver_version: version,
        initial_rules: Some(demo_rules(version)),
        ..Options::default()
    };
    let (ledger, _) =
        Ledger::open(dir, opts).with_context(|| format!("create {}", dir.display()))?;
    Ok(ledger)
}

/// The store's own guard the demo shows at work (resolver version 3 on):
/// a brand's minimum advertised price (rules/examples/map-price-floor.toml).
pub const DEMO_GUARD: &str = include_str!("../../rules/examples/map-price-floor.toml");

/// The demo's rule set: the default rules, plus [`DEMO_GUARD`] on a
/// version that has custom guards.
pub fn demo_rules(version: u32) -> String {
    let mut text = crate::rules::DEFAULT_RULES.to_owned();
    if version >= crate::resolver::v3::VERSION {
        text.push('\n');
        text.push_str(DEMO_GUARD);
    }
    text
}

/// The set-up records: agents, the human, the catalog. (producer, body).
pub fn setup() -> Vec<(String, Body)> {
    let mut out = people();
    for s in catalog() {
        out.push((
            "merchandising".into(),
            Body::Catalog {
                sku: s.id,
                category: s.category.into(),
                cost_minor: s.cost_minor,
                price_minor: s.price_minor,
                stock: s.stock,
                lifecycle: Lifecycle::Active,
            },
        ));
    }
    out
}

/// The agents (merchandising proposes discontinuations for a human to
/// approve) and the human.
pub fn people() -> Vec<(String, Body)> {
    let mut out = Vec::new();
    for (agent, domain, priority) in AGENTS {
        let mut profile = AgentProfile {
            agent: agent.into(),
            domain,
            priority,
            autonomy: Default::default(),
        };
        if domain == Domain::Merchandising {
            // Discontinuing a sku is semi-autonomous: the agent proposes, a human approves.
            profile
                .autonomy
                .insert(ActionKind::Discontinue, Autonomy::ProposeAndApprove);
        }
        out.push((
            ADMIN.to_owned(),
            Body::AgentRegistered {
                profile: Box::new(profile),
            },
        ));
    }
    out.push((
        ADMIN.into(),
        Body::HumanRegistered {
            human: HUMAN.into(),
        },
    ));
    out
}
