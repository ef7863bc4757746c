//! The overlap rule, shared by every connector: a salary record already in payroll whose
//! period shares a day with the salary being sent, and that this HR salary does not own, is a
//! conflict the operator must resolve in payroll.

use super::change::Period;

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

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
