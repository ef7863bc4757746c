//! The Tripletex connector against Tripletex's own OpenAPI spec: the connector's full set of
//! calls (session, match by id / number / email, currency, overlap, create, reconcile, update,
//! delete, session renewal) goes through a Prism proxy in front of the simulator. Prism
//! answers a request that breaks the spec with 422 and an answer that breaks it with 500, so
//! any violation surfaces as a failed connector call; the proxy's log is checked as well.

#[path = "support/prism.rs"]
mod prism;

use prism::Prism;
use salary_sync::connectors::http::{client, ClientSettings};
use salary_sync::connectors::tripletex::{TripletexConfig, TripletexConnector};
use salary_sync::connectors::{Connector, OverlapCheck};
use salary_sync::domain::SalaryChange;
use salary_sync::secret::Secret;
use salary_sync::simulators::tripletex::{self as sim, Seed};
use serde_json::{json, Value};

fn change(kind: &str, employee: Value, amount: &str, unit: &str, start: &str) -> SalaryChange {
    let mut employee = employee;
    employee["id"] = json!("emp-hr");
    let event = json!({
        "event_id": "evt-1",
        "integration_id": "acme-tripletex",
        "kind": kind,
        "occurred_at": "2026-11-25T10:00:00Z",
        "salary": {
            "id": "sal-1",
            "employee": employee,
            "amount": amount,
            "currency": "NOK",
            "period_unit": unit,
            "start_date": start,
            "end_date": "2026-12-31",
            "note": "dropped, never sent",
        }
    });
    SalaryChange::from_json(&event).unwrap_or_else(|e| panic!("test event invalid: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connector_call_matches_the_spec() -> Result<(), Box<dyn std::error::Error>> {
    let seed = Seed::demo();
    let sim = sim::start(seed.clone()).await?;
    let upstream = sim.base_url();
    let proxy = tokio::task::spawn_blocking(move || Prism::start(&upstream))
        .await?
        .map_err(|e| format!("Prism did not start: {e}"))?;
    let connector = TripletexConnector::new(
        TripletexConfig {
            base_url: proxy.base_url(),
            consumer_token: Secret::new(seed.consumer_token.clone()),
            employee_token: Secret::new(seed.employee_token.clone()),
            company: None,
            session_days: 1,
        },
        client(&ClientSettings::default())?,
    )
    // Pages of one row, so the paging parameters go through the proxy too.
    .with_page_size(1);

    let outcome = async {
        // Match by each key (one GET each: the employee with its employments nested); the
        // searches page, and Ola (employee number 18) has two employments.
        let by_id = change(
            "created",
            json!({"payroll_employee_id": "101"}),
            "52000.10",
            "monthly",
            "2026-01-01",
        );
        let position = connector.match_position(&by_id).await?;
        assert_eq!(position.employment_id, "201");
        let by_number = change(
            "created",
            json!({"employee_number": "18"}),
            "1",
            "monthly",
            "2024-02-01",
        );
        assert_eq!(
            connector.match_position(&by_number).await?.employment_id,
            "203"
        );
        let by_email = change(
            "created",
            json!({"email": "per@example.no"}),
            "1",
            "monthly",
            "2026-01-01",
        );
        let per = connector.match_position(&by_email).await?;

        assert_eq!(connector.currency().await?.as_str(), "NOK");

        // Overlap: clear on Kari, a conflict with Per's hand-typed row.
        assert_eq!(
            connector.check_overlap(&by_id, &position, None).await?,
            OverlapCheck::Clear
        );
        assert!(matches!(
            connector.check_overlap(&by_email, &per, None).await?,
            OverlapCheck::ConflictDescribed { .. }
        ));

        // Create (POST), reconcile, update to hourly (GET + PUT), delete (PUT of zeros).
        assert_eq!(connector.find_written(&by_id, &position, None).await?, None);
        let report = connector.write(&by_id, &position, None).await?;
        let owned = report.record;
        assert_eq!(
            connector.find_written(&by_id, &position, None).await?,
            Some(owned.clone())
        );
        let hourly = change(
            "updated",
            json!({"payroll_employee_id": "101"}),
            "312.55",
            "hourly",
            "2026-01-01",
        );
        connector.write(&hourly, &position, Some(&owned)).await?;
        assert_eq!(
            connector
                .find_written(&hourly, &position, Some(&owned))
                .await?,
            Some(owned.clone())
        );
        // A renewed session after every session was ended (401 through the proxy, then
        // PUT /token/session/:create again).
        sim.expire_sessions();
        let yearly = change(
            "updated",
            json!({"payroll_employee_id": "101"}),
            "700000",
            "yearly",
            "2026-02-01",
        );
        connector.write(&yearly, &position, Some(&owned)).await?;
        let deleted = change(
            "deleted",
            json!({"payroll_employee_id": "101"}),
            "700000",
            "yearly",
            "2026-02-01",
        );
        let report = connector.write(&deleted, &position, Some(&owned)).await?;
        assert!(report.record_remains_after_delete);
        assert_eq!(
            connector
                .find_written(&deleted, &position, Some(&owned))
                .await?,
            Some(owned)
        );
        Ok::<(), salary_sync::connectors::Error>(())
    }
    .await;

    let violations = proxy.log_violations();
    let log = proxy.log_text();
    drop(proxy);
    sim.shutdown().await;
    if let Err(e) = outcome {
        return Err(
            format!("a connector call failed through Prism: {e}\nPrism log:\n{log}").into(),
        );
    }
    assert!(
        violations.is_empty(),
        "Prism reported violations:\n{}",
        violations.join("\n")
    );
    Ok(())
}

/// The repository keeps the salary subset of Tripletex's spec so a clone stands on its own;
/// where the vendor's full spec is at hand (`$TRIPLETEX_CONTRACT_DIR/openapi.json`, or
/// `../shared/contracts/tripletex/openapi.json` beside the repository), every path and schema in
/// the subset must be exactly the vendor's, and the subset must reach every schema its paths
/// refer to. `.ci/run` sets `SALARY_SYNC_REQUIRE_VENDOR_SPEC=1`, so CI fails when the vendor's
/// spec is missing instead of passing without comparing.
#[test]
fn kept_subset_equals_the_vendors_spec() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let kept: Value = serde_json::from_slice(&std::fs::read(
        manifest.join("contracts/tripletex/openapi-salary-subset.json"),
    )?)?;
    let vendor_path = match std::env::var_os("TRIPLETEX_CONTRACT_DIR") {
        Some(dir) => std::path::PathBuf::from(dir).join("openapi.json"),
        None => manifest.join("../shared/contracts/tripletex/openapi.json"),
    };
    if !vendor_path.is_file() {
        assert!(
            std::env::var_os("SALARY_SYNC_REQUIRE_VENDOR_SPEC").is_none(),
            "the vendor's spec is required but {} is missing",
            vendor_path.display()
        );
        eprintln!(
            "{} not found: the kept subset is not compared with the vendor's spec",
            vendor_path.display()
        );
        return Ok(());
    }
    let vendor: Value = serde_json::from_slice(&std::fs::read(&vendor_path)?)?;
    assert_eq!(kept["info"]["version"], vendor["info"]["version"]);
    let paths = kept["paths"].as_object().ok_or("subset has no paths")?;
    assert!(paths.len() >= 10, "subset lost paths: {:?}", paths.keys());
    for (path, item) in paths {
        assert_eq!(Some(item), vendor["paths"].get(path), "path {path} differs");
    }
    let schemas = kept["components"]["schemas"]
        .as_object()
        .ok_or("subset has no schemas")?;
    for (name, schema) in schemas {
        assert_eq!(
            Some(schema),
            vendor["components"]["schemas"].get(name),
            "schema {name} differs"
        );
    }
    let text = serde_json::to_string(&kept["paths"])? + &serde_json::to_string(schemas)?;
    for reference in text.split("#/components/schemas/").skip(1) {
        let name: String = reference
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
            .collect();
        assert!(
            schemas.contains_key(&name),
            "schema {name} is referred to but not kept"
        );
    }
    Ok(())
}
