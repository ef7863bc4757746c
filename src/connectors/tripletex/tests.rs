//! Unit tests of the connector's pure parts: units, dropped fields, redaction, row matching.

use super::*;
use crate::domain::change::tests_support::change;
use std::str::FromStr;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn with_unit(kind: ChangeKind, unit: PeriodUnit, amount: &str) -> SalaryChange {
    let mut c = change(kind);
    c.salary.period_unit = unit;
    c.salary.pay.amount = dec(amount);
    c
}

#[test]
fn units_convert_exactly() {
    let t = target(&with_unit(
        ChangeKind::Created,
        PeriodUnit::Monthly,
        "52000.10",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.remuneration_type, Some(MONTHLY_WAGE));
    assert_eq!(t.annual_salary, Some(dec("624001.20")));
    assert_eq!(t.hourly_wage, None);

    // 0.1 x 12 is 1.2 exactly (a float would say 1.2000000000000002).
    let t = target(&with_unit(ChangeKind::Updated, PeriodUnit::Monthly, "0.1"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.annual_salary.map(|d| d.to_string()), Some("1.2".into()));

    let t = target(&with_unit(
        ChangeKind::Created,
        PeriodUnit::Yearly,
        "700000",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (t.remuneration_type, t.annual_salary, t.hourly_wage),
        (Some(MONTHLY_WAGE), Some(dec("700000")), None)
    );

    let t = target(&with_unit(
        ChangeKind::Created,
        PeriodUnit::Hourly,
        "312.5050",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (t.remuneration_type, t.annual_salary, t.hourly_wage),
        (Some(HOURLY_WAGE), None, Some(dec("312.505")))
    );

    let t = target(&with_unit(ChangeKind::Deleted, PeriodUnit::Hourly, "312"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (t.remuneration_type, t.annual_salary, t.hourly_wage),
        (None, Some(Decimal::ZERO), Some(Decimal::ZERO))
    );
}

#[test]
fn end_date_and_note_are_dropped_and_reported() {
    let mut c = change(ChangeKind::Created);
    assert_eq!(dropped_fields(&c), vec!["note"]);
    c.salary.end_date = chrono::NaiveDate::from_ymd_opt(2026, 12, 31);
    assert_eq!(dropped_fields(&c), vec!["end_date", "note"]);
    c.salary.note = None;
    assert_eq!(dropped_fields(&c), vec!["end_date"]);
    assert!(dropped_fields(&change(ChangeKind::Deleted)).is_empty());
}

#[test]
fn debug_output_never_shows_tokens() {
    let config = TripletexConfig {
        base_url: "https://tripletex.no/v2".into(),
        consumer_token: Secret::new("consumer-SECRET-1"),
        employee_token: Secret::new("employee-SECRET-2"),
        company: None,
        session_days: 1,
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    let client = reqwest::Client::new();
    let connector = TripletexConnector::new(config, client);
    let shown = format!("{connector:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("tripletex.no"), "{shown}");
}

#[test]
fn rows_match_on_date_type_and_exact_amount() {
    let d = chrono::NaiveDate::from_ymd_opt(2026, 1, 1);
    let row = Row {
        id: 1,
        version: Some(3),
        date: d,
        remuneration_type: Some(MONTHLY_WAGE.into()),
        annual_salary: Some(dec("624000.0")),
        hourly_wage: Some(Decimal::ZERO),
        terms: Terms::default(),
    };
    let monthly = target(&with_unit(
        ChangeKind::Created,
        PeriodUnit::Monthly,
        "52000.00",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(row.holds(&monthly, d));
    assert!(!row.holds(&monthly, chrono::NaiveDate::from_ymd_opt(2026, 2, 1)));
    let other = target(&with_unit(
        ChangeKind::Created,
        PeriodUnit::Monthly,
        "52000.01",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!row.holds(&other, d));
    let hourly = target(&with_unit(
        ChangeKind::Created,
        PeriodUnit::Hourly,
        "624000",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!row.holds(&hourly, d));
    let delete = target(&change(ChangeKind::Deleted)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!row.holds(&delete, None));
    let cleared = Row {
        annual_salary: Some(Decimal::ZERO),
        hourly_wage: None,
        ..row
    };
    assert!(cleared.holds(&delete, None));
}

#[test]
fn a_refused_session_never_quotes_the_tokens() {
    let config = TripletexConfig {
        base_url: "https://tripletex.no/v2".into(),
        consumer_token: Secret::new("consumer-SECRET-1"),
        employee_token: Secret::new("employee-SECRET-2"),
        company: None,
        session_days: 1,
    };
    let connector = TripletexConnector::new(config, reqwest::Client::new());
    let body = br#"{"status":422,"code":15000,"message":"Invalid employee token employee-SECRET-2",
        "validationMessages":[{"field":"consumerToken","message":"unknown consumer-SECRET-1"}]}"#;
    let http = classify::http_error(
        422,
        "PUT",
        "/token/session/:create",
        None,
        body,
        Call::SessionCreate,
        None,
    );
    let err = connector.scrub_tokens(Error::Http(Box::new(http)));
    let shown = format!("{err} {err:?} {:?}", err.failure());
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}
