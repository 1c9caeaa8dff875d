//! `EXT-X-PROGRAM-DATE-TIME` formatting without a date crate: the one
//! conversion needed (Unix milliseconds → UTC calendar date) is a few lines.

/// Formats Unix milliseconds as ISO 8601 UTC with milliseconds,
/// `YYYY-MM-DDThh:mm:ss.sssZ`, the precision the spec asks for.
pub fn format_program_date_time(unix_ms: u64) -> String {
    let ms = unix_ms % 1000;
    let secs = unix_ms / 1000;
    let days = secs / 86_400;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_program_date_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_program_date_time(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_program_date_time(1_709_251_199_999),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            format_program_date_time(1_735_689_600_123),
            "2025-01-01T00:00:00.123Z"
        );
        assert_eq!(
            format_program_date_time(4_102_444_800_000),
            "2100-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn day_numbers_round_trip_through_the_calendar() {
        // Walk 1970..2400 day by day: dates strictly increase and are valid.
        let mut prev = (1969, 12, 31);
        for day in 0..(430 * 366) {
            let (y, m, d) = civil_from_days(day);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert!((y, m, d) > prev, "{prev:?} then {:?}", (y, m, d));
            if d == 1 {
                // The previous day was the last of its month.
                let leap = |y: u64| {
                    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
                };
                let len = match prev.1 {
                    2 if leap(prev.0) => 29,
                    2 => 28,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                assert_eq!(prev.2, len, "{prev:?}");
            }
            prev = (y, m, d);
        }
    }

    #[test]
    fn far_future_does_not_panic() {
        let s = format_program_date_time(u64::MAX);
        assert!(s.ends_with(".615Z"), "{s}");
    }
}
