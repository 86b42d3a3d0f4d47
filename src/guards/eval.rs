//! Evaluating one guard for one subject: every leaf the expression names is
//! resolved first (value and seq, or missing), bound into a CEL context that
//! holds those leaves and nothing else, and the expression runs once.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::view::{self, Found};
use super::Guard;
use crate::context::{Context, IntentionState};
use crate::entity::EntityRef;
use crate::value::Value;
use crate::vocab::guard::{GuardFault, Leaf, Name, Root, ViewPath};
use crate::vocab::{Action, Field, PromotionTarget, Read};

/// The entities one evaluation sees: for a promotion over several skus,
/// one subject per sku.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub sku: Option<String>,
    pub category: Option<String>,
    pub order: Option<String>,
    pub customer: Option<String>,
    pub campaign: Option<String>,
    /// The intention's seq: what an entity's `id` was read from.
    pub seq: u64,
}

impl Subject {
    /// The entity of `root` in view, if any.
    pub fn entity(&self, root: Root) -> Option<EntityRef> {
        let e = match root {
            Root::Sku => EntityRef::Sku(self.sku.clone()?),
            Root::Category => EntityRef::Category(self.category.clone()?),
            Root::Order => EntityRef::Order(self.order.clone()?),
            Root::Customer => EntityRef::Customer(self.customer.clone()?),
            Root::Campaign => EntityRef::Campaign(self.campaign.clone()?),
            _ => return None,
        };
        Some(e)
    }

    /// The id a finding names this subject by: its sku, else its order,
    /// campaign, customer or category.
    pub fn name(&self) -> String {
        [
            &self.sku,
            &self.order,
            &self.campaign,
            &self.customer,
            &self.category,
        ]
        .into_iter()
        .find_map(|x| x.clone())
        .unwrap_or_default()
    }

    /// The subjects of an intention's action, in a deterministic order.
    pub fn of(ctx: &Context, s: &IntentionState) -> Vec<Subject> {
        let base = Subject {
            seq: s.seq,
            ..Subject::default()
        };
        let category_of = |sku: &str| ctx.store.sku(sku).map(|st| st.category.value.clone());
        let for_sku = |sku: &str| Subject {
            sku: Some(sku.to_owned()),
            category: category_of(sku),
            ..base.clone()
        };
        match &s.intention.action {
            Action::SetPrice { sku, .. }
            | Action::Reorder { sku, .. }
            | Action::ReserveStock { sku, .. }
            | Action::Discontinue { sku } => vec![for_sku(sku)],
            Action::LaunchPromotion { target, .. } => {
                let named = match target {
                    PromotionTarget::Category(c) => Some(c.clone()),
                    PromotionTarget::Skus(_) => None,
                };
                let skus = ctx.store.skus_of(target);
                if skus.is_empty() {
                    return vec![Subject {
                        category: named,
                        ..base
                    }];
                }
                skus.iter()
                    .map(|k| Subject {
                        category: named.clone().or_else(|| category_of(k)),
                        ..for_sku(k)
                    })
                    .collect()
            }
            Action::NotifyCustomer {
                customer, order, ..
            } => vec![Subject {
                order: Some(order.clone()),
                customer: Some(customer.clone()),
                ..base
            }],
            Action::OfferPerk { order, .. } => vec![Subject {
                order: Some(order.clone()),
                customer: ctx.store.order(order).map(|o| o.customer.value.clone()),
                ..base
            }],
            Action::ChangeAdBudget { campaign, .. } => vec![Subject {
                campaign: Some(campaign.clone()),
                ..base
            }],
            Action::Generic { entity, .. } => vec![generic(entity, base, &category_of)],
        }
    }
}

fn generic(
    entity: &EntityRef,
    base: Subject,
    category_of: &dyn Fn(&str) -> Option<String>,
) -> Subject {
    match entity {
        EntityRef::Sku(s) => Subject {
            sku: Some(s.clone()),
            category: category_of(s),
            ..base
        },
        EntityRef::Category(c) => Subject {
            category: Some(c.clone()),
            ..base
        },
        EntityRef::Order(o) => Subject {
            order: Some(o.clone()),
            ..base
        },
        EntityRef::Customer(c) => Subject {
            customer: Some(c.clone()),
            ..base
        },
        EntityRef::Campaign(c) => Subject {
            campaign: Some(c.clone()),
            ..base
        },
        _ => base,
    }
}

/// An entity's id, as text.
pub(super) fn id_of(e: &EntityRef) -> String {
    match e {
        EntityRef::Sku(x)
        | EntityRef::Category(x)
        | EntityRef::Order(x)
        | EntityRef::Customer(x)
        | EntityRef::Campaign(x) => x.clone(),
        other => other.to_string(),
    }
}

/// A named field of a known entity.
pub(super) fn field(ctx: &Context, e: &EntityRef, n: Name) -> Found {
    let at = |v: Value, seq: u64| Found::Value(v, Some(e.clone()), seq);
    let int = |v: i64| Value::Int(v);
    match e {
        EntityRef::Sku(id) => {
            let Some(s) = ctx.store.sku(id) else {
                return Found::Unknown(e.clone());
            };
            match n {
                Name::Category => at(Value::Text(s.category.value.clone()), s.category.seq),
                Name::PriceMinor => at(int(s.price_minor.value), s.price_minor.seq),
                Name::CostMinor => at(int(s.cost_minor.value), s.cost_minor.seq),
                Name::Stock => at(int(s.stock.value), s.stock.seq),
                Name::Reserved => at(int(s.reserved.value), s.reserved.seq),
                Name::OnOrder => at(int(s.on_order.value), s.on_order.seq),
                Name::Lifecycle => at(
                    Value::Text(s.lifecycle.value.name().into()),
                    s.lifecycle.seq,
                ),
                Name::TrafficIncreaseBp => at(
                    int(i64::from(s.traffic_increase_bp.value)),
                    s.traffic_increase_bp.seq,
                ),
                Name::SupplierDelayDays => at(
                    int(i64::from(s.supplier_delay_days.value)),
                    s.supplier_delay_days.seq,
                ),
                _ => Found::Missing,
            }
        }
        EntityRef::Order(id) => {
            let Some(o) = ctx.store.order(id) else {
                return Found::Unknown(e.clone());
            };
            match n {
                Name::Customer => at(Value::Text(o.customer.value.clone()), o.customer.seq),
                Name::TotalMinor => at(int(o.total_minor.value), o.total_minor.seq),
                Name::Flagged => o
                    .flagged
                    .as_ref()
                    .map_or(at(Value::Bool(false), o.customer.seq), |f| {
                        at(Value::Bool(true), f.seq)
                    }),
                Name::DelayedDays => o
                    .delayed_days
                    .as_ref()
                    .map_or(Found::Missing, |d| at(int(i64::from(d.value)), d.seq)),
                _ => Found::Missing,
            }
        }
        EntityRef::Category(c) => match (n, ctx.store.category(c)) {
            (Name::SkuCount, Some(skus)) => {
                // The count has no single writer: the newest sku record of the category.
                let seq = skus
                    .iter()
                    .filter_map(|k| ctx.store.sku(k))
                    .map(|s| s.category.seq)
                    .max()
                    .unwrap_or(0);
                at(int(i64::try_from(skus.len()).unwrap_or(i64::MAX)), seq)
            }
            _ => Found::Missing,
        },
        EntityRef::Campaign(c) => match (n, ctx.store.budget(c)) {
            (Name::BudgetMinor, Some(b)) => at(int(b.value), b.seq),
            _ => Found::Missing,
        },
        _ => Found::Missing,
    }
}

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
