//! The simulated Tripletex company: seed types, the stored records and the operations the API
//! performs on them.
//!
//! Architecture Invariant: this module does no I/O and never reads the clock; the server passes
//! `today` in. Every operation either changes the state and returns the new record, or returns a
//! [`ApiError`] and changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::wire::{ApiError, DetailsInput};

/// Everything the simulated company holds when the server starts.
///
/// The seed is plain data (it derives `Serialize`/`Deserialize`), so a test can build one in code,
/// start from [`Seed::demo`], or load one from a JSON file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Seed {
    /// The company's id, returned by `whoAmI` and served at `GET /company/{id}`.
    pub company_id: i64,
    /// The company's name.
    pub company_name: String,
    /// ISO 4217 code of the company currency (`GET /company/{id}?fields=currency(code)`).
    pub currency: String,
    /// The consumer token `PUT /token/session/:create` accepts.
    pub consumer_token: String,
    /// The employee token `PUT /token/session/:create` accepts.
    pub employee_token: String,
    /// The employee id `whoAmI` reports for the API user.
    pub api_user_employee_id: i64,
    /// Employees with their employments.
    pub employees: Vec<SeedEmployee>,
    /// Employment details (salary rows) that exist before the sync starts, e.g. rows a payroll
    /// clerk typed in by hand.
    pub details: Vec<SeedDetails>,
    /// When true, a second details row on the same employment and date is refused with
    /// 409/14000 "Duplicate entry". Tripletex does not document what it does; the default
    /// (false) accepts the duplicate, so a test can count rows and see a double write.
    #[serde(default)]
    pub reject_duplicate_dates: bool,
    /// Requests allowed per rate-limit period (`X-Rate-Limit-Limit`). Enforced: once a period's
    /// requests are spent every request gets 429 until the period ends. The default is high
    /// enough never to bind in tests and benches; `Control::set_rate_limit` (or
    /// `PUT /_sim/rate-limit`) changes it while the simulator runs. A
    /// [`super::FaultKind::RateLimited`] fault still gives a one-off 429.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: u32,
    /// The length of one rate-limit period, in seconds (at least 1).
    #[serde(default = "default_rate_window_s")]
    pub rate_window_s: u64,
    /// How many days Tripletex's own date is ahead of the UTC date. Tripletex runs on Norwegian
    /// time: between midnight in Oslo and midnight UTC its date is already tomorrow's (1). A
    /// session's `expirationDate` must be after Tripletex's date, not the client's.
    #[serde(default)]
    pub date_ahead_days: u32,
}

fn default_rate_limit() -> u32 {
    1_000_000
}

fn default_rate_window_s() -> u64 {
    60
}

/// An employee in the seed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedEmployee {
    /// Tripletex id.
    pub id: i64,
    /// `employeeNumber` (a string in Tripletex).
    pub employee_number: String,
    /// E-mail address; `GET /employee?email=` matches it case-insensitively.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// The employee's employments (positions). May be empty.
    pub employments: Vec<SeedEmployment>,
}

/// An employment (position) in the seed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedEmployment {
    /// Tripletex id.
    pub id: i64,
    /// First day of the employment.
    pub start_date: NaiveDate,
    /// Last day of the employment; `None` is open-ended (the field is then absent on the wire).
    pub end_date: Option<NaiveDate>,
}

/// A details row in the seed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedDetails {
    /// Tripletex id. New rows created through the API get ids above every seeded id.
    pub id: i64,
    /// The employment the row belongs to.
    pub employment_id: i64,
    /// The row is in force from this date until the next row's date.
    pub date: NaiveDate,
    /// Remuneration type.
    pub remuneration_type: RemunerationType,
    /// Annual salary at 100 %.
    #[serde(with = "rust_decimal::serde::str")]
    pub annual_salary: Decimal,
    /// Hourly wage.
    #[serde(with = "rust_decimal::serde::str")]
    pub hourly_wage: Decimal,
    /// Position size in percent.
    #[serde(with = "rust_decimal::serde::str")]
    pub percentage_of_full_time_equivalent: Decimal,
    /// The row's other terms (employment type, form, working hours, ...); absent in a seed
    /// file, they are what position sync usually sets ([`Terms::hiring`]).
    #[serde(default = "Terms::hiring")]
    pub terms: Terms,
}

/// A details row's terms other than the salary and the position size: every other writable
/// field of Tripletex's `EmploymentDetails` (OpenAPI spec 2.72.00, `components.schemas.
/// EmploymentDetails`: the properties not marked `readOnly`). Enum values are kept as the
/// spec's strings and checked against its enums when written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Terms {
    /// `employmentType` (ORDINARY, MARITIME, FREELANCE, NOT_CHOSEN).
    pub employment_type: String,
    /// `employmentForm` (PERMANENT, TEMPORARY, ..., NOT_CHOSEN).
    pub employment_form: String,
    /// `workingHoursScheme` (NOT_SHIFT, ROUND_THE_CLOCK, ..., NOT_CHOSEN).
    pub working_hours_scheme: String,
    /// `shiftDurationHours`.
    #[serde(with = "rust_decimal::serde::str")]
    pub shift_duration_hours: Decimal,
    /// `occupationCode.id`, when set.
    pub occupation_code_id: Option<i64>,
    /// `payrollTaxMunicipalityId.id`, when set.
    pub payroll_tax_municipality_id: Option<i64>,
    /// `maritimeEmployment`, as sent (an object), when set.
    pub maritime_employment: Option<serde_json::Value>,
}

impl Terms {
    /// What a row POSTed without these fields gets. The spec publishes no defaults; every enum
    /// has a `NOT_CHOSEN` value, which is what an unset choice reads as, and numbers are 0 (a
    /// position size left out reads as 0 %, as seen against Tripletex in issue 11).
    pub fn unset() -> Self {
        Self {
            employment_type: "NOT_CHOSEN".into(),
            employment_form: "NOT_CHOSEN".into(),
            working_hours_scheme: "NOT_CHOSEN".into(),
            shift_duration_hours: Decimal::ZERO,
            occupation_code_id: None,
            payroll_tax_municipality_id: None,
            maritime_employment: None,
        }
    }

    /// What position sync usually sets on the hiring row of an ordinary permanent position.
    pub fn hiring() -> Self {
        Self {
            employment_type: "ORDINARY".into(),
            employment_form: "PERMANENT".into(),
            working_hours_scheme: "NOT_SHIFT".into(),
            ..Self::unset()
        }
    }
}

/// `remunerationType` values from the Tripletex spec.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum RemunerationType {
    MonthlyWage,
    HourlyWage,
    /// Spelled as in Tripletex's spec.
    CommisionPercentage,
    Fee,
    NotChosen,
    PieceworkWage,
}

impl RemunerationType {
    /// The wire name, e.g. `MONTHLY_WAGE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MonthlyWage => "MONTHLY_WAGE",
            Self::HourlyWage => "HOURLY_WAGE",
            Self::CommisionPercentage => "COMMISION_PERCENTAGE",
            Self::Fee => "FEE",
            Self::NotChosen => "NOT_CHOSEN",
            Self::PieceworkWage => "PIECEWORK_WAGE",
        }
    }

    /// Parses a wire name; `None` for anything outside the spec's enum.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::MonthlyWage,
            Self::HourlyWage,
            Self::CommisionPercentage,
            Self::Fee,
            Self::NotChosen,
            Self::PieceworkWage,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// One stored employment details row, as a test sees it through [`super::Control::details`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DetailsRow {
    /// Tripletex id.
    pub id: i64,
    /// Revision; starts at 0 and goes up by one on every write.
    pub version: i32,
    /// The employment the row belongs to.
    pub employment_id: i64,
    /// In force from this date.
    pub date: NaiveDate,
    /// `None` when the row was created without one.
    pub remuneration_type: Option<RemunerationType>,
    /// Annual salary at 100 %.
    #[serde(with = "rust_decimal::serde::str")]
    pub annual_salary: Decimal,
    /// Hourly wage.
    #[serde(with = "rust_decimal::serde::str")]
    pub hourly_wage: Decimal,
    /// Position size in percent.
    #[serde(with = "rust_decimal::serde::str")]
    pub percentage_of_full_time_equivalent: Decimal,
    /// The row's other writable terms.
    pub terms: Terms,
    /// True when the row came from the seed (or is the hiring row position sync made) rather
    /// than from an API write.
    pub seeded: bool,
}

impl DetailsRow {
    /// The read-only `monthlySalary`: annual salary / 12, rounded to øre.
    pub fn monthly_salary(&self) -> Decimal {
        (self.annual_salary / Decimal::from(12)).round_dp(2)
    }
}

/// A stored employee.
#[derive(Clone, Debug)]
pub(crate) struct Employee {
    pub id: i64,
    pub employee_number: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

/// A stored employment.
#[derive(Clone, Debug)]
pub(crate) struct Employment {
    pub id: i64,
    pub employee_id: i64,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
}

impl Employment {
    fn covers(&self, date: NaiveDate) -> bool {
        date >= self.start_date && self.end_date.is_none_or(|end| date <= end)
    }
}

/// A live session token.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub id: i64,
    pub expiration_date: NaiveDate,
}

/// The whole simulated company. Guarded by one mutex in the server; no method awaits.
#[derive(Debug)]
pub(crate) struct Company {
    pub seed: Seed,
    pub employees: BTreeMap<i64, Employee>,
    pub employments: BTreeMap<i64, Employment>,
    pub details: BTreeMap<i64, DetailsRow>,
    pub sessions: HashMap<String, Session>,
    /// Employment ids of each employee, ascending: a lookup by employee costs its own rows,
    /// not a scan of the company (the load bench seeds 100 000 employees).
    employments_by_employee: HashMap<i64, Vec<i64>>,
    /// Details row ids of each employment. Kept in step with `details` by every write.
    details_by_employment: HashMap<i64, BTreeSet<i64>>,
    next_details_id: i64,
    next_session_id: i64,
}

impl Company {
    /// Builds the company from a seed. Fails when the seed contradicts itself (duplicate ids,
    /// details on an unknown employment).
    pub fn new(seed: Seed) -> Result<Self, String> {
        let mut employees = BTreeMap::new();
        let mut employments = BTreeMap::new();
        for e in &seed.employees {
            let employee = Employee {
                id: e.id,
                employee_number: e.employee_number.clone(),
                email: e.email.clone(),
                first_name: e.first_name.clone(),
                last_name: e.last_name.clone(),
            };
            if employees.insert(e.id, employee).is_some() {
                return Err(format!("seed: employee id {} used twice", e.id));
            }
            for m in &e.employments {
                let employment = Employment {
                    id: m.id,
                    employee_id: e.id,
                    start_date: m.start_date,
                    end_date: m.end_date,
                };
                if employments.insert(m.id, employment).is_some() {
                    return Err(format!("seed: employment id {} used twice", m.id));
                }
            }
        }
        let mut details = BTreeMap::new();
        for d in &seed.details {
            if !employments.contains_key(&d.employment_id) {
                return Err(format!(
                    "seed: details {} refers to unknown employment {}",
                    d.id, d.employment_id
                ));
            }
            let row = DetailsRow {
                id: d.id,
                version: 0,
                employment_id: d.employment_id,
                date: d.date,
                remuneration_type: Some(d.remuneration_type),
                annual_salary: d.annual_salary,
                hourly_wage: d.hourly_wage,
                percentage_of_full_time_equivalent: d.percentage_of_full_time_equivalent,
                terms: d.terms.clone(),
                seeded: true,
            };
            if details.insert(d.id, row).is_some() {
                return Err(format!("seed: details id {} used twice", d.id));
            }
        }
        // New rows get ids well above the seeded ones, so a test can tell them apart at a glance.
        let mut next_details_id = details.keys().max().map_or(1000, |max| (max + 1).max(1000));
        // Tripletex requires a details row on every employment, dated its start: position sync
        // creates it with the employment (issue 11, point 2). A seed that gives no row on that
        // date gets one without a salary (position sync sets the salary only when it knows it).
        let dated: BTreeSet<(i64, NaiveDate)> = details
            .values()
            .map(|d| (d.employment_id, d.date))
            .collect();
        for m in employments.values() {
            if dated.contains(&(m.id, m.start_date)) {
                continue;
            }
            let row = DetailsRow {
                id: next_details_id,
                version: 0,
                employment_id: m.id,
                date: m.start_date,
                remuneration_type: Some(RemunerationType::NotChosen),
                annual_salary: Decimal::ZERO,
                hourly_wage: Decimal::ZERO,
                percentage_of_full_time_equivalent: Decimal::ONE_HUNDRED,
                terms: Terms::hiring(),
                seeded: true,
            };
            details.insert(row.id, row);
            next_details_id += 1;
        }
        let mut employments_by_employee: HashMap<i64, Vec<i64>> = HashMap::new();
        for m in employments.values() {
            employments_by_employee
                .entry(m.employee_id)
                .or_default()
                .push(m.id);
        }
        let mut details_by_employment: HashMap<i64, BTreeSet<i64>> = HashMap::new();
        for d in details.values() {
            details_by_employment
                .entry(d.employment_id)
                .or_default()
                .insert(d.id);
        }
        Ok(Self {
            seed,
            employees,
            employments,
            details,
            sessions: HashMap::new(),
            employments_by_employee,
            details_by_employment,
            next_details_id,
            next_session_id: 1,
        })
    }

    /// `PUT /token/session/:create`.
    pub fn create_session(
        &mut self,
        consumer_token: Option<&str>,
        employee_token: Option<&str>,
        expiration_date: Option<&str>,
        today: NaiveDate,
        new_token: String,
    ) -> Result<(String, Session), ApiError> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("consumerToken", consumer_token),
            ("employeeToken", employee_token),
            ("expirationDate", expiration_date),
        ] {
            if value.is_none_or(str::is_empty) {
                problems.push((name, "The field is required.".to_string()));
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::validation(21000, problems));
        }
        let expiration = expiration_date
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .ok_or_else(|| {
                ApiError::validation(
                    21000,
                    vec![("expirationDate", "Not a valid date; use YYYY-MM-DD.".into())],
                )
            })?;
        if expiration <= today {
            return Err(ApiError::validation(
                15000,
                vec![(
                    "expirationDate",
                    "The expiration date must be after today.".into(),
                )],
            ));
        }
        if consumer_token != Some(self.seed.consumer_token.as_str())
            || employee_token != Some(self.seed.employee_token.as_str())
        {
            return Err(ApiError::unauthorized(
                "Invalid consumer or employee token.",
            ));
        }
        let session = Session {
            id: self.next_session_id,
            expiration_date: expiration,
        };
        self.next_session_id += 1;
        self.sessions.insert(new_token.clone(), session.clone());
        Ok((new_token, session))
    }

    /// Checks the Basic-auth user (company) and password (session token).
    pub fn authenticate(&self, user: &str, token: &str, today: NaiveDate) -> Result<(), ApiError> {
        let live = self
            .sessions
            .get(token)
            .is_some_and(|s| s.expiration_date >= today);
        if !live {
            return Err(ApiError::unauthorized(
                "The session token is not valid or has expired.",
            ));
        }
        if !(user.is_empty() || user == "0" || user == self.seed.company_id.to_string()) {
            return Err(ApiError::forbidden(
                "You do not have access to the requested company.",
            ));
        }
        Ok(())
    }

    /// Ends every session, as if they all expired.
    pub fn expire_sessions(&mut self) {
        self.sessions.clear();
    }

    /// `GET /employee` with the filters the simulator understands.
    pub fn find_employees(&self, filter: &EmployeeFilter) -> Vec<&Employee> {
        self.employees
            .values()
            .filter(|e| filter.ids.as_ref().is_none_or(|ids| ids.contains(&e.id)))
            .filter(|e| {
                filter
                    .employee_number
                    .as_ref()
                    .is_none_or(|n| &e.employee_number == n)
            })
            .filter(|e| {
                filter
                    .email
                    .as_ref()
                    .is_none_or(|m| e.email.eq_ignore_ascii_case(m))
            })
            .filter(|e| {
                filter
                    .first_name
                    .as_ref()
                    .is_none_or(|n| e.first_name.eq_ignore_ascii_case(n))
            })
            .filter(|e| {
                filter
                    .last_name
                    .as_ref()
                    .is_none_or(|n| e.last_name.eq_ignore_ascii_case(n))
            })
            .collect()
    }

    pub fn employee(&self, id: i64) -> Result<&Employee, ApiError> {
        self.employees
            .get(&id)
            .ok_or_else(|| ApiError::not_found("employee", id))
    }

    pub fn employments_of(&self, employee_id: Option<i64>) -> Vec<&Employment> {
        match employee_id {
            None => self.employments.values().collect(),
            Some(id) => self
                .employments_by_employee
                .get(&id)
                .into_iter()
                .flatten()
                .filter_map(|m| self.employments.get(m))
                .collect(),
        }
    }

    pub fn employment(&self, id: i64) -> Result<&Employment, ApiError> {
        self.employments
            .get(&id)
            .ok_or_else(|| ApiError::not_found("employment", id))
    }

    /// Rows in id order; each row once, even when its employment is named twice.
    pub fn details_of(&self, employment_ids: Option<&[i64]>) -> Vec<&DetailsRow> {
        let Some(ids) = employment_ids else {
            return self.details.values().collect();
        };
        let rows: BTreeSet<i64> = ids
            .iter()
            .filter_map(|m| self.details_by_employment.get(m))
            .flatten()
            .copied()
            .collect();
        rows.iter().filter_map(|d| self.details.get(d)).collect()
    }

    pub fn details_row(&self, id: i64) -> Result<&DetailsRow, ApiError> {
        self.details
            .get(&id)
            .ok_or_else(|| ApiError::not_found("employment details", id))
    }

    /// `POST /employee/employment/details`.
    pub fn create_details(&mut self, input: DetailsInput) -> Result<DetailsRow, ApiError> {
        let mut problems = Vec::new();
        if input.employment_id.is_none() {
            problems.push(("employment", "The field is required.".to_string()));
        }
        if input.date.is_none() {
            problems.push(("date", "The field is required.".to_string()));
        }
        if !problems.is_empty() {
            return Err(ApiError::validation(15000, problems));
        }
        let (Some(employment_id), Some(date)) = (input.employment_id, input.date) else {
            return Err(ApiError::internal("required fields vanished"));
        };
        self.check_placement(employment_id, date, None)?;
        let row = DetailsRow {
            id: self.next_details_id,
            version: 0,
            employment_id,
            date,
            remuneration_type: Some(
                input
                    .remuneration_type
                    .unwrap_or(RemunerationType::NotChosen),
            ),
            annual_salary: input.annual_salary.unwrap_or_default(),
            hourly_wage: input.hourly_wage.unwrap_or_default(),
            // A new row is the employment's whole state from its date: what it leaves out gets
            // the defaults, not the terms of the row before it.
            percentage_of_full_time_equivalent: input
                .percentage_of_full_time_equivalent
                .unwrap_or(Decimal::ZERO),
            terms: input.terms.apply(Terms::unset()),
            seeded: false,
        };
        self.next_details_id += 1;
        self.details_by_employment
            .entry(employment_id)
            .or_default()
            .insert(row.id);
        self.details.insert(row.id, row.clone());
        Ok(row)
    }

    /// `PUT /employee/employment/details/{id}`: a partial update. A `version` in the body must
    /// equal the stored one (Tripletex: "If included, it will prevent your PUT/POST from
    /// overriding any updates to the resource since your GET").
    pub fn update_details(&mut self, id: i64, input: DetailsInput) -> Result<DetailsRow, ApiError> {
        let current = self.details_row(id)?.clone();
        if let Some(version) = input.version {
            if version != current.version {
                return Err(ApiError::revision(id, version, current.version));
            }
        }
        let employment_id = input.employment_id.unwrap_or(current.employment_id);
        let date = input.date.unwrap_or(current.date);
        if employment_id != current.employment_id || date != current.date {
            self.check_placement(employment_id, date, Some(id))?;
        }
        let row = DetailsRow {
            id,
            version: current.version + 1,
            employment_id,
            date,
            remuneration_type: input.remuneration_type.or(current.remuneration_type),
            annual_salary: input.annual_salary.unwrap_or(current.annual_salary),
            hourly_wage: input.hourly_wage.unwrap_or(current.hourly_wage),
            percentage_of_full_time_equivalent: input
                .percentage_of_full_time_equivalent
                .unwrap_or(current.percentage_of_full_time_equivalent),
            terms: input.terms.apply(current.terms.clone()),
            seeded: current.seeded,
        };
        if employment_id != current.employment_id {
            if let Some(rows) = self.details_by_employment.get_mut(&current.employment_id) {
                rows.remove(&id);
            }
            self.details_by_employment
                .entry(employment_id)
                .or_default()
                .insert(id);
        }
        self.details.insert(id, row.clone());
        Ok(row)
    }

    /// The employment must exist, the date must fall inside it, and (when configured) no other
    /// row may hold the same date.
    fn check_placement(
        &self,
        employment_id: i64,
        date: NaiveDate,
        except: Option<i64>,
    ) -> Result<(), ApiError> {
        let Some(employment) = self.employments.get(&employment_id) else {
            return Err(ApiError::validation(
                15000,
                vec![(
                    "employment.id",
                    format!("Employment {employment_id} does not exist."),
                )],
            ));
        };
        if !employment.covers(date) {
            let end = employment
                .end_date
                .map_or_else(|| "(open)".to_string(), |d| d.to_string());
            return Err(ApiError::validation(
                15000,
                vec![(
                    "date",
                    format!(
                        "The date {date} is outside the employment period {} - {end}.",
                        employment.start_date
                    ),
                )],
            ));
        }
        if self.seed.reject_duplicate_dates {
            let taken = self
                .details_of(Some(&[employment_id]))
                .iter()
                .any(|d| d.date == date && Some(d.id) != except);
            if taken {
                return Err(ApiError::duplicate(format!(
                    "Employment {employment_id} already has details dated {date}."
                )));
            }
        }
        Ok(())
    }
}

/// Filters of `GET /employee`.
#[derive(Debug, Default)]
pub(crate) struct EmployeeFilter {
    pub ids: Option<Vec<i64>>,
    pub employee_number: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    // The arguments are literals below; an invalid one is a bug in this file, caught by the
    // demo-seed test.
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

impl Seed {
    /// A small company for the demo and the tests (currency NOK, company id 1_000_001,
    /// consumer token `demo-consumer-token`, employee token `demo-employee-token`):
    ///
    /// | employee | number | e-mail | employments | details |
    /// |---|---|---|---|---|
    /// | 101 Kari Nordmann | 17 | kari@example.no | 201 from 2020-01-01, open | none |
    /// | 102 Ola Hansen | 18 | ola@example.no | 202 2019-03-01 .. 2023-12-31, 203 from 2024-01-01, open | none |
    /// | 103 Per Olsen | 19 | per@example.no | 204 from 2021-06-01, open | 901: 2026-01-01, MONTHLY_WAGE, 600 000, a foreign row to provoke an overlap |
    /// | 104 Lise Berg | 20 | lise@example.no | none (salary sync has nothing to match) | |
    /// | 105 Nils Dahl | 21 | nils@example.no | 205 from 2022-02-01, open | none (hourly worker) |
    /// | 106 Eva Lie | 22 | eva@example.no | 206 from 2026-01-01, open | 902: 2026-01-01, her hiring row, 60 %, 540 000 |
    ///
    /// Every employment without a row dated its start gets the hiring row position sync makes
    /// (no salary, 100 %, ORDINARY / PERMANENT / NOT_SHIFT), with an id from 1000 up.
    pub fn demo() -> Self {
        let employee =
            |id: i64, number: &str, first: &str, last: &str, employments: Vec<SeedEmployment>| {
                SeedEmployee {
                    id,
                    employee_number: number.into(),
                    email: format!("{}@example.no", first.to_lowercase()),
                    first_name: first.into(),
                    last_name: last.into(),
                    employments,
                }
            };
        let open = |id: i64, start: NaiveDate| SeedEmployment {
            id,
            start_date: start,
            end_date: None,
        };
        Self {
            company_id: 1_000_001,
            company_name: "Demo Bakeri AS".into(),
            currency: "NOK".into(),
            consumer_token: "demo-consumer-token".into(),
            employee_token: "demo-employee-token".into(),
            api_user_employee_id: 100,
            employees: vec![
                employee(
                    101,
                    "17",
                    "Kari",
                    "Nordmann",
                    vec![open(201, date(2020, 1, 1))],
                ),
                employee(
                    102,
                    "18",
                    "Ola",
                    "Hansen",
                    vec![
                        SeedEmployment {
                            id: 202,
                            start_date: date(2019, 3, 1),
                            end_date: Some(date(2023, 12, 31)),
                        },
                        open(203, date(2024, 1, 1)),
                    ],
                ),
                employee(103, "19", "Per", "Olsen", vec![open(204, date(2021, 6, 1))]),
                employee(104, "20", "Lise", "Berg", vec![]),
                employee(105, "21", "Nils", "Dahl", vec![open(205, date(2022, 2, 1))]),
                employee(106, "22", "Eva", "Lie", vec![open(206, date(2026, 1, 1))]),
            ],
            details: vec![
                SeedDetails {
                    id: 901,
                    employment_id: 204,
                    date: date(2026, 1, 1),
                    remuneration_type: RemunerationType::MonthlyWage,
                    annual_salary: Decimal::from(600_000),
                    hourly_wage: Decimal::ZERO,
                    percentage_of_full_time_equivalent: Decimal::ONE_HUNDRED,
                    terms: Terms::hiring(),
                },
                // Eva's hiring row, as position sync made it: a 60 % position with the agreed
                // salary. A salary starting on her first day updates this row in place.
                SeedDetails {
                    id: 902,
                    employment_id: 206,
                    date: date(2026, 1, 1),
                    remuneration_type: RemunerationType::MonthlyWage,
                    annual_salary: Decimal::from(540_000),
                    hourly_wage: Decimal::ZERO,
                    percentage_of_full_time_equivalent: Decimal::from(60),
                    terms: Terms::hiring(),
                },
            ],
            reject_duplicate_dates: false,
            rate_limit: default_rate_limit(),
            rate_window_s: default_rate_window_s(),
            date_ahead_days: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company() -> Company {
        Company::new(Seed::demo()).unwrap()
    }

    fn input(employment: i64, day: &str) -> DetailsInput {
        DetailsInput {
            employment_id: Some(employment),
            date: NaiveDate::parse_from_str(day, "%Y-%m-%d").ok(),
            annual_salary: Some(Decimal::new(62_400_000, 2)),
            remuneration_type: Some(RemunerationType::MonthlyWage),
            ..DetailsInput::default()
        }
    }

    #[test]
    fn demo_seed_is_consistent() {
        let c = company();
        assert!(c
            .seed
            .employees
            .iter()
            .all(|e| e.employments.iter().all(|m| m.start_date > NaiveDate::MIN)));
        // Every employment has its hiring row, dated its start; the seed's two rows are kept.
        for m in c.employments.values() {
            let rows = c.details_of(Some(&[m.id]));
            assert!(rows.iter().any(|d| d.date == m.start_date), "{}", m.id);
        }
        assert_eq!(c.details.len(), 2 + c.employments.len() - 1);
        let eva = c.details_row(902).unwrap();
        assert_eq!(eva.percentage_of_full_time_equivalent, Decimal::from(60));
    }

    #[test]
    fn create_then_update_bumps_version_and_checks_it() {
        let mut c = company();
        let row = c.create_details(input(201, "2026-01-01")).unwrap();
        assert_eq!(row.version, 0);
        assert_eq!(row.monthly_salary(), Decimal::new(5_200_000, 2));
        let update = DetailsInput {
            version: Some(0),
            annual_salary: Some(Decimal::ZERO),
            ..DetailsInput::default()
        };
        let row = c.update_details(row.id, update.clone()).unwrap();
        assert_eq!(row.version, 1);
        assert_eq!(row.annual_salary, Decimal::ZERO);
        let stale = c.update_details(row.id, update).unwrap_err();
        assert_eq!((stale.status, stale.code), (409, 8000));
    }

    #[test]
    fn date_outside_employment_is_refused() {
        let mut c = company();
        let before = c.details.len();
        let err = c.create_details(input(202, "2024-02-01")).unwrap_err();
        assert_eq!((err.status, err.code), (422, 15000));
        let err = c.create_details(input(999, "2024-02-01")).unwrap_err();
        assert_eq!((err.status, err.code), (422, 15000));
        assert_eq!(c.details.len(), before);
    }

    #[test]
    fn details_lookup_follows_a_row_moved_to_another_employment() {
        let mut c = company();
        let row = c.create_details(input(201, "2026-01-01")).unwrap();
        // The rows written through the API (not the hiring rows).
        let ids = |c: &Company, m: i64| -> Vec<i64> {
            c.details_of(Some(&[m]))
                .iter()
                .filter(|d| !d.seeded)
                .map(|d| d.id)
                .collect()
        };
        assert_eq!(ids(&c, 201), vec![row.id]);
        let moved = DetailsInput {
            employment_id: Some(203),
            ..DetailsInput::default()
        };
        c.update_details(row.id, moved).unwrap();
        assert_eq!(ids(&c, 201), Vec::<i64>::new());
        assert_eq!(ids(&c, 203), vec![row.id]);
        // 203's hiring row and the moved one; 204's hiring row and row 901.
        assert_eq!(c.details_of(Some(&[203, 203, 204])).len(), 4);
        let ola: Vec<i64> = c.employments_of(Some(102)).iter().map(|m| m.id).collect();
        assert_eq!(ola, vec![202, 203]);
    }

    #[test]
    fn a_posted_row_gets_the_defaults_and_a_put_keeps_what_it_leaves_out() {
        let mut c = company();
        // Row 902 (Eva's hiring row) is a 60 % ordinary permanent position.
        let posted = c.create_details(input(206, "2026-03-01")).unwrap();
        assert_eq!(posted.percentage_of_full_time_equivalent, Decimal::ZERO);
        assert_eq!(posted.terms, Terms::unset());
        let update = DetailsInput {
            annual_salary: Some(Decimal::from(1)),
            ..DetailsInput::default()
        };
        let put = c.update_details(902, update).unwrap();
        assert_eq!(put.percentage_of_full_time_equivalent, Decimal::from(60));
        assert_eq!(put.terms, Terms::hiring());
    }

    #[test]
    fn duplicates_are_refused_only_when_configured() {
        let mut c = company();
        c.create_details(input(201, "2026-01-01")).unwrap();
        c.create_details(input(201, "2026-01-01")).unwrap();
        c.seed.reject_duplicate_dates = true;
        let err = c.create_details(input(201, "2026-01-01")).unwrap_err();
        assert_eq!((err.status, err.code), (409, 14000));
    }

    #[test]
    fn sessions_expire_and_check_tokens() {
        let mut c = company();
        let today = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let bad = c
            .create_session(Some("x"), Some("y"), Some("2026-12-01"), today, "t".into())
            .unwrap_err();
        assert_eq!((bad.status, bad.code), (401, 3000));
        c.create_session(
            Some("demo-consumer-token"),
            Some("demo-employee-token"),
            Some("2026-12-01"),
            today,
            "t".into(),
        )
        .unwrap();
        c.authenticate("0", "t", today).unwrap();
        assert_eq!(c.authenticate("7", "t", today).unwrap_err().code, 9000);
        c.expire_sessions();
        assert_eq!(c.authenticate("0", "t", today).unwrap_err().code, 3000);
    }
}
