//! Visma.net Payroll's JSON (Employee API v2) as salary-sync reads and writes it: the token
//! answer, the `{"data":[...]}` list envelope, employees, positions, salary timeline entries,
//! jobs, and the (unpublished, so configurable) error body.
//!
//! Invariant: an amount never passes through a float. Amounts are read from their raw JSON
//! text (Visma sends them as strings, `"monthlySalary": "1000"`; a JSON number is accepted
//! too) into `Decimal`, and written as decimal strings. A position is kept as a map of raw
//! JSON values, so a PUT sends every field salary-sync does not edit back byte for byte.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::str::FromStr;

/// The OAuth2 token endpoint's answer.
#[derive(Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A list page: the items under `data` and, if present, the next-page value under the
/// configured field.
pub struct Page {
    pub data: Vec<Value>,
    pub next: Option<String>,
}

/// Where a next-page token is looked for when the configured path holds none.
const NEXT_FIELD_FALLBACKS: [&str; 4] = ["cursor.nextToken", "nextToken", "nextCursor", "cursor"];

/// The non-empty string or number at a dotted path (`cursor.nextToken`).
fn token_at(value: &Value, path: &str) -> Option<String> {
    let found = path
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(value, |v, key| v.get(key))?;
    match found {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Page {
    pub fn parse(body: &[u8], next_field: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let (data, next) = match value {
            // A bare array is accepted as one complete page.
            Value::Array(items) => (items, None),
            Value::Object(mut map) => {
                let data = match map.remove("data") {
                    Some(Value::Array(items)) => items,
                    Some(Value::Null) | None => Vec::new(),
                    Some(_) => return Err("`data` is not an array".into()),
                };
                let object = Value::Object(map);
                // The configured (dotted) path first, then the other published or plausible
                // places: the nested `cursor.nextToken` (Visma's only published cursor model),
                // a top-level `nextToken`/`nextCursor`, or `cursor` as a plain string.
                let next = std::iter::once(next_field)
                    .chain(NEXT_FIELD_FALLBACKS)
                    .find_map(|path| token_at(&object, path));
                (data, next)
            }
            _ => return Err("not a `{\"data\":[...]}` object".into()),
        };
        Ok(Self { data, next })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Employee {
    pub id: String,
    #[serde(default)]
    pub number: Option<Value>,
    #[serde(default)]
    pub email: Option<String>,
}

impl Employee {
    /// The employee number as text (Visma has sent it as a string; a number is tolerated).
    pub fn number_text(&self) -> Option<String> {
        match &self.number {
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionSummary {
    pub id: String,
    #[serde(default)]
    pub active_start: Option<String>,
    #[serde(default)]
    pub active_end: Option<String>,
}

/// A job as `GET .../jobs/{id}` and the job lists answer it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub status_code: Option<i64>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The object the job creates or updates (for a position PUT: the position's id).
    #[serde(default)]
    pub artifact_id: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub validation_results: Vec<ValidationResult>,
    /// A failed job's own message (FAQ, "Working with status code 202 and Jobs").
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationResult {
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// Where in the payload the problem is: `jsonPath` when Visma gives it, else a field name.
    #[serde(default, alias = "field", alias = "jsonPath")]
    pub property: Option<String>,
}

impl ValidationResult {
    /// `[severity] property: message`, as much of it as Visma gave.
    pub fn text(&self) -> Option<String> {
        let text = match (self.property.as_deref(), self.message.as_deref()) {
            (Some(p), Some(m)) if !p.is_empty() => format!("{p}: {m}"),
            (_, Some(m)) => m.to_owned(),
            (Some(p), None) => format!("{p}: invalid"),
            (None, None) => return None,
        };
        Some(match self.severity.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => format!("[{s}] {text}"),
            None => text,
        })
    }
}

/// The validation results folded into one readable line.
pub fn summary(results: &[ValidationResult]) -> Option<String> {
    let parts: Vec<String> = results.iter().filter_map(ValidationResult::text).collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// A position document: every top-level field kept as raw JSON.
pub type Document = BTreeMap<String, Box<RawValue>>;

/// One `salaryInformation[]` entry as read, with the raw object kept for a faithful PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEntry {
    #[serde(default)]
    pub salary_type: Option<String>,
    #[serde(default)]
    pub contract_salary_type: Option<String>,
    #[serde(default)]
    pub monthly_salary: Option<Box<RawValue>>,
    #[serde(default)]
    pub hourly_salary: Option<Box<RawValue>>,
    #[serde(default)]
    pub yearly_salary: Option<Box<RawValue>>,
    #[serde(default)]
    pub active_start: Option<String>,
    #[serde(default)]
    pub active_end: Option<String>,
}

/// The error body. Visma does not publish it; the assumed shape is
/// `{"<message_field>": "...", "<details_field>": ["..." | {"field","message"}]}` with both
/// names configurable. Anything unreadable gives an empty body (the status still classifies).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub message: Option<String>,
    pub details: Vec<String>,
    pub code: Option<String>,
}

impl ApiError {
    pub fn parse(body: &[u8], message_field: &str, details_field: &str) -> Self {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return Self::default();
        };
        let text = |v: &Value| match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Object(o) => {
                let field = o
                    .get("field")
                    .or_else(|| o.get("property"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty());
                let message = o.get("message").and_then(Value::as_str);
                match (field, message) {
                    (Some(f), Some(m)) => Some(format!("{f}: {m}")),
                    (None, Some(m)) => Some(m.to_owned()),
                    (Some(f), None) => Some(format!("{f}: invalid")),
                    (None, None) => None,
                }
            }
            _ => None,
        };
        let message = map.get(message_field).and_then(text);
        let details = match map.get(details_field) {
            Some(Value::Array(items)) => items.iter().filter_map(text).collect(),
            Some(other) => text(other).into_iter().collect(),
            None => Vec::new(),
        };
        let code = match map.get("code") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Self {
            message,
            details,
            code,
        }
    }

    pub fn details_summary(&self) -> Option<String> {
        (!self.details.is_empty()).then(|| self.details.join("; "))
    }
}

/// Reads an amount from its raw JSON (a decimal string or a number) exactly; `null` and
/// anything unreadable is `None`.
pub fn decimal_from_raw(raw: &RawValue) -> Option<Decimal> {
    let text = raw.get().trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
        .trim();
    if text == "null" || text.is_empty() {
        return None;
    }
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// A JSON value as raw text (strings, dates, null).
pub fn raw(value: &Value) -> Result<Box<RawValue>, serde_json::Error> {
    RawValue::from_string(value.to_string())
}

/// A Visma date (`YYYY-MM-DD`, a time part ignored).
pub fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_exactly_from_strings_and_numbers() {
        let e: RawEntry = serde_json::from_str(
            r#"{"salaryType":"Period","monthlySalary":"12345678901234.5678","hourlySalary":0.1,"yearlySalary":null}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            e.monthly_salary.as_deref().and_then(decimal_from_raw),
            Decimal::from_str("12345678901234.5678").ok()
        );
        assert_eq!(
            e.hourly_salary.as_deref().and_then(decimal_from_raw),
            Decimal::from_str("0.1").ok()
        );
        assert_eq!(e.yearly_salary.as_deref().and_then(decimal_from_raw), None);
    }

    #[test]
    fn the_assumed_error_body_parses_in_both_detail_forms() {
        let e = ApiError::parse(
            br#"{"message":"Validation failed","errors":["bad date",{"field":"monthlySalary","message":"required"}],"code":"E42"}"#,
            "message",
            "errors",
        );
        assert_eq!(e.message.as_deref(), Some("Validation failed"));
        assert_eq!(
            e.details_summary().as_deref(),
            Some("bad date; monthlySalary: required")
        );
        assert_eq!(e.code.as_deref(), Some("E42"));
        let other = ApiError::parse(br#"{"title":"Nope","problems":["x"]}"#, "title", "problems");
        assert_eq!(other.message.as_deref(), Some("Nope"));
        assert_eq!(other.details, vec!["x".to_owned()]);
        assert_eq!(
            ApiError::parse(b"<html>", "message", "errors"),
            ApiError::default()
        );
    }

    #[test]
    fn a_failed_jobs_message_and_json_paths_are_read() {
        let job: Job = serde_json::from_str(
            r#"{"status":"Failed","message":"Position update failed","validationResults":[{"severity":"Error","message":"required","jsonPath":"$.salaryInformation[0].monthlySalary"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(job.message.as_deref(), Some("Position update failed"));
        assert_eq!(
            summary(&job.validation_results).as_deref(),
            Some("[Error] $.salaryInformation[0].monthlySalary: required")
        );
    }

    #[test]
    fn pages_read_data_and_the_next_field() {
        let p = Page::parse(br#"{"data":[{"id":"a"}],"nextCursor":"c2"}"#, "nextCursor")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.data.len(), p.next.as_deref()), (1, Some("c2")));
        let p = Page::parse(
            br#"{"cursor":{"nextToken":"t3"},"data":[{"id":"a"}]}"#,
            "cursor.nextToken",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.next.as_deref(), Some("t3"));
        // The nested form is found even when the setting names the top-level field.
        let p = Page::parse(br#"{"cursor":{"nextToken":"t4"},"data":[]}"#, "nextCursor")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.next.as_deref(), Some("t4"));
        let p = Page::parse(
            br#"{"cursor":{"nextToken":null},"data":[]}"#,
            "cursor.nextToken",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.next, None);
        let p = Page::parse(br#"{"data":[]}"#, "nextCursor").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.data.len(), p.next), (0, None));
        assert!(Page::parse(b"17", "nextCursor").is_err());
    }
}
