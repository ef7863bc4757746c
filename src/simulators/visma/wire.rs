//! The simulator's JSON: the assumed error body, the OAuth error body, employees, positions,
//! jobs, the `{"data":[...],"nextCursor":..}` list envelope, and how a position PUT's body
//! is read.
//!
//! Architecture Invariant: amounts are `Decimal` everywhere; on the wire they are decimal
//! strings (as Visma's documents show them), and a PUT may send them as strings or numbers,
//! read from their raw text. Nothing here panics on client input: a body that cannot be read
//! becomes an [`ApiError`] naming the field.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::model::{CursorShape, Employee, JobView, Position, SalaryEntry};

/// An error answer: `{"message": "...", "errors": ["..."]}` (the shape salary-sync assumes,
/// since Visma does not publish one), or an OAuth error from the token endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub errors: Vec<String>,
    /// The OAuth `error` code, for the token endpoint.
    pub oauth: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            errors: Vec::new(),
            oauth: None,
        }
    }

    pub(crate) fn oauth(status: u16, code: &'static str, description: &str) -> Self {
        Self {
            oauth: Some(code),
            ..Self::new(status, description)
        }
    }

    pub(crate) fn invalid(errors: Vec<String>) -> Self {
        Self {
            errors,
            ..Self::new(400, "The request body is invalid.")
        }
    }

    pub(crate) fn body(&self) -> Value {
        match self.oauth {
            Some(code) => json!({"error": code, "error_description": self.message}),
            None => json!({"message": self.message, "errors": self.errors}),
        }
    }
}

fn date(d: Option<NaiveDate>) -> Value {
    d.map_or(Value::Null, |d| json!(d.to_string()))
}

pub(crate) fn employee(e: &Employee) -> Value {
    json!({
        "id": e.id,
        "number": e.number,
        "email": e.email,
        "personNames": [{"firstName": e.first_name, "lastName": e.last_name}],
    })
}

pub(crate) fn salary_entry(e: &SalaryEntry) -> Value {
    let mut v = json!({
        "salaryType": e.salary_type,
        "activeStart": date(e.active_start),
        "activeEnd": date(e.active_end),
    });
    if let Some(c) = &e.contract_salary_type {
        v["contractSalaryType"] = json!(c);
    }
    for (field, amount) in [
        ("monthlySalary", e.monthly_salary),
        ("hourlySalary", e.hourly_salary),
        ("yearlySalary", e.yearly_salary),
    ] {
        if let Some(a) = amount {
            v[field] = json!(a.to_string());
        }
    }
    v
}

pub(crate) fn position(p: &Position) -> Value {
    json!({
        "id": p.id,
        "employeeId": p.employee_id,
        "activeStart": p.active_start.to_string(),
        "activeEnd": date(p.active_end),
        "typeOfPosition": "Ordinary",
        "partTimeFactors": [{"value": 100}],
        "salaryInformation": p.salary.iter().map(salary_entry).collect::<Vec<_>>(),
    })
}

pub(crate) fn job(j: &JobView) -> Value {
    json!({
        "id": j.id,
        "correlationId": j.correlation_id,
        "artifactId": j.position_id,
        "artifactType": "Position",
        "action": "Update",
        "created": j.created.to_rfc3339(),
        "status": j.status.as_str(),
        "statusCode": j.status.code(),
        "validationResults": j.validation_results.iter()
            .map(|r| json!({"severity": r.severity, "message": r.message}))
            .collect::<Vec<_>>(),
    })
}

/// One page of `all`: `offset` is the cursor (an item index), `size` the page size.
pub(crate) fn page(all: Vec<Value>, offset: usize, size: usize, shape: CursorShape) -> Value {
    let size = size.clamp(1, 1000);
    let end = offset.saturating_add(size).min(all.len());
    let data: Vec<Value> = all
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut v = json!({ "data": data });
    if end < all.len() {
        match shape {
            CursorShape::Nested => v["cursor"] = json!({ "nextToken": end.to_string() }),
            CursorShape::TopLevel => v["nextCursor"] = json!(end.to_string()),
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryIn {
    #[serde(default)]
    salary_type: Option<String>,
    #[serde(default)]
    contract_salary_type: Option<String>,
    #[serde(default)]
    monthly_salary: Option<Box<RawValue>>,
    #[serde(default)]
    hourly_salary: Option<Box<RawValue>>,
    #[serde(default)]
    yearly_salary: Option<Box<RawValue>>,
    #[serde(default)]
    active_start: Option<String>,
    #[serde(default)]
    active_end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PositionIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    salary_information: Option<Vec<Box<RawValue>>>,
}

fn amount(
    i: usize,
    field: &str,
    raw: &Option<Box<RawValue>>,
    errors: &mut Vec<String>,
) -> Option<Decimal> {
    let text = raw.as_ref()?.get().trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if text == "null" {
        return None;
    }
    match Decimal::from_str(text).or_else(|_| Decimal::from_scientific(text)) {
        Ok(d) => Some(d),
        Err(_) => {
            errors.push(format!(
                "salaryInformation[{i}].{field}: `{text}` is not a number."
            ));
            None
        }
    }
}

/// Reads a position PUT body: the salary timeline it asks for. A missing or null
/// `salaryInformation` is an empty timeline (a PUT overwrites the whole position).
pub(crate) fn position_input(body: &[u8], path_id: &str) -> Result<Vec<SalaryEntry>, ApiError> {
    // serde would read a struct from an array too; a position is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid(vec![
            "body: not a position object.".into()
        ]));
    }
    let input: PositionIn = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(vec![format!("body: not a position object ({e}).")]))?;
    if input.id.as_deref().is_some_and(|id| id != path_id) {
        return Err(ApiError::invalid(vec![format!(
            "id: the body's id differs from the path's {path_id}."
        )]));
    }
    let mut errors = Vec::new();
    let mut salary = Vec::new();
    for (i, raw) in input
        .salary_information
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let e: EntryIn = match serde_json::from_str(raw.get()) {
            Ok(e) => e,
            Err(err) => {
                errors.push(format!("salaryInformation[{i}]: {err}."));
                continue;
            }
        };
        let mut day = |field: &str, v: &Option<String>| match v.as_deref() {
            None | Some("") => None,
            Some(s) => match NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.push(format!(
                        "salaryInformation[{i}].{field}: `{s}` is not a date."
                    ));
                    None
                }
            },
        };
        let active_start = day("activeStart", &e.active_start);
        let active_end = day("activeEnd", &e.active_end);
        let Some(salary_type) = e.salary_type.filter(|t| !t.is_empty()) else {
            errors.push(format!("salaryInformation[{i}].salaryType: required."));
            continue;
        };
        salary.push(SalaryEntry {
            salary_type,
            contract_salary_type: e.contract_salary_type,
            monthly_salary: amount(i, "monthlySalary", &e.monthly_salary, &mut errors),
            hourly_salary: amount(i, "hourlySalary", &e.hourly_salary, &mut errors),
            yearly_salary: amount(i, "yearlySalary", &e.yearly_salary, &mut errors),
            active_start,
            active_end,
        });
    }
    if errors.is_empty() {
        Ok(salary)
    } else {
        Err(ApiError::invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_body_is_read_exactly_and_errors_name_fields() {
        let got = position_input(
            br#"{"id":"p","salaryInformation":[{"salaryType":"Period","contractSalaryType":"monthly",
                "monthlySalary":"12345678901234.5678","activeStart":"2026-01-01","activeEnd":null},
                {"salaryType":"Period","hourlySalary":0.1,"activeStart":"2025-01-01"}]}"#,
            "p",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            got[0].monthly_salary,
            Decimal::from_str("12345678901234.5678").ok()
        );
        assert_eq!(got[1].hourly_salary, Decimal::from_str("0.1").ok());
        assert_eq!(got[1].contract_salary_type, None);
        let bad = position_input(
            br#"{"salaryInformation":[{"salaryType":"Period","monthlySalary":"x","activeStart":"soon"}]}"#,
            "p",
        )
        .err()
        .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(bad.status, 400);
        assert_eq!(bad.errors.len(), 2, "{:?}", bad.errors);
        assert!(position_input(br#"{"id":"other"}"#, "p").is_err());
        assert!(position_input(b"[]", "p").is_err());
    }

    #[test]
    fn pages_carry_a_cursor_until_the_end() {
        let all: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let first = page(all.clone(), 0, 2, CursorShape::Nested);
        assert_eq!(first["cursor"]["nextToken"], json!("2"));
        let first = page(all.clone(), 0, 2, CursorShape::TopLevel);
        assert_eq!(first["nextCursor"], json!("2"));
        let last = page(all, 4, 2, CursorShape::Nested);
        assert_eq!(last["data"], json!([4]));
        assert!(last.get("cursor").is_none());
    }
}
