//! Tripletex's JSON as salary-sync reads and writes it: envelopes, the few fields of each
//! object the connector needs, the error body, and amounts as exact decimals.
//!
//! Invariant: an amount never passes through a float. JSON numbers are read as their raw
//! text (`RawValue`) and parsed into `Decimal`; they are written as the decimal's own text,
//! which is a valid JSON number (rust_decimal never prints an exponent).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::str::FromStr;

/// `{"value": {...}}`
#[derive(Debug, Deserialize)]
pub struct Single<T> {
    pub value: T,
}

/// `{"fullResultSize","from","count","values":[...]}`
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    #[serde(default)]
    pub full_result_size: Option<u64>,
    #[serde(default = "Vec::new")]
    pub values: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub struct SessionToken {
    pub token: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub company_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct Company {
    pub currency: Option<CurrencyRef>,
}

#[derive(Debug, Deserialize)]
pub struct CurrencyRef {
    pub code: Option<String>,
}

/// An employee with its employments nested, as `fields=...,employments(...)` asks for them.
/// `employments` absent or `null` reads as none.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Employee {
    pub id: i64,
    #[serde(default)]
    pub employee_number: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub employments: Option<Vec<Employment>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Employment {
    pub id: i64,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
}

/// An employment details row as read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailsRow {
    pub id: i64,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub remuneration_type: Option<String>,
    #[serde(default)]
    pub annual_salary: Option<Box<RawValue>>,
    #[serde(default)]
    pub hourly_wage: Option<Box<RawValue>>,
    #[serde(default)]
    pub employment_type: Option<String>,
    #[serde(default)]
    pub employment_form: Option<String>,
    #[serde(default)]
    pub maritime_employment: Option<Box<RawValue>>,
    #[serde(default)]
    pub working_hours_scheme: Option<String>,
    #[serde(default)]
    pub shift_duration_hours: Option<Box<RawValue>>,
    #[serde(default)]
    pub occupation_code: Option<IdRead>,
    #[serde(default)]
    pub percentage_of_full_time_equivalent: Option<Box<RawValue>>,
    #[serde(default)]
    pub payroll_tax_municipality_id: Option<IdRead>,
}

/// A reference as read: `{id, url, ...}`; only the id is kept.
#[derive(Debug, Deserialize)]
pub struct IdRead {
    #[serde(default)]
    pub id: Option<i64>,
}

impl DetailsRow {
    /// The row's writable terms, to be carried forward (JSON `null`s dropped: the spec has
    /// no nullable fields, so a `null` is never sent back).
    pub fn terms(&self) -> Terms {
        let keep = |v: &Option<Box<RawValue>>| v.as_ref().filter(|r| r.get() != "null").cloned();
        let id = |r: &Option<IdRead>| r.as_ref().and_then(|r| r.id).map(|id| IdRef { id });
        Terms {
            employment_type: self.employment_type.clone(),
            employment_form: self.employment_form.clone(),
            maritime_employment: keep(&self.maritime_employment),
            working_hours_scheme: self.working_hours_scheme.clone(),
            shift_duration_hours: keep(&self.shift_duration_hours),
            occupation_code: id(&self.occupation_code),
            percentage_of_full_time_equivalent: keep(&self.percentage_of_full_time_equivalent),
            payroll_tax_municipality_id: id(&self.payroll_tax_municipality_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdRef {
    pub id: i64,
}

/// Every writable field of an `EmploymentDetails` row except the salary fields (`annualSalary`,
/// `hourlyWage`, `remunerationType`) and the row's place (`employment`, `date`): Tripletex's
/// OpenAPI spec 2.72.00 (`components.schemas.EmploymentDetails`) marks only `changes`, `url`
/// and `monthlySalary` read-only. A new row is the employment's whole state from its date, so
/// these are read from the row in force on that date and written again unchanged. Numbers
/// stay raw JSON text (never a float); a reference keeps only its `id` (the rest of the
/// referenced object is read-only or not ours to send).
#[derive(Debug, Clone, Default)]
pub struct Terms {
    pub employment_type: Option<String>,
    pub employment_form: Option<String>,
    pub maritime_employment: Option<Box<RawValue>>,
    pub working_hours_scheme: Option<String>,
    pub shift_duration_hours: Option<Box<RawValue>>,
    pub occupation_code: Option<IdRef>,
    pub percentage_of_full_time_equivalent: Option<Box<RawValue>>,
    pub payroll_tax_municipality_id: Option<IdRef>,
}

/// An employment details row as written (POST, or PUT with `id` and `version`). Absent
/// fields are left out, never sent as `null` (the spec has no nullable fields).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailsWrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employment: Option<IdRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remuneration_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annual_salary: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hourly_wage: Option<Box<RawValue>>,
    // The terms carried forward from the row in force (a POST, see `Terms`); absent from a
    // PUT, which is a partial update ("Partial object describing what should be updated",
    // the spec's PUT body) and leaves them as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employment_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employment_form: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maritime_employment: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_hours_scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift_duration_hours: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occupation_code: Option<IdRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage_of_full_time_equivalent: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payroll_tax_municipality_id: Option<IdRef>,
}

impl DetailsWrite {
    /// Only the salary fields (and the row's place); the terms are left out.
    pub fn salary_only(
        id: Option<i64>,
        version: Option<i64>,
        employment: Option<IdRef>,
        date: Option<String>,
        remuneration_type: Option<&'static str>,
        annual_salary: Option<Box<RawValue>>,
        hourly_wage: Option<Box<RawValue>>,
    ) -> Self {
        Self {
            id,
            version,
            employment,
            date,
            remuneration_type,
            annual_salary,
            hourly_wage,
            employment_type: None,
            employment_form: None,
            maritime_employment: None,
            working_hours_scheme: None,
            shift_duration_hours: None,
            occupation_code: None,
            percentage_of_full_time_equivalent: None,
            payroll_tax_municipality_id: None,
        }
    }

    /// This write with `terms` carried in it.
    pub fn carrying(self, terms: Terms) -> Self {
        Self {
            employment_type: terms.employment_type,
            employment_form: terms.employment_form,
            maritime_employment: terms.maritime_employment,
            working_hours_scheme: terms.working_hours_scheme,
            shift_duration_hours: terms.shift_duration_hours,
            occupation_code: terms.occupation_code,
            percentage_of_full_time_equivalent: terms.percentage_of_full_time_equivalent,
            payroll_tax_municipality_id: terms.payroll_tax_municipality_id,
            ..self
        }
    }
}

/// The error body: `{"status","code","message","developerMessage","validationMessages",
/// "requestId"}` (`status` repeats the HTTP status and is not read). Every field is optional:
/// a proxy or load balancer may answer with less.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub developer_message: Option<String>,
    #[serde(default)]
    pub validation_messages: Option<Vec<ValidationMessage>>,
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ValidationMessage {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl ApiError {
    /// Parses an error body; anything unreadable gives an empty envelope (the status still
    /// classifies the answer).
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// The validation messages folded into one readable line: `field: message; ...`.
    pub fn validation_summary(&self) -> Option<String> {
        let parts: Vec<String> = self
            .validation_messages
            .iter()
            .flatten()
            .filter_map(|m| match (m.field.as_deref(), m.message.as_deref()) {
                (Some(f), Some(msg)) if !f.is_empty() => Some(format!("{f}: {msg}")),
                (_, Some(msg)) => Some(msg.to_owned()),
                (Some(f), None) => Some(format!("{f}: invalid")),
                (None, None) => None,
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Reads a JSON number (its raw text) exactly. A JSON string holding a number is accepted
/// too; anything else is `None`.
pub fn decimal_from_raw(raw: &RawValue) -> Option<Decimal> {
    let text = raw.get().trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if text == "null" {
        return None;
    }
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// An amount as a JSON number with exactly the decimal's digits.
pub fn raw_from_decimal(amount: Decimal) -> Result<Box<RawValue>, serde_json::Error> {
    // `normalize` drops trailing zeros (624000.00 -> 624000): the same value, fewer digits.
    RawValue::from_string(amount.normalize().to_string())
}

/// A Tripletex date (`YYYY-MM-DD`).
pub fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_exactly() {
        let row: DetailsRow =
            serde_json::from_str(r#"{"id":1,"annualSalary":12345678901234.5678,"hourlyWage":0.1}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        let annual = row.annual_salary.as_deref().and_then(decimal_from_raw);
        // 18 significant digits: more than an f64 holds.
        assert_eq!(annual, Decimal::from_str("12345678901234.5678").ok());
        let hourly = row.hourly_wage.as_deref().and_then(decimal_from_raw);
        assert_eq!(hourly, Decimal::from_str("0.1").ok());
        let raw = raw_from_decimal(Decimal::from_str("624000.00").unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(raw.get(), "624000");
        let raw = raw_from_decimal(Decimal::from_str("12345678901234.5678").unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(raw.get(), "12345678901234.5678");
        let zero = raw_from_decimal(Decimal::ZERO).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(zero.get(), "0");
        assert_eq!(
            decimal_from_raw(
                &RawValue::from_string("1e3".into()).unwrap_or_else(|e| panic!("{e}"))
            ),
            Some(Decimal::from(1000))
        );
    }

    #[test]
    fn writes_leave_absent_fields_out() {
        let body = DetailsWrite::salary_only(
            None,
            None,
            Some(IdRef { id: 5 }),
            Some("2026-01-01".into()),
            Some("MONTHLY_WAGE"),
            raw_from_decimal(Decimal::new(624_000_000, 2)).ok(),
            None,
        );
        let text = serde_json::to_string(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            text,
            r#"{"employment":{"id":5},"date":"2026-01-01","remunerationType":"MONTHLY_WAGE","annualSalary":6240000}"#
        );
    }

    #[test]
    fn the_error_envelope_parses_and_folds_validation_messages() {
        let e = ApiError::parse(
            br#"{"status":422,"code":15000,"message":"Validation failed","developerMessage":"x",
                "validationMessages":[{"field":"date","message":"Must be a date"},
                                      {"field":null,"message":"Wage missing"}],
                "requestId":"req-1"}"#,
        );
        assert_eq!(e.code, Some(15000));
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        assert_eq!(
            e.validation_summary().as_deref(),
            Some("date: Must be a date; Wage missing")
        );
        let empty = ApiError::parse(b"<html>bad gateway</html>");
        assert_eq!(empty.code, None);
        assert_eq!(empty.validation_summary(), None);
    }

    #[test]
    fn an_employee_reads_with_its_employments_nested_or_without_them() {
        let e: Employee = serde_json::from_str(
            r#"{"id":102,"employeeNumber":"18","email":"ola@example.no","url":"x",
                "employments":[{"id":202,"startDate":"2019-03-01","endDate":"2023-12-31",
                                "employmentDetails":[]},
                               {"id":203,"startDate":"2024-01-01"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let employments = e.employments.unwrap_or_default();
        let read: Vec<_> = employments
            .iter()
            .map(|m| (m.id, m.start_date.as_deref(), m.end_date.as_deref()))
            .collect();
        assert_eq!(
            read,
            vec![
                (202, Some("2019-03-01"), Some("2023-12-31")),
                (203, Some("2024-01-01"), None)
            ]
        );
        for text in [r#"{"id":104}"#, r#"{"id":104,"employments":null}"#] {
            let e: Employee = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
            assert!(e.employments.unwrap_or_default().is_empty(), "{text}");
        }
    }

    #[test]
    fn dates_parse_with_or_without_a_time() {
        assert_eq!(date("2026-01-01"), NaiveDate::from_ymd_opt(2026, 1, 1));
        assert_eq!(
            date("2026-01-01T00:00:00"),
            NaiveDate::from_ymd_opt(2026, 1, 1)
        );
        assert_eq!(date("x"), None);
    }
}
