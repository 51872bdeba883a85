//! Civil-date arithmetic (Howard Hinnant's algorithms) and the DMS date formats.
//!
//! Dates are kept as days since 1970-01-01 so random dates are a uniform integer draw and every
//! written date is a real calendar day (only dirty rows write impossible ones, on purpose).

use std::fmt::Write;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(super) fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub(super) fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The calendar year of a day count.
pub(super) fn year_of(days: i32) -> i32 {
    civil_from_days(days).0
}

/// Appends `dd/mm/yyyy`.
pub(super) fn push_date(out: &mut String, days: i32) {
    let (y, m, d) = civil_from_days(days);
    let _ = write!(out, "{d:02}/{m:02}/{y:04}");
}

/// Appends `dd/mm/yyyy hh:mm`.
pub(super) fn push_date_time(out: &mut String, days: i32, hour: u32, minute: u32) {
    push_date(out, days);
    let _ = write!(out, " {hour:02}:{minute:02}");
}

/// Appends the ISO timestamp the XML root carries (`2026-11-20T23:00:00`).
pub(super) fn push_iso_evening(out: &mut String, days: i32) {
    let (y, m, d) = civil_from_days(days);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T23:00:00");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        for z in [-1000, 0, 59, 60, 10_957, 20_000, 20_777] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        // 2024 is a leap year: 28/02 + 1 = 29/02.
        let feb28 = days_from_civil(2024, 2, 28);
        assert_eq!(civil_from_days(feb28 + 1), (2024, 2, 29));
    }

    #[test]
    fn formats_like_the_dms() {
        let mut s = String::new();
        push_date(&mut s, days_from_civil(2026, 11, 5));
        s.push('|');
        push_date_time(&mut s, days_from_civil(2026, 1, 31), 9, 5);
        s.push('|');
        push_iso_evening(&mut s, days_from_civil(2026, 11, 20));
        assert_eq!(s, "05/11/2026|31/01/2026 09:05|2026-11-20T23:00:00");
        assert_eq!(year_of(days_from_civil(2019, 12, 31)), 2019);
    }
}
