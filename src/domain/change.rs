//! The salary change event: its wire form (SPEC §4) and its validated domain form.
//!
//! Parsing goes through `serde_json::Value` on purpose: every rejection names the exact field
//! (`salary.amount`, `salary.end_date`) so the HR system's operator can fix the sender.
//! Amounts are decimal strings on the wire; a JSON number is refused because it may already
//! have passed through a float.

use super::ids::{EventId, IntegrationId, SalaryId};
use super::money::{Currency, Money};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// The largest amount accepted: a sanity bound, far above any real salary.
const AMOUNT_MAX: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);
/// Decimal places accepted on an amount (hourly wages can carry more than two).
const AMOUNT_SCALE_MAX: u32 = 4;
/// The longest note accepted, in characters.
const NOTE_LEN_MAX: usize = 1000;

/// What happened to the salary in the HR system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The period the amount is paid per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeriodUnit {
    Monthly,
    Yearly,
    Hourly,
}

impl PeriodUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
            Self::Hourly => "hourly",
        }
    }
}

/// How the HR system identifies the employee in the payroll system. At least one of the
/// payroll-side keys is present (checked at parse time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmployeeRef {
    pub hr_id: String,
    pub payroll_employee_id: Option<String>,
    pub employee_number: Option<String>,
    pub email: Option<String>,
}

/// The salary as the HR system holds it after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Salary {
    pub id: SalaryId,
    pub employee: EmployeeRef,
    pub pay: Money,
    pub period_unit: PeriodUnit,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub note: Option<String>,
}

impl Salary {
    /// The last day the salary is in force; `None` means open-ended.
    pub fn period(&self) -> Period {
        Period {
            start: self.start_date,
            end: self.end_date,
        }
    }
}

/// A closed date interval; `end: None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
}

impl Period {
    /// True when `self` lies wholly inside `outer`.
    pub fn within(&self, outer: &Period) -> bool {
        let starts_inside = outer.start <= self.start;
        let ends_inside = match (self.end, outer.end) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(mine), Some(theirs)) => mine <= theirs,
        };
        starts_inside && ends_inside
    }

    /// True when the two periods share at least one day.
    pub fn overlaps(&self, other: &Period) -> bool {
        let self_before_other = self.end.is_some_and(|end| end < other.start);
        let other_before_self = other.end.is_some_and(|end| end < self.start);
        !self_before_other && !other_before_self
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            Some(end) => write!(f, "{}..{}", self.start, end),
            None => write!(f, "{}..(open)", self.start),
        }
    }
}

/// One validated change to one salary: the unit of work of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalaryChange {
    pub event_id: EventId,
    pub integration_id: IntegrationId,
    pub kind: ChangeKind,
    pub occurred_at: DateTime<Utc>,
    pub salary: Salary,
}

/// An event that is well-formed JSON but breaks a rule; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The body is not JSON at all, or not an object or array of objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON: {0}")]
pub struct MalformedJson(pub String);

/// Parses a request body holding one event object or an array of them. The outer error is a
/// body that is not JSON; each element then validates on its own, so one bad event in a batch
/// does not hide the others.
pub fn parse_batch(
    body: &[u8],
) -> Result<Vec<Result<SalaryChange, ValidationError>>, MalformedJson> {
    let value: Value = serde_json::from_slice(body).map_err(|e| MalformedJson(e.to_string()))?;
    match value {
        Value::Array(items) => Ok(items.iter().map(SalaryChange::from_json).collect()),
        Value::Object(_) => Ok(vec![SalaryChange::from_json(&value)]),
        _ => Err(MalformedJson(
            "expected an event object or an array of event objects".into(),
        )),
    }
}

impl SalaryChange {
    /// Validates one event in its JSON wire form.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let root = value
            .as_object()
            .ok_or_else(|| ValidationError::new("(event)", "must be a JSON object"))?;
        let event_id = EventId::parse(required_str(root, "", "event_id")?)
            .map_err(|m| ValidationError::new("event_id", m))?;
        let integration_id = IntegrationId::parse(required_str(root, "", "integration_id")?)
            .map_err(|m| ValidationError::new("integration_id", m))?;
        let kind = match required_str(root, "", "kind")? {
            "created" => ChangeKind::Created,
            "updated" => ChangeKind::Updated,
            "deleted" => ChangeKind::Deleted,
            other => {
                return Err(ValidationError::new(
                    "kind",
                    format!("`{other}` is not one of created, updated, deleted"),
                ))
            }
        };
        let occurred_at = DateTime::parse_from_rfc3339(required_str(root, "", "occurred_at")?)
            .map_err(|e| {
                ValidationError::new("occurred_at", format!("not an RFC 3339 timestamp: {e}"))
            })?
            .with_timezone(&Utc);
        let salary = root
            .get("salary")
            .and_then(Value::as_object)
            .ok_or_else(|| ValidationError::new("salary", "required object is missing"))?;
        let salary = parse_salary(salary)?;
        Ok(Self {
            event_id,
            integration_id,
            kind,
            occurred_at,
            salary,
        })
    }
}

impl SalaryChange {
    /// The wire form of this change: what `from_json` reads back into an equal change. Used
    /// by the fuzz targets and property tests (accepted events round-trip) and by senders in
    /// tests.
    pub fn to_json(&self) -> Value {
        let s = &self.salary;
        let e = &s.employee;
        serde_json::json!({
            "event_id": self.event_id.as_str(),
            "integration_id": self.integration_id.as_str(),
            "kind": self.kind.as_str(),
            "occurred_at": self.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "salary": {
                "id": s.id.as_str(),
                "employee": {
                    "id": e.hr_id,
                    "payroll_employee_id": e.payroll_employee_id,
                    "employee_number": e.employee_number,
                    "email": e.email,
                },
                "amount": s.pay.amount.to_string(),
                "currency": s.pay.currency.as_str(),
                "period_unit": s.period_unit.as_str(),
                "start_date": s.start_date.format("%Y-%m-%d").to_string(),
                "end_date": s.end_date.map(|d| d.format("%Y-%m-%d").to_string()),
                "note": s.note,
            }
        })
    }
}

fn parse_salary(obj: &Map<String, Value>) -> Result<Salary, ValidationError> {
    const P: &str = "salary.";
    let id = SalaryId::parse(required_str(obj, P, "id")?)
        .map_err(|m| ValidationError::new("salary.id", m))?;
    let employee = obj
        .get("employee")
        .and_then(Value::as_object)
        .ok_or_else(|| ValidationError::new("salary.employee", "required object is missing"))?;
    let employee = parse_employee(employee)?;
    let amount = match obj.get("amount") {
        Some(Value::String(s)) => Decimal::from_str(s).map_err(|_| {
            ValidationError::new("salary.amount", format!("`{s}` is not a decimal number"))
        })?,
        Some(Value::Number(_)) => {
            return Err(ValidationError::new(
                "salary.amount",
                "must be a decimal string such as \"52000.00\", not a JSON number",
            ))
        }
        _ => {
            return Err(ValidationError::new(
                "salary.amount",
                "required string is missing",
            ))
        }
    };
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err(ValidationError::new(
            "salary.amount",
            "must not be negative",
        ));
    }
    if amount > AMOUNT_MAX {
        return Err(ValidationError::new(
            "salary.amount",
            format!("must be at most {AMOUNT_MAX}"),
        ));
    }
    if amount.scale() > AMOUNT_SCALE_MAX {
        return Err(ValidationError::new(
            "salary.amount",
            format!("must have at most {AMOUNT_SCALE_MAX} decimal places"),
        ));
    }
    let currency = Currency::parse(required_str(obj, P, "currency")?)
        .map_err(|m| ValidationError::new("salary.currency", m))?;
    let period_unit = match required_str(obj, P, "period_unit")? {
        "monthly" => PeriodUnit::Monthly,
        "yearly" => PeriodUnit::Yearly,
        "hourly" => PeriodUnit::Hourly,
        other => {
            return Err(ValidationError::new(
                "salary.period_unit",
                format!("`{other}` is not one of monthly, yearly, hourly"),
            ))
        }
    };
    let start_date = parse_date(required_str(obj, P, "start_date")?, "salary.start_date")?;
    let end_date = optional_str(obj, P, "end_date")?
        .map(|s| parse_date(s, "salary.end_date"))
        .transpose()?;
    if let Some(end) = end_date {
        if end < start_date {
            return Err(ValidationError::new(
                "salary.end_date",
                format!("{end} is before start_date {start_date}"),
            ));
        }
    }
    let note = optional_str(obj, P, "note")?.map(str::to_owned);
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > NOTE_LEN_MAX)
    {
        return Err(ValidationError::new(
            "salary.note",
            format!("must be at most {NOTE_LEN_MAX} characters"),
        ));
    }
    Ok(Salary {
        id,
        employee,
        pay: Money { amount, currency },
        period_unit,
        start_date,
        end_date,
        note,
    })
}

fn parse_employee(obj: &Map<String, Value>) -> Result<EmployeeRef, ValidationError> {
    const P: &str = "salary.employee.";
    let employee = EmployeeRef {
        hr_id: required_str(obj, P, "id")?.to_owned(),
        payroll_employee_id: optional_str(obj, P, "payroll_employee_id")?.map(str::to_owned),
        employee_number: optional_str(obj, P, "employee_number")?.map(str::to_owned),
        email: optional_str(obj, P, "email")?.map(str::to_owned),
    };
    if employee.payroll_employee_id.is_none()
        && employee.employee_number.is_none()
        && employee.email.is_none()
    {
        return Err(ValidationError::new(
            "salary.employee",
            "needs one of payroll_employee_id, employee_number, email to find the employee in payroll",
        ));
    }
    Ok(employee)
}

fn parse_date(s: &str, field: &str) -> Result<NaiveDate, ValidationError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| ValidationError::new(field, format!("`{s}` is not a date (YYYY-MM-DD)")))
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<&'a str, ValidationError> {
    optional_str(obj, prefix, key)?.ok_or_else(|| {
        ValidationError::new(&format!("{prefix}{key}"), "required string is missing")
    })
}

/// A string field that may be absent or null; any other JSON type is an error. Empty strings
/// count as absent.
fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Option<&'a str>, ValidationError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ValidationError::new(
            &format!("{prefix}{key}"),
            format!("must be a string, found {}", json_type(other)),
        )),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Value {
        json!({
            "event_id": "evt-2f6c",
            "integration_id": "acme-tripletex",
            "kind": "created",
            "occurred_at": "2026-11-25T10:00:00Z",
            "salary": {
                "id": "sal-123",
                "employee": {"id": "emp-9", "payroll_employee_id": "1234", "employee_number": "17", "email": "kari@example.no"},
                "amount": "52000.00",
                "currency": "NOK",
                "period_unit": "monthly",
                "start_date": "2026-01-01",
                "end_date": null,
                "note": "New agreement"
            }
        })
    }

    fn field_of(v: Value) -> String {
        match SalaryChange::from_json(&v) {
            Ok(_) => "(accepted)".into(),
            Err(e) => e.field,
        }
    }

    #[test]
    fn the_spec_example_parses() {
        let change = SalaryChange::from_json(&sample()).expect("the SPEC example is valid");
        assert_eq!(change.kind, ChangeKind::Created);
        assert_eq!(change.salary.pay.amount, Decimal::new(5_200_000, 2));
        assert_eq!(change.salary.pay.currency.as_str(), "NOK");
        assert_eq!(change.salary.end_date, None);
    }

    #[test]
    fn each_rejection_names_its_field() {
        let mut v = sample();
        v["salary"]["amount"] = json!("-1");
        assert_eq!(field_of(v), "salary.amount");
        let mut v = sample();
        v["salary"]["amount"] = json!(52000.0);
        assert_eq!(field_of(v), "salary.amount");
        let mut v = sample();
        v["salary"]["end_date"] = json!("2025-12-31");
        assert_eq!(field_of(v), "salary.end_date");
        let mut v = sample();
        v["salary"]["currency"] = json!("kr");
        assert_eq!(field_of(v), "salary.currency");
        let mut v = sample();
        v["salary"]["period_unit"] = json!("weekly");
        assert_eq!(field_of(v), "salary.period_unit");
        let mut v = sample();
        v["kind"] = json!("moved");
        assert_eq!(field_of(v), "kind");
        let mut v = sample();
        v["salary"]["employee"] = json!({"id": "emp-9"});
        assert_eq!(field_of(v), "salary.employee");
        let mut v = sample();
        v["occurred_at"] = json!("yesterday");
        assert_eq!(field_of(v), "occurred_at");
    }

    #[test]
    fn a_batch_validates_each_element_on_its_own() {
        let mut bad = sample();
        bad["salary"]["start_date"] = json!("2026-13-01");
        let body = serde_json::to_vec(&json!([sample(), bad])).expect("serializes");
        let parsed = parse_batch(&body).expect("is JSON");
        assert!(parsed[0].is_ok());
        assert_eq!(
            parsed[1].as_ref().map_err(|e| e.field.as_str()).err(),
            Some("salary.start_date")
        );
        assert!(parse_batch(b"{not json").is_err());
        assert!(parse_batch(b"17").is_err());
    }

    #[test]
    fn periods_overlap_and_nest_on_whole_days() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let jan = Period {
            start: d("2026-01-01"),
            end: Some(d("2026-01-31")),
        };
        let feb_on = Period {
            start: d("2026-02-01"),
            end: None,
        };
        let year = Period {
            start: d("2026-01-01"),
            end: Some(d("2026-12-31")),
        };
        assert!(!jan.overlaps(&feb_on));
        assert!(jan.overlaps(&year));
        assert!(jan.within(&year));
        assert!(!feb_on.within(&year));
        assert!(year.within(&Period {
            start: d("2020-01-01"),
            end: None
        }));
    }
}

/// Builders for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// The SPEC example event with the given kind.
    pub(crate) fn change(kind: ChangeKind) -> SalaryChange {
        let mut v = super::tests::sample();
        v["kind"] = serde_json::Value::String(kind.as_str().into());
        SalaryChange::from_json(&v).unwrap_or_else(|e| panic!("sample is valid: {e}"))
    }
}
