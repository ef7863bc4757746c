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
/// The longest note accepted, in characters (at most 4000 bytes of UTF-8).
pub const NOTE_LEN_MAX: usize = 1000;
/// The longest employee key accepted (`salary.employee.id`, `payroll_employee_id`,
/// `employee_number`), in bytes: the same bound as every external id.
pub const EMPLOYEE_KEY_LEN_MAX: usize = super::ids::EXTERNAL_ID_LEN_MAX;
/// The longest e-mail address accepted, in bytes (the SMTP path limit, RFC 5321 §4.5.3.1.3).
pub const EMAIL_LEN_MAX: usize = 254;
/// The most events one request may carry; a longer batch is refused whole before any element
/// is validated, so the work and the answer stay bounded.
pub const BATCH_EVENTS_MAX: usize = 1000;
/// The first and last calendar year a date may fall in: outside them it is a typo.
pub const YEAR_MIN: i32 = 1900;
pub const YEAR_MAX: i32 = 2200;

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

/// Why a body is not a batch of events at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Malformed(#[from] MalformedJson),
    #[error("the batch holds {count} events; at most {BATCH_EVENTS_MAX} per request, send smaller batches")]
    TooMany { count: usize },
}

/// Parses a request body holding one event object or an array of them. The outer error is a
/// body that is not JSON, or a batch longer than `BATCH_EVENTS_MAX` (counted on the raw
/// elements, before any is turned into a JSON tree); each element then validates on its
/// own, so one bad event in a batch does not hide the others.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Result<SalaryChange, ValidationError>>, BatchError> {
    let malformed = |e: serde_json::Error| MalformedJson(e.to_string());
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(body).map_err(malformed)?;
        if items.len() > BATCH_EVENTS_MAX {
            return Err(BatchError::TooMany { count: items.len() });
        }
        return items
            .into_iter()
            .map(|raw| {
                let value: Value = serde_json::from_str(raw.get()).map_err(malformed)?;
                Ok(SalaryChange::from_json(&value))
            })
            .collect();
    }
    let value: Value = serde_json::from_slice(body).map_err(malformed)?;
    match value {
        Value::Object(_) => Ok(vec![SalaryChange::from_json(&value)]),
        _ => Err(
            MalformedJson("expected an event object or an array of event objects".into()).into(),
        ),
    }
}

/// An event whose `occurred_at` lies more than `skew_max_s` seconds after `now` is refused: a
/// typo such as year 9999 would otherwise supersede every later real change to the salary.
pub fn check_occurred_at(
    change: &SalaryChange,
    now: DateTime<Utc>,
    skew_max_s: i64,
) -> Result<(), ValidationError> {
    let ahead_s = (change.occurred_at - now).num_seconds();
    if ahead_s > skew_max_s {
        return Err(ValidationError::new(
            "occurred_at",
            format!(
                "{} is {ahead_s} s in the future by our clock; at most {skew_max_s} s is accepted (check the sender's clock)",
                change.occurred_at.to_rfc3339()
            ),
        ));
    }
    Ok(())
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
        check_year(occurred_at.date_naive(), "occurred_at")?;
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
        Some(Value::String(s)) => parse_amount(s)?,
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
    // A note may hold line breaks and tabs (it is free text; every log and table escapes
    // them); any other control character is refused.
    if note.as_ref().is_some_and(|n| {
        n.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    }) {
        return Err(ValidationError::new(
            "salary.note",
            "must not contain control characters other than line breaks and tabs",
        ));
    }
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
    let key = |name: &str, len_max: usize| -> Result<Option<String>, ValidationError> {
        let Some(value) = optional_str(obj, P, name)? else {
            return Ok(None);
        };
        check_text(value, &format!("{P}{name}"), len_max)?;
        Ok(Some(value.to_owned()))
    };
    let hr_id = required_str(obj, P, "id")?;
    check_text(hr_id, "salary.employee.id", EMPLOYEE_KEY_LEN_MAX)?;
    let employee = EmployeeRef {
        hr_id: hr_id.to_owned(),
        payroll_employee_id: key("payroll_employee_id", EMPLOYEE_KEY_LEN_MAX)?,
        employee_number: key("employee_number", EMPLOYEE_KEY_LEN_MAX)?,
        email: key("email", EMAIL_LEN_MAX)?,
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

/// A single-line key: at most `len_max` bytes, no control characters (they would forge log
/// lines and table rows).
fn check_text(value: &str, field: &str, len_max: usize) -> Result<(), ValidationError> {
    if value.len() > len_max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {len_max} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// An amount in its one plain spelling: digits, optionally a point and more digits. Refused:
/// exponents (`1e5`), digit separators (`1_000`), a sign (`+5`, `-0`; a negative amount gets
/// its own message), and a point without digits on both sides (`5.`, `.5`), which
/// `Decimal::from_str` would all take.
fn parse_amount(s: &str) -> Result<Decimal, ValidationError> {
    const FIELD: &str = "salary.amount";
    let not_decimal = || {
        ValidationError::new(
            FIELD,
            format!("`{s}` is not a decimal number (digits, optionally `.` and digits, e.g. \"52000.00\")"),
        )
    };
    if s.len() > 64 {
        return Err(not_decimal());
    }
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return Err(not_decimal());
    }
    if negative {
        return Err(ValidationError::new(FIELD, "must not be negative"));
    }
    Decimal::from_str(unsigned).map_err(|_| not_decimal())
}

/// A calendar date in its one spelling, `YYYY-MM-DD` zero-padded, between `YEAR_MIN` and
/// `YEAR_MAX` (chrono alone also takes `2026-1-1` and `+2026-01-01`).
fn parse_date(s: &str, field: &str) -> Result<NaiveDate, ValidationError> {
    let bad = || ValidationError::new(field, format!("`{s}` is not a date (YYYY-MM-DD)"));
    let shape = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape {
        return Err(bad());
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    check_year(date, field)?;
    Ok(date)
}

fn check_year(date: NaiveDate, field: &str) -> Result<(), ValidationError> {
    use chrono::Datelike;
    if !(YEAR_MIN..=YEAR_MAX).contains(&date.year()) {
        return Err(ValidationError::new(
            field,
            format!("{date} is outside the years {YEAR_MIN}..{YEAR_MAX}"),
        ));
    }
    Ok(())
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

    /// Issue 13, Validation: second spellings of an amount that `Decimal::from_str` took.
    #[test]
    fn an_amount_has_one_plain_spelling() {
        for bad in [
            "1e5", "1_000", "+5", "5.", ".5", "-0", " 5", "5 ", "0x10", "", "-",
        ] {
            let mut v = sample();
            v["salary"]["amount"] = json!(bad);
            assert_eq!(field_of(v), "salary.amount", "{bad:?} accepted");
        }
        for good in ["0", "5", "52000.00", "0.5", "1000000000"] {
            let mut v = sample();
            v["salary"]["amount"] = json!(good);
            assert_eq!(field_of(v), "(accepted)", "{good:?} refused");
        }
    }

    /// Issue 13, Validation: dates outside 1900..2200 and dates not zero-padded.
    #[test]
    fn a_date_is_zero_padded_and_within_the_years() {
        for bad in [
            "2026-1-01",
            "2026-01-1",
            "+2026-01-01",
            "1899-12-31",
            "2201-01-01",
            "02026-01-01",
        ] {
            let mut v = sample();
            v["salary"]["start_date"] = json!(bad);
            assert_eq!(field_of(v), "salary.start_date", "{bad:?} accepted");
        }
        let mut v = sample();
        v["salary"]["end_date"] = json!("9999-12-31");
        assert_eq!(field_of(v), "salary.end_date");
        let mut v = sample();
        v["occurred_at"] = json!("9999-01-01T00:00:00Z");
        assert_eq!(field_of(v), "occurred_at");
        let mut v = sample();
        v["salary"]["end_date"] = json!("2200-12-31");
        assert_eq!(field_of(v), "(accepted)");
    }

    /// Issue 13 points 2 and 11: every string field is bounded and free of control characters,
    /// each refusal naming its field.
    #[test]
    fn every_string_field_is_bounded_and_printable() {
        let long = "x".repeat(300);
        for (path, bad) in [
            ("salary.employee.id", json!(long)),
            ("salary.employee.payroll_employee_id", json!(long)),
            ("salary.employee.employee_number", json!(long)),
            ("salary.employee.email", json!(format!("{long}@example.no"))),
            ("salary.employee.id", json!("emp\n2026-11-25 INFO forged")),
            ("salary.employee.email", json!("kari@example.no\u{1b}[2J")),
            ("salary.employee.employee_number", json!("17\r")),
            ("event_id", json!("evt\u{7}")),
            ("salary.note", json!("x".repeat(NOTE_LEN_MAX + 1))),
            ("salary.note", json!("bell\u{7}")),
        ] {
            let mut v = sample();
            let keys: Vec<&str> = path.split('.').collect();
            let slot = keys.iter().fold(&mut v, |at, key| &mut at[*key]);
            *slot = bad;
            assert_eq!(field_of(v), path);
        }
        let mut v = sample();
        v["salary"]["note"] = json!("line one\nline two\tand a tab");
        assert_eq!(field_of(v), "(accepted)");
    }

    #[test]
    fn a_batch_longer_than_the_bound_is_refused_before_validation() {
        let items = vec![json!(1); BATCH_EVENTS_MAX + 1];
        let body = serde_json::to_vec(&items).unwrap_or_default();
        assert_eq!(
            parse_batch(&body).err(),
            Some(BatchError::TooMany {
                count: BATCH_EVENTS_MAX + 1
            })
        );
        let body = serde_json::to_vec(&vec![sample(); BATCH_EVENTS_MAX]).unwrap_or_default();
        assert_eq!(
            parse_batch(&body).map(|p| p.len()).ok(),
            Some(BATCH_EVENTS_MAX)
        );
    }

    #[test]
    fn an_occurred_at_beyond_the_skew_is_refused() {
        let change = SalaryChange::from_json(&sample()).unwrap_or_else(|e| panic!("{e}"));
        let at = change.occurred_at;
        assert!(check_occurred_at(&change, at, 0).is_ok());
        let e = check_occurred_at(&change, at - chrono::Duration::seconds(61), 60).err();
        assert_eq!(e.map(|e| e.field), Some("occurred_at".to_owned()));
        assert!(check_occurred_at(&change, at - chrono::Duration::seconds(60), 60).is_ok());
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
