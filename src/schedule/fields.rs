//! A cron expression as plain sets of values, which every export writes in
//! its scheduler's own syntax. The sets are croner's own reading (the same
//! one `drctl schedule run` fires by), so an export cannot drift from it;
//! what croner can express and another scheduler cannot (`L`, `W`, `#`,
//! seconds, years) is refused here, with the reason.

use std::ops::RangeInclusive;

/// croner's bit for "this value is in the field" (`component::ALL_BIT`,
/// which croner does not re-export); `fields_match_as_croner_does` checks
/// this reading against croner's own matching.
const IN_FIELD: u8 = 1;

/// The five fields of a cron expression as the values each allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronFields {
    pub minutes: Vec<u8>,
    pub hours: Vec<u8>,
    /// Days of the month, 1–31.
    pub days: Vec<u8>,
    /// 1–12.
    pub months: Vec<u8>,
    /// 0 (Sunday) – 6 (Saturday).
    pub weekdays: Vec<u8>,
    /// Which of the two day fields choose the days, and how.
    pub day_rule: DayRule,
}

/// Cron's day-of-month and day-of-week fields together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayRule {
    /// Both `*`: every day.
    Every,
    /// Only the day of the month is restricted.
    MonthDays,
    /// Only the day of the week is restricted.
    Weekdays,
    /// Both restricted: a day matching either (cron's classic rule).
    Either,
    /// Both restricted, a day must match both (croner's `+` prefix).
    Both,
}

pub const MINUTES: RangeInclusive<u8> = 0..=59;
pub const HOURS: RangeInclusive<u8> = 0..=23;
pub const DAYS: RangeInclusive<u8> = 1..=31;
pub const MONTHS: RangeInclusive<u8> = 1..=12;
pub const WEEKDAYS: RangeInclusive<u8> = 0..=6;

impl CronFields {
    /// The sets of a parsed expression; `Err` says what no minute-based
    /// cron scheduler can express.
    pub fn of(cron: &croner::Cron) -> Result<CronFields, String> {
        // croner keeps the expression with names and nicknames replaced
        // (`@weekly` is `0 0 * * 0`), in its original number of fields.
        let text = cron.as_str().to_string();
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let pattern = &cron.pattern;
        let (dom, dow) = match tokens.len() {
            5 => (tokens[2], tokens[4]),
            6 | 7 => {
                if tokens.len() == 7 && tokens[6] != "*" {
                    return Err("it names years, which cron schedulers cannot".into());
                }
                if values(|v, b| pattern.seconds.is_bit_set(v, b), 0..=59)? != [0] {
                    return Err(
                        "it fires at seconds other than :00; cron schedulers work in whole minutes"
                            .into(),
                    );
                }
                (tokens[3], tokens[5])
            }
            _ => return Err(format!("`{text}` is not a five-field expression")),
        };
        if dom.contains(['L', 'W']) {
            return Err("`L` and `W` in the day of the month (last day, nearest weekday) have no equivalent there".into());
        }
        if dow.contains(['L', '#']) {
            return Err("`L` and `#` in the day of the week (last or nth weekday of the month) have no equivalent there".into());
        }
        let day_rule = match (pattern.is_dom_wildcard(), pattern.is_dow_wildcard()) {
            (true, true) => DayRule::Every,
            (false, true) => DayRule::MonthDays,
            (true, false) => DayRule::Weekdays,
            (false, false) if pattern.matches_dom_and_dow() => DayRule::Both,
            (false, false) => DayRule::Either,
        };
        Ok(CronFields {
            minutes: values(|v, b| pattern.minutes.is_bit_set(v, b), MINUTES)?,
            hours: values(|v, b| pattern.hours.is_bit_set(v, b), HOURS)?,
            days: values(|v, b| pattern.days.is_bit_set(v, b), DAYS)?,
            months: values(|v, b| pattern.months.is_bit_set(v, b), MONTHS)?,
            weekdays: values(|v, b| pattern.days_of_week.is_bit_set(v, b), WEEKDAYS)?,
            day_rule,
        })
    }

    /// The five fields in classic cron syntax (numbers, ranges, lists), as
    /// vixie cron, cronie, Kubernetes and GitHub read them. A day field is
    /// `*` exactly when croner read it as `*`, so "either day field" holds
    /// where croner applies it.
    pub fn cron_line(&self) -> Result<String, String> {
        if self.day_rule == DayRule::Both {
            return Err("cron has no way to require both the day of the month and the day of the week (`+`)".into());
        }
        let days_star = matches!(self.day_rule, DayRule::Every | DayRule::Weekdays);
        let weekdays_star = matches!(self.day_rule, DayRule::Every | DayRule::MonthDays);
        Ok(format!(
            "{} {} {} {} {}",
            cron_list(&self.minutes, MINUTES, true),
            cron_list(&self.hours, HOURS, true),
            cron_list(&self.days, DAYS, days_star),
            cron_list(&self.months, MONTHS, true),
            cron_list(&self.weekdays, WEEKDAYS, weekdays_star),
        ))
    }
}

/// The values of one field; `is_set` asks croner's component (whose type
/// croner does not export, hence the closure).
fn values(
    is_set: impl Fn(u16, u8) -> Result<bool, croner::errors::CronError>,
    range: RangeInclusive<u8>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for v in range {
        if is_set(u16::from(v), IN_FIELD)
            .map_err(|e| format!("croner cannot read its own field: {e}"))?
        {
            out.push(v);
        }
    }
    Ok(out)
}

/// `*` for a whole field written as one (`star`), else the values with runs
/// of three or more as `a-b`: `0,15,30,45`, `1-5`, `1,3-6`.
pub fn cron_list(values: &[u8], whole: RangeInclusive<u8>, star: bool) -> String {
    if star && values.len() == whole.len() {
        return "*".to_string();
    }
    runs(values)
        .into_iter()
        .map(|(a, b)| match b - a {
            0 => a.to_string(),
            1 => format!("{a},{b}"),
            _ => format!("{a}-{b}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Sorted values as runs of consecutive values, `(first, last)`.
pub fn runs(values: &[u8]) -> Vec<(u8, u8)> {
    let mut out: Vec<(u8, u8)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == v => *last = v,
            _ => out.push((v, v)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use jiff::civil::DateTime;

    use super::*;
    use crate::schedule::tests::assert_matches_croner;

    fn fields(expression: &str) -> Result<CronFields, String> {
        CronFields::of(&expression.parse().expect("valid cron"))
    }

    /// What the sets say about one wall-clock time.
    fn matches(f: &CronFields, t: DateTime) -> bool {
        let has = |set: &[u8], v: i8| set.contains(&(v as u8));
        let day = has(&f.days, t.day());
        let weekday = has(&f.weekdays, t.weekday().to_sunday_zero_offset());
        let day_ok = match f.day_rule {
            DayRule::Every => true,
            DayRule::MonthDays => day,
            DayRule::Weekdays => weekday,
            DayRule::Either => day || weekday,
            DayRule::Both => day && weekday,
        };
        has(&f.minutes, t.minute())
            && has(&f.hours, t.hour())
            && has(&f.months, t.month())
            && day_ok
    }

    #[test]
    fn fields_match_as_croner_does() {
        for expression in [
            "0 4 * * SAT",
            "*/15 9-17 * * MON-FRI",
            "30 2 1,15 * *",
            "0 0 1 JAN,JUL *",
            "5 4 13 * FRI",
            "0 12 1 * +MON",
            "0 3 * * 7",
            "@weekly",
            "0 0 4 * * *",
            "10-40/10 */6 */2 2-11/3 0,6",
        ] {
            let f = fields(expression).expect(expression);
            assert_matches_croner(expression, |t| matches(&f, t));
        }
    }

    #[test]
    fn the_cron_line_is_numeric_and_keeps_the_day_rule() {
        let line = |e: &str| fields(e).and_then(|f| f.cron_line()).expect(e);
        assert_eq!(line("0 4 * * SAT"), "0 4 * * 6");
        assert_eq!(line("@weekly"), "0 0 * * 0");
        assert_eq!(line("0 3 * * 7"), "0 3 * * 0");
        assert_eq!(line("*/15 9-17 * * MON-FRI"), "0,15,30,45 9-17 * * 1-5");
        assert_eq!(line("0 0 1 JAN,JUL *"), "0 0 1 1,7 *");
        assert_eq!(line("5 4 13 * FRI"), "5 4 13 * 5");
        // `*/1` is not `*` to croner: the day-of-week field alone does not decide.
        assert_eq!(line("0 4 */1 * MON"), "0 4 1-31 * 1");
        assert_eq!(line("0 0 4 * * *"), "0 4 * * *");
    }

    #[test]
    fn what_cron_cannot_say_is_refused_with_the_reason() {
        for (expression, why) in [
            ("0 4 L * *", "`L` and `W`"),
            ("0 4 15W * *", "`L` and `W`"),
            ("0 4 * * 5L", "`L` and `#`"),
            ("0 4 * * 1#2", "`L` and `#`"),
            ("30 0 4 * * *", "seconds other than :00"),
            ("0 0 4 * * * 2030", "years"),
        ] {
            let err = fields(expression).expect_err(expression);
            assert!(err.contains(why), "{expression}: {err}");
        }
        let err = fields("0 12 1 * +MON")
            .and_then(|f| f.cron_line())
            .expect_err("AND");
        assert!(err.contains("require both"), "{err}");
    }

    #[test]
    fn lists_compress_runs_of_three() {
        assert_eq!(cron_list(&[1, 2, 3, 4, 5], WEEKDAYS, true), "1-5");
        assert_eq!(cron_list(&[0, 1, 3, 4, 5, 6], WEEKDAYS, true), "0,1,3-6");
        assert_eq!(cron_list(&[0, 1, 2, 3, 4, 5, 6], WEEKDAYS, true), "*");
        assert_eq!(cron_list(&[0, 1, 2, 3, 4, 5, 6], WEEKDAYS, false), "0-6");
    }
}
