//! Unit tests of the connector's pure parts: units, dropped fields, the overlap rule for dated
//! rates, exact matching, redaction.

use super::*;
use crate::domain::change::tests_support::change;
use std::str::FromStr;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn rate(id: i64, from: &str, amount: &str) -> Rate {
    Rate {
        id,
        from_date: Some(day(from)),
        rate: Some(dec(amount)),
        rate_type: Some(RateType::Monthly),
        deleted: false,
        createguid: None,
    }
}

fn config() -> UnimicroConfig {
    UnimicroConfig {
        base_url: "https://test-api.unieconomy.no".into(),
        token_url: "https://test-login.unieconomy.no/connect/token".into(),
        company_key: "ck-1".into(),
        client_id: Secret::new("client-SECRET-ID"),
        client_secret: Secret::new("client-SECRET-2"),
        scope: scope_default(),
        assertion: None,
    }
}

#[test]
fn units_map_one_to_one_and_amounts_stay_exact() {
    let mut c = change(ChangeKind::Created);
    c.salary.pay.amount = dec("52000.10");
    let t = target(&c);
    assert_eq!((t.rate_type, t.rate), (RateType::Monthly, dec("52000.10")));
    c.salary.period_unit = PeriodUnit::Yearly;
    assert_eq!(target(&c).rate_type, RateType::Annual);
    c.salary.period_unit = PeriodUnit::Hourly;
    c.salary.pay.amount = dec("312.5050");
    let t = target(&c);
    assert_eq!((t.rate_type, t.rate), (RateType::Hourly, dec("312.505")));
    let raw = wire::raw_from_decimal(t.rate).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(raw.get(), "312.505");
}

#[test]
fn end_date_and_note_are_dropped_and_reported() {
    let mut c = change(ChangeKind::Created);
    assert_eq!(dropped_fields(&c), vec!["note"]);
    c.salary.end_date = NaiveDate::from_ymd_opt(2026, 12, 31);
    assert_eq!(dropped_fields(&c), vec!["end_date", "note"]);
    assert!(dropped_fields(&change(ChangeKind::Deleted)).is_empty());
}

#[test]
fn records_match_on_date_type_and_exact_amount() {
    let mut c = change(ChangeKind::Created);
    c.salary.pay.amount = dec("52000.00");
    let want = target(&c);
    let r = rate(1, "2026-01-01", "52000.0");
    assert!(r.holds(&want), "52000.0 and 52000.00 are the same amount");
    assert!(!rate(1, "2026-01-02", "52000").holds(&want));
    assert!(!rate(1, "2026-01-01", "52000.01").holds(&want));
    let hourly = Rate {
        rate_type: Some(RateType::Hourly),
        ..r.clone()
    };
    assert!(!hourly.holds(&want));
    let deleted = Rate { deleted: true, ..r };
    assert!(!deleted.holds(&want));
}

#[test]
fn the_overlap_rule_for_dated_rates() {
    let open = Period {
        start: day("2026-01-01"),
        end: None,
    };
    let year = Period {
        start: day("2026-01-01"),
        end: Some(day("2026-12-31")),
    };
    // Dated before the start: superseded, no conflict.
    let before = vec![rate(1, "2025-01-01", "40000")];
    assert_eq!(conflict(&open, &before, None, "g"), None);
    // Dated on the start: a conflict, in force until the next record.
    let rates = vec![
        rate(1, "2025-01-01", "40000"),
        rate(2, "2026-01-01", "50000"),
        rate(3, "2026-06-01", "51000"),
    ];
    assert_eq!(
        conflict(&open, &rates, None, "g"),
        Some((
            2,
            Period {
                start: day("2026-01-01"),
                end: Some(day("2026-05-31"))
            }
        ))
    );
    // The owned record is never a conflict, the next foreign one inside the period is.
    assert_eq!(conflict(&open, &rates, Some(2), "g").map(|c| c.0), Some(3));
    // After the salary's end: no conflict.
    let later = vec![rate(4, "2027-01-01", "60000")];
    assert_eq!(conflict(&year, &later, None, "g"), None);
    // Our own insert (by _createguid) and deleted records never conflict.
    let ours = vec![Rate {
        createguid: Some("g".into()),
        ..rate(5, "2026-01-01", "1")
    }];
    assert_eq!(conflict(&open, &ours, None, "g"), None);
    let gone = vec![Rate {
        deleted: true,
        ..rate(6, "2026-03-01", "1")
    }];
    assert_eq!(conflict(&open, &gone, None, "g"), None);
}

#[test]
fn debug_output_never_shows_credentials() {
    let shown = format!("{:?}", config());
    assert!(!shown.contains("SECRET"), "{shown}");
    let connector = UnimicroConnector::new(config(), reqwest::Client::new());
    let shown = format!("{connector:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("unieconomy.no"), "{shown}");
}

#[test]
fn a_refused_token_never_quotes_the_credentials() {
    let connector = UnimicroConnector::new(config(), reqwest::Client::new());
    let body = br#"{"error":"invalid_client","error_description":"client client-SECRET-ID with secret client-SECRET-2 unknown"}"#;
    let http = classify::http_error(400, "POST", "/connect/token", None, body, Call::Token, None);
    let err = connector.scrub_credentials(Error::Http(Box::new(http)));
    let shown = format!("{err} {err:?} {:?}", err.failure());
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert_eq!(err.failure().class, crate::domain::FailureClass::Auth);
}

#[test]
fn the_createguid_comes_from_integration_and_event() {
    let c = change(ChangeKind::Created);
    assert_eq!(
        guid_of(&c),
        createguid(c.integration_id.as_str(), c.event_id.as_str())
    );
    let mut other = c.clone();
    other.kind = ChangeKind::Updated;
    assert_eq!(guid_of(&c), guid_of(&other), "the kind does not enter it");
}
