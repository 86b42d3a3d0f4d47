//! Workflows: named steps that must happen in order. A definition is TOML text,
//! installed into the log as a record (`workflow_defined`), so a run never depends
//! on files on disk; a run is started by a record and advanced by step records.
//!
//! Architecture invariant: pure. Parsing is a function of the text alone; the run
//! state ([`run`]) is a fold over records whose only time is `recorded_at_ms`.

pub mod run;

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounds::check_id;
use crate::rules::{key_line, toml_error};

/// `flash-sale-preparation`, shipped with parley and installed into new ledgers.
pub const FLASH_SALE: &str = include_str!("../../workflows/flash-sale-preparation.toml");
/// `supplier-delay-response`, shipped with parley and installed into new ledgers.
pub const SUPPLIER_DELAY: &str = include_str!("../../workflows/supplier-delay-response.toml");
/// The definitions a new ledger starts with.
pub const SHIPPED: [&str; 2] = [FLASH_SALE, SUPPLIER_DELAY];

/// Most steps one definition may have (a bound on every per-run loop).
pub const STEPS_MAX: usize = 64;
const MS_PER_MINUTE: u64 = 60_000;
const DEADLINE_MIN_MAX: u64 = 60 * 24 * 366;

/// What a step's deadline counts from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineFrom {
    /// The run's start.
    Start,
    /// The moment the step became ready (its dependencies completed, or its
    /// compensation was triggered).
    #[default]
    Dependencies,
}

/// What a failed or timed-out step does to its run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// The run ends as aborted.
    #[default]
    Abort,
    /// The steps named in `compensate` become ready; the run ends as compensated
    /// when they complete (aborted if one of them fails).
    Compensate,
}

/// One step of a definition.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub name: String,
    /// An agent id, or a domain (`inventory`, `customer-service`, …): any agent of it.
    pub owner: String,
    /// Earlier steps that must complete first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Minutes the step has to complete, counted as `deadline_from` says.
    #[serde(default)]
    pub deadline_min: Option<u64>,
    #[serde(default)]
    pub deadline_from: DeadlineFrom,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Compensation steps to run when this step fails or times out.
    #[serde(default)]
    pub compensate: Vec<String>,
    /// True for a step that runs only as compensation.
    #[serde(default)]
    pub compensation: bool,
}

impl StepDef {
    pub fn deadline_ms(&self) -> Option<u64> {
        self.deadline_min.map(|m| m * MS_PER_MINUTE)
    }
}

/// A workflow definition.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    pub version: u32,
    #[serde(default)]
    pub summary: String,
    /// Parameters every run must give (e.g. `skus`).
    #[serde(default)]
    pub params: Vec<String>,
    pub steps: Vec<StepDef>,
}

/// A definition that does not parse or does not make sense.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("workflow line {line}, field `{field}`: {message}")]
pub struct DefinitionError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// The line where `name = "NAME"` of a step stands.
fn step_line(text: &str, name: &str) -> usize {
    let quoted = format!("\"{name}\"");
    text.lines()
        .position(|l| {
            let l = l.trim();
            l.starts_with("name") && l.contains(&quoted)
        })
        .map_or(1, |i| i + 1)
}

impl Definition {
    /// Parses and validates definition text.
    pub fn parse(text: &str) -> Result<Definition, DefinitionError> {
        let def: Definition = toml::from_str(text).map_err(|e| {
            let (line, field, message) = toml_error(text, &e);
            DefinitionError {
                line,
                field,
                message,
            }
        })?;
        def.validate(text)?;
        Ok(def)
    }

    fn validate(&self, text: &str) -> Result<(), DefinitionError> {
        let top = |field: &str, message: String| DefinitionError {
            line: key_line(text, "", field),
            field: field.into(),
            message,
        };
        check_id("name", &self.name).map_err(|m| top("name", m.to_string()))?;
        if self.version == 0 {
            return Err(top("version", "versions start at 1".into()));
        }
        if self.steps.is_empty() || self.steps.len() > STEPS_MAX {
            return Err(top(
                "steps",
                format!("a workflow has 1 to {STEPS_MAX} steps"),
            ));
        }
        for p in &self.params {
            check_id("params", p).map_err(|m| top("params", m.to_string()))?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            if let Some((field, message)) = self.step_problem(i) {
                return Err(DefinitionError {
                    line: step_line(text, &s.name),
                    field: format!("steps[{i}].{field}"),
                    message,
                });
            }
        }
        if self.steps.iter().all(|s| s.compensation) {
            return Err(top("steps", "every step is a compensation step".into()));
        }
        Ok(())
    }

    /// The first problem of step `i` as (field, message), if any.
    fn step_problem(&self, i: usize) -> Option<(&'static str, String)> {
        let s = &self.steps[i];
        if let Err(m) = check_id("name", &s.name) {
            return Some(("name", m.to_string()));
        }
        if let Err(m) = check_id("owner", &s.owner) {
            return Some(("owner", m.to_string()));
        }
        if self.steps[..i].iter().any(|o| o.name == s.name) {
            return Some(("name", format!("step `{}` is defined twice", s.name)));
        }
        if s.deadline_min
            .is_some_and(|m| m == 0 || m > DEADLINE_MIN_MAX)
        {
            let m = format!("must be from 1 to {DEADLINE_MIN_MAX} minutes");
            return Some(("deadline_min", m));
        }
        for d in &s.depends_on {
            // Dependencies point backwards, so a definition cannot hold a cycle.
            match self.steps[..i].iter().find(|o| &o.name == d) {
                None => {
                    let m = format!("`{d}` is not a step defined before `{}`", s.name);
                    return Some(("depends_on", m));
                }
                Some(o) if o.compensation => {
                    let m = format!("`{d}` is a compensation step; nothing waits for it");
                    return Some(("depends_on", m));
                }
                Some(_) => {}
            }
        }
        if s.compensation && !s.depends_on.is_empty() {
            let m = "a compensation step starts when a failure triggers it, not after other steps";
            return Some(("depends_on", m.into()));
        }
        match (s.on_failure, s.compensate.is_empty()) {
            (OnFailure::Compensate, true) => {
                let m = "on_failure = \"compensate\" needs the compensation steps to run";
                return Some(("compensate", m.into()));
            }
            (OnFailure::Abort, false) => {
                let m = "`compensate` is set; say on_failure = \"compensate\"";
                return Some(("on_failure", m.into()));
            }
            _ => {}
        }
        let missing = s
            .compensate
            .iter()
            .find(|c| !self.steps.iter().any(|o| &o.name == *c && o.compensation))?;
        Some((
            "compensate",
            format!("`{missing}` is not a step with compensation = true"),
        ))
    }

    pub fn step(&self, name: &str) -> Option<(usize, &StepDef)> {
        self.steps.iter().enumerate().find(|(_, s)| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_checker_names_a_queue_out_of_step() {
        use crate::record::Body;
        let mut w = run::Workflows::default();
        let define = Body::WorkflowDefined {
            text: FLASH_SALE.into(),
        };
        w.apply(1, 0, "ops", &define);
        let start = Body::WorkflowStarted {
            run: "sale-1".into(),
            workflow: "flash-sale-preparation".into(),
            version: 1,
            params: Default::default(),
        };
        w.apply(2, 10, "merchandising", &start);
        assert_eq!(w.check(), Ok(()));
        assert!(!w.announce.is_empty(), "the first step is ready");
        let mut broken = w.clone();
        broken.announce.clear();
        let v = broken.check().expect_err("announce out of step");
        assert!(v.broken.starts_with("announce"), "{v}");
        let mut broken = w.clone();
        broken.finishing.insert("sale-1".into());
        let v = broken.check().expect_err("finishing out of step");
        assert!(v.broken.starts_with("finishing"), "{v}");
    }

    #[test]
    fn the_shipped_workflows_parse() {
        for text in SHIPPED {
            let d = Definition::parse(text).unwrap();
            assert!(d.steps.len() >= 3, "{}", d.name);
        }
        let d = Definition::parse(FLASH_SALE).unwrap();
        assert_eq!(d.name, "flash-sale-preparation");
        let order: Vec<&str> = d
            .steps
            .iter()
            .filter(|s| !s.compensation)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "verify-inventory",
                "update-prices",
                "prepare-support-answers",
                "queue-marketing-emails"
            ]
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            (
                FLASH_SALE.replace(
                    "depends_on = [\"verify-inventory\"]",
                    "depends_on = [\"queue-marketing-emails\"]",
                ),
                "depends_on",
            ),
            (
                FLASH_SALE.replace("owner = \"pricing\"", "ownr = \"pricing\""),
                "ownr",
            ),
            (FLASH_SALE.replace("version = 1", "version = 0"), "version"),
            (
                FLASH_SALE.replace("deadline_min = 120", "deadline_min = \"soon\""),
                "deadline_min",
            ),
            (
                FLASH_SALE.replacen("on_failure = \"compensate\"", "on_failure = \"abort\"", 1),
                "on_failure",
            ),
        ];
        for (text, field) in cases {
            assert_ne!(text, FLASH_SALE, "the case for {field} changes the text");
            let e = Definition::parse(&text).unwrap_err();
            assert!(e.field.contains(field) || e.message.contains(field), "{e}");
            assert!(e.line > 1, "{e}");
        }
    }
}
