//! The checker catches each store index that disagrees with the maps.

use super::*;
use crate::context::Part;

fn effect(entity: EntityRef, change: Change) -> Effect {
    Effect { entity, change }
}

fn writer(seq: u64) -> Writer {
    Writer {
        seq,
        at_ms: seq * 10,
        intention: None,
    }
}

/// Two skus in one category, a contact and a promotion on the category.
fn sample() -> Store {
    let mut st = Store::default();
    let sku = |id: &str| EntityRef::Sku(id.into());
    let steps = [
        effect(sku("E1"), Change::Category("earbuds".into())),
        effect(sku("E2"), Change::Category("earbuds".into())),
        effect(
            EntityRef::Customer("C1".into()),
            Change::Contact {
                order: "O1".into(),
                topic: "delay".into(),
            },
        ),
        effect(
            EntityRef::Category("earbuds".into()),
            Change::Promotion {
                target: PromotionTarget::Category("earbuds".into()),
                discount_bp: 1_000,
                starts_at_ms: 0,
                ends_at_ms: 1_000,
            },
        ),
    ];
    for (i, e) in steps.iter().enumerate() {
        st.apply(e, writer(i as u64 + 1));
        assert_eq!(st.check(), Ok(()), "after step {i}");
    }
    st
}

#[test]
fn a_consistent_store_passes_and_retiring_keeps_it_so() {
    let mut st = sample();
    // E2 moves category; the promotion ends; the contact ages out.
    let e2 = effect(
        EntityRef::Sku("E2".into()),
        Change::Category("cables".into()),
    );
    st.apply(&e2, writer(9));
    assert_eq!(st.check(), Ok(()));
    st.retire(5_000, Some(1_000));
    assert_eq!(st.check(), Ok(()));
    assert_eq!(st.promotions().count(), 0);
    assert_eq!(st.contacts().count(), 0);
}

#[test]
fn each_index_out_of_step_is_named() {
    let broken = |f: &dyn Fn(&mut Store), what: &str| {
        let mut st = sample();
        f(&mut st);
        let v = st.check().expect_err(what);
        assert_eq!(v.part, Part::Store);
        assert!(v.broken.starts_with(what), "{what}: {v}");
    };
    broken(
        &|st| {
            st.categories.clear();
        },
        "categories",
    );
    broken(
        &|st| {
            st.contacts_by_time.clear();
        },
        "contacts_by_time",
    );
    broken(
        &|st| {
            st.promotion_ends.clear();
        },
        "promotion_ends",
    );
    broken(
        &|st| {
            st.promotions_by_target.clear();
        },
        "promotions_by_target",
    );
}
