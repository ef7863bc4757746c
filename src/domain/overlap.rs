//! The overlap rule, shared by every connector: a salary record already in payroll whose
//! period shares a day with the salary being sent, and that this HR salary does not own, is a
//! conflict the operator must resolve in payroll. Payroll systems whose salary records are
//! dated rows, each in force until the next (Tripletex's employment details), use the dated
//! form of the rule, [`first_conflicting_row`].

use super::change::Period;
use chrono::NaiveDate;

/// A salary record as read from payroll, reduced to what the rule needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingRecord {
    pub id: String,
    pub period: Period,
}

/// The first record that overlaps `period` and is not `owned`.
pub fn first_conflict<'a>(
    period: &Period,
    records: &'a [ExistingRecord],
    owned: Option<&str>,
) -> Option<&'a ExistingRecord> {
    records
        .iter()
        .filter(|r| Some(r.id.as_str()) != owned)
        .find(|r| r.period.overlaps(period))
}

/// A dated row (in force from `date` until the next row's date), reduced to what the rule
/// needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedRow {
    pub id: String,
    pub date: NaiveDate,
    /// False when the row holds no salary (no amount, or every amount 0): such a row is never
    /// a conflict.
    pub carries_salary: bool,
}

/// The dated form of the rule. A row is a conflict when it carries a salary, salary-sync does
/// not own it (`ours`: this HR salary's row and the rows it wrote for the employee's other HR
/// salaries), and it is either dated inside `salary` after its start, or dated on the start
/// day itself without being the employment's base row (the row dated `base_date`, the
/// employment's first day, which the salary updates in place). A row dated before the start is
/// superseded from the start, never a conflict.
pub fn first_conflicting_row<'a>(
    salary: &Period,
    base_date: NaiveDate,
    rows: &'a [DatedRow],
    ours: impl Fn(&str) -> bool,
) -> Option<&'a DatedRow> {
    rows.iter()
        .filter(|r| r.carries_salary && !ours(&r.id))
        .find(|r| {
            let inside_after_start =
                r.date > salary.start && salary.end.is_none_or(|end| r.date <= end);
            let same_day_not_base = r.date == salary.start && r.date != base_date;
            inside_after_start || same_day_not_base
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, date: &str, carries_salary: bool) -> DatedRow {
        DatedRow {
            id: id.into(),
            date: d(date),
            carries_salary,
        }
    }

    #[test]
    fn dated_rows_conflict_only_when_foreign_salary_bearing_and_inside_or_on_a_non_base_start() {
        let hired = d("2026-01-01");
        let from_day_one = Period {
            start: hired,
            end: None,
        };
        let rows = vec![
            row("base", "2026-01-01", true),
            row("cleared", "2026-03-01", false),
            row("later", "2026-06-01", true),
        ];
        let none_ours = |_: &str| false;
        // The base row on the start day is updated in place; the salary-less row never counts.
        assert_eq!(
            first_conflicting_row(&from_day_one, hired, &rows, none_ours).map(|r| r.id.as_str()),
            Some("later")
        );
        // A row salary-sync wrote for another HR salary of the employee is not foreign.
        assert_eq!(
            first_conflicting_row(&from_day_one, hired, &rows, |id| id == "later"),
            None
        );
        // Ending before the later row: no conflict.
        let spring = Period {
            start: hired,
            end: Some(d("2026-05-31")),
        };
        assert_eq!(
            first_conflicting_row(&spring, hired, &rows, none_ours),
            None
        );
        // On the same day but not the employment's first: a foreign salary row is a conflict.
        let summer = Period {
            start: d("2026-06-01"),
            end: None,
        };
        assert_eq!(
            first_conflicting_row(&summer, hired, &rows, none_ours).map(|r| r.id.as_str()),
            Some("later")
        );
        // A row before the start is superseded, never a conflict.
        let autumn = Period {
            start: d("2026-09-01"),
            end: None,
        };
        assert_eq!(
            first_conflicting_row(&autumn, hired, &rows, none_ours),
            None
        );
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn the_owned_record_never_conflicts() {
        let salary = Period {
            start: d("2026-01-01"),
            end: None,
        };
        let records = vec![
            ExistingRecord {
                id: "7".into(),
                period: Period {
                    start: d("2026-03-01"),
                    end: Some(d("2026-03-01")),
                },
            },
            ExistingRecord {
                id: "8".into(),
                period: Period {
                    start: d("2025-01-01"),
                    end: Some(d("2025-12-31")),
                },
            },
        ];
        assert_eq!(first_conflict(&salary, &records, Some("7")), None);
        assert_eq!(
            first_conflict(&salary, &records, None).map(|r| r.id.as_str()),
            Some("7")
        );
    }
}
