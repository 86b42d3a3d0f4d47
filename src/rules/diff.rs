//! What changed between two rule sets, field by field: parameters by their
//! path (`threshold.escalate_above_minor`), custom guards by id. The
//! rationale (`[change]`) is not a rule and is left out.

use serde::Serialize;
use serde_json::Value as Json;

use super::RuleSet;

/// One field that differs: `before` is `None` for an added one, `after` for
/// a removed one.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FieldChange {
    /// Section, then key (`["threshold", "escalate_above_minor"]`); a custom
    /// guard is `["custom", ID]`, or `["custom", ID, FIELD]` when it changed.
    pub path: Vec<String>,
    pub before: Option<Json>,
    pub after: Option<Json>,
}

/// Most entries one diff lists (a rule set has far fewer fields).
pub const CHANGES_MAX: usize = 1_000;

/// The fields of `b` that differ from `a`, in section order.
pub fn diff(a: &RuleSet, b: &RuleSet) -> Vec<FieldChange> {
    let (ja, jb) = (plain(a), plain(b));
    let mut out = Vec::new();
    walk(&mut Vec::new(), Some(&ja), Some(&jb), &mut out);
    custom(a, b, &mut out);
    out.truncate(CHANGES_MAX);
    out
}

/// A rule set as JSON without its guards and rationale.
fn plain(r: &RuleSet) -> Json {
    let mut j = serde_json::to_value(r).unwrap_or(Json::Null);
    if let Json::Object(m) = &mut j {
        m.remove("custom");
        m.remove("change");
    }
    j
}

fn walk(path: &mut Vec<String>, a: Option<&Json>, b: Option<&Json>, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Some(Json::Object(x)), Some(Json::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                path.push(k.clone());
                walk(path, x.get(k), y.get(k), out);
                path.pop();
            }
        }
        (x, y) if x != y => out.push(FieldChange {
            path: path.clone(),
            before: x.cloned(),
            after: y.cloned(),
        }),
        _ => {}
    }
}

fn custom(a: &RuleSet, b: &RuleSet, out: &mut Vec<FieldChange>) {
    let json = |g: &crate::guards::GuardText| serde_json::to_value(g).unwrap_or(Json::Null);
    for g in &a.custom {
        let path = vec!["custom".to_owned(), g.id.clone()];
        match b.custom.iter().find(|h| h.id == g.id) {
            None => out.push(FieldChange {
                path,
                before: Some(json(g)),
                after: None,
            }),
            Some(h) => {
                let mut p = path;
                walk(&mut p, Some(&json(g)), Some(&json(h)), out);
            }
        }
    }
    for h in b
        .custom
        .iter()
        .filter(|h| !a.custom.iter().any(|g| g.id == h.id))
    {
        out.push(FieldChange {
            path: vec!["custom".to_owned(), h.id.clone()],
            before: None,
            after: Some(json(h)),
        });
    }
}

/// One line per change: `threshold.escalate_above_minor: 500000 → 2000000`.
pub fn lines(changes: &[FieldChange]) -> Vec<String> {
    let show = |v: &Option<Json>| {
        v.as_ref()
            .map_or_else(|| "(none)".to_owned(), Json::to_string)
    };
    changes
        .iter()
        .map(|c| match (&c.before, &c.after) {
            (None, Some(_)) => format!("{}: added", c.path.join(".")),
            (Some(_), None) => format!("{}: removed", c.path.join(".")),
            _ => format!(
                "{}: {} → {}",
                c.path.join("."),
                show(&c.before),
                show(&c.after)
            ),
        })
        .collect()
}
