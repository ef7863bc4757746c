//! The salary timeline of one Visma position (`salaryInformation[]`, `salaryType` "Period")
//! and the one pure function that plans an edit of it: create, update or delete the entry an
//! HR salary owns, keeping the timeline free of overlaps and of new gaps.
//!
//! Invariant: pure. No I/O; the same plan decides the overlap step (`Conflict`), the write
//! (the entries to PUT) and reconciliation (`Planned::changed == false` means payroll already
//! holds the result). Entries the plan does not touch are sent back exactly as read.
//!
//! The rules (docs/payroll-systems/visma.md, "Timeline rules"):
//! - An entry is keyed by its `activeStart` (`salaryInformation@YYYY-MM-DD`); the timeline
//!   allows one entry per start date, so the key is stable and unique on a position. The
//!   record an HR salary owns is the entry at the key salary-sync wrote.
//! - Update or delete first removes the owned entry and extends its adjacent predecessor over
//!   the removed period (no gap is left behind). A delete stops there.
//! - Create (and the second half of an update) inserts `[start, end]`. Exactly one existing
//!   entry may overlap it: the predecessor that starts before `start` and is open-ended (or
//!   was just extended by the removal above). It is superseded: its `activeEnd` becomes the
//!   day before `start`. Any other overlapping entry is a conflict, named by its key.
//! - Gaps the HR salary itself implies (a closed salary followed later by another entry) are
//!   not filled by guessing: Visma validates the timeline and refuses them with a readable
//!   validation result.

use crate::domain::{Period, PeriodUnit};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::cmp::Ordering;

use super::wire::{self, RawEntry};

/// The prefix of a timeline entry's record id.
pub const KEY_PREFIX: &str = "salaryInformation@";

/// `contractSalaryType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    Monthly,
    Hourly,
    Yearly,
}

impl Contract {
    pub fn from_unit(unit: PeriodUnit) -> Self {
        match unit {
            PeriodUnit::Monthly => Self::Monthly,
            PeriodUnit::Hourly => Self::Hourly,
            PeriodUnit::Yearly => Self::Yearly,
        }
    }

    /// The value sent; Visma's documents show both `monthly` and `Hourly`, so it is read
    /// case-insensitively.
    pub fn wire(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Hourly => "hourly",
            Self::Yearly => "yearly",
        }
    }

    pub fn amount_field(self) -> &'static str {
        match self {
            Self::Monthly => "monthlySalary",
            Self::Hourly => "hourlySalary",
            Self::Yearly => "yearlySalary",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Monthly, Self::Hourly, Self::Yearly]
            .into_iter()
            .find(|c| c.wire().eq_ignore_ascii_case(s.trim()))
    }
}

/// The record id of the entry starting on `start` (`None`: since the beginning of time).
pub fn key(start: Option<NaiveDate>) -> String {
    match start {
        Some(d) => format!("{KEY_PREFIX}{d}"),
        None => format!("{KEY_PREFIX}(start)"),
    }
}

/// The start date a record id names, if it is one of ours.
pub fn parse_key(id: &str) -> Option<NaiveDate> {
    id.strip_prefix(KEY_PREFIX).and_then(wire::date)
}

/// One "Period" entry of the timeline.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `None`: in force since the beginning of time.
    pub start: Option<NaiveDate>,
    /// `None`: open-ended.
    pub end: Option<NaiveDate>,
    pub contract: Option<Contract>,
    pub monthly: Option<Decimal>,
    pub hourly: Option<Decimal>,
    pub yearly: Option<Decimal>,
    /// The object as read; `None` for an entry this plan creates.
    raw: Option<Box<RawValue>>,
    /// The plan changed `end`.
    end_changed: bool,
    /// The plan extended this entry over a removed one (it may then be superseded).
    extended: bool,
}

impl Entry {
    pub fn period(&self) -> Period {
        Period {
            start: self.start.unwrap_or(NaiveDate::MIN),
            end: self.end,
        }
    }

    pub fn key(&self) -> String {
        key(self.start)
    }

    pub fn amount(&self, contract: Contract) -> Option<Decimal> {
        match contract {
            Contract::Monthly => self.monthly,
            Contract::Hourly => self.hourly,
            Contract::Yearly => self.yearly,
        }
    }

    /// True when the entry is exactly what `want` describes.
    pub fn holds(&self, want: &Wanted) -> bool {
        self.start == Some(want.start)
            && self.end == want.end
            && self.contract == Some(want.contract)
            && self.amount(want.contract) == Some(want.amount)
    }

    fn new(want: &Wanted) -> Self {
        let mut e = Self {
            start: Some(want.start),
            end: want.end,
            contract: Some(want.contract),
            monthly: None,
            hourly: None,
            yearly: None,
            raw: None,
            end_changed: false,
            extended: false,
        };
        match want.contract {
            Contract::Monthly => e.monthly = Some(want.amount),
            Contract::Hourly => e.hourly = Some(want.amount),
            Contract::Yearly => e.yearly = Some(want.amount),
        }
        e
    }

    /// The same salary facts (what Visma would store), ignoring how the entry was read.
    fn same(&self, other: &Self) -> bool {
        self.start == other.start
            && self.end == other.end
            && self.contract == other.contract
            && self.monthly == other.monthly
            && self.hourly == other.hourly
            && self.yearly == other.yearly
    }

    /// The entry as sent in the PUT.
    fn to_raw(&self) -> Result<Box<RawValue>, String> {
        let date = |d: Option<NaiveDate>| d.map_or(Value::Null, |d| json!(d.to_string()));
        match &self.raw {
            Some(raw) if !self.end_changed => Ok(raw.clone()),
            Some(raw) => {
                let mut map: wire::Document =
                    serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
                map.insert(
                    "activeEnd".into(),
                    wire::raw(&date(self.end)).map_err(|e| e.to_string())?,
                );
                RawValue::from_string(serde_json::to_string(&map).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())
            }
            None => {
                let contract = self.contract.unwrap_or(Contract::Monthly);
                // The amount keeps the HR system's own digits ("52000.00"), as a string.
                let amount = self.amount(contract).map(|a| a.to_string());
                let mut body = json!({
                    "salaryType": "Period",
                    "contractSalaryType": contract.wire(),
                    "activeStart": date(self.start),
                    "activeEnd": date(self.end),
                });
                body[contract.amount_field()] = json!(amount);
                RawValue::from_string(body.to_string()).map_err(|e| e.to_string())
            }
        }
    }
}

/// What the HR salary should look like in the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub contract: Contract,
    pub amount: Decimal,
}

/// The edit to plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Create, or update the owned entry, so the timeline holds `Wanted`.
    Put(Wanted),
    /// Remove the owned entry.
    Delete,
}

/// A position's `salaryInformation`: the "Period" timeline and any other entries (kept and
/// sent back verbatim).
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub entries: Vec<Entry>,
    pub other: Vec<Box<RawValue>>,
}

impl Timeline {
    /// Reads `salaryInformation` (absent or null: empty). The error names the bad field.
    pub fn read(raw: Option<&RawValue>) -> Result<Self, String> {
        let Some(raw) = raw else {
            return Ok(Self::default());
        };
        let items: Option<Vec<Box<RawValue>>> =
            serde_json::from_str(raw.get()).map_err(|e| format!("salaryInformation: {e}"))?;
        let mut timeline = Self::default();
        for item in items.unwrap_or_default() {
            let read: RawEntry = serde_json::from_str(item.get())
                .map_err(|e| format!("salaryInformation entry: {e}"))?;
            let is_period = read
                .salary_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("Period"));
            if !is_period {
                timeline.other.push(item);
                continue;
            }
            let date = |field: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(s) => wire::date(s)
                    .map(Some)
                    .ok_or_else(|| format!("salaryInformation.{field}: `{s}` is not a date")),
            };
            let amount = |v: &Option<Box<RawValue>>| v.as_deref().and_then(wire::decimal_from_raw);
            timeline.entries.push(Entry {
                start: date("activeStart", &read.active_start)?,
                end: date("activeEnd", &read.active_end)?,
                contract: read
                    .contract_salary_type
                    .as_deref()
                    .and_then(Contract::parse),
                monthly: amount(&read.monthly_salary),
                hourly: amount(&read.hourly_salary),
                yearly: amount(&read.yearly_salary),
                raw: Some(item),
                end_changed: false,
                extended: false,
            });
        }
        timeline.entries.sort_by(by_start);
        Ok(timeline)
    }

    /// The entry starting on `start`.
    pub fn at(&self, start: NaiveDate) -> Option<&Entry> {
        self.entries.iter().find(|e| e.start == Some(start))
    }

    /// The `salaryInformation` array to PUT.
    pub fn to_raw(&self) -> Result<Box<RawValue>, String> {
        let mut items = Vec::with_capacity(self.entries.len() + self.other.len());
        for e in &self.entries {
            items.push(e.to_raw()?);
        }
        items.extend(self.other.iter().cloned());
        RawValue::from_string(serde_json::to_string(&items).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    }
}

fn by_start(a: &Entry, b: &Entry) -> Ordering {
    // `None` (the beginning of time) sorts first.
    a.start.cmp(&b.start)
}

/// A foreign entry that overlaps the salary period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub key: String,
    pub period: Period,
}

/// The planned timeline.
#[derive(Debug, Clone)]
pub struct Planned {
    pub timeline: Timeline,
    /// False when the timeline already is what the plan wants (nothing to send).
    pub changed: bool,
}

/// Plans `edit` on `timeline`. `owned` is the start date of the entry the HR salary owns on
/// this position, if any.
pub fn plan(
    timeline: &Timeline,
    edit: &Edit,
    owned: Option<NaiveDate>,
) -> Result<Planned, Conflict> {
    let mut entries = timeline.entries.clone();
    entries.sort_by(by_start);

    if let Some(owned) = owned {
        if let Some(i) = entries.iter().position(|e| e.start == Some(owned)) {
            let removed = entries.remove(i);
            if let Some(prev) = i.checked_sub(1).and_then(|p| entries.get_mut(p)) {
                let adjacent = prev.end.and_then(|end| end.succ_opt()) == Some(owned);
                if adjacent {
                    prev.end = removed.end;
                    prev.end_changed = true;
                    prev.extended = true;
                }
            }
        }
    }

    if let Edit::Put(want) = edit {
        let period = Period {
            start: want.start,
            end: want.end,
        };
        let mut superseded = None;
        for (i, e) in entries.iter().enumerate() {
            if !e.period().overlaps(&period) {
                continue;
            }
            let starts_before = e.start.is_none_or(|s| s < want.start);
            let closable = starts_before && (e.end.is_none() || e.extended);
            if closable && superseded.is_none() {
                superseded = Some(i);
            } else {
                return Err(Conflict {
                    key: e.key(),
                    period: e.period(),
                });
            }
        }
        if let Some(prev) = superseded.and_then(|i| entries.get_mut(i)) {
            prev.end = Some(want.start.pred_opt().unwrap_or(NaiveDate::MIN));
            prev.end_changed = true;
        }
        entries.push(Entry::new(want));
        entries.sort_by(by_start);
    }

    let mut before = timeline.entries.clone();
    before.sort_by(by_start);
    let changed =
        before.len() != entries.len() || before.iter().zip(&entries).any(|(a, b)| !a.same(b));
    Ok(Planned {
        timeline: Timeline {
            entries,
            other: timeline.other.clone(),
        },
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn read(json: &str) -> Timeline {
        let raw = RawValue::from_string(json.to_owned()).unwrap_or_else(|e| panic!("{e}"));
        Timeline::read(Some(&raw)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn want(start: &str, end: Option<&str>, amount: &str) -> Wanted {
        Wanted {
            start: d(start),
            end: end.map(d),
            contract: Contract::Monthly,
            amount: dec(amount),
        }
    }

    fn spans(t: &Timeline) -> Vec<(Option<NaiveDate>, Option<NaiveDate>)> {
        t.entries.iter().map(|e| (e.start, e.end)).collect()
    }

    /// No overlaps and no gaps between consecutive entries.
    fn contiguous(t: &Timeline) -> bool {
        t.entries.windows(2).all(|w| {
            w[0].end
                .and_then(|e| e.succ_opt())
                .is_some_and(|next| Some(next) == w[1].start)
        })
    }

    fn planned(t: &Timeline, edit: &Edit, owned: Option<&str>) -> Planned {
        plan(t, edit, owned.map(d)).unwrap_or_else(|c| panic!("conflict {c:?}"))
    }

    const OPEN: &str = r#"[{"salaryType":"Period","contractSalaryType":"monthly","monthlySalary":"40000","activeStart":"2020-01-01","custom":{"kept":1.10}}]"#;

    #[test]
    fn create_closes_the_open_predecessor_the_day_before() {
        let t = read(OPEN);
        let p = planned(&t, &Edit::Put(want("2026-01-01", None, "52000.00")), None);
        assert!(p.changed);
        assert_eq!(
            spans(&p.timeline),
            vec![
                (Some(d("2020-01-01")), Some(d("2025-12-31"))),
                (Some(d("2026-01-01")), None)
            ]
        );
        assert!(contiguous(&p.timeline));
        let sent = p.timeline.to_raw().unwrap_or_else(|e| panic!("{e}"));
        // The untouched fields of the closed entry go back as read; the new amount keeps its
        // digits and travels as a string.
        assert!(sent.get().contains(r#""custom":{"kept":1.10}"#), "{sent}");
        assert!(sent.get().contains(r#""activeEnd":"2025-12-31""#), "{sent}");
        assert!(
            sent.get().contains(r#""monthlySalary":"52000.00""#),
            "{sent}"
        );
        assert!(
            sent.get().contains(r#""contractSalaryType":"monthly""#),
            "{sent}"
        );
    }

    #[test]
    fn create_on_an_empty_timeline_and_a_second_plan_changes_nothing() {
        let t = Timeline::default();
        let p = planned(&t, &Edit::Put(want("2026-01-01", None, "52000")), None);
        assert_eq!(p.timeline.entries.len(), 1);
        let again = planned(
            &p.timeline,
            &Edit::Put(want("2026-01-01", None, "52000.00")),
            Some("2026-01-01"),
        );
        assert!(!again.changed, "52000 and 52000.00 are the same amount");
        assert!(p
            .timeline
            .at(d("2026-01-01"))
            .is_some_and(|e| e.holds(&want("2026-01-01", None, "52000.000"))));
    }

    #[test]
    fn update_in_place_changes_only_the_owned_entry() {
        let t = read(OPEN);
        let created = planned(&t, &Edit::Put(want("2026-01-01", None, "52000")), None);
        let updated = planned(
            &created.timeline,
            &Edit::Put(want("2026-01-01", None, "53500.50")),
            Some("2026-01-01"),
        );
        assert!(updated.changed);
        assert_eq!(spans(&updated.timeline), spans(&created.timeline));
        let e = updated.timeline.at(d("2026-01-01"));
        assert_eq!(e.and_then(|e| e.monthly), Some(dec("53500.50")));
    }

    #[test]
    fn update_that_moves_the_start_keeps_the_timeline_contiguous() {
        let t = read(OPEN);
        let created = planned(&t, &Edit::Put(want("2026-01-01", None, "52000")), None);
        let moved = planned(
            &created.timeline,
            &Edit::Put(want("2026-03-01", None, "52000")),
            Some("2026-01-01"),
        );
        assert_eq!(
            spans(&moved.timeline),
            vec![
                (Some(d("2020-01-01")), Some(d("2026-02-28"))),
                (Some(d("2026-03-01")), None)
            ]
        );
        assert!(contiguous(&moved.timeline));
    }

    #[test]
    fn delete_removes_the_entry_and_extends_the_previous_over_the_gap() {
        let t = read(OPEN);
        let created = planned(&t, &Edit::Put(want("2026-01-01", None, "52000")), None);
        let deleted = planned(&created.timeline, &Edit::Delete, Some("2026-01-01"));
        assert_eq!(
            spans(&deleted.timeline),
            vec![(Some(d("2020-01-01")), None)]
        );
        // A closed entry in the middle: its predecessor takes over exactly its period.
        let mid = read(
            r#"[{"salaryType":"Period","monthlySalary":"1","activeEnd":"2023-12-31"},
                {"salaryType":"Period","contractSalaryType":"monthly","monthlySalary":"2","activeStart":"2024-01-01","activeEnd":"2024-12-31"},
                {"salaryType":"Period","contractSalaryType":"monthly","monthlySalary":"3","activeStart":"2025-01-01"}]"#,
        );
        let p = planned(&mid, &Edit::Delete, Some("2024-01-01"));
        assert_eq!(
            spans(&p.timeline),
            vec![(None, Some(d("2024-12-31"))), (Some(d("2025-01-01")), None)]
        );
        assert!(contiguous(&p.timeline));
        // Nothing owned there any more: nothing changes.
        assert!(!planned(&p.timeline, &Edit::Delete, Some("2024-01-01")).changed);
    }

    #[test]
    fn foreign_entries_that_cannot_be_superseded_conflict() {
        // Per: a foreign entry starting on the salary's own start date.
        let per = read(
            r#"[{"salaryType":"Period","contractSalaryType":"monthly","monthlySalary":"50000","activeStart":"2026-01-01"}]"#,
        );
        let c = plan(&per, &Edit::Put(want("2026-01-01", None, "1")), None)
            .err()
            .map(|c| c.key);
        assert_eq!(c.as_deref(), Some("salaryInformation@2026-01-01"));
        // A later foreign entry under an open-ended salary.
        let later = plan(&per, &Edit::Put(want("2025-06-01", None, "1")), None).err();
        assert_eq!(later.map(|c| c.period.start), Some(d("2026-01-01")));
        // A closed salary ending before it does not conflict.
        assert!(plan(
            &per,
            &Edit::Put(want("2025-06-01", Some("2025-12-31"), "1")),
            None
        )
        .is_ok());
        // A closed foreign predecessor is a deliberate period, not superseded.
        let closed = read(
            r#"[{"salaryType":"Period","contractSalaryType":"monthly","monthlySalary":"1","activeStart":"2025-01-01","activeEnd":"2026-06-30"}]"#,
        );
        assert!(plan(&closed, &Edit::Put(want("2026-01-01", None, "1")), None).is_err());
        // The owned entry never conflicts with its own update.
        let own = planned(
            &per,
            &Edit::Put(want("2026-01-01", None, "2")),
            Some("2026-01-01"),
        );
        assert_eq!(own.timeline.entries.len(), 1);
        // A delete never conflicts.
        assert!(plan(&per, &Edit::Delete, None).is_ok());
    }

    #[test]
    fn other_salary_types_travel_verbatim_and_keys_round_trip() {
        let t = read(
            r#"[{"salaryType":"Rate","value":"12.5"},{"salaryType":"Period","contractSalaryType":"Hourly","hourlySalary":"312.5050","activeStart":"2022-02-01"}]"#,
        );
        assert_eq!(t.entries.len(), 1);
        assert_eq!(t.entries[0].contract, Some(Contract::Hourly));
        assert_eq!(t.entries[0].hourly, Some(dec("312.505")));
        let sent = t.to_raw().unwrap_or_else(|e| panic!("{e}"));
        assert!(sent
            .get()
            .contains(r#"{"salaryType":"Rate","value":"12.5"}"#));
        assert_eq!(
            parse_key(&key(Some(d("2026-01-01")))),
            Some(d("2026-01-01"))
        );
        assert_eq!(parse_key("901"), None);
    }
}
