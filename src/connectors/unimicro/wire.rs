//! Unimicro's JSON as salary-sync reads it (token answer, employees, employments, company
//! settings, the error body), plus the small encoders the connector needs: the OAuth form
//! body, OData-style filter literals, exact decimals and the per-workflow `_createguid`.
//!
//! Invariant: an amount never passes through a float, and nothing here reads the clock or
//! does I/O. The pay-rate record (whose API name is an assumption) lives in `payrate.rs`.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::str::FromStr;

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// `/api/biz/employees`: the fields the connector matches on. `EmployeeNumber` is a number in
/// Unimicro; a string is accepted too.
#[derive(Debug, Deserialize)]
pub struct Employee {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(rename = "EmployeeNumber", default)]
    pub employee_number: Option<Value>,
    #[serde(rename = "BusinessRelationInfo", default)]
    pub business_relation: Option<BusinessRelation>,
}

#[derive(Debug, Deserialize)]
pub struct BusinessRelation {
    #[serde(rename = "DefaultEmail", default)]
    pub default_email: Option<Email>,
}

#[derive(Debug, Deserialize)]
pub struct Email {
    #[serde(rename = "EmailAddress", default)]
    pub address: Option<String>,
}

impl Employee {
    pub fn number_text(&self) -> Option<String> {
        match self.employee_number.as_ref()? {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.trim().to_owned()),
            _ => None,
        }
    }

    pub fn email(&self) -> Option<&str> {
        self.business_relation
            .as_ref()?
            .default_email
            .as_ref()?
            .address
            .as_deref()
    }
}

/// `/api/biz/employments`. `RemunerationType`: 1 fixed salary, 2 hourly.
#[derive(Debug, Deserialize)]
pub struct Employment {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(rename = "StartDate", default)]
    pub start_date: Option<String>,
    #[serde(rename = "EndDate", default)]
    pub end_date: Option<String>,
    #[serde(rename = "RemunerationType", default)]
    pub remuneration_type: Option<i64>,
}

/// Where `companysettings` says the base currency is. Unimicro's entity model has
/// `BaseCurrencyCodeID` and a navigation property `BaseCurrencyCode` (a `CurrencyCode` with
/// `Code`), filled when asked for with `expand=BaseCurrencyCode` (its web client does so and
/// reads `BaseCurrencyCode.Code`). A plain string there is accepted too; with neither, the
/// id is looked up at `currencycodes/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseCurrency {
    Code(String),
    Id(i64),
}

impl BaseCurrency {
    /// Reads one settings object (or the first of a list); `None` when it names no currency.
    pub fn read(settings: &Value) -> Option<Self> {
        let one = match settings {
            Value::Array(items) => items.first()?,
            other => other,
        };
        let code = match one.get("BaseCurrencyCode") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(Value::Object(o)) => o
                .get("Code")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            _ => None,
        };
        if let Some(code) = code {
            return Some(Self::Code(code));
        }
        let id = one
            .get("BaseCurrencyCodeID")
            .or_else(|| one.get("BaseCurrencyCode").and_then(|c| c.get("ID")))?;
        id.as_i64()
            .or_else(|| id.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Self::Id)
    }
}

/// `currencycodes/{id}`: the row's `Code`.
pub fn currency_code(row: &Value) -> Option<String> {
    let one = match row {
        Value::Array(items) => items.first()?,
        other => other,
    };
    one.get("Code")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Unimicro's error body, read leniently: `{"Message":..}`, `{"Messages":[{"Message":..}]}`,
/// validation under `_validationResults` (an object of field -> list of `{"Message"}`, or a
/// list of `{"PropertyName","Message"}`), and an OAuth token error
/// `{"error","error_description"}`. Anything unreadable gives an empty body (the status still
/// classifies the answer).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub message: Option<String>,
    pub validation: Vec<String>,
    pub oauth_error: Option<String>,
}

impl ApiError {
    pub fn parse(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Self::default();
        };
        let text = |v: &Value| {
            v.as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let mut messages: Vec<String> = Vec::new();
        if let Some(m) = value.get("Message").and_then(text) {
            messages.push(m);
        }
        for m in value
            .get("Messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(m) = m.get("Message").and_then(text) {
                messages.push(m);
            }
        }
        let mut validation = Vec::new();
        match value.get("_validationResults") {
            Some(Value::Object(fields)) => {
                for (field, results) in fields {
                    let list: Vec<&Value> = match results {
                        Value::Array(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    for r in list {
                        let m = r.get("Message").and_then(text).or_else(|| text(r));
                        validation.push(match m {
                            Some(m) => format!("{field}: {m}"),
                            None => format!("{field}: invalid"),
                        });
                    }
                }
            }
            Some(Value::Array(items)) => {
                for r in items {
                    let field = r.get("PropertyName").and_then(text);
                    let m = r.get("Message").and_then(text);
                    match (field, m) {
                        (Some(f), Some(m)) => validation.push(format!("{f}: {m}")),
                        (None, Some(m)) => validation.push(m),
                        (Some(f), None) => validation.push(format!("{f}: invalid")),
                        (None, None) => {}
                    }
                }
            }
            _ => {}
        }
        let oauth_error = match (
            value.get("error").and_then(text),
            value.get("error_description").and_then(text),
        ) {
            (Some(e), Some(d)) => Some(format!("{e}: {d}")),
            (Some(e), None) => Some(e),
            (None, d) => d,
        };
        Self {
            message: (!messages.is_empty()).then(|| messages.join("; ")),
            validation,
            oauth_error,
        }
    }

    /// Everything Unimicro said, in one line.
    pub fn summary(&self) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.message.clone());
        if !self.validation.is_empty() {
            parts.push(self.validation.join("; "));
        }
        parts.extend(self.oauth_error.clone());
        (!parts.is_empty()).then(|| parts.join(" - "))
    }
}

/// Reads a JSON number (its raw text) exactly; a JSON string holding a number is accepted.
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

/// An amount as a JSON number with exactly the decimal's digits (trailing zeros dropped).
pub fn raw_from_decimal(amount: Decimal) -> Result<Box<RawValue>, serde_json::Error> {
    RawValue::from_string(amount.normalize().to_string())
}

/// A Unimicro date: `YYYY-MM-DD`, optionally followed by a time (`2020-01-01T00:00:00`).
pub fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()
}

/// A string literal for `filter=`: single quotes, an embedded quote doubled (OData style).
pub fn filter_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `application/x-www-form-urlencoded` for the token request.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(char::from(b))
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The `_createguid` of a workflow's insert: a UUID-shaped string derived from the integration
/// and the HR event id, so every attempt of one workflow (before and after a crash) sends the
/// same one and Unimicro refuses to insert the record twice, while different events never
/// share one. Two FNV-1a 64-bit hashes over differently salted input give the 128 bits; the
/// version nibble says 8 (RFC 9562 "custom") and the variant bits are RFC 4122's. Not a
/// security measure: the ids it hashes are not secret and collisions are not adversarial.
pub fn createguid(integration: &str, event_id: &str) -> String {
    fn fnv1a(salt: &[u8], parts: &[&[u8]]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        salt.iter().copied().for_each(&mut eat);
        for part in parts {
            // Length-prefixed, so ("ab","c") and ("a","bc") differ.
            (part.len() as u64)
                .to_le_bytes()
                .into_iter()
                .for_each(&mut eat);
            part.iter().copied().for_each(&mut eat);
        }
        h
    }
    let parts: [&[u8]; 2] = [integration.as_bytes(), event_id.as_bytes()];
    let hi = fnv1a(b"salary-sync/unimicro/createguid/hi", &parts);
    let lo = fnv1a(b"salary-sync/unimicro/createguid/lo", &parts);
    let hi = (hi & !0xf000) | 0x8000; // version 8
    let lo = (lo & !(0xc0 << 56)) | (0x80 << 56); // variant 10
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn createguid_is_stable_uuid_shaped_and_distinct() {
        let g = createguid("acme-unimicro", "evt-1");
        // Pinned: a change here would let a replay after an upgrade insert twice.
        assert_eq!(g, createguid("acme-unimicro", "evt-1"));
        assert_eq!(g.len(), 36);
        let groups: Vec<&str> = g.split('-').collect();
        assert_eq!(
            groups.iter().map(|s| s.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('8'), "{g}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{g}"
        );
        assert_ne!(g, createguid("acme-unimicro", "evt-2"));
        assert_ne!(g, createguid("other", "evt-1"));
        assert_ne!(createguid("ab", "c"), createguid("a", "bc"));
    }

    #[test]
    fn createguid_is_pinned() {
        assert_eq!(
            createguid("acme-unimicro", "evt-1"),
            PINNED_CREATEGUID,
            "the derivation changed: workflows in flight would send a new _createguid"
        );
    }

    const PINNED_CREATEGUID: &str = "48545d2b-fd88-848e-856a-e9a34fa6f918";

    #[test]
    fn the_base_currency_is_read_in_every_shape() {
        let read = |s: &str| {
            BaseCurrency::read(&serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}")))
        };
        let nok = Some(BaseCurrency::Code("NOK".into()));
        assert_eq!(
            read(r#"[{"BaseCurrencyCodeID":1,"BaseCurrencyCode":{"ID":1,"Code":"NOK"}}]"#),
            nok
        );
        assert_eq!(read(r#"{"BaseCurrencyCode":"NOK"}"#), nok);
        assert_eq!(
            read(r#"{"BaseCurrencyCodeID":7,"BaseCurrencyCode":null}"#),
            Some(BaseCurrency::Id(7))
        );
        assert_eq!(
            read(r#"{"BaseCurrencyCodeID":"7"}"#),
            Some(BaseCurrency::Id(7))
        );
        assert_eq!(read(r#"[]"#), None);
        assert_eq!(read(r#"{"CompanyName":"x"}"#), None);
        assert_eq!(
            currency_code(&serde_json::json!({"ID":7,"Code":"SEK"})).as_deref(),
            Some("SEK")
        );
    }

    #[test]
    fn error_bodies_in_every_shape() {
        let e = ApiError::parse(br#"{"Message":"Not allowed"}"#);
        assert_eq!(e.summary().as_deref(), Some("Not allowed"));
        let e = ApiError::parse(br#"{"Messages":[{"Message":"a"},{"Message":"b"}]}"#);
        assert_eq!(e.summary().as_deref(), Some("a; b"));
        let e = ApiError::parse(
            br#"{"Message":"Validation failed","_validationResults":{"Rate":[{"Message":"Must not be negative","Level":3}]}}"#,
        );
        assert_eq!(
            e.summary().as_deref(),
            Some("Validation failed - Rate: Must not be negative")
        );
        let e = ApiError::parse(
            br#"{"_validationResults":[{"PropertyName":"FromDate","Message":"Required"}]}"#,
        );
        assert_eq!(e.validation, vec!["FromDate: Required".to_owned()]);
        let e = ApiError::parse(br#"{"error":"invalid_client"}"#);
        assert_eq!(e.summary().as_deref(), Some("invalid_client"));
        assert_eq!(ApiError::parse(b"<html>").summary(), None);
    }

    #[test]
    fn amounts_round_trip_exactly() {
        let raw =
            RawValue::from_string("12345678901234.5678".into()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            decimal_from_raw(&raw),
            Decimal::from_str("12345678901234.5678").ok()
        );
        let raw = RawValue::from_string("\"0.1\"".into()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decimal_from_raw(&raw), Decimal::from_str("0.1").ok());
        let back = raw_from_decimal(Decimal::new(5_200_010, 2)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.get(), "52000.1");
    }

    #[test]
    fn encoders() {
        assert_eq!(filter_string("o'neil@x.no"), "'o''neil@x.no'");
        assert_eq!(
            form_encode(&[("client_secret", "a b&c=d/é"), ("scope", "AppFramework")]),
            "client_secret=a+b%26c%3Dd%2F%C3%A9&scope=AppFramework"
        );
        assert_eq!(
            date("2020-01-01T00:00:00"),
            NaiveDate::from_ymd_opt(2020, 1, 1)
        );
        assert_eq!(date("junk"), None);
    }
}
