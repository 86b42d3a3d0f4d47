//! The rule set: a TOML file, validated with errors that name the line and field,
//! installed into the log as a record (its full text), hashed with blake3 so every
//! decision names the exact rules it was made under.
//!
//! Architecture invariant: pure. Parsing is a function of the text alone.

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod diff;
pub mod history;

use crate::bounds::BP_PER_UNIT;
use crate::record::Digest;
use crate::vocab::{Lifecycle, Objective};

/// The rule set parley installs into a new ledger unless given another.
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.toml");
const MS_PER_HOUR: u64 = 3_600_000;

/// Priority rule: the order of objectives (first wins) and how long an approved
/// intention stays live for conflicts.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRule {
    /// Every objective exactly once, highest first.
    pub objectives: Vec<Objective>,
    pub live_window_h: u64,
}

/// Temporal rule: autonomous price changes on a sku wait while a promotion on it
/// is active or starts within `promotion_lead_h`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemporalRule {
    pub promotion_lead_h: u64,
}

/// Guards: invariants on the state after the action.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardRule {
    /// Price after every active and planned discount keeps at least this margin over cost.
    pub min_margin_bp: i64,
    /// No reorder for skus in these lifecycles.
    pub no_reorder: Vec<Lifecycle>,
    /// No perk on an order flagged for fraud.
    pub no_perk_on_fraud_flag: bool,
}

/// Threshold rule: escalate when |projected revenue impact| exceeds the limit.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    pub escalate_above_minor: i64,
}

/// Dedup rule: one customer notification per (customer, order, topic) per window.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupRule {
    pub notification_window_h: u64,
}

/// Precedent rule: a human's resolution settles later conflicts of the same
/// signature within the window.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrecedentRule {
    pub window_h: u64,
    /// Resolver version 4 on: a precedent stops settling new cases once the
    /// cases it settled did this many basis points worse, on average, than
    /// its original case (`crate::outcomes::measure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_if_worse_bp: Option<i64>,
    /// How many of its settled cases must be measured before a precedent
    /// can be retired (default [`RETIRE_AFTER_CASES_DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_after_cases: Option<u32>,
}

/// Settled cases measured before a precedent can be retired, unless the
/// rule set says otherwise.
pub const RETIRE_AFTER_CASES_DEFAULT: u32 = 3;
/// The largest factor calibration scales an impact by, in basis points (4×).
pub const CALIBRATION_SCALE_MAX_BP: i64 = 40_000;

/// Calibration (resolver version 4 on): for the threshold rule, an agent's
/// projected revenue impact is scaled by its measured forecast bias
/// (realized over projected, `crate::outcomes::measure::forecast`), clamped
/// to 0..[`CALIBRATION_SCALE_MAX_BP`], once at least `min_outcomes` of its
/// decisions are measured.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationRule {
    pub min_outcomes: u32,
}

/// What an unanswered escalation resolves to when it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SafeDefault {
    /// Nothing happens: the escalated intention is rejected.
    Reject,
    /// The escalated intention goes ahead as proposed.
    Approve,
}

/// Escalation rule: an escalation no human settles within `expire_after_h`
/// resolves to `safe_default`, recorded as a decision of rule `escalation.expiry`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationRule {
    pub expire_after_h: u64,
    pub safe_default: SafeDefault,
}

/// Pending rule: no intention waits longer than `max_wait_h` after it was
/// announced (deferred, waiting on a step or escalated); an intention's own
/// `expires_at_ms` can only make the wait shorter. Keeps the set of open
/// intentions, and the memory that holds it, to a window of the store's life.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingRule {
    pub max_wait_h: u64,
}

/// A whole rule set. Every section is required (a rule set says what it means),
/// except `[escalation]`, added later: without it escalations wait for a human
/// forever, as rule sets written before it meant.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub priority: PriorityRule,
    pub temporal: TemporalRule,
    pub guard: GuardRule,
    pub threshold: ThresholdRule,
    pub dedup: DedupRule,
    pub precedent: PrecedentRule,
    pub pending: PendingRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationRule>,
    /// Who may write which kind of store record (resolver version 2 on;
    /// `crate::writers`). Kinds not listed keep version 2's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writers: Option<crate::writers::WritersTable>,
    /// The store's own guards (resolver version 3 on; `crate::guards`), in
    /// the order written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<crate::guards::GuardText>,
    /// Why this rule set was installed (resolver version 3 on): written by
    /// `parley rules install --why` and the console's editor, so the reason
    /// travels with the text it explains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeNote>,
    /// Forecast calibration for the threshold rule (resolver version 4 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationRule>,
}

/// The `[change]` table: the rationale of an installation.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeNote {
    /// 1 to 4,096 characters.
    pub why: String,
}

/// A rule set that does not parse or does not make sense.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("rules line {line}, field `{field}`: {message}")]
pub struct RulesError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    // Count newlines in bytes: an offset inside a multi-byte character is safe.
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The section and key standing at a 1-based line.
fn field_at(text: &str, line: usize) -> (Option<String>, Option<String>) {
    let mut section = None;
    for raw in text.lines().take(line.saturating_sub(1)) {
        let l = raw.trim();
        if l.starts_with('[') {
            section = Some(l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
        }
    }
    let here = text
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim();
    if here.starts_with('[') {
        let s = here
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_owned();
        return (Some(s), None);
    }
    let key = here
        .split_once('=')
        .map(|(k, _)| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    (section, key)
}

/// The line where `key = …` stands inside `[section]` (`""`: before any
/// section), for semantic errors.
pub(crate) fn key_line(text: &str, section: &str, key: &str) -> usize {
    let mut in_section = section.is_empty();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            in_section = line.trim_matches(|c| c == '[' || c == ']').trim() == section;
        } else if in_section && line.split('=').next().is_some_and(|k| k.trim() == key) {
            return i + 1;
        }
    }
    1
}

/// The line, field and message of a TOML error in `text`.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> (usize, String, String) {
    let line = e.span().map_or(1, |s| line_of(text, s.start));
    let message = e.message().trim().to_owned();
    let named = message.split('`').nth(1).map(str::to_owned);
    let (section, key) = field_at(text, line);
    let field = match (named, section, key) {
        (Some(n), Some(s), _) if n != s => format!("{s}.{n}"),
        (Some(n), _, _) => n,
        (None, Some(s), Some(k)) => format!("{s}.{k}"),
        (None, Some(s), None) => s,
        (None, None, k) => k.unwrap_or_else(|| "-".into()),
    };
    (line, field, message)
}

impl RuleSet {
    /// Parses and validates rule text.
    pub fn parse(text: &str) -> Result<RuleSet, RulesError> {
        RuleSet::parse_compiled(text).map(|(rules, _)| rules)
    }

    /// Parses and validates rule text; the rule set and its custom guards,
    /// compiled.
    pub fn parse_compiled(text: &str) -> Result<(RuleSet, crate::guards::Guards), RulesError> {
        let rules: RuleSet = toml::from_str(text).map_err(|e| {
            let (line, field, message) = toml_error(text, &e);
            RulesError {
                line,
                field,
                message,
            }
        })?;
        rules.validate(text)?;
        let guards = rules.guards().map_err(|e| guard_error(text, &e))?;
        Ok((rules, guards))
    }

    /// The custom guards, compiled (a parsed rule set's always compile).
    pub fn guards(&self) -> Result<crate::guards::Guards, crate::guards::GuardError> {
        crate::guards::Guards::compile(&self.custom)
    }

    fn validate(&self, text: &str) -> Result<(), RulesError> {
        let err = |section: &str, key: &str, message: String| RulesError {
            line: key_line(text, section, key),
            field: format!("{section}.{key}"),
            message,
        };
        let mut seen = self.priority.objectives.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.priority.objectives.len() || seen.len() != 5 {
            return Err(err(
                "priority",
                "objectives",
                "list each of the 5 objectives exactly once, highest first".into(),
            ));
        }
        if !(0..BP_PER_UNIT).contains(&self.guard.min_margin_bp) {
            return Err(err(
                "guard",
                "min_margin_bp",
                format!("must be from 0 to {} basis points", BP_PER_UNIT - 1),
            ));
        }
        if let Some(c) = &self.change {
            let n = c.why.chars().count();
            if c.why.trim().is_empty() || n > crate::bounds::TEXT_MAX_CHARS {
                return Err(err(
                    "change",
                    "why",
                    format!("write 1 to {} characters", crate::bounds::TEXT_MAX_CHARS),
                ));
            }
        }
        self.validate_learning(text)?;
        let limit = self.threshold.escalate_above_minor;
        if !(0..=crate::bounds::IMPACT_MAX_MINOR).contains(&limit) {
            return Err(err(
                "threshold",
                "escalate_above_minor",
                format!(
                    "must be from 0 to {} minor units",
                    crate::bounds::IMPACT_MAX_MINOR
                ),
            ));
        }
        for (section, key, hours) in [
            ("priority", "live_window_h", self.priority.live_window_h),
            (
                "temporal",
                "promotion_lead_h",
                self.temporal.promotion_lead_h,
            ),
            (
                "dedup",
                "notification_window_h",
                self.dedup.notification_window_h,
            ),
            ("precedent", "window_h", self.precedent.window_h),
            ("pending", "max_wait_h", self.pending.max_wait_h),
            (
                "escalation",
                "expire_after_h",
                self.escalation.as_ref().map_or(1, |e| e.expire_after_h),
            ),
        ] {
            if matches!(section, "escalation" | "pending") && hours == 0 {
                return Err(err(section, key, "must be at least 1 hour".into()));
            }
            if hours > 24 * 366 * 10 {
                return Err(err(section, key, "more than ten years; use hours".into()));
            }
        }
        Ok(())
    }

    fn validate_learning(&self, text: &str) -> Result<(), RulesError> {
        let err = |section: &str, key: &str, message: String| RulesError {
            line: key_line(text, section, key),
            field: format!("{section}.{key}"),
            message,
        };
        if let Some(bp) = self.precedent.retire_if_worse_bp {
            if !(1..=1_000_000).contains(&bp) {
                let m = "must be from 1 to 1000000 basis points".into();
                return Err(err("precedent", "retire_if_worse_bp", m));
            }
        }
        if let Some(n) = self.precedent.retire_after_cases {
            if !(1..=crate::outcomes::PER_KEY_MAX as u32).contains(&n) {
                let m = format!("must be from 1 to {}", crate::outcomes::PER_KEY_MAX);
                return Err(err("precedent", "retire_after_cases", m));
            }
            if self.precedent.retire_if_worse_bp.is_none() {
                let m = "means nothing without `retire_if_worse_bp`".into();
                return Err(err("precedent", "retire_after_cases", m));
            }
        }
        if let Some(c) = &self.calibration {
            if !(1..=crate::outcomes::PER_KEY_MAX as u32).contains(&c.min_outcomes) {
                let m = format!("must be from 1 to {}", crate::outcomes::PER_KEY_MAX);
                return Err(err("calibration", "min_outcomes", m));
            }
        }
        Ok(())
    }

    /// Whether the rule set asks for what only resolver version 4 does.
    pub fn learns(&self) -> bool {
        self.calibration.is_some() || self.precedent.retire_if_worse_bp.is_some()
    }

    /// Rank of an objective: 0 is the highest.
    pub fn rank(&self, objective: Objective) -> usize {
        self.priority
            .objectives
            .iter()
            .position(|o| *o == objective)
            .unwrap_or(usize::MAX)
    }

    pub fn live_window_ms(&self) -> u64 {
        self.priority.live_window_h * MS_PER_HOUR
    }
    pub fn promotion_lead_ms(&self) -> u64 {
        self.temporal.promotion_lead_h * MS_PER_HOUR
    }
    pub fn notification_window_ms(&self) -> u64 {
        self.dedup.notification_window_h * MS_PER_HOUR
    }
    pub fn precedent_window_ms(&self) -> u64 {
        self.precedent.window_h * MS_PER_HOUR
    }
    pub fn max_wait_ms(&self) -> u64 {
        self.pending.max_wait_h * MS_PER_HOUR
    }
    /// How long an escalation waits for a human, if it expires at all.
    pub fn escalation_expiry_ms(&self) -> Option<u64> {
        self.escalation
            .as_ref()
            .map(|e| e.expire_after_h * MS_PER_HOUR)
    }
}

/// `text` with its rationale added as a `[change]` table: the text must
/// parse and must not say why itself already.
pub fn with_rationale(text: &str, why: &str) -> Result<String, RulesError> {
    let rules = RuleSet::parse(text)?;
    if rules.change.is_some() {
        return Err(RulesError {
            line: key_line(text, "change", "why"),
            field: "change.why".into(),
            message: "the text already says why: give the rationale there or separately, not both"
                .into(),
        });
    }
    let why = toml::Value::String(why.to_owned());
    let out = format!("{}\n\n[change]\nwhy = {why}\n", text.trim_end());
    RuleSet::parse(&out)?;
    Ok(out)
}

/// A rule set as TOML text (for one edited as data, e.g. in the console).
pub fn to_text(rules: &RuleSet) -> Result<String, RulesError> {
    toml::to_string(rules).map_err(|e| RulesError {
        line: 1,
        field: "-".into(),
        message: e.to_string(),
    })
}

/// A guard's error at its place in the text: the line of its `when` (of
/// its table, for problems outside the expression) and, for a one-line
/// expression, the column in the file.
fn guard_error(text: &str, e: &crate::guards::GuardError) -> RulesError {
    let lines: Vec<&str> = text.lines().collect();
    let table = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[custom]]")
        .nth(e.index)
        .map(|(i, _)| i);
    let when = table.and_then(|t| {
        lines
            .iter()
            .enumerate()
            .skip(t + 1)
            .take_while(|(_, l)| !l.trim_start().starts_with('['))
            .find(|(_, l)| l.trim_start().starts_with("when"))
    });
    let (line, column) = match (table, when, e.column) {
        (_, Some((i, l)), Some(c)) => {
            // `when = "…"`: the expression starts after the opening quote.
            let start = l.find('"').map(|q| q + 1);
            let single = l.matches('"').count() == 2;
            let col = start.filter(|_| single).map_or(c, |s| s + c);
            (i + 1, Some(col))
        }
        (_, Some((i, _)), None)
            if matches!(e.problem, P::Syntax(_) | P::Type(_) | P::NotForKind { .. }) =>
        {
            (i + 1, None)
        }
        (Some(t), _, _) => (t + 1, None),
        (None, _, _) => (1, None),
    };
    let message = match column {
        Some(c) => format!("column {c}: {}", e.problem),
        None => e.problem.to_string(),
    };
    RulesError {
        line,
        field: format!("custom.{}", if e.id.is_empty() { "-" } else { &e.id }),
        message,
    }
}

use crate::guards::GuardProblem as P;

/// blake3 of rule text.
pub fn rules_hash(text: &str) -> Digest {
    Digest(*blake3::hash(text.as_bytes()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rules_parse() {
        let rules = RuleSet::parse(DEFAULT_RULES).unwrap();
        assert_eq!(rules.threshold.escalate_above_minor, 500_000);
        assert_eq!(rules.rank(Objective::Risk), 0);
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            (
                DEFAULT_RULES.replace("min_margin_bp = 500", "min_margin_bp = 20000"),
                "guard.min_margin_bp",
            ),
            (
                DEFAULT_RULES.replace("min_margin_bp = 500", "min_margin_bq = 500"),
                "min_margin_bq",
            ),
            (
                DEFAULT_RULES.replace("\"risk\", ", ""),
                "priority.objectives",
            ),
            (
                DEFAULT_RULES.replace(
                    "escalate_above_minor = 500000",
                    "escalate_above_minor = \"lots\"",
                ),
                "escalate_above_minor",
            ),
            (DEFAULT_RULES.replace("[dedup]", "[dedupe]"), "dedupe"),
        ];
        for (text, field) in cases {
            let e = RuleSet::parse(&text).unwrap_err();
            assert!(e.field.contains(field) || e.message.contains(field), "{e}");
            assert!(e.line > 1, "{e}");
        }
        let e = RuleSet::parse("[priority\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }
}
