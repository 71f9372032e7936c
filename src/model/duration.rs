//! Durations as Compose writes them: `1m30s`, `2s`, `500ms`, `1h`, `1.5s`.

use std::time::Duration;

/// Parses a Go-style duration; a bare number is not accepted (the unit would be a guess).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?} has no unit; write e.g. {text}s"))?;
        if num_len == 0 {
            return Err(format!("{text:?} is not a duration; write e.g. 2s, 500ms or 1m30s"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{text:?} is not a duration; write e.g. 2s, 500ms or 1m30s"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => {
                return Err(format!("{text:?}: unknown unit {unit:?}; use ms, s, m or h (e.g. 2s, 1m30s)"));
            }
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 366.0 * 24.0 * 3600.0 {
        return Err(format!("{text:?} is longer than a year"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Prints a duration the way a user would write it back.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        let s = ms / 1000;
        match (s / 3600, (s % 3600) / 60, s % 60) {
            (0, 0, s) => format!("{s}s"),
            (0, m, 0) => format!("{m}m"),
            (0, m, s) => format!("{m}m{s}s"),
            (h, 0, 0) => format!("{h}h"),
            (h, m, s) => format!("{h}h{m}m{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (text, ms, back) in [
            ("2s", 2000, "2s"),
            ("500ms", 500, "500ms"),
            ("1m30s", 90_000, "1m30s"),
            ("1.5s", 1500, "1500ms"),
            ("1h", 3_600_000, "1h"),
        ] {
            let d = parse(text).unwrap();
            assert_eq!(d.as_millis(), ms, "{text}");
            assert_eq!(format(d), back);
        }
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "5", "s", "2x", "-1s", "1..2s", "99999999h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
