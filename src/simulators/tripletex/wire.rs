//! Tripletex's JSON: the error envelope, the single and list envelopes, how records are written,
//! and how a details body is read.
//!
//! Architecture Invariant: amounts are `Decimal` everywhere except at the edge of this file, where
//! they become JSON numbers (the spec's `type: number`). Nothing here panics on client input: a
//! body that cannot be read becomes an [`ApiError`] with the field named.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Map, Number, Value};

use super::model::{
    Company, DetailsRow, Employee, Employment, RemunerationType, Seed, Session, Terms,
};

/// An error answer in Tripletex's envelope
/// (`{"status","code","message","developerMessage","validationMessages","requestId"}`).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Tripletex's own code (3000 auth, 6000 not found, 8000 revision, 15000 validation, ...).
    pub code: u32,
    /// The human message.
    pub message: String,
    /// `(field, message)` pairs for validation errors.
    pub validation: Vec<(String, String)>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            validation: Vec::new(),
        }
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(401, 3000, message)
    }

    pub(crate) fn forbidden(message: &str) -> Self {
        Self::new(403, 9000, message)
    }

    pub(crate) fn not_found(what: &str, id: i64) -> Self {
        Self::new(404, 6000, format!("Object not found: {what} {id}."))
    }

    pub(crate) fn no_route(method: &str, path: &str) -> Self {
        Self::new(404, 6000, format!("No endpoint {method} {path}."))
    }

    pub(crate) fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            405,
            4000,
            format!("Method {method} is not allowed on {path}."),
        )
    }

    pub(crate) fn revision(id: i64, sent: i32, stored: i32) -> Self {
        Self::new(
            409,
            8000,
            format!(
                "Revision conflict: object {id} has version {stored}, the request sent {sent}. \
                 Fetch the object again and retry."
            ),
        )
    }

    pub(crate) fn duplicate(message: String) -> Self {
        Self::new(409, 14000, message)
    }

    /// A 422 with one validation message per field. `code` is 15000 (value), 16000 (mapping),
    /// 21000 (parameter) or 22000 (invalid JSON).
    pub(crate) fn validation(code: u32, fields: Vec<(&str, String)>) -> Self {
        let message = match code {
            16000 => "Mapping failed.",
            21000 => "Illegal parameter.",
            22000 => "Invalid JSON.",
            _ => "Validation failed.",
        };
        Self {
            validation: fields
                .into_iter()
                .map(|(f, m)| (f.to_string(), m))
                .collect(),
            ..Self::new(422, code, message)
        }
    }

    pub(crate) fn internal(message: &str) -> Self {
        Self::new(500, 1000, message)
    }

    /// The envelope body.
    pub(crate) fn body(&self, request_id: &str) -> Value {
        let mut body = json!({
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "link": "https://tripletex.no/v2-docs/",
            "developerMessage": format!("salary-sync simulator: {}", self.message),
            "requestId": request_id,
        });
        if !self.validation.is_empty() {
            body["validationMessages"] = self
                .validation
                .iter()
                .map(|(field, message)| json!({"field": field, "message": message}))
                .collect();
        }
        body
    }
}

/// A Decimal as a JSON number.
///
/// The crate does not enable serde_json's `arbitrary_precision`, so the number goes through
/// f64. Any amount with at most 15 significant digits (every realistic salary with two decimals)
/// survives exactly: serde_json writes the shortest text that parses back to the same f64.
pub(crate) fn number(d: Decimal) -> Value {
    let n = match d.normalize().to_i64() {
        Some(i) if Decimal::from(i) == d => Some(Number::from(i)),
        _ => d.to_f64().and_then(Number::from_f64),
    };
    n.map_or(Value::Null, Value::Number)
}

/// A JSON number as a Decimal, from its text so no binary rounding is added.
fn decimal(n: &Number) -> Option<Decimal> {
    let text = n.to_string();
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// The `{id, url}` reference Tripletex writes for a linked object.
fn reference(base: &str, path: &str, id: i64) -> Value {
    json!({"id": id, "url": format!("{base}/{path}/{id}")})
}

/// `base` is the host part of `url` fields, e.g. `127.0.0.1:5000/v2` (Tripletex writes
/// `tripletex.no/v2/...`).
///
/// `employments` are full Employment objects, exactly as `GET /employee/employment` lists them
/// (Tripletex nests them so when `fields` asks for `employments(...)`; the simulator always
/// does, whatever `fields` says).
pub(crate) fn employee(base: &str, company: &Company, e: &Employee) -> Value {
    json!({
        "id": e.id,
        "version": 0,
        "url": format!("{base}/employee/{}", e.id),
        "firstName": e.first_name,
        "lastName": e.last_name,
        "displayName": format!("{} {}", e.first_name, e.last_name),
        "employeeNumber": e.employee_number,
        "email": e.email,
        "employments": company
            .employments_of(Some(e.id))
            .into_iter()
            .map(|m| employment(base, m, &company.details_of(Some(&[m.id]))))
            .collect::<Vec<_>>(),
    })
}

pub(crate) fn employment(base: &str, m: &Employment, details: &[&DetailsRow]) -> Value {
    let mut value = json!({
        "id": m.id,
        "version": 0,
        "url": format!("{base}/employee/employment/{}", m.id),
        "employee": reference(base, "employee", m.employee_id),
        "employmentId": m.id.to_string(),
        "startDate": m.start_date.to_string(),
        "isMainEmployer": true,
        "taxDeductionCode": "loennFraHovedarbeidsgiver",
        "employmentDetails": details
            .iter()
            .map(|d| reference(base, "employee/employment/details", d.id))
            .collect::<Vec<_>>(),
    });
    // The spec has no nullable fields: an open employment leaves `endDate` out.
    if let Some(end) = m.end_date {
        value["endDate"] = Value::String(end.to_string());
    }
    if let Some(latest) = details.iter().max_by_key(|d| (d.date, d.id)) {
        value["latestSalary"] = reference(base, "employee/employment/details", latest.id);
    }
    value
}

pub(crate) fn details(base: &str, d: &DetailsRow) -> Value {
    let mut value = json!({
        "id": d.id,
        "version": d.version,
        "url": format!("{base}/employee/employment/details/{}", d.id),
        "employment": reference(base, "employee/employment", d.employment_id),
        "date": d.date.to_string(),
        "employmentType": d.terms.employment_type,
        "employmentForm": d.terms.employment_form,
        "workingHoursScheme": d.terms.working_hours_scheme,
        "shiftDurationHours": number(d.terms.shift_duration_hours),
        "percentageOfFullTimeEquivalent": number(d.percentage_of_full_time_equivalent),
        "annualSalary": number(d.annual_salary),
        "hourlyWage": number(d.hourly_wage),
        "monthlySalary": number(d.monthly_salary()),
    });
    if let Some(t) = d.remuneration_type {
        value["remunerationType"] = Value::String(t.as_str().into());
    }
    // References are `{id, url}` (the spec has no nullable fields: an unset one is left out).
    if let Some(id) = d.terms.occupation_code_id {
        value["occupationCode"] = reference(base, "employee/employment/occupationCode", id);
    }
    if let Some(id) = d.terms.payroll_tax_municipality_id {
        value["payrollTaxMunicipalityId"] = reference(base, "municipality", id);
    }
    if let Some(m) = &d.terms.maritime_employment {
        value["maritimeEmployment"] = m.clone();
    }
    value
}

pub(crate) fn company(base: &str, seed: &Seed) -> Value {
    json!({
        "id": seed.company_id,
        "version": 0,
        "url": format!("{base}/company/{}", seed.company_id),
        "name": seed.company_name,
        "displayName": seed.company_name,
        "type": "AS",
        "currency": {
            "id": currency_id(&seed.currency),
            "version": 0,
            "url": format!("{base}/currency/{}", currency_id(&seed.currency)),
            "code": seed.currency,
            "description": seed.currency,
            "factor": 1,
            "displayName": seed.currency,
            "isDisabled": false,
        },
    })
}

/// A stable small id per currency code (Tripletex has NOK = 1).
fn currency_id(code: &str) -> i64 {
    match code {
        "NOK" => 1,
        other => {
            1000 + other
                .bytes()
                .fold(0i64, |acc, b| acc * 31 % 100_000 + i64::from(b))
        }
    }
}

pub(crate) fn who_am_i(base: &str, seed: &Seed) -> Value {
    json!({
        "employeeId": seed.api_user_employee_id,
        "actualEmployeeId": seed.api_user_employee_id,
        "employee": reference(base, "employee", seed.api_user_employee_id),
        "companyId": seed.company_id,
        "company": reference(base, "company", seed.company_id),
        "language": "no",
        "loggedInWithConnect": false,
        "employeeIsProxy": false,
    })
}

pub(crate) fn session(base: &str, token: &str, s: &Session) -> Value {
    json!({
        "id": s.id,
        "version": 1,
        "url": format!("{base}/token/session/{}", s.id),
        "consumerToken": {"id": 1, "url": format!("{base}/token/consumer/1")},
        "employeeToken": {"id": 1, "url": format!("{base}/token/employee/1")},
        "expirationDate": s.expiration_date.to_string(),
        "token": token,
    })
}

/// `{"value": ...}`.
pub(crate) fn single(value: Value) -> Value {
    json!({ "value": value })
}

/// `{"fullResultSize","from","count","versionDigest","values"}`, one page of `all`.
pub(crate) fn list(all: Vec<Value>, from: usize, count: usize) -> Value {
    let full = all.len();
    let page: Vec<Value> = all.into_iter().skip(from).take(count).collect();
    let mut body = json!({
        "fullResultSize": full,
        "from": from,
        "count": page.len(),
        "values": page,
    });
    // Tripletex writes null for an empty result; the spec has no nullable fields, so the
    // simulator leaves the field out instead.
    if full > 0 {
        body["versionDigest"] = Value::String(digest(&body["values"]));
    }
    body
}

/// FNV-1a over the page's JSON: changes whenever any listed record changes.
fn digest(values: &Value) -> String {
    let hash = values
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// The fields of a details body the simulator reads. Absent fields are `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct DetailsInput {
    pub version: Option<i32>,
    pub employment_id: Option<i64>,
    pub date: Option<NaiveDate>,
    pub remuneration_type: Option<RemunerationType>,
    pub annual_salary: Option<Decimal>,
    pub hourly_wage: Option<Decimal>,
    pub percentage_of_full_time_equivalent: Option<Decimal>,
    pub terms: TermsInput,
}

/// The other writable terms of a details body, each `None` when absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TermsInput {
    pub employment_type: Option<String>,
    pub employment_form: Option<String>,
    pub working_hours_scheme: Option<String>,
    pub shift_duration_hours: Option<Decimal>,
    pub occupation_code_id: Option<i64>,
    pub payroll_tax_municipality_id: Option<i64>,
    pub maritime_employment: Option<Value>,
}

impl TermsInput {
    /// `base` with the fields this body sets replaced: a PUT applies it to the stored row (a
    /// partial update), a POST to [`Terms::unset`].
    pub(crate) fn apply(self, base: Terms) -> Terms {
        Terms {
            employment_type: self.employment_type.unwrap_or(base.employment_type),
            employment_form: self.employment_form.unwrap_or(base.employment_form),
            working_hours_scheme: self
                .working_hours_scheme
                .unwrap_or(base.working_hours_scheme),
            shift_duration_hours: self
                .shift_duration_hours
                .unwrap_or(base.shift_duration_hours),
            occupation_code_id: self.occupation_code_id.or(base.occupation_code_id),
            payroll_tax_municipality_id: self
                .payroll_tax_municipality_id
                .or(base.payroll_tax_municipality_id),
            maritime_employment: self.maritime_employment.or(base.maritime_employment),
        }
    }
}

/// The spec's enums for the terms' string fields (`components.schemas.EmploymentDetails`).
const EMPLOYMENT_TYPES: &[&str] = &["ORDINARY", "MARITIME", "FREELANCE", "NOT_CHOSEN"];
const EMPLOYMENT_FORMS: &[&str] = &[
    "PERMANENT",
    "TEMPORARY",
    "PERMANENT_AND_HIRED_OUT",
    "TEMPORARY_AND_HIRED_OUT",
    "TEMPORARY_ON_CALL",
    "NOT_CHOSEN",
];
const WORKING_HOURS_SCHEMES: &[&str] = &[
    "NOT_SHIFT",
    "ROUND_THE_CLOCK",
    "SHIFT_365",
    "OFFSHORE_336",
    "CONTINUOUS",
    "OTHER_SHIFT",
    "NOT_CHOSEN",
];

/// Reads a details body. Invalid JSON is 22000; a field of the wrong type 16000; a value out of
/// range (a negative amount, a date that is not a date) 15000. Every bad field is named.
pub(crate) fn details_input(body: &[u8]) -> Result<DetailsInput, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(22000, vec![("body", format!("The body is not JSON: {e}."))])
    })?;
    let Value::Object(fields) = value else {
        return Err(ApiError::validation(
            22000,
            vec![("body", "The body must be a JSON object.".into())],
        ));
    };
    let mut input = DetailsInput::default();
    let mut mapping = Vec::new();
    let mut values = Vec::new();

    match fields.get("version") {
        None => {}
        Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => input.version = Some(n),
            None => mapping.push(("version", "Must be an integer.".to_string())),
        },
    }
    match fields.get("employment") {
        None => {}
        Some(Value::Object(employment)) => match employment.get("id").and_then(Value::as_i64) {
            Some(id) => input.employment_id = Some(id),
            None => mapping.push(("employment.id", "Must be an integer id.".to_string())),
        },
        Some(_) => mapping.push(("employment", "Must be an object {\"id\": N}.".to_string())),
    }
    match fields.get("date") {
        None => {}
        Some(Value::String(s)) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => input.date = Some(d),
            Err(_) => values.push(("date", format!("{s:?} is not a date (YYYY-MM-DD)."))),
        },
        Some(_) => mapping.push(("date", "Must be a string YYYY-MM-DD.".to_string())),
    }
    match fields.get("remunerationType") {
        None => {}
        Some(Value::String(s)) => match RemunerationType::parse(s) {
            Some(t) => input.remuneration_type = Some(t),
            None => mapping.push(("remunerationType", format!("Unknown value {s:?}."))),
        },
        Some(_) => mapping.push(("remunerationType", "Must be a string.".to_string())),
    }
    for (name, slot, allowed) in [
        (
            "employmentType",
            &mut input.terms.employment_type,
            EMPLOYMENT_TYPES,
        ),
        (
            "employmentForm",
            &mut input.terms.employment_form,
            EMPLOYMENT_FORMS,
        ),
        (
            "workingHoursScheme",
            &mut input.terms.working_hours_scheme,
            WORKING_HOURS_SCHEMES,
        ),
    ] {
        match fields.get(name) {
            None => {}
            Some(Value::String(v)) if allowed.contains(&v.as_str()) => *slot = Some(v.clone()),
            Some(Value::String(v)) => mapping.push((name, format!("Unknown value {v:?}."))),
            Some(_) => mapping.push((name, "Must be a string.".to_string())),
        }
    }
    for (name, slot) in [
        ("occupationCode", &mut input.terms.occupation_code_id),
        (
            "payrollTaxMunicipalityId",
            &mut input.terms.payroll_tax_municipality_id,
        ),
    ] {
        match fields.get(name) {
            None => {}
            Some(Value::Object(r)) => match r.get("id").and_then(Value::as_i64) {
                Some(id) => *slot = Some(id),
                None => mapping.push((name, "Must be an object {\"id\": N}.".to_string())),
            },
            Some(_) => mapping.push((name, "Must be an object {\"id\": N}.".to_string())),
        }
    }
    match fields.get("maritimeEmployment") {
        None => {}
        Some(m @ Value::Object(_)) => input.terms.maritime_employment = Some(m.clone()),
        Some(_) => mapping.push(("maritimeEmployment", "Must be an object.".to_string())),
    }
    for (name, slot, max) in [
        (
            "shiftDurationHours",
            &mut input.terms.shift_duration_hours,
            None,
        ),
        ("annualSalary", &mut input.annual_salary, None),
        ("hourlyWage", &mut input.hourly_wage, None),
        (
            "percentageOfFullTimeEquivalent",
            &mut input.percentage_of_full_time_equivalent,
            Some(Decimal::ONE_HUNDRED),
        ),
    ] {
        amount(&fields, name, slot, max, &mut mapping, &mut values);
    }

    if !mapping.is_empty() {
        mapping.extend(values);
        return Err(ApiError::validation(16000, mapping));
    }
    if !values.is_empty() {
        return Err(ApiError::validation(15000, values));
    }
    Ok(input)
}

fn amount(
    fields: &Map<String, Value>,
    name: &'static str,
    slot: &mut Option<Decimal>,
    max: Option<Decimal>,
    mapping: &mut Vec<(&'static str, String)>,
    values: &mut Vec<(&'static str, String)>,
) {
    match fields.get(name) {
        None => {}
        Some(Value::Number(n)) => match decimal(n) {
            Some(d) if d.is_sign_negative() && !d.is_zero() => {
                values.push((name, "Must not be negative.".to_string()));
            }
            Some(d) if max.is_some_and(|m| d > m) => {
                values.push((
                    name,
                    format!("Must be at most {}.", max.unwrap_or_default()),
                ));
            }
            Some(d) => *slot = Some(d),
            None => mapping.push((name, "Not a representable number.".to_string())),
        },
        Some(_) => mapping.push((name, "Must be a number.".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_as_numbers() {
        for text in ["624000.00", "52000.5", "0", "123.45", "99999999.99"] {
            let d = Decimal::from_str(text).unwrap();
            let json = number(d).to_string();
            let back = Decimal::from_str(&json).unwrap();
            assert_eq!(back, d, "{text} -> {json}");
        }
        assert_eq!(number(Decimal::new(62_400_000, 2)).to_string(), "624000");
    }

    #[test]
    fn details_body_is_read_and_errors_name_fields() {
        let ok = details_input(
            br#"{"employment":{"id":201},"date":"2026-01-01","remunerationType":"MONTHLY_WAGE",
                "annualSalary":624000.00,"percentageOfFullTimeEquivalent":100,"version":3}"#,
        )
        .unwrap();
        assert_eq!(ok.annual_salary, Some(Decimal::new(62_400_000, 2)));
        assert_eq!(ok.version, Some(3));

        let e = details_input(b"{not json").unwrap_err();
        assert_eq!((e.status, e.code), (422, 22000));
        let e = details_input(br#"{"date":"2026-13-01","annualSalary":-1}"#).unwrap_err();
        assert_eq!(e.code, 15000);
        assert_eq!(e.validation.len(), 2);
        let e = details_input(br#"{"annualSalary":"1000"}"#).unwrap_err();
        assert_eq!(e.code, 16000);
        let e = details_input(br#"{"annualSalary":null}"#).unwrap_err();
        assert_eq!(e.code, 16000);
    }
}
