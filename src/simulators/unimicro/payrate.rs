//! The simulator's own reading of the dated pay-rate record nested in an employment, written
//! from Unimicro's product description (the salary screen's "new pay rate from a date",
//! monthly or annual, future dates allowed) and Unimicro's documented nested-save rules
//! (`_createguid` on inserts, `"Deleted": true` to remove a child), not from the connector.
//! The API name of the record is not published, so the collection name is a simulator
//! setting ([`super::Seed::rate_collection`]), and the record is read leniently: `Rate` as a
//! JSON number or a decimal string, `RateType` in any letter case.
//!
//! Invariant: an amount never passes through a float; `Rate` is read from its JSON text.

use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

/// The collection name the simulator uses unless its seed says otherwise.
pub const COLLECTION_DEFAULT: &str = "EmploymentPayRates";

/// The values of `RateType` the simulator accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateType {
    Monthly,
    Annual,
    Hourly,
}

impl RateType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Annual => "annual",
            Self::Hourly => "hourly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Monthly, Self::Annual, Self::Hourly]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// One nested record of a save, as far as the simulator reads it. `Err` names the field.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: Option<i64>,
    pub from_date: Option<String>,
    pub rate: Option<Decimal>,
    pub rate_type: Option<String>,
    pub deleted: bool,
    pub createguid: Option<String>,
}

/// A save body `{"ID": n, "<collection>": [..]}`: the employment id and its nested records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Save {
    pub id: Option<i64>,
    pub items: Vec<Item>,
}

impl Save {
    /// Reads a save; the error is (field, message) in Unimicro's validation shape.
    pub fn parse(body: &Value, collection: &str) -> Result<Self, (String, String)> {
        let Value::Object(map) = body else {
            return Err(("".into(), "the body is not a JSON object".into()));
        };
        let id = map.get("ID").and_then(Value::as_i64);
        let items = match map.get(collection) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    Item::parse(v).map_err(|(f, m)| (format!("{collection}[{i}].{f}"), m))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err((collection.into(), "is not a list".into())),
        };
        Ok(Self { id, items })
    }
}

impl Item {
    fn parse(v: &Value) -> Result<Self, (String, String)> {
        let text = |k: &str| match v.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let rate = match v.get("Rate") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(("Rate".into(), "is not a number".into())),
        };
        let rate = rate
            .map(|r| {
                Decimal::from_str(r.trim())
                    .or_else(|_| Decimal::from_scientific(r.trim()))
                    .map_err(|_| ("Rate".to_owned(), "is not a number".to_owned()))
            })
            .transpose()?;
        Ok(Self {
            id: v.get("ID").and_then(Value::as_i64),
            from_date: text("FromDate"),
            rate,
            rate_type: text("RateType"),
            deleted: v.get("Deleted").and_then(Value::as_bool).unwrap_or(false),
            createguid: text("_createguid"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_are_read_exactly_from_numbers_and_strings() {
        let body: Value = serde_json::from_str(
            r#"{"ID":201,"Rates":[{"Rate":52000.10,"RateType":"Monthly"},{"Rate":"0.1","Deleted":true,"ID":7}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let save = Save::parse(&body, "Rates").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(save.id, Some(201));
        assert_eq!(save.items[0].rate, Some(Decimal::new(5_200_010, 2)));
        assert_eq!(save.items[1].rate, Some(Decimal::new(1, 1)));
        assert!(save.items[1].deleted);
        let bad = Save::parse(&json!({"ID":1,"Rates":[{"Rate":"x"}]}), "Rates");
        assert_eq!(bad.err().map(|e| e.0), Some("Rates[0].Rate".to_owned()));
    }
}
