//! The Unimicro simulator's state and rules: the seed (company, credentials, employees,
//! employments, pay-rate records), issued tokens, and the save of an employment with its
//! nested pay-rate records.
//!
//! Architecture Invariant: no I/O and no async; the server calls in with the instant and the
//! request's parsed parts. A save is all or nothing: every nested record is checked on a copy
//! and the copy replaces the state only when all of them passed. An insert whose `_createguid`
//! was seen before inserts nothing (Unimicro's documented guard against a second insert of the
//! same record). A record saved with `"Deleted": true` is kept, flagged, and hidden from API
//! reads (a soft delete), so tests can still count it through `Control::rates`.

use super::assertion;
use super::payrate::{RateType, Save, COLLECTION_DEFAULT};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// An error answer in Unimicro's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// (field, message) pairs, sent under `_validationResults`.
    pub validation: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            validation: Vec::new(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Authorization has been denied for this request.")
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: "Validation failed".into(),
            validation: vec![(field.to_owned(), message.into())],
        }
    }

    /// `{"Message":..}`, with `_validationResults` when there are any; 5xx answers use the
    /// `{"Messages":[{"Message":..}]}` form, so clients meet both.
    pub fn body(&self) -> Value {
        if self.status >= 500 {
            return json!({ "Messages": [{ "Message": self.message }] });
        }
        if self.validation.is_empty() {
            return json!({ "Message": self.message });
        }
        let mut results = serde_json::Map::new();
        for (field, message) in &self.validation {
            let entry = results.entry(field.clone()).or_insert_with(|| json!([]));
            if let Some(list) = entry.as_array_mut() {
                list.push(json!({ "Message": message, "Level": 3 }));
            }
        }
        json!({ "Message": self.message, "_validationResults": results })
    }
}

/// An OAuth error from the token endpoint (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
}

#[derive(Debug, Clone)]
pub struct SeedEmployment {
    pub id: i64,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// 1 fixed salary, 2 hourly.
    pub remuneration_type: i64,
}

#[derive(Debug, Clone)]
pub struct SeedEmployee {
    pub id: i64,
    pub employee_number: i64,
    pub email: String,
    pub name: String,
    pub employments: Vec<SeedEmployment>,
}

#[derive(Debug, Clone)]
pub struct SeedRate {
    pub id: i64,
    pub employment_id: i64,
    pub from_date: NaiveDate,
    pub rate: Decimal,
    pub rate_type: RateType,
}

/// How `GET /api/biz/companysettings` carries the company's base currency.
///
/// `Navigation` is what Unimicro's entity model has (`CompanySettings.BaseCurrencyCodeID`, a
/// navigation property `BaseCurrencyCode` of type `CurrencyCode` with `Code`, filled only
/// when asked for with `expand=BaseCurrencyCode`; Unimicro's web client asks for it so and
/// reads `BaseCurrencyCode.Code`). The other two are plausible variants a connector must
/// survive: `IdOnly` ignores `expand` (only `BaseCurrencyCodeID`; the code is at
/// `GET /api/biz/currencycodes/{id}`), `PlainString` sends `"BaseCurrencyCode": "NOK"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CurrencyShape {
    #[default]
    Navigation,
    IdOnly,
    PlainString,
}

/// The id the simulator gives the company's currency code row.
const CURRENCY_CODE_ID: i64 = 1;

/// What the simulator starts with.
#[derive(Debug, Clone)]
pub struct Seed {
    pub company_name: String,
    pub company_key: String,
    pub client_id: String,
    pub client_secret: String,
    pub currency: String,
    pub token_life_s: u64,
    /// When set, the token endpoint also takes a certificate-signed client assertion that
    /// verifies under this public key (PKCS#1 DER), instead of the client secret.
    pub client_public_key_der: Option<Vec<u8>>,
    /// How `companysettings` carries the base currency (see [`CurrencyShape`]).
    pub currency_shape: CurrencyShape,
    /// The name of the employment's nested pay-rate collection (not published by Unimicro).
    pub rate_collection: String,
    pub employees: Vec<SeedEmployee>,
    pub rates: Vec<SeedRate>,
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

impl Seed {
    /// The same cast as the Tripletex demo seed, in Unimicro's terms:
    ///
    /// | employee (ID) | number | email | employments | pay rates |
    /// |---|---|---|---|---|
    /// | 101 Kari Nordmann | 17 | kari@example.no | 201 from 2020-01-01, open | none |
    /// | 102 Ola Hansen | 18 | ola@example.no | 202 2019-03-01 .. 2023-12-31, 203 from 2024-01-01, open | none |
    /// | 103 Per Olsen | 19 | per@example.no | 204 from 2021-06-01, open | 901: from 2026-01-01, monthly 50 000, a foreign record to provoke an overlap |
    /// | 104 Lise Berg | 20 | lise@example.no | none (salary sync has nothing to match) | |
    /// | 105 Nils Dahl | 21 | nils@example.no | 205 from 2022-02-01, open, hourly (RemunerationType 2) | none |
    ///
    /// Company currency NOK; client `demo-client` / `demo-client-secret`, company key
    /// `demo-company-key`.
    pub fn demo() -> Self {
        let employee = |id: i64, number: i64, name: &str, employments: Vec<SeedEmployment>| {
            let first = name.split(' ').next().unwrap_or(name).to_lowercase();
            SeedEmployee {
                id,
                employee_number: number,
                email: format!("{first}@example.no"),
                name: name.into(),
                employments,
            }
        };
        let open = |id: i64, start: NaiveDate| SeedEmployment {
            id,
            start_date: start,
            end_date: None,
            remuneration_type: 1,
        };
        Self {
            company_name: "Demo Bakeri AS".into(),
            company_key: "demo-company-key".into(),
            client_id: "demo-client".into(),
            client_secret: "demo-client-secret".into(),
            currency: "NOK".into(),
            token_life_s: 3600,
            client_public_key_der: None,
            currency_shape: CurrencyShape::Navigation,
            rate_collection: COLLECTION_DEFAULT.into(),
            employees: vec![
                employee(101, 17, "Kari Nordmann", vec![open(201, date(2020, 1, 1))]),
                employee(
                    102,
                    18,
                    "Ola Hansen",
                    vec![
                        SeedEmployment {
                            id: 202,
                            start_date: date(2019, 3, 1),
                            end_date: Some(date(2023, 12, 31)),
                            remuneration_type: 1,
                        },
                        open(203, date(2024, 1, 1)),
                    ],
                ),
                employee(103, 19, "Per Olsen", vec![open(204, date(2021, 6, 1))]),
                employee(104, 20, "Lise Berg", vec![]),
                employee(
                    105,
                    21,
                    "Nils Dahl",
                    vec![SeedEmployment {
                        remuneration_type: 2,
                        ..open(205, date(2022, 2, 1))
                    }],
                ),
            ],
            rates: vec![SeedRate {
                id: 901,
                employment_id: 204,
                from_date: date(2026, 1, 1),
                rate: Decimal::from(50_000),
                rate_type: RateType::Monthly,
            }],
        }
    }
}

/// A pay-rate record as the simulator stores it; amounts as decimal strings in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRate {
    pub id: i64,
    pub employment_id: i64,
    pub from_date: NaiveDate,
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    pub rate_type: &'static str,
    pub deleted: bool,
    pub createguid: Option<String>,
}

impl StoredRate {
    /// The record as the API answers it: `Rate` a JSON number with the decimal's digits.
    fn wire(&self) -> Value {
        let rate = serde_json::from_str::<Value>(&self.rate.normalize().to_string())
            .unwrap_or(Value::Null);
        json!({
            "ID": self.id,
            "EmploymentID": self.employment_id,
            "FromDate": self.from_date.format("%Y-%m-%d").to_string(),
            "Rate": rate,
            "RateType": self.rate_type,
            "Deleted": self.deleted,
            "_createguid": self.createguid,
        })
    }
}

pub struct Company {
    pub seed: Seed,
    pub rates: Vec<StoredRate>,
    /// Employments removed by `DELETE /employments/{id}` (what a delete must never do).
    pub removed_employments: Vec<i64>,
    next_rate_id: i64,
    /// Live tokens and when they expire.
    pub tokens: HashMap<String, Instant>,
    pub tokens_issued: u64,
}

impl Company {
    pub fn new(seed: Seed) -> Result<Self, String> {
        let mut employment_ids = std::collections::HashSet::new();
        for e in &seed.employees {
            for m in &e.employments {
                if !employment_ids.insert(m.id) {
                    return Err(format!("employment {} appears twice in the seed", m.id));
                }
            }
        }
        for r in &seed.rates {
            if !employment_ids.contains(&r.employment_id) {
                return Err(format!(
                    "rate {} names unknown employment {}",
                    r.id, r.employment_id
                ));
            }
        }
        let rates = seed
            .rates
            .iter()
            .map(|r| StoredRate {
                id: r.id,
                employment_id: r.employment_id,
                from_date: r.from_date,
                rate: r.rate,
                rate_type: r.rate_type.as_str(),
                deleted: false,
                createguid: None,
            })
            .collect();
        let next_rate_id = seed.rates.iter().map(|r| r.id).max().unwrap_or(0).max(1000) + 1;
        Ok(Self {
            seed,
            rates,
            removed_employments: Vec::new(),
            next_rate_id,
            tokens: HashMap::new(),
            tokens_issued: 0,
        })
    }

    /// The client-credentials grant.
    /// `audience` is the token endpoint's own URL and `wall` the wall clock, both for a client
    /// assertion's `aud` and `exp`.
    pub fn issue_token(
        &mut self,
        form: &HashMap<String, String>,
        now: Instant,
        token: String,
        audience: &str,
        wall: chrono::DateTime<chrono::Utc>,
    ) -> Result<(String, u64), OAuthError> {
        let field = |k: &str| form.get(k).map(String::as_str);
        if field("grant_type") != Some("client_credentials") {
            return Err(OAuthError {
                status: 400,
                error: "unsupported_grant_type",
            });
        }
        let assertion_ok = match (
            field("client_assertion_type"),
            field("client_assertion"),
            &self.seed.client_public_key_der,
        ) {
            (Some(kind), Some(jwt), Some(key)) if kind == assertion::ASSERTION_TYPE => {
                assertion::verify(key, jwt, &self.seed.client_id, audience, wall).is_ok()
            }
            _ => false,
        };
        if field("client_id") != Some(self.seed.client_id.as_str())
            || !(assertion_ok || field("client_secret") == Some(self.seed.client_secret.as_str()))
        {
            return Err(OAuthError {
                status: 400,
                error: "invalid_client",
            });
        }
        if !field("scope")
            .unwrap_or("")
            .split(' ')
            .any(|s| s == "AppFramework")
        {
            return Err(OAuthError {
                status: 400,
                error: "invalid_scope",
            });
        }
        self.tokens.retain(|_, until| *until > now);
        let life = self.seed.token_life_s;
        self.tokens
            .insert(token.clone(), now + Duration::from_secs(life));
        self.tokens_issued += 1;
        Ok((token, life))
    }

    pub fn authenticate(
        &self,
        bearer: Option<&str>,
        company_key: Option<&str>,
        now: Instant,
    ) -> Result<(), ApiError> {
        let live = bearer
            .and_then(|t| self.tokens.get(t))
            .is_some_and(|until| *until > now);
        if live && company_key == Some(self.seed.company_key.as_str()) {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }

    pub fn expire_tokens(&mut self) {
        self.tokens.clear();
    }

    fn employment(&self, id: i64) -> Option<(&SeedEmployee, &SeedEmployment)> {
        if self.removed_employments.contains(&id) {
            return None;
        }
        self.seed
            .employees
            .iter()
            .find_map(|e| e.employments.iter().find(|m| m.id == id).map(|m| (e, m)))
    }

    pub fn employees_json(&self) -> Vec<Value> {
        self.seed
            .employees
            .iter()
            .map(|e| {
                json!({
                    "ID": e.id,
                    "EmployeeNumber": e.employee_number,
                    "BusinessRelationInfo": {
                        "Name": e.name,
                        "DefaultEmail": { "EmailAddress": e.email },
                    },
                })
            })
            .collect()
    }

    fn employment_json(&self, e: &SeedEmployee, m: &SeedEmployment, expand: bool) -> Value {
        let mut v = json!({
            "ID": m.id,
            "EmployeeID": e.id,
            "StartDate": format!("{}T00:00:00", m.start_date),
            "EndDate": m.end_date.map(|d| format!("{d}T00:00:00")),
            "RemunerationType": m.remuneration_type,
        });
        if expand {
            let rates: Vec<Value> = self
                .rates_of(m.id)
                .filter(|r| !r.deleted)
                .map(StoredRate::wire)
                .collect();
            if let Some(o) = v.as_object_mut() {
                o.insert(self.seed.rate_collection.clone(), Value::Array(rates));
            }
        }
        v
    }

    pub fn employments_json(&self) -> Vec<Value> {
        self.seed
            .employees
            .iter()
            .flat_map(|e| e.employments.iter().map(move |m| (e, m)))
            .filter(|(_, m)| !self.removed_employments.contains(&m.id))
            .map(|(e, m)| self.employment_json(e, m, false))
            .collect()
    }

    pub fn employment_by_id(&self, id: i64, expand: bool) -> Result<Value, ApiError> {
        let (e, m) = self
            .employment(id)
            .ok_or_else(|| ApiError::new(404, format!("Employment with ID {id} was not found")))?;
        Ok(self.employment_json(e, m, expand))
    }

    pub fn employee_by_id(&self, id: i64) -> Result<Value, ApiError> {
        self.employees_json()
            .into_iter()
            .find(|e| e.get("ID").and_then(Value::as_i64) == Some(id))
            .ok_or_else(|| ApiError::new(404, format!("Employee with ID {id} was not found")))
    }

    /// `companysettings` in the seed's [`CurrencyShape`]; `expand` says whether the caller
    /// asked for `expand=BaseCurrencyCode`.
    pub fn company_settings(&self, expand: bool) -> Value {
        let currency = match self.seed.currency_shape {
            CurrencyShape::Navigation if expand => self.currency_code(),
            CurrencyShape::Navigation | CurrencyShape::IdOnly => Value::Null,
            CurrencyShape::PlainString => json!(self.seed.currency),
        };
        let mut v = json!({
            "ID": 1,
            "CompanyName": self.seed.company_name,
            "BaseCurrencyCode": currency,
        });
        if self.seed.currency_shape != CurrencyShape::PlainString {
            v["BaseCurrencyCodeID"] = json!(CURRENCY_CODE_ID);
        }
        v
    }

    /// The `CurrencyCode` row of the base currency.
    fn currency_code(&self) -> Value {
        json!({ "ID": CURRENCY_CODE_ID, "Code": self.seed.currency, "Name": self.seed.currency })
    }

    /// `GET /api/biz/currencycodes/{id}`.
    pub fn currency_code_by_id(&self, id: i64) -> Result<Value, ApiError> {
        if id == CURRENCY_CODE_ID {
            Ok(self.currency_code())
        } else {
            Err(ApiError::new(
                404,
                format!("CurrencyCode with ID {id} was not found"),
            ))
        }
    }

    pub fn rates_of(&self, employment: i64) -> impl Iterator<Item = &StoredRate> {
        self.rates
            .iter()
            .filter(move |r| r.employment_id == employment)
    }

    /// `DELETE /employments/{id}`: removes the employment and its records. The connector must
    /// never call it (a salary delete is a nested `Deleted: true`).
    pub fn remove_employment(&mut self, id: i64) -> Result<(), ApiError> {
        self.employment(id)
            .ok_or_else(|| ApiError::new(404, format!("Employment with ID {id} was not found")))?;
        self.removed_employments.push(id);
        self.rates.retain(|r| r.employment_id != id);
        Ok(())
    }

    /// `PUT /employments/{id}` with nested pay-rate records (see the module doc). Answers the
    /// employment with its records.
    pub fn save_employment(&mut self, id: i64, body: &Value) -> Result<Value, ApiError> {
        let start = self
            .employment(id)
            .map(|(_, m)| m.start_date)
            .ok_or_else(|| ApiError::new(404, format!("Employment with ID {id} was not found")))?;
        let collection = self.seed.rate_collection.clone();
        let body = Save::parse(body, &collection).map_err(|(f, m)| ApiError::invalid(&f, m))?;
        if body.id != Some(id) {
            return Err(ApiError::invalid(
                "ID",
                format!("the body's ID is not the employment {id} in the path"),
            ));
        }
        let mut rates = self.rates.clone();
        let mut next_id = self.next_rate_id;
        for (i, item) in body.items.iter().enumerate() {
            let field = |f: &str| format!("{collection}[{i}].{f}");
            let from_date = match item.from_date.as_deref() {
                None => None,
                Some(s) => Some(
                    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").map_err(
                        |_| ApiError::invalid(&field("FromDate"), format!("`{s}` is not a date")),
                    )?,
                ),
            };
            if from_date.is_some_and(|d| d < start) {
                return Err(ApiError::invalid(
                    &field("FromDate"),
                    format!("before the employment's StartDate {start}"),
                ));
            }
            let rate = item.rate;
            if rate.is_some_and(|d| d.is_sign_negative() && !d.is_zero()) {
                return Err(ApiError::invalid(&field("Rate"), "must not be negative"));
            }
            let rate_type = match item.rate_type.as_deref() {
                None => None,
                Some(t) => Some(RateType::parse(t).ok_or_else(|| {
                    ApiError::invalid(
                        &field("RateType"),
                        format!("`{t}` is not monthly, annual or hourly"),
                    )
                })?),
            };
            match item.id {
                Some(rid) => {
                    let Some(r) = rates
                        .iter_mut()
                        .find(|r| r.id == rid && r.employment_id == id)
                    else {
                        return Err(ApiError::invalid(
                            &field("ID"),
                            format!("pay rate {rid} does not belong to employment {id}"),
                        ));
                    };
                    if item.deleted {
                        r.deleted = true;
                        continue;
                    }
                    if r.deleted {
                        return Err(ApiError::invalid(
                            &field("ID"),
                            format!("pay rate {rid} is deleted"),
                        ));
                    }
                    if let Some(d) = from_date {
                        r.from_date = d;
                    }
                    if let Some(d) = rate {
                        r.rate = d;
                    }
                    if let Some(t) = rate_type {
                        r.rate_type = t.as_str();
                    }
                }
                None if item.deleted => {
                    return Err(ApiError::invalid(
                        &field("ID"),
                        "a deleted record needs its ID",
                    ));
                }
                None => {
                    if let Some(guid) = item.createguid.as_deref() {
                        if rates.iter().any(|r| r.createguid.as_deref() == Some(guid)) {
                            // Seen before: this insert already happened.
                            continue;
                        }
                    }
                    let (Some(from_date), Some(rate), Some(rate_type)) =
                        (from_date, rate, rate_type)
                    else {
                        return Err(ApiError::invalid(
                            &field("FromDate"),
                            "a new pay rate needs FromDate, Rate and RateType",
                        ));
                    };
                    rates.push(StoredRate {
                        id: next_id,
                        employment_id: id,
                        from_date,
                        rate,
                        rate_type: rate_type.as_str(),
                        deleted: false,
                        createguid: item.createguid.clone(),
                    });
                    next_id += 1;
                }
            }
        }
        let mut dates: Vec<NaiveDate> = rates
            .iter()
            .filter(|r| r.employment_id == id && !r.deleted)
            .map(|r| r.from_date)
            .collect();
        dates.sort();
        if let Some(w) = dates.windows(2).find(|w| w[0] == w[1]) {
            return Err(ApiError::invalid(
                &format!("{collection}.FromDate"),
                format!("the employment already has a pay rate from {}", w[0]),
            ));
        }
        self.rates = rates;
        self.next_rate_id = next_id;
        self.employment_by_id(id, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company() -> Company {
        Company::new(Seed::demo()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn insert(guid: &str, day: &str, rate: &str) -> Value {
        let rate: Value = serde_json::from_str(rate).unwrap_or(Value::Null);
        json!({"ID": 201, "EmploymentPayRates": [
            {"_createguid": guid, "FromDate": day, "Rate": rate, "RateType": "monthly"}
        ]})
    }

    #[test]
    fn a_second_insert_with_the_same_createguid_inserts_nothing() {
        let mut c = company();
        c.save_employment(201, &insert("g1", "2026-01-01", "52000.10"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        c.save_employment(201, &insert("g1", "2026-01-01", "52000.10"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let rates: Vec<_> = c.rates_of(201).collect();
        assert_eq!(rates.len(), 1);
        assert_eq!(rates[0].rate, Decimal::new(5_200_010, 2));
    }

    #[test]
    fn saves_are_validated_all_or_nothing() {
        let mut c = company();
        let e = c
            .save_employment(201, &insert("g1", "2026-01-01", "-1"))
            .err();
        assert_eq!(e.map(|e| e.status), Some(400));
        let e = c
            .save_employment(201, &insert("g1", "2019-01-01", "1"))
            .err();
        assert!(e.is_some_and(|e| e.validation[0].0.ends_with("FromDate")));
        c.save_employment(201, &insert("g1", "2026-01-01", "1"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let e = c
            .save_employment(201, &insert("g2", "2026-01-01", "2"))
            .err();
        assert!(e.is_some(), "two records on one date are refused");
        assert_eq!(c.rates_of(201).count(), 1);
        assert_eq!(
            c.save_employment(999, &insert("g3", "2026-01-01", "1"))
                .err()
                .map(|e| e.status),
            Some(404)
        );
    }

    #[test]
    fn a_deleted_record_is_kept_flagged_and_hidden() {
        let mut c = company();
        let delete = json!({"ID": 204, "EmploymentPayRates": [{"ID": 901, "Deleted": true}]});
        let answer = c
            .save_employment(204, &delete)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(answer["EmploymentPayRates"], json!([]));
        assert!(c.rates_of(204).all(|r| r.deleted));
        // Idempotent.
        assert!(c.save_employment(204, &delete).is_ok());
    }
}
