//! Exact decimals as polars holds them: an `i128` count of `10^-scale` units. One canonical
//! text for every output (SQLite, COPY, JSON, the pages), so a value reads the same on every
//! surface and two writes of it compare equal; and the one conversion from the binary floats
//! that workspaces written before amounts were exact still hold.

/// `(4085017187, 2)` → `40850171.87`: always `scale` decimals, a leading `-` for negatives,
/// never an exponent. The form the dealer's own report prints (without thousands marks).
pub fn to_text(units: i128, scale: usize) -> String {
    let digits = units.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + scale + 3);
    if units < 0 {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
        return out;
    }
    if digits.len() <= scale {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// The value with `scale` decimals nearest to a float written by an earlier release.
///
/// Rust formats a float's exact binary value rounded to the requested decimals, so an amount
/// that was parsed from `40850171,87` into the nearest double (`40850171.8699999973…`) comes
/// back as `40850171.87`: exact whenever the amount had at most 15 significant digits, which
/// is as far as a double kept it anyway. `None` for NaN and infinities.
pub fn from_f64(x: f64, scale: usize) -> Option<i128> {
    if !x.is_finite() {
        return None;
    }
    parse_plain(&format!("{x:.scale$}"), scale)
}

/// `-123.45` (digits, an optional sign and at most `scale` decimals) → units at `scale`.
/// `None` for anything else: the transform has already reported what did not parse.
pub fn parse_plain(text: &str, scale: usize) -> Option<i128> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || frac.len() > scale
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut units: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        units = units.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    units = units.checked_mul(10i128.checked_pow((scale - frac.len()) as u32)?)?;
    Some(if negative { -units } else { units })
}

/// The value as the nearest double, for spreadsheet cells (which hold doubles): parsed from
/// the exact text, so correctly rounded.
pub fn to_f64(units: i128, scale: usize) -> f64 {
    to_text(units, scale).parse().unwrap_or(f64::NAN)
}

/// Significant digits of the value, trailing zeros of the fraction included: how many a
/// spreadsheet must keep to show it to the last decimal. Excel keeps 15.
pub fn significant_digits(units: i128) -> usize {
    let digits = units.unsigned_abs().to_string();
    digits.trim_start_matches('0').len().max(1)
}

/// The value without trailing fractional zeros, as (units, scale): `1.50` at scale 2 and
/// `1.5` at scale 1 are one value. Row hashes use it, so changing a field's scale in its
/// recipe does not make every row look changed.
pub fn normalized(mut units: i128, mut scale: usize) -> (i128, usize) {
    while scale > 0 && units % 10 == 0 {
        units /= 10;
        scale -= 1;
    }
    (units, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_exactly_scale_decimals_and_no_exponent() {
        assert_eq!(to_text(4_085_017_187, 2), "40850171.87");
        assert_eq!(to_text(8_072_900_000, 2), "80729000.00");
        assert_eq!(to_text(-5, 2), "-0.05");
        assert_eq!(to_text(0, 2), "0.00");
        assert_eq!(to_text(7, 0), "7");
        assert_eq!(to_text(1_000_000_000_000_000, 2), "10000000000000.00");
        assert_eq!(to_text(-123_456, 3), "-123.456");
    }

    #[test]
    fn parse_is_the_inverse_of_text() {
        for (units, scale) in [
            (4_085_017_187i128, 2),
            (-5, 2),
            (0, 2),
            (7, 0),
            (-123_456, 3),
        ] {
            assert_eq!(parse_plain(&to_text(units, scale), scale), Some(units));
        }
        assert_eq!(parse_plain("12.5", 2), Some(1250));
        assert_eq!(parse_plain("+12", 2), Some(1200));
        assert_eq!(parse_plain("12.345", 2), None, "never rounds");
        assert_eq!(parse_plain("1e3", 2), None);
        assert_eq!(parse_plain("", 2), None);
        assert_eq!(parse_plain("-", 2), None);
    }

    #[test]
    fn floats_from_old_workspaces_come_back_to_their_cents() {
        for text in [
            "40850171.87",
            "0.10",
            "38333.00",
            "9999999999999.99",
            "1234567890123.45",
            "-0.07",
        ] {
            let units = parse_plain(text, 2).unwrap();
            let float: f64 = text.parse().unwrap();
            assert_eq!(from_f64(float, 2), Some(units), "{text}");
        }
        assert_eq!(from_f64(f64::NAN, 2), None);
    }

    #[test]
    fn normalized_forgets_trailing_zeros() {
        assert_eq!(normalized(150, 2), (15, 1));
        assert_eq!(normalized(15, 1), (15, 1));
        assert_eq!(normalized(1000, 2), (10, 0));
        assert_eq!(normalized(0, 2), (0, 0));
        assert_eq!(significant_digits(1_234_567_890_123_456), 16);
        assert_eq!(significant_digits(0), 1);
    }
}
