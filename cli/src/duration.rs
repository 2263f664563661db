//! Durations on the command line: `30s`, `500ms`, `5m`, `2h`, `1d`, combined as `1m30s`; a bare
//! number is seconds.

use std::time::Duration;

/// Parses a duration such as `30s`, `500ms`, `5m`, `1h30m` or `10` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!("invalid duration {text:?}: {why}; write a number and a unit (ms, s, m, h, d), like 30s, 500ms, 5m or 1m30s")
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| bad("the number is too large"))?;
        return Ok(Duration::from_secs(secs));
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let per_unit_ms: u64 = match unit {
            "ms" => 1,
            "s" | "sec" | "secs" => 1_000,
            "m" | "min" | "mins" => 60_000,
            "h" | "hr" | "hrs" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            "" => return Err(bad("a unit is missing after a number")),
            _ => return Err(bad(&format!("unknown unit {unit:?}"))),
        };
        total_ms = n
            .checked_mul(per_unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| bad("it is too long"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// A duration for people: `1h30m`, `30s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 && ms < 60_000 {
        return if ms < 1000 {
            format!("{ms}ms")
        } else {
            format!("{:.1}s", ms as f64 / 1000.0)
        };
    }
    let mut secs = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        let p = |s| parse_duration(s).unwrap();
        assert_eq!(p("30s"), Duration::from_secs(30));
        assert_eq!(p("500ms"), Duration::from_millis(500));
        assert_eq!(p("5m"), Duration::from_secs(300));
        assert_eq!(p("2h"), Duration::from_secs(7200));
        assert_eq!(p("1d"), Duration::from_secs(86_400));
        assert_eq!(p("1m30s"), Duration::from_secs(90));
        assert_eq!(p("1h1m1s1ms"), Duration::from_millis(3_661_001));
        assert_eq!(p("10"), Duration::from_secs(10));
        assert_eq!(p("0"), Duration::ZERO);
        assert_eq!(p(" 3s "), Duration::from_secs(3));
    }

    #[test]
    fn errors_say_what_to_write() {
        for bad in [
            "",
            "s",
            "5x",
            "1.5s",
            "-1s",
            "5 s",
            "1m30",
            "99999999999999999999",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("like 30s, 500ms"), "{bad:?}: {e}");
        }
        assert!(parse_duration("5x")
            .unwrap_err()
            .contains("unknown unit \"x\""));
        assert!(parse_duration("999999999999d")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(86_400 + 3_600)), "1d1h");
    }
}
