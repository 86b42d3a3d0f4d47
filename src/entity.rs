//! Entity naming: the one home of `sku:…`, `order:…` and the other entity
//! kinds. An [`EntityRef`] is a typed value; its text form `kind:id` is used in
//! JSON, the CLI and the entity index, and parses back to the same value.
//!
//! Architecture invariant: pure. Text forms are built and split only here, so
//! no two different entities share a text form: the kind names hold no `:`, a
//! typed entity is split at its first `:`, and an untyped (generic) entity is
//! never allowed to start with a known kind's prefix.

use std::fmt;

use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bounds::{check_id, IdError};

/// An entity of the shared context.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum EntityRef {
    Sku(String),
    Category(String),
    Order(String),
    Customer(String),
    Campaign(String),
    Agent(String),
    Human(String),
    Run(String),
    /// An intention, by its seq: its record and every decision about it.
    Intention(u64),
    /// Any other entity a generic fact names (`store:eu`, `warehouse-2`, …).
    Other(String),
}

/// The kind names, in the order of [`EntityRef`]'s typed variants.
pub const KINDS: [&str; 9] = [
    "sku",
    "category",
    "order",
    "customer",
    "campaign",
    "agent",
    "human",
    "run",
    "intention",
];

impl EntityRef {
    /// The kind's name (`sku`), or `None` for an untyped entity.
    pub fn kind(&self) -> Option<&'static str> {
        Some(match self {
            EntityRef::Sku(_) => "sku",
            EntityRef::Category(_) => "category",
            EntityRef::Order(_) => "order",
            EntityRef::Customer(_) => "customer",
            EntityRef::Campaign(_) => "campaign",
            EntityRef::Agent(_) => "agent",
            EntityRef::Human(_) => "human",
            EntityRef::Run(_) => "run",
            EntityRef::Intention(_) => "intention",
            EntityRef::Other(_) => return None,
        })
    }

    /// Parses `kind:id`. A known kind with an empty or malformed id is an
    /// error; text without a known kind prefix is an [`EntityRef::Other`].
    pub fn parse(text: &str) -> Result<EntityRef, EntityError> {
        check_id("entity", text)?;
        let Some((kind, id)) = text.split_once(':') else {
            return Ok(EntityRef::Other(text.to_owned()));
        };
        let typed = |f: fn(String) -> EntityRef| {
            check_id(kind, id).map_err(|e| EntityError::Id {
                text: text.to_owned(),
                id: e,
            })?;
            Ok(f(id.to_owned()))
        };
        match kind {
            "sku" => typed(EntityRef::Sku),
            "category" => typed(EntityRef::Category),
            "order" => typed(EntityRef::Order),
            "customer" => typed(EntityRef::Customer),
            "campaign" => typed(EntityRef::Campaign),
            "agent" => typed(EntityRef::Agent),
            "human" => typed(EntityRef::Human),
            "run" => typed(EntityRef::Run),
            "intention" => id
                .parse::<u64>()
                .ok()
                .filter(|s| *s >= 1 && !id.starts_with('0') && !id.starts_with('+'))
                .map(EntityRef::Intention)
                .ok_or_else(|| EntityError::NotASeq {
                    text: text.to_owned(),
                }),
            _ => Ok(EntityRef::Other(text.to_owned())),
        }
    }

    /// True for the entity kinds parley models with typed records: their
    /// fields are written only by those records (see [`typed_field`]).
    pub fn is_typed(&self) -> bool {
        !matches!(self, EntityRef::Other(_))
    }
}

/// The canonical name of a field a user may type by a short name
/// (`price` for `price_minor`). Audit and the typed-field check share it, so
/// a generic fact cannot hide under a short name.
pub fn canonical_field(field: &str) -> &str {
    match field {
        "price" => "price_minor",
        "cost" => "cost_minor",
        "budget" => "budget_minor",
        "total" => "total_minor",
        other => other,
    }
}

/// Fields of typed entities that only their typed records (or approved
/// actions) write. A generic fact naming one of them is refused, pointing to
/// the kind that writes it, so state, the resolver and audit agree on one value.
pub fn typed_field(entity: &EntityRef, attribute: &str) -> Option<&'static str> {
    let attribute = canonical_field(attribute);
    let hint: &'static str = match entity {
        EntityRef::Sku(_) => match attribute {
            "category" | "cost_minor" | "price_minor" | "lifecycle" => "catalog",
            "stock" => "stock_changed",
            "traffic_increase_bp" => "traffic_spike",
            "supplier_delay_days" => "supplier_delay",
            "reserved" | "on_order" | "promotion" => "intend (an approved action)",
            a if a.starts_with("competitor_price") => "competitor_price",
            _ => return None,
        },
        EntityRef::Order(_) => match attribute {
            "customer" | "total_minor" => "order_placed",
            "delayed_days" => "order_delayed",
            "flagged" => "order_flagged",
            "perk" => "intend (an approved offer_perk)",
            _ => return None,
        },
        EntityRef::Customer(_) => match attribute {
            "contact" => "customer_contacted",
            _ => return None,
        },
        EntityRef::Campaign(_) => match attribute {
            "budget_minor" => "intend (an approved change_ad_budget)",
            _ => return None,
        },
        EntityRef::Agent(_) => "agent_registered",
        EntityRef::Human(_) => "human_registered",
        EntityRef::Run(_) => "workflow_started and the step kinds",
        EntityRef::Intention(_) => "intend",
        EntityRef::Category(_) | EntityRef::Other(_) => return None,
    };
    Some(hint)
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityRef::Intention(seq) => write!(f, "intention:{seq}"),
            EntityRef::Other(text) => f.write_str(text),
            EntityRef::Sku(id)
            | EntityRef::Category(id)
            | EntityRef::Order(id)
            | EntityRef::Customer(id)
            | EntityRef::Campaign(id)
            | EntityRef::Agent(id)
            | EntityRef::Human(id)
            | EntityRef::Run(id) => {
                // `kind()` is Some for every typed variant.
                write!(f, "{}:{id}", self.kind().unwrap_or("?"))
            }
        }
    }
}

impl Serialize for EntityRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntityRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EntityRef, D::Error> {
        let text = String::deserialize(d)?;
        EntityRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a text is not an entity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntityError {
    #[error(transparent)]
    Text(#[from] IdError),
    #[error("entity `{text}`: {id}")]
    Id { text: String, id: IdError },
    #[error("entity `{text}`: an intention is named by its seq")]
    NotASeq { text: String },
}

impl schemars::JsonSchema for EntityRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EntityRef".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An entity as `kind:id` (sku:SKU-1, order:O-9, customer:C-3, category:headphones, campaign:bf, agent:pricing, human:maya, run:flash-1, intention:42) or any other identifier for a generic fact.",
            "type": "string",
            "minLength": 1,
            "maxLength": crate::bounds::ID_CHARS_MAX,
            "pattern": crate::bounds::schema::entity_pattern()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_cannot_collide() {
        for text in [
            "sku:SKU-1",
            "sku:a:b",
            "sku:a|b",
            "order:O-9",
            "category:head phones",
            "intention:42",
            "warehouse-2",
            "store|eu",
        ] {
            let e = EntityRef::parse(text).unwrap();
            assert_eq!(e.to_string(), text);
            assert_eq!(EntityRef::parse(&e.to_string()).unwrap(), e);
        }
        assert_eq!(
            EntityRef::parse("sku:X").unwrap(),
            EntityRef::Sku("X".into())
        );
        assert_ne!(
            EntityRef::parse("sku:a|b").unwrap(),
            EntityRef::parse("sku:a").unwrap()
        );
        for bad in ["", "sku:", "intention:x", "intention:0", "intention:07"] {
            assert!(EntityRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn typed_fields_name_their_kind() {
        let sku = EntityRef::Sku("S".into());
        assert_eq!(typed_field(&sku, "stock"), Some("stock_changed"));
        assert_eq!(typed_field(&sku, "colour"), None);
        assert_eq!(typed_field(&sku, "price"), Some("catalog"));
        assert_eq!(
            typed_field(&EntityRef::Order("O".into()), "total"),
            Some("order_placed")
        );
        assert!(typed_field(&EntityRef::Agent("a".into()), "x").is_some());
    }
}
