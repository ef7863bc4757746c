//! Unit tests of the connector's pure parts: redaction, correlation ids, job states, URL
//! handling, the form encoding of the token request, dropped fields.

use super::*;
use crate::domain::change::tests_support::change;

fn config() -> VismaConfig {
    VismaConfig {
        base_url: "https://api.example.test/v2/".into(),
        token_url: "https://connect.example.test/connect/token".into(),
        tenant_id: "tenant-1".into(),
        client_id: Secret::new("client-SECRET-1"),
        client_secret: Secret::new("secret-SECRET-2"),
        scope: Some("payroll:employees".into()),
        currency: Currency::parse("NOK").unwrap_or_else(|e| panic!("{e}")),
        api: VismaApi::default(),
    }
}

fn connector() -> VismaConnector {
    VismaConnector::new(config(), reqwest::Client::new())
}

#[test]
fn debug_output_never_shows_credentials() {
    let shown = format!("{:?} {:?}", config(), connector());
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("api.example.test"), "{shown}");
}

#[test]
fn a_refused_token_request_never_quotes_the_credentials() {
    let c = connector();
    let vendor = ApiError {
        message: Some("unknown client client-SECRET-1 with secret secret-SECRET-2".into()),
        details: vec!["client-SECRET-1".into()],
        code: Some("invalid_client".into()),
    };
    let http = classify::http_error(
        401,
        "POST",
        "/connect/token",
        None,
        &vendor,
        Call::Token,
        None,
    );
    let err = c.scrub(Error::Http(Box::new(http)));
    let shown = format!("{err} {err:?} {:?}", err.failure());
    assert!(!shown.contains("SECRET"), "{shown}");
    assert_eq!(err.failure().class, FailureClass::Auth);
}

#[test]
fn correlation_ids_are_stable_and_differ_per_change() {
    let created = change(ChangeKind::Created);
    let a = correlation_id(&created);
    assert_eq!(a, correlation_id(&created.clone()));
    assert_eq!(a.len(), 36);
    assert_eq!(a.matches('-').count(), 4);
    assert_ne!(a, correlation_id(&change(ChangeKind::Updated)));
    let mut other = created.clone();
    other.event_id = crate::domain::EventId::parse("evt-other").unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(a, correlation_id(&other));
}

#[test]
fn job_states_follow_status_and_status_code() {
    let job = |status: &str, code: Option<i64>| Job {
        status: Some(status.into()),
        status_code: code,
        ..Job::default()
    };
    assert!(matches!(
        job_state(&job("Succeeded", Some(4))),
        JobState::Succeeded
    ));
    assert!(matches!(
        job_state(&job("whatever", Some(4))),
        JobState::Succeeded
    ));
    assert!(matches!(
        job_state(&job("succeeded", None)),
        JobState::Succeeded
    ));
    assert!(matches!(
        job_state(&job("Failed", Some(3))),
        JobState::Failed
    ));
    assert!(matches!(
        job_state(&job("Running", Some(2))),
        JobState::Running
    ));
    assert!(matches!(
        job_state(&job("Queued", Some(1))),
        JobState::Running
    ));
}

#[test]
fn locations_become_paths_below_the_api_root() {
    let c = connector();
    let path = |l: &str| c.base_relative(l);
    assert_eq!(
        path("https://api.example.test/v2/employees/e1/positions/jobs/j1").as_deref(),
        Ok("/employees/e1/positions/jobs/j1")
    );
    assert_eq!(
        path("/v2/employees/e1/positions/jobs/j1").as_deref(),
        Ok("/employees/e1/positions/jobs/j1")
    );
    assert_eq!(
        path("/employees/e1/positions/jobs/j1").as_deref(),
        Ok("/employees/e1/positions/jobs/j1")
    );
    assert!(path("https://evil.example/v2/employees/e1/positions/jobs/j1").is_err());
    assert!(path("/employees/../../token").is_err());
}

#[test]
fn ids_from_outside_cannot_change_the_path() {
    assert!(segment("3f2504e0-4f89-11d3-9a0c-0305e82c3301", "id").is_ok());
    for bad in ["", "a/b", "..", "a?b=1", "a b", "ø"] {
        assert!(segment(bad, "id").is_err(), "{bad:?} accepted");
    }
}

#[test]
fn the_token_form_is_url_encoded() {
    assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    assert_eq!(form_encode("Az09-._*"), "Az09-._*");
}

#[test]
fn only_the_note_is_dropped() {
    let mut c = change(ChangeKind::Created);
    assert_eq!(dropped_fields(&c), vec!["note"]);
    c.salary.end_date = chrono::NaiveDate::from_ymd_opt(2026, 12, 31);
    c.salary.note = None;
    assert!(dropped_fields(&c).is_empty(), "the end date is activeEnd");
    assert!(dropped_fields(&change(ChangeKind::Deleted)).is_empty());
}

#[test]
fn the_assumptions_have_defaults_and_are_checked() {
    let api = VismaApi::default();
    assert_eq!(api.page_size, 50);
    assert_eq!(api.page_size_param, "page-size");
    assert!(api.validate().is_ok());
    let bad = VismaApi {
        correlation_header: "not a header".into(),
        ..VismaApi::default()
    };
    assert!(bad.validate().unwrap_err().contains("correlation_header"));
    let parsed: VismaApi = toml::from_str("page_size = 10\nnext_page_field = \"next\"")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (parsed.page_size, parsed.next_page_field.as_str()),
        (10, "next")
    );
    assert!(toml::from_str::<VismaApi>("pagesize = 10").is_err());
}
