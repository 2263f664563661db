//! How a duration is written in every setting (the CLI's flags, cachekitd's flags, `CACHEKIT_*`
//! variables and TOML file): a number and a unit, `250ms`, `1.5s`, `2m`, `1h`, `1d`, or several
//! combined, `1m30s`. One grammar for both ends, so a duration copied from one place to another
//! means the same.
//!
//! A bare number is in the unit the setting's name gives: milliseconds for the daemon's `*_ms`
//! settings (the form they always took), seconds for the CLI's `--ttl`, `--grace` and
//! `--timeout`. A negative duration is refused, saying so.

use std::time::Duration;

/// What a bare number (no unit) means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareUnit {
    /// Milliseconds: settings named `*_ms`.
    Millis,
    /// Seconds: the CLI's durations.
    Seconds,
}

impl BareUnit {
    fn nanos(self) -> u128 {
        match self {
            BareUnit::Millis => 1_000_000,
            BareUnit::Seconds => 1_000_000_000,
        }
    }
}

/// Parses `text` as a duration; the error says what to write.
pub fn parse_duration(text: &str, bare: BareUnit) -> Result<Duration, String> {
    let bare_hint = match bare {
        BareUnit::Millis => "a bare number is milliseconds",
        BareUnit::Seconds => "a bare number is seconds",
    };
    let bad = |why: &str| {
        format!(
            "invalid duration {text:?}: {why}; write a number and a unit (ms, s, m, h, d), like \
             250ms, 1.5s, 2m, 1h or 1m30s ({bare_hint})"
        )
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    if s.starts_with('-') {
        return Err(bad("a negative duration is refused"));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let (number, after) = number(rest).ok_or_else(|| bad("expected a number"))?;
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let per_unit: u128 = match unit {
            "" if parts == 0 && after.is_empty() => bare.nanos(),
            "" => return Err(bad("a unit is missing after a number")),
            "ms" => 1_000_000,
            "s" | "sec" | "secs" => 1_000_000_000,
            "m" | "min" | "mins" => 60_000_000_000,
            "h" | "hr" | "hrs" => 3_600_000_000_000,
            "d" | "day" | "days" => 86_400_000_000_000,
            _ => return Err(bad(&format!("unknown unit {unit:?}"))),
        };
        // `number` is the value times 10^9 (nine decimals at most), so the product is in
        // units of 10^-9 ns: divide back, rounding up so a positive duration never becomes 0.
        let nanos = number
            .checked_mul(per_unit)
            .map(|n| n.div_ceil(1_000_000_000))
            .ok_or_else(|| bad("it is too long"))?;
        total = total
            .checked_add(nanos)
            .ok_or_else(|| bad("it is too long"))?;
        rest = after;
        parts += 1;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad("it is too long"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// A decimal number at the start of `s` (digits, then optionally `.` and up to nine digits),
/// scaled by 10^9, and what follows it.
fn number(s: &str) -> Option<(u128, &str)> {
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (int, mut rest) = s.split_at(int_len);
    let mut frac = "";
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 9 {
            return None;
        }
        (frac, rest) = after_dot.split_at(len);
    }
    if int.is_empty() || int.len() > 20 {
        return None;
    }
    let int: u128 = int.parse().ok()?;
    let frac_scaled: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u128>().ok()? * 10u128.pow(9 - frac.len() as u32)
    };
    Some((int * 1_000_000_000 + frac_scaled, rest))
}

/// A duration for people, in the same grammar: `1h30m`, `30s`, `1.5s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 && ms < 60_000 {
        return if ms < 1000 {
            format!("{ms}ms")
        } else {
            format!("{}s", ms as f64 / 1000.0)
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
    fn units_and_decimals() {
        let p = |s| parse_duration(s, BareUnit::Seconds).unwrap();
        assert_eq!(p("30s"), Duration::from_secs(30));
        assert_eq!(p("250ms"), Duration::from_millis(250));
        assert_eq!(p("1.5s"), Duration::from_millis(1500));
        assert_eq!(p("0.25s"), Duration::from_millis(250));
        assert_eq!(p("2m"), Duration::from_secs(120));
        assert_eq!(p("1.5h"), Duration::from_secs(5400));
        assert_eq!(p("1h"), Duration::from_secs(3600));
        assert_eq!(p("1d"), Duration::from_secs(86_400));
        assert_eq!(p("1m30s"), Duration::from_secs(90));
        assert_eq!(p("1h1m1s1ms"), Duration::from_millis(3_661_001));
        assert_eq!(p("10"), Duration::from_secs(10));
        assert_eq!(p("1.5"), Duration::from_millis(1500));
        assert_eq!(p("0"), Duration::ZERO);
        assert_eq!(p(" 3s "), Duration::from_secs(3));
        assert_eq!(p("0.5ms"), Duration::from_micros(500));
        assert_eq!(p("0.000000001s"), Duration::from_nanos(1));
    }

    #[test]
    fn a_bare_number_takes_the_settings_unit() {
        assert_eq!(
            parse_duration("250", BareUnit::Millis),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("250ms", BareUnit::Millis),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("2s", BareUnit::Millis),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(
            parse_duration("250", BareUnit::Seconds),
            Ok(Duration::from_secs(250))
        );
    }

    #[test]
    fn errors_say_what_to_write() {
        for bad in [
            "",
            "s",
            "5x",
            "-1s",
            "5 s",
            "1m30",
            ".5s",
            "1.s",
            "1.0000000001s",
            "99999999999999999999999d",
        ] {
            let e = parse_duration(bad, BareUnit::Seconds).unwrap_err();
            assert!(e.contains("like 250ms, 1.5s"), "{bad:?}: {e}");
        }
        let e = |s| parse_duration(s, BareUnit::Seconds).unwrap_err();
        assert!(e("5x").contains("unknown unit \"x\""));
        assert!(e("-1s").contains("negative duration is refused"));
        assert!(e("999999999999999d").contains("too long"));
    }

    #[test]
    fn formatting_reads_back() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(86_400 + 3_600), "1d1h"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text, BareUnit::Seconds), Ok(d));
        }
    }
}
