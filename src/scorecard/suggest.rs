//! `parley suggest`: proposals for rule changes, each with the evidence the
//! ledger holds for it. A proposal changes nothing: it is a rule set (or an
//! agent registration) an admin may install, and the proposed text says in
//! its `[change] why` the seq the suggestion was computed at, so the
//! installed rule set cites it. The shell adds a what-if preview.
//!
//! What is proposed, and on what evidence (at least [`CASES_MIN`] cases):
//! - **threshold**: people approved, as proposed, at least 80 % of the
//!   threshold escalations they settled (in the precedent window): raise the
//!   limit to the largest impact they approved, rounded up to £1,000.
//! - **autonomy**: people approved every one of an agent's escalations of
//!   one kind that its `propose-and-approve` autonomy sent them: make that
//!   kind autonomous (the threshold and every guard still apply).
//! - **calibration**: an agent's measured forecasts realized under half or
//!   over one and a half times what it projected, and the rules do not
//!   calibrate: add `[calibration] min_outcomes` (only while resolver 4 or
//!   later is in force: an older version refuses the table).
//! - **margin floor**: every measured price change that left a margin
//!   within 10 points above the floor realized less margin than its
//!   baseline: raise the floor past the highest of those margins (to the
//!   next whole percent).
//! - **escalation window**: escalations expired to the safe default at least
//!   as often as people settled them: give people twice as long.
//! - **precedent retirement**: a precedent's settled cases did more than
//!   20 % worse than its original, and the rules do not retire precedents:
//!   add `retire_if_worse_bp = 2000` (resolver 4).

use schemars::JsonSchema;
use serde::Serialize;

use crate::context::Context;
use crate::outcomes::measure;
use crate::rules::{CalibrationRule, RuleSet};
use crate::vocab::{ActionKind, AgentProfile, Autonomy, RuleId};

/// Fewest cases a proposal rests on.
pub const CASES_MIN: u64 = 3;
/// Most seqs a proposal lists as evidence (the counts cover all).
pub const SEQS_LISTED_MAX: usize = 20;

/// What a proposal changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Threshold {
        from_minor: i64,
        to_minor: i64,
    },
    Autonomy {
        agent: String,
        kind: ActionKind,
        from: Autonomy,
        to: Autonomy,
    },
    Calibration {
        agent: String,
        bias_bp: i64,
        min_outcomes: u32,
    },
    RetirePrecedents {
        resolution: u64,
        original_bp: i64,
        settled_bp: i64,
        worse_bp: i64,
    },
    MarginFloor {
        from_bp: i64,
        to_bp: i64,
    },
    EscalationWindow {
        from_h: u64,
        to_h: u64,
    },
}

/// The cases behind a proposal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Evidence {
    /// Cases considered, and of them the ones that support the change.
    pub cases: u64,
    pub supporting: u64,
    /// The records they rest on (human resolutions, outcome records), at most 20.
    pub seqs: Vec<u64>,
}

/// What installing a proposal writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "install", rename_all = "snake_case")]
pub enum Install {
    /// A `rules_installed` record with this text.
    Rules { text: String },
    /// An `agent_registered` record with this profile.
    Agent { profile: AgentProfile },
}

/// One proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Proposal {
    /// Stable within a ledger seq: `threshold`, `autonomy:AGENT:KIND`, …
    pub id: String,
    pub change: Change,
    pub evidence: Evidence,
    pub install: Install,
    /// The rationale to install it with (`parley rules install --why`, the
    /// console): it cites the seq the suggestion was computed at.
    pub why: String,
}

/// The proposals for `ctx`, in a fixed order.
pub fn propose(ctx: &Context) -> Vec<Proposal> {
    let Some(installed) = ctx.authority.rules.as_ref() else {
        return Vec::new();
    };
    let rules = &installed.rules;
    let mut out = Vec::new();
    out.extend(threshold(ctx, rules));
    out.extend(autonomy(ctx));
    out.extend(margin_floor(ctx, rules));
    out.extend(expiry_window(ctx, rules));
    out.extend(calibration(ctx, rules));
    out.extend(retirement(ctx, rules));
    out
}

/// `rules` changed by `edit`, without a `[change]` table: installing it
/// gives the proposal's `why`.
fn text_with(rules: &RuleSet, edit: impl FnOnce(&mut RuleSet)) -> Option<String> {
    let mut r = rules.clone();
    edit(&mut r);
    r.change = None;
    let text = crate::rules::to_text(&r).ok()?;
    // A proposal is a rule set that installs: it must parse as one.
    RuleSet::parse(&text).ok().map(|_| text)
}

/// The rationale a proposal is installed with.
fn why_of(ctx: &Context, id: &str) -> String {
    format!("parley suggest, as of seq {}: {id}", ctx.seq)
}

fn threshold(ctx: &Context, rules: &RuleSet) -> Option<Proposal> {
    let limit = rules.threshold.escalate_above_minor;
    let settled: Vec<_> = ctx
        .precedents
        .newest_first()
        .filter(|p| p.rule == RuleId::Threshold)
        .collect();
    let approved: Vec<_> = settled
        .iter()
        .filter(|p| p.approved && !p.modified)
        .collect();
    let (n, yes) = (settled.len() as u64, approved.len() as u64);
    if n < CASES_MIN || yes * 10 < n * 8 {
        return None;
    }
    let largest = approved
        .iter()
        .map(|p| p.impact_minor.unsigned_abs())
        .max()?;
    let step = 100_000u64;
    let to = i64::try_from(largest.div_ceil(step).saturating_mul(step)).ok()?;
    let to = to.min(crate::bounds::IMPACT_MAX_MINOR);
    if to <= limit {
        return None;
    }
    let id = "threshold".to_owned();
    let text = text_with(rules, |r| r.threshold.escalate_above_minor = to)?;
    Some(Proposal {
        change: Change::Threshold {
            from_minor: limit,
            to_minor: to,
        },
        evidence: Evidence {
            cases: n,
            supporting: yes,
            seqs: approved
                .iter()
                .map(|p| p.resolution)
                .take(SEQS_LISTED_MAX)
                .collect(),
        },
        install: Install::Rules { text },
        why: why_of(ctx, &id),
        id,
    })
}

fn autonomy(ctx: &Context) -> Vec<Proposal> {
    let mut out = Vec::new();
    for (agent, profile) in &ctx.authority.agents {
        let gated = profile
            .value
            .autonomy
            .iter()
            .filter(|(_, a)| **a == Autonomy::ProposeAndApprove);
        for (kind, _) in gated {
            let cases: Vec<_> = ctx
                .precedents
                .newest_first()
                .filter(|p| p.rule == RuleId::Autonomy && p.action.kind() == *kind)
                .filter(|p| {
                    ctx.intentions
                        .get(p.intention)
                        .is_none_or(|s| &s.agent == agent)
                })
                .collect();
            let yes = cases.iter().filter(|p| p.approved && !p.modified).count() as u64;
            let n = cases.len() as u64;
            if n < CASES_MIN || yes < n {
                continue;
            }
            let mut p = profile.value.clone();
            p.autonomy.insert(*kind, Autonomy::Autonomous);
            let id = format!("autonomy:{agent}:{kind}");
            out.push(Proposal {
                change: Change::Autonomy {
                    agent: agent.clone(),
                    kind: *kind,
                    from: Autonomy::ProposeAndApprove,
                    to: Autonomy::Autonomous,
                },
                evidence: Evidence {
                    cases: n,
                    supporting: yes,
                    seqs: cases
                        .iter()
                        .map(|p| p.resolution)
                        .take(SEQS_LISTED_MAX)
                        .collect(),
                },
                install: Install::Agent { profile: p },
                why: why_of(ctx, &id),
                id,
            });
        }
    }
    out
}

/// Whether the version in force learns from outcomes (a rule set asking
/// it to would be refused before version 4).
fn learns(ctx: &Context) -> bool {
    ctx.authority.resolver.value >= crate::resolver::v4::VERSION
}

fn calibration(ctx: &Context, rules: &RuleSet) -> Option<Proposal> {
    if rules.calibration.is_some() || !learns(ctx) {
        return None;
    }
    let o = &ctx.outcomes;
    let off = o
        .by_agent
        .keys()
        .map(|a| measure::forecast(o, a, ctx.now_ms))
        .filter(|f| f.measured >= CASES_MIN)
        .find(|f| f.bias_bp.is_some_and(|b| !(5_000..=15_000).contains(&b)))?;
    let bias = off.bias_bp?;
    let min = u32::try_from(CASES_MIN).unwrap_or(3);
    let id = format!("calibration:{}", off.agent);
    let text = text_with(rules, |r| {
        r.calibration = Some(CalibrationRule { min_outcomes: min });
    })?;
    Some(Proposal {
        change: Change::Calibration {
            agent: off.agent.clone(),
            bias_bp: bias,
            min_outcomes: min,
        },
        evidence: Evidence {
            cases: off.decisions,
            supporting: off.measured,
            seqs: vec![off.last_outcome],
        },
        install: Install::Rules { text },
        why: why_of(ctx, &id),
        id,
    })
}

fn retirement(ctx: &Context, rules: &RuleSet) -> Option<Proposal> {
    if rules.precedent.retire_if_worse_bp.is_some() || !learns(ctx) {
        return None;
    }
    let worse_bp = 2_000;
    let o = &ctx.outcomes;
    let r = o
        .resolutions
        .iter()
        .filter(|(r, _)| o.by_precedent.contains_key(r))
        .map(|(r, i)| measure::precedent(o, *r, *i, ctx.now_ms))
        .find(|r| r.worse_by(worse_bp, 2))?;
    let id = format!("retire-precedents:{}", r.resolution);
    let text = text_with(rules, |x| {
        x.precedent.retire_if_worse_bp = Some(worse_bp);
        x.precedent.retire_after_cases = Some(2);
    })?;
    Some(Proposal {
        change: Change::RetirePrecedents {
            resolution: r.resolution,
            original_bp: r.original_bp.unwrap_or(0),
            settled_bp: r.settled_bp.unwrap_or(0),
            worse_bp,
        },
        evidence: Evidence {
            cases: r.settled,
            supporting: r.measured,
            seqs: vec![r.resolution, r.last_outcome],
        },
        install: Install::Rules { text },
        why: why_of(ctx, &id),
        id,
    })
}

/// A proposal and, for a rule set, what it would have changed on this
/// ledger (a what-if, with estimates labelled as such).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Suggested {
    #[serde(flatten)]
    pub proposal: Proposal,
    /// `None` for an agent's registration (the what-if varies rule sets).
    pub preview: Option<super::estimate::AlternativeScore>,
}

/// `parley suggest --json` and `GET /v1/suggestions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SuggestReport {
    /// The seq the proposals were computed at (cited in their `[change] why`).
    pub ledger_seq: u64,
    pub suggestions: Vec<Suggested>,
}

/// The margin `intention` left on `sku`: (price it set − cost now) / price.
fn margin_left_bp(ctx: &Context, sku: &str, intention: u64) -> Option<i64> {
    let terms = ctx.outcomes.skus.get(sku)?;
    let price = terms
        .prices
        .iter()
        .find(|c| c.intention == Some(intention))?
        .price_minor;
    let cost = ctx.store.sku(sku)?.cost_minor.value;
    let m = i128::from(price - cost) * 10_000 / i128::from(price.max(1));
    i64::try_from(m).ok()
}

fn margin_floor(ctx: &Context, rules: &RuleSet) -> Option<Proposal> {
    let floor = rules.guard.min_margin_bp;
    let near = floor.saturating_add(1_000);
    let mut cases: Vec<(u64, i64, i64)> = Vec::new();
    let prices = ctx
        .outcomes
        .acted
        .values()
        .filter(|a| a.kind == ActionKind::SetPrice);
    for a in prices {
        let Some(m) = a
            .skus
            .first()
            .and_then(|s| margin_left_bp(ctx, s, a.intention))
        else {
            continue;
        };
        let delta = measure::measure(a, ctx.now_ms).delta;
        if let (true, Some(d)) = (m < near, delta) {
            cases.push((a.intention, m, d.margin_minor));
        }
    }
    let n = cases.len() as u64;
    let losing = cases.iter().filter(|c| c.2 < 0).count() as u64;
    if n < CASES_MIN || losing < n {
        return None;
    }
    let highest = cases.iter().map(|c| c.1).max()?;
    let to = (highest.div_euclid(100) + 1).saturating_mul(100).min(9_900);
    if to <= floor {
        return None;
    }
    let id = "margin-floor".to_owned();
    let text = text_with(rules, |r| r.guard.min_margin_bp = to)?;
    Some(Proposal {
        change: Change::MarginFloor {
            from_bp: floor,
            to_bp: to,
        },
        evidence: Evidence {
            cases: n,
            supporting: losing,
            seqs: cases.iter().map(|c| c.0).take(SEQS_LISTED_MAX).collect(),
        },
        install: Install::Rules { text },
        why: why_of(ctx, &id),
        id,
    })
}

fn expiry_window(ctx: &Context, rules: &RuleSet) -> Option<Proposal> {
    let e = rules.escalation.as_ref()?;
    let total = |rule: RuleId| -> u64 {
        ctx.outcomes
            .by_rule
            .get(&rule)
            .map_or(0, |t| t.values().sum())
    };
    let (expired, settled) = (
        total(RuleId::EscalationExpiry),
        total(RuleId::HumanResolution),
    );
    if expired < CASES_MIN || expired < settled {
        return None;
    }
    let to = e.expire_after_h.saturating_mul(2);
    let id = "escalation-window".to_owned();
    let text = text_with(rules, |r| {
        if let Some(x) = r.escalation.as_mut() {
            x.expire_after_h = to;
        }
    })?;
    Some(Proposal {
        change: Change::EscalationWindow {
            from_h: e.expire_after_h,
            to_h: to,
        },
        evidence: Evidence {
            cases: expired + settled,
            supporting: expired,
            seqs: Vec::new(),
        },
        install: Install::Rules { text },
        why: why_of(ctx, &id),
        id,
    })
}
