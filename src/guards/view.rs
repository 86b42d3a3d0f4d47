//! The view a custom guard reads: which leaves each root has, which roots
//! each action kind has in view, and each leaf's value in the context with
//! the seq of the record that wrote it.
//!
//! | root | fields (and `facts.<attribute>`: a generic fact) | in view for |
//! |---|---|---|
//! | `action` | `kind` (`set-price`), `type` (`set_price`, as in the command JSON) and the action's own fields, flattened (`perk` is its name, `perk_discount_bp` its rate; a promotion's `category`, also `action.target.category`) | every kind |
//! | `intention` | `revenue_minor`, `margin_minor` (projected impact, also `intention.impact.revenue_minor`), `objective`, `agent`, `seq` | every kind |
//! | `agent` | `id`, `domain`, `priority` | every kind |
//! | `sku` | `id`, `category`, `price_minor`, `cost_minor`, `stock`, `reserved`, `on_order`, `lifecycle`, `traffic_increase_bp`, `supplier_delay_days`, facts | sku actions; each sku a promotion covers |
//! | `category` | `id`, `sku_count`, facts | sku actions (the sku's), promotions |
//! | `order` | `id`, `customer`, `total_minor`, `flagged`, `delayed_days` | perks, notifications |
//! | `customer` | `id`, facts | perks (the order's), notifications |
//! | `campaign` | `id`, `budget_minor`, facts | ad budgets |
//! | `now_ms` | the ledger's time | every kind |
//!
//! A generic action has in view the root of the entity it names.

pub use super::subject::Subject;
use crate::context::{Context, IntentionState, Stamped};
use crate::entity::EntityRef;
use crate::value::Value;
use crate::vocab::guard::{Leaf, Name, Root, ViewPath};
use crate::vocab::{Action, ActionKind, Perk, PromotionTarget};

/// The named fields of a root.
pub fn fields(root: Root) -> &'static [Name] {
    use Name as N;
    match root {
        Root::Action => &[
            N::Kind,
            N::Type,
            N::Sku,
            N::PriceMinor,
            N::DiscountBp,
            N::StartsAtMs,
            N::EndsAtMs,
            N::Quantity,
            N::Customer,
            N::Order,
            N::Topic,
            N::Perk,
            N::PerkDiscountBp,
            N::Campaign,
            N::BudgetMinor,
            N::Attribute,
            N::Value,
            N::Category,
        ],
        Root::Intention => &[
            N::RevenueMinor,
            N::MarginMinor,
            N::Objective,
            N::Agent,
            N::Seq,
        ],
        Root::Agent => &[N::Id, N::Domain, N::Priority],
        Root::Sku => &[
            N::Id,
            N::Category,
            N::PriceMinor,
            N::CostMinor,
            N::Stock,
            N::Reserved,
            N::OnOrder,
            N::Lifecycle,
            N::TrafficIncreaseBp,
            N::SupplierDelayDays,
        ],
        Root::Order => &[
            N::Id,
            N::Customer,
            N::TotalMinor,
            N::Flagged,
            N::DelayedDays,
        ],
        Root::Customer => &[N::Id],
        Root::Category => &[N::Id, N::SkuCount],
        Root::Campaign => &[N::Id, N::BudgetMinor],
        Root::NowMs => &[],
    }
}

/// Whether a root's entities have generic facts.
fn has_facts(root: Root) -> bool {
    matches!(
        root,
        Root::Sku | Root::Order | Root::Customer | Root::Category | Root::Campaign
    )
}

/// The action fields each kind has.
fn action_fields(kind: ActionKind) -> &'static [Name] {
    use Name as N;
    match kind {
        ActionKind::SetPrice => &[N::Kind, N::Sku, N::PriceMinor],
        ActionKind::LaunchPromotion => &[
            N::Kind,
            N::DiscountBp,
            N::StartsAtMs,
            N::EndsAtMs,
            N::Category,
        ],
        ActionKind::Reorder | ActionKind::ReserveStock => &[N::Kind, N::Sku, N::Quantity],
        ActionKind::Discontinue => &[N::Kind, N::Sku],
        ActionKind::NotifyCustomer => &[N::Kind, N::Customer, N::Order, N::Topic],
        ActionKind::OfferPerk => &[N::Kind, N::Order, N::Perk, N::PerkDiscountBp],
        ActionKind::ChangeAdBudget => &[N::Kind, N::Campaign, N::BudgetMinor],
        ActionKind::Generic => &[N::Kind, N::Attribute, N::Value],
    }
}

/// The entity roots a kind has in view (besides action, intention, agent, now_ms).
fn roots_of(kind: ActionKind) -> &'static [Root] {
    match kind {
        ActionKind::SetPrice
        | ActionKind::LaunchPromotion
        | ActionKind::Reorder
        | ActionKind::ReserveStock
        | ActionKind::Discontinue => &[Root::Sku, Root::Category],
        ActionKind::NotifyCustomer | ActionKind::OfferPerk => &[Root::Order, Root::Customer],
        ActionKind::ChangeAdBudget => &[Root::Campaign],
        ActionKind::Generic => &[
            Root::Sku,
            Root::Category,
            Root::Order,
            Root::Customer,
            Root::Campaign,
        ],
    }
}

/// Whether `path` is in the view of `kind` actions.
pub fn in_view(kind: ActionKind, path: &ViewPath) -> bool {
    match path.root {
        Root::Action => match &path.leaf {
            // Every action has a kind and a type.
            Leaf::Field(n) => *n == Name::Type || action_fields(kind).contains(n),
            _ => false,
        },
        Root::Intention | Root::Agent | Root::NowMs => true,
        r => roots_of(kind).contains(&r),
    }
}

/// "action, intention, …" for messages.
pub fn roots_list() -> String {
    let names: Vec<&str> = Root::ALL.iter().map(|r| r.name()).collect();
    names.join(", ")
}

fn fields_list(root: Root) -> String {
    let mut names: Vec<&str> = fields(root).iter().map(|n| n.name()).collect();
    if has_facts(root) {
        names.push("facts.<attribute>");
    }
    names.join(", ")
}

/// The command JSON's nesting, read as the view's flat names:
/// `intention.impact.revenue_minor` is `intention.revenue_minor`, and
/// `action.target.category` is `action.category`.
fn flatten<'a>(names: &[&'a str]) -> Vec<&'a str> {
    match names {
        ["intention", "impact", field @ ("revenue_minor" | "margin_minor")] => {
            vec!["intention", field]
        }
        ["action", "target", "category"] => vec!["action", "category"],
        other => other.to_vec(),
    }
}

/// The leaf that `names` (`["sku", "facts", "rating_x10"]`) stands for.
pub fn parse_path(names: &[&str]) -> Result<ViewPath, super::GuardProblem> {
    let flat = flatten(names);
    let names = flat.as_slice();
    use super::GuardProblem as P;
    let first = names.first().copied().unwrap_or("");
    let root = Root::ALL
        .iter()
        .copied()
        .find(|r| r.name() == first)
        .ok_or_else(|| P::UnknownName(first.to_owned(), roots_list()))?;
    let example = || {
        format!(
            "{first}.{}",
            fields(root).first().map_or("id", |n| n.name())
        )
    };
    let leaf = match (root, &names[1..]) {
        (Root::NowMs, []) => Leaf::Itself,
        (Root::NowMs, _) => {
            return Err(P::UnknownField(
                first.into(),
                names[1].into(),
                "no fields".into(),
            ))
        }
        (_, []) => return Err(P::NotALeaf(first.into(), example())),
        (r, ["facts"]) if has_facts(r) => {
            return Err(P::NotALeaf(
                format!("{first}.facts"),
                format!("{first}.facts.rating_x10"),
            ))
        }
        (r, ["facts", attribute]) if has_facts(r) => Leaf::Fact((*attribute).to_owned()),
        (r, [field]) => {
            let n = fields(r)
                .iter()
                .copied()
                .find(|n| n.name() == *field)
                .ok_or_else(|| P::UnknownField(first.into(), (*field).into(), fields_list(r)))?;
            Leaf::Field(n)
        }
        (r, [field, ..]) => {
            return Err(P::UnknownField(
                first.into(),
                (*field).into(),
                fields_list(r),
            ))
        }
    };
    Ok(ViewPath { root, leaf })
}

/// A value of the type the view gives `path` for `kind`: what the
/// install-time check evaluates the expression on.
pub fn sample(kind: ActionKind, path: &ViewPath) -> Value {
    use Name as N;
    let text = |s: &str| Value::Text(s.to_owned());
    match (&path.root, &path.leaf) {
        (Root::NowMs, _) => Value::Int(1),
        (_, Leaf::Fact(_)) => Value::Int(1),
        (Root::Action, Leaf::Field(N::Value)) if kind == ActionKind::Generic => Value::Null,
        (_, Leaf::Field(n)) => match n {
            N::Id
            | N::Kind
            | N::Type
            | N::Sku
            | N::Customer
            | N::Order
            | N::Topic
            | N::Perk
            | N::Campaign
            | N::Attribute
            | N::Category
            | N::Objective
            | N::Agent
            | N::Domain
            | N::Lifecycle => text("x"),
            N::Flagged => Value::Bool(false),
            _ => Value::Int(1),
        },
        (_, Leaf::Itself) => Value::Null,
    }
}

/// What resolving a leaf found.
pub enum Found {
    /// The value, the entity it belongs to and the seq that wrote it.
    Value(Value, Option<EntityRef>, u64),
    /// Not in the context (a fact never written, a field this action lacks).
    Missing,
    /// The entity is not known to the store.
    Unknown(EntityRef),
}

fn int(v: impl Into<i64>) -> Value {
    Value::Int(v.into())
}

fn stamped<T>(s: &Stamped<T>, e: EntityRef, f: impl Fn(&T) -> Value) -> Found {
    Found::Value(f(&s.value), Some(e), s.seq)
}

/// The value of `path` for intention `s` and `subject` in `ctx`.
pub fn resolve(ctx: &Context, s: &IntentionState, subject: &Subject, path: &ViewPath) -> Found {
    let own = |v: Value| Found::Value(v, Some(EntityRef::Intention(s.seq)), s.seq);
    match (path.root, &path.leaf) {
        (Root::NowMs, _) => Found::Value(
            Value::Int(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
            None,
            ctx.seq,
        ),
        (Root::Action, Leaf::Field(n)) => {
            action_field(&s.intention.action, subject, *n).map_or(Found::Missing, own)
        }
        (Root::Intention, Leaf::Field(n)) => {
            let i = &s.intention;
            own(match n {
                Name::RevenueMinor => int(i.impact.revenue_minor),
                Name::MarginMinor => int(i.impact.margin_minor),
                Name::Objective => Value::Text(i.objective.name().into()),
                Name::Agent => Value::Text(s.agent.clone()),
                _ => Value::Int(i64::try_from(s.seq).unwrap_or(i64::MAX)),
            })
        }
        (Root::Agent, Leaf::Field(n)) => {
            let Some(a) = ctx.authority.agents.get(&s.agent) else {
                return Found::Unknown(EntityRef::Agent(s.agent.clone()));
            };
            stamped(a, EntityRef::Agent(s.agent.clone()), |p| match n {
                Name::Domain => Value::Text(p.domain.name().into()),
                Name::Priority => int(p.priority),
                _ => Value::Text(p.agent.clone()),
            })
        }
        (root, leaf) => entity_leaf(ctx, subject, root, leaf),
    }
}

/// A leaf of an entity root (sku, order, customer, category, campaign).
fn entity_leaf(ctx: &Context, subject: &Subject, root: Root, leaf: &Leaf) -> Found {
    let Some(entity) = subject.entity(root) else {
        return Found::Missing;
    };
    // As the built-in guards: skus, orders and categories must be known;
    // customers and campaigns are known by whatever is said of them.
    if !ctx.store.knows(&entity) {
        return Found::Unknown(entity);
    }
    match leaf {
        Leaf::Fact(attribute) => ctx
            .store
            .facts_of(&entity)
            .find(|(a, _)| *a == attribute)
            .map_or(Found::Missing, |(_, v)| {
                Found::Value(v.value.clone(), Some(entity.clone()), v.seq)
            }),
        Leaf::Field(Name::Id) => {
            let id = id_of(&entity);
            Found::Value(Value::Text(id), Some(entity.clone()), subject.seq)
        }
        Leaf::Field(n) => field(ctx, &entity, *n),
        Leaf::Itself => Found::Missing,
    }
}

/// A field of the action, flattened; the sku or category being checked for a
/// promotion.
fn action_field(a: &Action, subject: &Subject, n: Name) -> Option<Value> {
    let text = |s: &str| Some(Value::Text(s.to_owned()));
    let i = |v: i64| Some(Value::Int(v));
    if n == Name::Kind {
        return text(a.kind().name());
    }
    if n == Name::Type {
        return text(type_name(a.kind()));
    }
    match (a, n) {
        (Action::SetPrice { sku, .. }, Name::Sku) => text(sku),
        (Action::SetPrice { price_minor, .. }, Name::PriceMinor) => i(*price_minor),
        (Action::LaunchPromotion { discount_bp, .. }, Name::DiscountBp) => {
            i(i64::from(*discount_bp))
        }
        (Action::LaunchPromotion { starts_at_ms, .. }, Name::StartsAtMs) => {
            i(i64::try_from(*starts_at_ms).unwrap_or(i64::MAX))
        }
        (Action::LaunchPromotion { ends_at_ms, .. }, Name::EndsAtMs) => {
            i(i64::try_from(*ends_at_ms).unwrap_or(i64::MAX))
        }
        (
            Action::LaunchPromotion {
                target: PromotionTarget::Category(c),
                ..
            },
            Name::Category,
        ) => text(c),
        (Action::LaunchPromotion { .. }, Name::Category) => {
            subject.category.as_deref().and_then(text)
        }
        (
            Action::Reorder { sku, .. }
            | Action::ReserveStock { sku, .. }
            | Action::Discontinue { sku },
            Name::Sku,
        ) => text(sku),
        (
            Action::Reorder { quantity, .. } | Action::ReserveStock { quantity, .. },
            Name::Quantity,
        ) => i(i64::from(*quantity)),
        (Action::NotifyCustomer { customer, .. }, Name::Customer) => text(customer),
        (Action::NotifyCustomer { order, .. } | Action::OfferPerk { order, .. }, Name::Order) => {
            text(order)
        }
        (Action::NotifyCustomer { topic, .. }, Name::Topic) => text(topic),
        (Action::OfferPerk { perk, .. }, Name::Perk) => text(match perk {
            Perk::FreeShipping => "free_shipping",
            Perk::DiscountBp(_) => "discount_bp",
        }),
        (Action::OfferPerk { perk, .. }, Name::PerkDiscountBp) => i(match perk {
            Perk::FreeShipping => 0,
            Perk::DiscountBp(bp) => i64::from(*bp),
        }),
        (Action::ChangeAdBudget { campaign, .. }, Name::Campaign) => text(campaign),
        (Action::ChangeAdBudget { budget_minor, .. }, Name::BudgetMinor) => i(*budget_minor),
        (Action::Generic { attribute, .. }, Name::Attribute) => text(attribute),
        (Action::Generic { value, .. }, Name::Value) => Some(value.clone()),
        _ => None,
    }
}

/// An action kind as the command JSON's `type` names it.
fn type_name(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::SetPrice => "set_price",
        ActionKind::LaunchPromotion => "launch_promotion",
        ActionKind::Reorder => "reorder",
        ActionKind::Discontinue => "discontinue",
        ActionKind::NotifyCustomer => "notify_customer",
        ActionKind::OfferPerk => "offer_perk",
        ActionKind::ChangeAdBudget => "change_ad_budget",
        ActionKind::ReserveStock => "reserve_stock",
        ActionKind::Generic => "generic",
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
