//! Guessing what the exporting system did not tell us: the text encoding and the CSV
//! separator. Exports come from Excel on Spanish-locale Windows (Windows-1252), from newer
//! systems as UTF-8 with a BOM, and now and then as plain UTF-8.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

use crate::recipe::model::EncodingSpec;

/// Decoded text and the name of the encoding it came in.
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub encoding: &'static str,
}

/// Decodes a whole file. `auto`: a UTF-8 BOM wins, then valid UTF-8, else Windows-1252 (every
/// byte sequence is valid Windows-1252, so bad bytes never make a file unreadable; they show
/// up as odd characters in the rows that hold them).
pub fn decode(bytes: &[u8], spec: EncodingSpec) -> Decoded<'_> {
    let without_bom = bytes.strip_prefix(b"\xEF\xBB\xBF");
    let encoding: &'static Encoding = match spec {
        EncodingSpec::Utf8 => UTF_8,
        EncodingSpec::Windows1252 => WINDOWS_1252,
        EncodingSpec::Auto => {
            if without_bom.is_some() || std::str::from_utf8(bytes).is_ok() {
                UTF_8
            } else {
                WINDOWS_1252
            }
        }
    };
    let body = match (encoding == UTF_8, without_bom) {
        (true, Some(rest)) => rest,
        _ => bytes,
    };
    let (text, _) = encoding.decode_without_bom_handling(body);
    Decoded {
        text,
        encoding: if encoding == UTF_8 {
            if without_bom.is_some() {
                "utf-8-bom"
            } else {
                "utf-8"
            }
        } else {
            "windows-1252"
        },
    }
}

/// Looks like a binary file (NUL bytes early on): not an export at all.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8192).any(|&b| b == 0)
}

/// Picks the separator whose first records have the most consistent field count (more than
/// one field); ties go to `;`, the contract's default. Quoted separators do not count because
/// the candidates are tried with a real CSV parser.
pub fn delimiter(text: &str) -> u8 {
    let prefix = &text[..floor_char_boundary(text, 64 * 1024)];
    let mut best = (b';', 0usize);
    for cand in [b';', b',', b'\t', b'|'] {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(cand)
            .has_headers(false)
            .flexible(true)
            .from_reader(prefix.as_bytes());
        let mut header_len = None;
        let mut score = 0;
        for rec in rdr.records().take(30).flatten() {
            match header_len {
                None => header_len = Some(rec.len()),
                Some(h) if h > 1 && rec.len() == h => score += 1,
                _ => {}
            }
        }
        let h = header_len.unwrap_or(0);
        // A header with many fields and no data rows still tells us something.
        let score = if h > 1 { score * 1000 + h } else { 0 };
        if score > best.1 {
            best = (cand, score);
        }
    }
    best.0
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Header names as people write them: trimmed, case-folded, inner spaces collapsed, and
/// Spanish accents folded (`Código` = `Codigo`: some systems export ASCII-only headers).
pub fn normalize_header(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp1252_accents_survive() {
        let bytes = b"Nombre\r\nN\xfa\xf1ez Pe\xf1a\r\n";
        let d = decode(bytes, EncodingSpec::Auto);
        assert_eq!(d.encoding, "windows-1252");
        assert!(d.text.contains("Núñez Peña"));
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let d = decode("\u{feff}Código;x\n".as_bytes(), EncodingSpec::Auto);
        assert_eq!(d.encoding, "utf-8-bom");
        assert!(d.text.starts_with("Código"));
    }

    #[test]
    fn forced_encoding_wins() {
        let d = decode("Código".as_bytes(), EncodingSpec::Windows1252);
        assert_eq!(d.text, "CÃ³digo");
    }

    #[test]
    fn sniffs_each_separator_and_ignores_quoted_ones() {
        assert_eq!(delimiter("a;b;c\n1;\"x,y,z,w\";3\n"), b';');
        assert_eq!(delimiter("a,b,c\n1,\"x;y;z;w\",3\n"), b',');
        assert_eq!(delimiter("a\tb\tc\n1\t2\t3\n"), b'\t');
        assert_eq!(delimiter("a|b|c\n1|2|3\n"), b'|');
    }

    #[test]
    fn header_names_fold_case_and_spaces() {
        assert_eq!(
            normalize_header("  Razón  Social / NOMBRE "),
            "razon social / nombre"
        );
        assert_eq!(
            normalize_header("CODIGO SUCURSAL"),
            normalize_header("Código Sucursal")
        );
    }
}
