//! Points in time, as the verifier compares them: milliseconds since the Unix epoch, UTC.
//!
//! Three sources, three text forms: the trusted root's `validFor` bounds (protobuf JSON
//! `Timestamp`, RFC 3339 in UTC with optional fractional seconds), a Rekor entry's
//! `integratedTime` (Unix seconds) and an RFC 3161 `genTime` (ASN.1 GeneralizedTime,
//! `YYYYMMDDHHMMSS[.f*]Z`). Certificates' validity comes from x509-parser in whole seconds.
//! Milliseconds are enough: every bound we compare is at most millisecond-precise, and finer
//! fractions are truncated, which never moves a time across a whole-second bound.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// From whole Unix seconds; `None` if out of range.
    pub fn from_seconds(seconds: i64) -> Option<UnixMillis> {
        seconds.checked_mul(1000).map(UnixMillis)
    }

    /// The whole second this falls in (rounded down).
    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Parses RFC 3339 in UTC as protobuf JSON writes `Timestamp`s: `YYYY-MM-DDTHH:MM:SS`,
    /// optional `.` and 1 to 9 digits, then `Z`.
    pub fn parse_rfc3339(text: &str) -> Option<UnixMillis> {
        let bytes = text.as_bytes();
        if bytes.len() < 20 || bytes.len() > 30 {
            return None;
        }
        let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
        if separators.iter().any(|&(at, c)| bytes[at] != c) {
            return None;
        }
        let year = digits(&bytes[0..4])?;
        let month = digits(&bytes[5..7])?;
        let day = digits(&bytes[8..10])?;
        let hour = digits(&bytes[11..13])?;
        let minute = digits(&bytes[14..16])?;
        let second = digits(&bytes[17..19])?;
        let millis = fraction_then_z(&bytes[19..])?;
        from_parts(year, month, day, hour, minute, second, millis)
    }

    /// Parses an ASN.1 GeneralizedTime in DER form (RFC 5280 §4.1.2.5.2 and RFC 3161 §2.4.2):
    /// `YYYYMMDDHHMMSS`, optional `.` and digits without trailing zeros, then `Z`.
    pub fn parse_generalized_time(bytes: &[u8]) -> Option<UnixMillis> {
        if bytes.len() < 15 || bytes.len() > 32 {
            return None;
        }
        let year = digits(&bytes[0..4])?;
        let month = digits(&bytes[4..6])?;
        let day = digits(&bytes[6..8])?;
        let hour = digits(&bytes[8..10])?;
        let minute = digits(&bytes[10..12])?;
        let second = digits(&bytes[12..14])?;
        let millis = fraction_then_z(&bytes[14..])?;
        from_parts(year, month, day, hour, minute, second, millis)
    }
}

impl fmt::Display for UnixMillis {
    /// RFC 3339 in UTC, with milliseconds when they are not zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.seconds();
        let millis = self.0.rem_euclid(1000);
        let days = seconds.div_euclid(86_400);
        let of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        )?;
        if millis != 0 {
            write!(f, ".{millis:03}")?;
        }
        f.write_str("Z")
    }
}

/// A closed interval of time, as the trusted root's `TimeRange` (both ends inclusive; no end
/// means still valid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// The first instant of validity.
    pub start: UnixMillis,
    /// The last instant of validity, if any.
    pub end: Option<UnixMillis>,
}

impl TimeRange {
    /// Whether `time` is within the range, both ends included (protobuf-specs: "the time range
    /// is closed").
    pub fn contains(&self, time: UnixMillis) -> bool {
        self.start <= time && self.end.is_none_or(|end| time <= end)
    }
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// `[.d{1,9}]Z`: the milliseconds of the fraction (truncated), requiring the final `Z`.
fn fraction_then_z(bytes: &[u8]) -> Option<i64> {
    let (&last, rest) = bytes.split_last()?;
    if last != b'Z' {
        return None;
    }
    if rest.is_empty() {
        return Some(0);
    }
    let fraction = rest.strip_prefix(b".")?;
    if fraction.is_empty() || fraction.len() > 9 {
        return None;
    }
    digits(fraction)?;
    let mut millis = 0;
    for i in 0..3 {
        millis = millis * 10 + fraction.get(i).map_or(0, |&b| i64::from(b - b'0'));
    }
    Some(millis)
}

fn from_parts(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
) -> Option<UnixMillis> {
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    // Leap seconds (60) are refused: neither protobuf nor DER timestamps produce them.
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UnixMillis(seconds * 1000 + millis))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_both_forms_to_the_same_instant() {
        let a = UnixMillis::parse_rfc3339("2025-06-12T12:02:20Z").unwrap();
        let b = UnixMillis::parse_generalized_time(b"20250612120220Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0, 1_749_729_740_000);
        assert_eq!(a.to_string(), "2025-06-12T12:02:20Z");
        let c = UnixMillis::parse_rfc3339("2022-12-31T23:59:59.999Z").unwrap();
        assert_eq!(c.to_string(), "2022-12-31T23:59:59.999Z");
        assert_eq!(
            UnixMillis::parse_rfc3339("1970-01-01T00:00:00Z"),
            Some(UnixMillis(0))
        );
        assert_eq!(
            UnixMillis::parse_generalized_time(b"20250612120220.5Z")
                .unwrap()
                .0,
            1_749_729_740_500
        );
    }

    #[test]
    fn refuses_malformed_times() {
        for text in [
            "2025-06-12 12:02:20Z",
            "2025-02-30T00:00:00Z",
            "2025-06-12T12:02:20",
            "2025-06-12T12:02:20+01:00",
            "2025-06-12T12:02:20.Z",
        ] {
            assert_eq!(UnixMillis::parse_rfc3339(text), None, "{text}");
        }
    }

    #[test]
    fn ranges_are_closed() {
        let range = TimeRange {
            start: UnixMillis(10),
            end: Some(UnixMillis(20)),
        };
        assert!(range.contains(UnixMillis(10)));
        assert!(range.contains(UnixMillis(20)));
        assert!(!range.contains(UnixMillis(21)));
        assert!(!range.contains(UnixMillis(9)));
    }
}
