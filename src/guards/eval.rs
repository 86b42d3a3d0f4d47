//! Evaluating one guard for one subject: every leaf the expression names is
//! resolved first (value and seq, or missing), bound into a CEL context that
//! holds those leaves and nothing else, and the expression runs once.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use super::subject::Subject;
use super::view::{self, Found};
use super::Guard;
use crate::context::{Context, IntentionState};
use crate::value::Value;
use crate::vocab::guard::{GuardFault, Leaf, Root, ViewPath};
use crate::vocab::{Field, Read};

/// What one guard concluded for one subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `when` is false: the guard lets the intention pass.
    Passes,
    /// `when` is true: the guard refuses or escalates.
    Fires,
    Fault(GuardFault),
}

/// Evaluates `guard` for intention `s` and one subject; the verdict and
/// every value read, with the seq that wrote it.
pub fn evaluate(
    guard: &Guard,
    ctx: &Context,
    s: &IntentionState,
    subject: &Subject,
) -> (Verdict, Vec<Read>) {
    let mut reads = Vec::with_capacity(guard.paths.len());
    let mut values = Vec::with_capacity(guard.paths.len());
    let mut missing = None;
    for p in &guard.paths {
        match view::resolve(ctx, s, subject, p) {
            Found::Value(value, entity, seq) => {
                reads.push(Read {
                    field: Field::View(p.clone()),
                    entity,
                    value: value.clone(),
                    seq,
                });
                values.push((p.clone(), value));
            }
            Found::Missing => {
                missing.get_or_insert_with(|| p.clone());
            }
            Found::Unknown(entity) => {
                return (Verdict::Fault(GuardFault::UnknownEntity { entity }), reads);
            }
        }
    }
    debug_assert!(reads.len() <= guard.paths.len());
    let verdict = match run(guard, values) {
        Ok(cel::Value::Bool(true)) => Verdict::Fires,
        Ok(cel::Value::Bool(false)) => Verdict::Passes,
        Ok(_) => Verdict::Fault(GuardFault::NotABoolean),
        Err(_) => {
            Verdict::Fault(missing.map_or(GuardFault::Failed, |path| GuardFault::Missing { path }))
        }
    };
    (verdict, reads)
}

fn cel_value(v: Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(b),
        Value::Int(i) => cel::Value::Int(i),
        Value::Text(t) => cel::Value::String(Arc::new(t)),
    }
}

/// The fields (and, under `facts`, the generic facts) of one root.
type Fields = BTreeMap<String, cel::Value>;

/// A CEL map of `fields`. Expressions only look keys up (loops are refused
/// at install), so the map's own order never reaches a result.
fn cel_map(fields: Fields) -> cel::Value {
    let map = fields
        .into_iter()
        .map(|(k, v)| (cel::objects::Key::String(Arc::new(k)), v))
        .collect();
    cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
}

/// The command JSON's nesting beside the flat names (`view::flatten`):
/// `intention.impact.revenue_minor`, `action.target.category`.
fn nest(root: Root, fields: &mut Fields) {
    let (key, names): (&str, &[&str]) = match root {
        Root::Intention => ("impact", &["revenue_minor", "margin_minor"]),
        Root::Action => ("target", &["category"]),
        _ => return,
    };
    let inner: Fields = names
        .iter()
        .filter_map(|n| fields.get(*n).map(|v| ((*n).to_owned(), v.clone())))
        .collect();
    if !inner.is_empty() {
        fields.insert(key.to_owned(), cel_map(inner));
    }
}

/// CEL's standard library (functions and macros), built once: building it
/// is most of the cost of a fresh context. Immutable and the same for every
/// guard, so sharing it changes no result.
fn stdlib() -> Arc<cel::Env> {
    static STDLIB: std::sync::OnceLock<Arc<cel::Env>> = std::sync::OnceLock::new();
    STDLIB.get_or_init(|| Arc::new(cel::Env::stdlib())).clone()
}

/// Binds exactly the resolved leaves and runs the expression.
pub(super) fn run(guard: &Guard, values: Vec<(ViewPath, Value)>) -> cel::ResolveResult {
    let mut roots: BTreeMap<Root, (Fields, Fields)> = BTreeMap::new();
    let mut now = None;
    for (p, v) in values {
        let (fields, facts) = roots.entry(p.root).or_default();
        match p.leaf {
            Leaf::Itself => now = Some(cel_value(v)),
            Leaf::Field(n) => {
                fields.insert(n.name().to_owned(), cel_value(v));
            }
            Leaf::Fact(a) => {
                facts.insert(a, cel_value(v));
            }
        }
    }
    let mut c = cel::Context::with_env(stdlib());
    for p in &guard.paths {
        roots.entry(p.root).or_default();
    }
    for (root, (mut fields, facts)) in roots {
        if root == Root::NowMs {
            if let Some(v) = now.take() {
                c.add_variable_from_value(root.name(), v);
            }
            continue;
        }
        nest(root, &mut fields);
        fields.insert("facts".to_owned(), cel_map(facts));
        c.add_variable_from_value(root.name(), cel_map(fields));
    }
    guard.program.execute(&c)
}
