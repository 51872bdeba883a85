//! Realistic Argentine field values (names, tax ids, phones, addresses, amounts), appended to a
//! `String` so a row is built without per-field allocations.

use std::fmt::Write;

use super::rng::Rng;
use super::vocab::{
    COMPANY_KINDS, COMPANY_NAMES, COMPANY_SUFFIXES, FIRST_NAMES, LAST_NAMES, MAIL_DOMAINS, PLACES,
    ROUTES, STREETS,
};

/// Decimal digits of `n` in a stack buffer (no allocation on the hot path).
fn digits(n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut v = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Appends `n` with `.` as thousands separator (`35.400`), as the DMS writes km and counts.
pub(super) fn push_thousands(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    let d = digits(n, &mut buf);
    let len = d.len();
    for (k, ch) in d.char_indices() {
        if k > 0 && (len - k).is_multiple_of(3) {
            out.push('.');
        }
        out.push(ch);
    }
}

/// Appends an amount in cents as `1.234.567,89`.
pub(super) fn push_amount(out: &mut String, cents: u64) {
    push_thousands(out, cents / 100);
    let _ = write!(out, ",{:02}", cents % 100);
}

/// Reads back an amount written by [`push_amount`] (used to change it by a clear margin).
pub(super) fn parse_amount(s: &str) -> Option<u64> {
    let (int, dec) = s.split_once(',')?;
    let int: u64 = int.replace('.', "").parse().ok()?;
    let dec: u64 = dec.parse().ok()?;
    Some(int * 100 + dec)
}

/// Reads back a number written by [`push_thousands`].
pub(super) fn parse_thousands(s: &str) -> Option<u64> {
    s.replace('.', "").parse().ok()
}

/// Lowercase ASCII form of a name for e-mail local parts (`Núñez` → `nunez`, `O'Connor` → `oconnor`).
pub(super) fn push_folded(out: &mut String, s: &str) {
    for ch in s.chars() {
        let c = match ch {
            'á' | 'Á' => 'a',
            'é' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'Ú' | 'ü' | 'Ü' => 'u',
            'ñ' | 'Ñ' => 'n',
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            _ => continue,
        };
        out.push(c);
    }
}

/// A person's parts, chosen once so the name, e-mail and tax id agree.
pub(super) struct Person {
    /// Given name(s).
    pub first: &'static str,
    /// Family name.
    pub last: &'static str,
    /// Second family name, sometimes present.
    pub last2: Option<&'static str>,
}

/// Draws a person.
pub(super) fn person(rng: &mut Rng) -> Person {
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    let last2 = if rng.chance(150) {
        Some(rng.pick(LAST_NAMES))
    } else {
        None
    };
    Person { first, last, last2 }
}

/// Appends `Apellido, Nombre` as the clients file stores people.
pub(super) fn push_last_first(out: &mut String, p: &Person) {
    out.push_str(p.last);
    if let Some(l2) = p.last2 {
        out.push(' ');
        out.push_str(l2);
    }
    out.push_str(", ");
    out.push_str(p.first);
}

/// Appends `Nombre Apellido` as the users file stores people.
pub(super) fn push_first_last(out: &mut String, p: &Person) {
    out.push_str(p.first);
    out.push(' ');
    out.push_str(p.last);
    if let Some(l2) = p.last2 {
        out.push(' ');
        out.push_str(l2);
    }
}

/// A company name such as `Transportes del Sur S.R.L.`; returns the middle word for its e-mail.
pub(super) fn push_company(out: &mut String, rng: &mut Rng) -> &'static str {
    let kind = rng.pick(COMPANY_KINDS);
    let name = rng.pick(COMPANY_NAMES);
    let _ = write!(out, "{kind} {name} {}", rng.pick(COMPANY_SUFFIXES));
    name
}

/// CUIT check digit (weights 5432765432 mod 11); `None` when the DMS would switch the prefix.
fn cuit_check(prefix: u64, number: u64) -> Option<u64> {
    const W: [u64; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let digits = prefix * 100_000_000 + number;
    let mut sum = 0;
    for (k, w) in W.iter().enumerate() {
        sum += (digits / 10u64.pow(9 - k as u32) % 10) * w;
    }
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        d => Some(d),
    }
}

fn push_cuit(out: &mut String, prefix: u64, number: u64, dashes: bool) {
    let (prefix, check) = match cuit_check(prefix, number) {
        Some(c) => (prefix, c),
        None => (if prefix >= 30 { 33 } else { 23 }, 9),
    };
    if dashes {
        let _ = write!(out, "{prefix}-{number:08}-{check}");
    } else {
        let _ = write!(out, "{prefix}{number:08}{check}");
    }
}

/// A person's id: DNI `12.345.678` (or plain) or CUIT `20-12345678-9` (or plain).
pub(super) fn push_person_id(out: &mut String, rng: &mut Rng) {
    let dni = rng.range(8_000_000, 46_999_999);
    match rng.below(10) {
        0..=4 => push_thousands(out, dni),
        5 => {
            let _ = write!(out, "{dni}");
        }
        6..=8 => push_cuit(out, rng.pick(&[20, 27]), dni, true),
        _ => push_cuit(out, rng.pick(&[20, 27]), dni, false),
    }
}

/// A company CUIT, `30-71234567-8` (sometimes without dashes).
pub(super) fn push_company_id(out: &mut String, rng: &mut Rng) {
    let number = rng.range(50_000_000, 71_999_999);
    push_cuit(out, 30, number, !rng.chance(200));
}

/// Index into [`PLACES`].
pub(super) fn place(rng: &mut Rng) -> usize {
    // Buenos Aires and its suburbs weigh more, as in a real customer base.
    if rng.chance(300) {
        rng.below(3) as usize
    } else {
        rng.below(PLACES.len() as u64) as usize
    }
}

fn push_local_number(out: &mut String, rng: &mut Rng, width: usize, first: u64) {
    let mut n = first;
    for _ in 1..width {
        n = n * 10 + rng.below(10);
    }
    let mut buf = [0u8; 20];
    let s = digits(n, &mut buf);
    let cut = s.len() - 4;
    out.push_str(&s[..cut]);
    out.push('-');
    out.push_str(&s[cut..]);
}

/// A landline in one of the free forms people type: `(011) 4555-1234`, `0351-455-1234`, `4555 1234`.
pub(super) fn push_landline(out: &mut String, rng: &mut Rng, place: usize) {
    let area = PLACES[place].3;
    let digits = 10 - area.len();
    match rng.below(10) {
        0..=4 => {
            let _ = write!(out, "(0{area}) ");
            push_local_number(out, rng, digits, 4);
        }
        5..=6 => {
            let _ = write!(out, "0{area}-");
            push_local_number(out, rng, digits, 4);
        }
        7..=8 => {
            let _ = write!(out, "0{area} ");
            push_local_number(out, rng, digits, 4);
        }
        _ => {
            push_local_number(out, rng, digits, 4);
            // "4555-1234" typed with a space instead.
            if let Some(p) = out.rfind('-') {
                out.replace_range(p..p + 1, " ");
            }
        }
    }
}

/// A mobile in one of the usual forms: `+54 9 11 5555-1234`, `(011) 15-5555-1234`, `11-5555-1234`.
pub(super) fn push_mobile(out: &mut String, rng: &mut Rng, place: usize) {
    let area = PLACES[place].3;
    let digits = 10 - area.len();
    let first = rng.range(5, 6);
    match rng.below(10) {
        0..=3 => {
            let _ = write!(out, "+54 9 {area} ");
        }
        4..=5 => {
            let _ = write!(out, "(0{area}) 15-");
        }
        6..=7 => {
            let _ = write!(out, "{area}-");
        }
        _ => {
            let _ = write!(out, "0{area} 15 ");
        }
    }
    push_local_number(out, rng, digits, first);
}

/// An address, usually `Av. Corrientes 1234`; a few per thousand hold a `;` or a line break, as DMS
/// free-text fields do (the CSV writer must quote them).
pub(super) fn push_address(out: &mut String, rng: &mut Rng) {
    let roll = rng.below(1000);
    if roll < 3 {
        let _ = write!(
            out,
            "{} {}; Piso {}",
            rng.pick(STREETS),
            rng.range(10, 9999),
            rng.range(1, 12)
        );
    } else if roll < 5 {
        let _ = write!(
            out,
            "{} km {}\nLote {}",
            rng.pick(ROUTES),
            rng.range(1, 400),
            rng.range(1, 60)
        );
    } else if roll < 50 {
        let _ = write!(out, "{} km {}", rng.pick(ROUTES), rng.range(1, 400));
    } else {
        let _ = write!(out, "{} {}", rng.pick(STREETS), rng.range(10, 9999));
        if rng.chance(150) {
            let floor = rng.range(1, 15);
            let unit = (b'A' + rng.below(6) as u8) as char;
            if rng.chance(500) {
                let _ = write!(out, " Piso {floor} Dto. {unit}");
            } else {
                let _ = write!(out, " {floor}º {unit}");
            }
        }
    }
}

fn province_letter(province: &str) -> char {
    match province {
        "CABA" => 'C',
        "Buenos Aires" => 'B',
        "Córdoba" => 'X',
        "Santa Fe" => 'S',
        "Mendoza" => 'M',
        "Tucumán" => 'T',
        "Salta" => 'A',
        "Jujuy" => 'Y',
        "Neuquén" => 'Q',
        "Río Negro" => 'R',
        "Chubut" => 'U',
        "Santa Cruz" => 'Z',
        "Tierra del Fuego" => 'V',
        "Entre Ríos" => 'E',
        "Misiones" => 'N',
        "Corrientes" => 'W',
        "Chaco" => 'H',
        "La Pampa" => 'L',
        "San Juan" => 'J',
        "San Luis" => 'D',
        "Santiago del Estero" => 'G',
        "La Rioja" => 'F',
        "Catamarca" => 'K',
        _ => 'P',
    }
}

/// A postal code: the old 4 digits (`5000`) or the CPA (`X5000ABC`).
pub(super) fn push_postal_code(out: &mut String, rng: &mut Rng, place: usize) {
    let (_, province, base, _) = PLACES[place];
    if rng.chance(300) {
        out.push(province_letter(province));
        out.push_str(base);
        for _ in 0..3 {
            out.push((b'A' + rng.below(26) as u8) as char);
        }
    } else {
        out.push_str(base);
    }
}

/// A client's personal e-mail: mixed case in some rows, stray spaces in a few, empty in ~15%.
pub(super) fn push_client_email(out: &mut String, rng: &mut Rng, first: &str, last: &str) {
    let roll = rng.below(100);
    if roll < 15 {
        return;
    }
    let lead = if rng.chance(50) { " " } else { "" };
    out.push_str(lead);
    let start = out.len();
    match rng.below(4) {
        0 => {
            push_folded(out, first.split(' ').next().unwrap_or(first));
            out.push('.');
            push_folded(out, last);
        }
        1 => {
            push_folded(
                out,
                &first[..first.chars().next().map_or(0, char::len_utf8)],
            );
            push_folded(out, last);
            let _ = write!(out, "{}", rng.range(1, 99));
        }
        2 => {
            push_folded(out, last);
            out.push('_');
            push_folded(out, first.split(' ').next().unwrap_or(first));
        }
        _ => {
            push_folded(out, first.split(' ').next().unwrap_or(first));
            push_folded(out, last);
            let _ = write!(out, "{}", rng.range(60, 2005));
        }
    }
    out.push('@');
    out.push_str(rng.pick(MAIL_DOMAINS));
    if rng.chance(200) {
        // Typed with caps: "Jose.Gonzalez@Gmail.com".
        let upper: String = out[start..]
            .split_inclusive(['.', '@', '_'])
            .map(|part| {
                let mut c = part.chars();
                match c.next() {
                    Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect();
        out.replace_range(start.., &upper);
    }
    if rng.chance(50) {
        out.push_str("  ");
    }
}

/// A company's e-mail: `compras@transportesdelsur.com.ar`.
pub(super) fn push_company_email(out: &mut String, rng: &mut Rng, name: &str) {
    if rng.chance(100) {
        return;
    }
    out.push_str(rng.pick(&["info", "ventas", "compras", "administracion", "flota"]));
    out.push('@');
    push_folded(out, name);
    out.push_str(".com.ar");
}

#[cfg(test)]
mod tests {
    use super::super::rng::Stream;
    use super::*;

    fn rng(i: u64) -> Rng {
        Rng::for_row(42, 9, Stream::Row, i)
    }

    #[test]
    fn numbers_use_dot_thousands_and_comma_decimals() {
        let mut s = String::new();
        push_amount(&mut s, 123_456_789);
        s.push('|');
        push_thousands(&mut s, 35_400);
        s.push('|');
        push_thousands(&mut s, 999);
        s.push('|');
        push_amount(&mut s, 5);
        assert_eq!(s, "1.234.567,89|35.400|999|0,05");
        assert_eq!(parse_amount("1.234.567,89"), Some(123_456_789));
        assert_eq!(parse_thousands("35.400"), Some(35_400));
    }

    #[test]
    fn cuit_check_digit_is_the_afip_one() {
        // 20-12345678-6 is the well-known valid example.
        assert_eq!(cuit_check(20, 12_345_678), Some(6));
        let mut s = String::new();
        push_cuit(&mut s, 20, 12_345_678, true);
        assert_eq!(s, "20-12345678-6");
    }

    #[test]
    fn folding_strips_accents_and_punctuation() {
        let mut s = String::new();
        push_folded(&mut s, "Núñez O'Connor Ü");
        assert_eq!(s, "nunezoconnoru");
    }

    #[test]
    fn phones_and_addresses_look_argentine() {
        let mut saw_semicolon = false;
        let mut saw_break = false;
        for i in 0..5000 {
            let mut r = rng(i);
            let p = place(&mut r);
            let mut s = String::new();
            push_landline(&mut s, &mut r, p);
            assert!(s.chars().filter(char::is_ascii_digit).count() >= 6, "{s}");
            s.clear();
            push_mobile(&mut s, &mut r, p);
            assert!(s.chars().filter(char::is_ascii_digit).count() >= 10, "{s}");
            s.clear();
            push_address(&mut s, &mut r);
            saw_semicolon |= s.contains(';');
            saw_break |= s.contains('\n');
        }
        assert!(saw_semicolon && saw_break);
    }

    #[test]
    fn emails_are_ascii_with_one_at() {
        for i in 0..2000 {
            let mut r = rng(i);
            let mut s = String::new();
            push_client_email(&mut s, &mut r, "José María", "Núñez");
            if !s.is_empty() {
                assert!(s.is_ascii(), "{s}");
                assert_eq!(s.matches('@').count(), 1, "{s}");
            }
        }
    }
}
