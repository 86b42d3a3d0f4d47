use super::*;

#[test]
fn parses_a_fact_and_round_trips() {
    let text = r#"{"producer":"inventory","at_ms":5,"kind":"fact","entity":"store:eu","attribute":"open","value":1}"#;
    let cmd = Command::parse(text).unwrap();
    assert_eq!(cmd.envelope.at_ms, Some(5));
    assert_eq!(Command::parse(&cmd.to_json()).unwrap(), cmd);
}

#[test]
fn errors_name_the_problem() {
    let cases = [
        (
            r#"{"producer":"a","kind":"fact","entity":"e","attribute":"x","valu":1}"#,
            "valu",
        ),
        (r#"{"producer":"a","kind":"fax"}"#, "fax"),
        (r#"{"producer":"a","kind":"clock","bogus":1}"#, "bogus"),
        (r#"{"producer":"a","entity":"e"}"#, "kind"),
        (
            r#"{"kind":"fact","entity":"e","attribute":"x","value":1}"#,
            "producer",
        ),
        (
            r#"{"producer":"  ","kind":"fact","entity":"e","attribute":"x","value":1}"#,
            "blank",
        ),
        (
            r#"{"producer":"parley","kind":"fact","entity":"e","attribute":"x","value":1}"#,
            "reserved",
        ),
        (
            r#"{"producer":"a","kind":"fact","entity":"e","attribute":"x","value":1.5}"#,
            "`value`",
        ),
        (r#"[1,2]"#, "a list"),
        (
            r#"{"producer":"a","at_ms":-1,"kind":"fact","entity":"e","attribute":"x","value":1}"#,
            "at_ms",
        ),
        (
            r#"{"producer":"a","kind":"decision","decision":{}}"#,
            "written by parley itself",
        ),
        (
            r#"{"producer":"a","producer":"b","kind":"clock"}"#,
            "appears twice",
        ),
        (
            r#"{"producer":"a","kind":"stock_changed","sku":"S","stock":100000000000000000000000}"#,
            "`stock`",
        ),
        (
            r#"{"producer":"a","kind":"stock_changed","sku":"S","stock":-3}"#,
            "`stock` is -3",
        ),
        (
            r#"{"producer":"a","kind":"fact","entity":"sku:S","attribute":"stock","value":1}"#,
            "stock_changed",
        ),
    ];
    for (text, needle) in cases {
        let err = Command::parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
        assert!(!err.contains("line 1"), "{text}: {err}");
    }
}

#[test]
fn float_errors_name_the_field_path() {
    let text = r#"{"producer":"p","kind":"intend","intention":{"action":{"type":"set_price","sku":"S","price_minor":10},"reasoning":"r","impact":{"revenue_minor":1.5,"margin_minor":0},"objective":"risk"}}"#;
    let err = Command::parse(text).unwrap_err().to_string();
    assert!(err.contains("intention.impact.revenue_minor"), "{err}");
    assert!(!err.contains("floating point"), "{err}");
}

#[test]
fn an_integer_written_with_a_zero_fraction_is_that_integer() {
    // JSON Schema counts 2.0 as an integer, as the documents promise.
    let with = |n: &str| {
        Command::parse(&format!(
            r#"{{"producer":"p","kind":"stock_changed","sku":"S","stock":{n}}}"#
        ))
    };
    let stock = |c: Command| match c.body {
        Body::StockChanged { stock, .. } => stock,
        other => panic!("{other:?}"),
    };
    assert_eq!(stock(with("40.0").unwrap()), 40);
    assert_eq!(stock(with("4e1").unwrap()), 40);
    let big = Command::parse(
        r#"{"producer":"p","kind":"fact","entity":"e","attribute":"n","value":9007199254740992.0}"#,
    )
    .unwrap();
    assert!(matches!(
        big.body,
        Body::Fact {
            value: crate::value::Value::Int(9_007_199_254_740_992),
            ..
        }
    ));
    // Every integer below 2^53 written with `.0` is exactly that integer:
    // the parse is correctly rounded (serde_json's `float_roundtrip`), where
    // its fast path had read 3875116114763090.0 with a fraction (found by
    // schemathesis).
    for n in [
        3_875_116_114_763_090_i64,
        1_935_282_175_562_897,
        9_007_199_254_740_991,
    ] {
        let v = Command::parse(&format!(
            r#"{{"producer":"p","kind":"fact","entity":"e","attribute":"n","value":{n}.0}}"#
        ))
        .unwrap();
        assert!(
            matches!(v.body, Body::Fact { value: crate::value::Value::Int(i), .. } if i == n),
            "{n}"
        );
    }
    for refused in ["40.5", "1e300", "9007199254740994.0", "-0.5"] {
        let err = with(refused).unwrap_err().to_string();
        assert!(
            err.contains("`stock`") && err.contains("refused"),
            "{refused}: {err}"
        );
    }
}
