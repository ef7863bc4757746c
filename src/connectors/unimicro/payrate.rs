//! THE ASSUMPTION: the dated pay-rate record Unimicro keeps on an employment, as salary-sync
//! reads and writes it. Unimicro does not publish the API name of this record (its product
//! shows "new pay rate from a date", monthly or annual, future dates allowed), so every name
//! of it lives in this file and nowhere else. Swapping in the real names is an edit here (and
//! in docs/payroll-systems/unimicro.md). The Unimicro simulator has its own reading of the
//! record (`simulators/unimicro/payrate.rs`) and never imports this file (SPEC §3).
//!
//! Assumed shape: the employment (`/api/biz/employments/{id}`) has a nested collection
//! `EmploymentPayRates`, read with `?expand=EmploymentPayRates`, of records
//! `{"ID","EmploymentID","FromDate","Rate","RateType","Deleted","_createguid"}`, where
//! `RateType` is `monthly`, `annual` or `hourly` and a record is in force from `FromDate`
//! until the day before the next record's `FromDate`. Records are saved by a `PUT` of the
//! employment carrying them: one without `ID` (with a `_createguid`) is inserted, one with
//! `ID` is changed in place, one with `"Deleted": true` is removed; records left out of the
//! save are left alone. A saved record echoes its `_createguid` when read back.
//!
//! Invariant: an amount is never a float. `Rate` is read as its raw JSON text and written as
//! the decimal's own digits.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The nested collection's name, as used in `expand=`.
pub const COLLECTION: &str = "EmploymentPayRates";

/// The values of `RateType`.
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

    /// Case-insensitive, so `Monthly` and `monthly` read the same.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Monthly, Self::Annual, Self::Hourly]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// One pay-rate record as Unimicro sends it (and as it is sent back). Every field but `ID` is
/// optional on read; on write, absent fields are left out, never sent as `null`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PayRate {
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(
        rename = "EmploymentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub employment_id: Option<i64>,
    #[serde(rename = "FromDate", default, skip_serializing_if = "Option::is_none")]
    pub from_date: Option<String>,
    #[serde(rename = "Rate", default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Box<RawValue>>,
    #[serde(rename = "RateType", default, skip_serializing_if = "Option::is_none")]
    pub rate_type: Option<String>,
    #[serde(rename = "Deleted", default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    #[serde(
        rename = "_createguid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub createguid: Option<String>,
}

/// An employment with its pay-rate records: the answer to
/// `GET /api/biz/employments/{id}?expand=EmploymentPayRates` and to a save, and the body of a
/// save (`PUT /api/biz/employments/{id}`). `rates` is `None` when the answer did not expand
/// the collection.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EmploymentRates {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(
        rename = "EmploymentPayRates",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rates: Option<Vec<PayRate>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_body_names_only_what_it_sets() {
        let body = EmploymentRates {
            id: 201,
            rates: Some(vec![PayRate {
                createguid: Some("g".into()),
                from_date: Some("2026-01-01".into()),
                rate: RawValue::from_string("52000.10".into()).ok(),
                rate_type: Some(RateType::Monthly.as_str().into()),
                ..PayRate::default()
            }]),
        };
        let text = serde_json::to_string(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            r#"{"ID":201,"EmploymentPayRates":[{"FromDate":"2026-01-01","Rate":52000.10,"RateType":"monthly","_createguid":"g"}]}"#
        );
        assert_eq!(RateType::parse(" Annual"), Some(RateType::Annual));
        assert_eq!(RateType::parse("weekly"), None);
    }
}
