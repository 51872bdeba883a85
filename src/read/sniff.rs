//! Guessing what the exporting system did not tell us: the text encoding and the CSV
//! separator. Exports come from Excel on Spanish-locale Windows (Windows-1252), from newer
//! systems as UTF-8 with a BOM, and now and then as plain UTF-8.
//!
//! The encoding is decided once per file, from the evidence of the whole file
//! ([`sniff_encoding`]); a byte that does not fit it is a problem of the row that holds it
//! (`read.encoding`), never a reason to read every other row in another encoding.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

use crate::config::files::EncodingSpec;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The bytes that have no character in Windows-1252 (WHATWG maps them to C1 controls, so a
/// decoder does not report them; a real Windows-1252 export never holds them).
pub const CP1252_UNDEFINED: [u8; 5] = [0x81, 0x8D, 0x8F, 0x90, 0x9D];

/// The encoding of one file and where its text starts (after a UTF-8 BOM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub encoding: &'static Encoding,
    /// Length of the BOM in front of the text (0 or 3).
    pub bom: usize,
}

impl Sniffed {
    pub fn is_utf8(&self) -> bool {
        self.encoding == UTF_8
    }

    /// The name reported per file: `utf-8-bom`, `utf-8` or `windows-1252`.
    pub fn name(&self) -> &'static str {
        match (self.is_utf8(), self.bom > 0) {
            (true, true) => "utf-8-bom",
            (true, false) => "utf-8",
            (false, _) => "windows-1252",
        }
    }
}

/// What the bytes say about UTF-8: valid non-ASCII characters (multi-byte sequences) and
/// invalid sequences (each maximal ill-formed subsequence counts once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Evidence {
    pub multibyte: usize,
    pub invalid: usize,
}

pub fn utf8_evidence(bytes: &[u8]) -> Utf8Evidence {
    let mut ev = Utf8Evidence::default();
    for chunk in bytes.utf8_chunks() {
        // A lead byte (>= 0xC0) starts each multi-byte character; continuations are < 0xC0.
        ev.multibyte += chunk.valid().bytes().filter(|&b| b >= 0xC0).count();
        if !chunk.invalid().is_empty() {
            ev.invalid += 1;
        }
    }
    ev
}

/// Decides the encoding of a whole file.
///
/// - A forced `encoding` in the recipe wins (a UTF-8 BOM is still skipped for `utf-8`).
/// - `auto`: a UTF-8 BOM means UTF-8; bytes that are all valid UTF-8 mean UTF-8.
/// - Otherwise the evidence decides, counted over the whole file: valid multi-byte UTF-8
///   sequences against invalid ones. In Windows-1252 text an accented letter is a single
///   byte >= 0xC0 followed by ASCII, which is always an *invalid* UTF-8 sequence, while a
///   *valid* multi-byte sequence needs an upper-case accented letter followed by a symbol
///   from 0x80-0xBF (`É` + NBSP): practically never. In UTF-8 text every accented letter is a
///   valid sequence and an invalid one is a corruption (a stray Windows-1252 byte pasted in).
///   So the file is UTF-8 when it has valid multi-byte sequences and at least as many of them
///   as invalid ones, and Windows-1252 when invalid sequences outnumber them or there are no
///   valid ones. Ties go to UTF-8 because that mistake is loud (the odd rows are rejected with
///   `read.encoding`, naming the bytes) while the opposite mistake is silent (`Ã©` mojibake
///   in every accented value, headers included).
///
/// The count stops early once one kind clearly leads (see [`utf8_wins`]).
///
/// Counting characters rather than rows keeps a file whose only accents are in its header
/// (`Razón Social`, `Teléfono`, `Código Postal`: three sequences) UTF-8 when one or two rows
/// hold a stray byte.
pub fn sniff_encoding(bytes: &[u8], spec: EncodingSpec) -> Sniffed {
    let has_bom = bytes.starts_with(BOM);
    match spec {
        EncodingSpec::Utf8 => Sniffed {
            encoding: UTF_8,
            bom: if has_bom { BOM.len() } else { 0 },
        },
        EncodingSpec::Windows1252 => Sniffed {
            encoding: WINDOWS_1252,
            bom: 0,
        },
        EncodingSpec::Auto if has_bom => Sniffed {
            encoding: UTF_8,
            bom: BOM.len(),
        },
        EncodingSpec::Auto => {
            let utf8 = std::str::from_utf8(bytes).is_ok() || utf8_wins(bytes);
            Sniffed {
                encoding: if utf8 { UTF_8 } else { WINDOWS_1252 },
                bom: 0,
            }
        }
    }
}

/// Sequences one kind of evidence needs, leading the other 4 to 1, to decide before the end
/// of the file.
const DECISIVE: usize = 64;

/// The evidence rule of [`sniff_encoding`]. Counting stops as soon as one kind has
/// [`DECISIVE`] sequences and leads the other 4 to 1 (a real export decides in its first few
/// KiB instead of a pass over hundreds of MB); otherwise the whole file is counted.
fn utf8_wins(bytes: &[u8]) -> bool {
    let mut ev = Utf8Evidence::default();
    let leads = |a: usize, b: usize| a >= DECISIVE && a > b.saturating_mul(4);
    for chunk in bytes.utf8_chunks() {
        ev.multibyte += chunk.valid().bytes().filter(|&b| b >= 0xC0).count();
        if !chunk.invalid().is_empty() {
            ev.invalid += 1;
        }
        if leads(ev.invalid, ev.multibyte) {
            return false;
        }
        if leads(ev.multibyte, ev.invalid) {
            return true;
        }
    }
    ev.multibyte > 0 && ev.multibyte >= ev.invalid
}

/// Decoded text and the name of the encoding it came in.
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub encoding: &'static str,
}

/// Decodes a whole file leniently (a bad byte becomes U+FFFD).
pub fn decode(bytes: &[u8], spec: EncodingSpec) -> Decoded<'_> {
    let sniffed = sniff_encoding(bytes, spec);
    let body = bytes.get(sniffed.bom..).unwrap_or_default();
    Decoded {
        text: sniffed.encoding.decode_without_bom_handling(body).0,
        encoding: sniffed.name(),
    }
}

/// A byte (sequence) that is not text in the file's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// Not valid in the file's encoding: up to 3 bytes of an invalid UTF-8 sequence, or one
    /// Windows-1252 byte without a character.
    Invalid {
        bytes: [u8; 3],
        len: u8,
    },
    Nul,
}

impl Flaw {
    fn invalid(b: &[u8]) -> Flaw {
        let mut bytes = [0u8; 3];
        let len = b.len().min(3);
        bytes[..len].copy_from_slice(&b[..len]);
        Flaw::Invalid {
            bytes,
            len: len as u8,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Flaw::Invalid { bytes, len } => &bytes[..usize::from(*len).min(3)],
            Flaw::Nul => &[0],
        }
    }
}

/// Where a flaw sits: in the decoded text (where a U+FFFD now stands) and in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub text_offset: usize,
    pub file_offset: usize,
    pub flaw: Flaw,
}

/// At most this many flaws are remembered per file; a file with more is not text.
pub const MAX_MARKS: usize = 1 << 20;

/// A whole file decoded for a reader that needs all of its text at once (XML): every byte
/// that is not text in the file's encoding (invalid UTF-8, a Windows-1252 byte without a
/// character, NUL) becomes U+FFFD and is marked, so the reader can reject the record that
/// holds it. `None` when there are more than [`MAX_MARKS`] such bytes.
pub fn decode_marked(bytes: &[u8], sniffed: Sniffed) -> Option<(Cow<'_, str>, Vec<Mark>)> {
    let body = bytes.get(sniffed.bom..).unwrap_or_default();
    let has_nul = body.contains(&0);
    let mut marks = Vec::new();
    if sniffed.is_utf8() {
        if !has_nul {
            if let Ok(text) = std::str::from_utf8(body) {
                return Some((Cow::Borrowed(text), marks));
            }
        }
        let mut text = String::with_capacity(body.len() + body.len() / 16);
        let mut file_offset = sniffed.bom;
        for chunk in body.utf8_chunks() {
            let valid = chunk.valid();
            let mut rest = valid;
            while let Some(p) = rest.find('\0') {
                text.push_str(&rest[..p]);
                marks.push(Mark {
                    text_offset: text.len(),
                    file_offset: file_offset + (valid.len() - rest.len()) + p,
                    flaw: Flaw::Nul,
                });
                text.push('\u{FFFD}');
                rest = &rest[p + 1..];
            }
            text.push_str(rest);
            file_offset += valid.len();
            let invalid = chunk.invalid();
            if !invalid.is_empty() {
                marks.push(Mark {
                    text_offset: text.len(),
                    file_offset,
                    flaw: Flaw::invalid(invalid),
                });
                text.push('\u{FFFD}');
                file_offset += invalid.len();
            }
            if marks.len() > MAX_MARKS {
                return None;
            }
        }
        Some((Cow::Owned(text), marks))
    } else {
        let special = |b: &u8| *b == 0 || CP1252_UNDEFINED.contains(b);
        if !body.iter().any(special) {
            return Some((sniffed.encoding.decode_without_bom_handling(body).0, marks));
        }
        let mut text = String::with_capacity(body.len() + body.len() / 8);
        let mut start = 0;
        for (i, b) in body.iter().enumerate() {
            if special(b) {
                let segment = body.get(start..i).unwrap_or_default();
                text.push_str(&sniffed.encoding.decode_without_bom_handling(segment).0);
                marks.push(Mark {
                    text_offset: text.len(),
                    file_offset: sniffed.bom + i,
                    flaw: if *b == 0 {
                        Flaw::Nul
                    } else {
                        Flaw::invalid(&[*b])
                    },
                });
                text.push('\u{FFFD}');
                start = i + 1;
                if marks.len() > MAX_MARKS {
                    return None;
                }
            }
        }
        let segment = body.get(start..).unwrap_or_default();
        text.push_str(&sniffed.encoding.decode_without_bom_handling(segment).0);
        Some((Cow::Owned(text), marks))
    }
}

/// NUL bytes in the first 8 KiB of the file (UTF-16, images, archives, executables).
const BINARY_PREFIX: usize = 8192;
/// More than one NUL per this many bytes anywhere in the file: a binary tail or a zeroed
/// block, not a text export with a stray NUL.
const NUL_DENSITY: usize = 1000;

/// Not a text export at all: a NUL byte in the first 8 KiB, or NUL bytes dense anywhere
/// (more than 1 per 1,000 bytes of the file). Sparser NULs further in are a problem of the
/// rows holding them (`read.nul`), so one stray NUL does not quarantine a whole export and
/// none passes silently into the CRM.
pub fn is_binary(bytes: &[u8]) -> bool {
    let head = bytes.get(..BINARY_PREFIX).unwrap_or(bytes);
    if head.contains(&0) {
        return true;
    }
    if !bytes.contains(&0) {
        return false;
    }
    let nuls = bytes.iter().filter(|&&b| b == 0).count();
    nuls > bytes.len() / NUL_DENSITY
}

/// Picks the separator whose first records have the most consistent field count (more than
/// one field); ties go to `;`, the contract's default. Quoted separators do not count because
/// the candidates are tried with a real CSV parser. Works on the raw bytes: every candidate
/// and the quote are ASCII, which both UTF-8 and Windows-1252 keep as is.
pub fn delimiter(bytes: &[u8]) -> u8 {
    let prefix = bytes.get(..64 * 1024).unwrap_or(bytes);
    let mut best = (b';', 0usize);
    for cand in [b';', b',', b'\t', b'|'] {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(cand)
            .has_headers(false)
            .flexible(true)
            .from_reader(prefix);
        let mut header_len = None;
        let mut score = 0usize;
        for rec in rdr.byte_records().take(30).flatten() {
            match header_len {
                None => header_len = Some(rec.len()),
                Some(h) if h > 1 && rec.len() == h => score += 1,
                _ => {}
            }
        }
        let h = header_len.unwrap_or(0);
        // A header with many fields and no data rows still tells us something.
        let score = if h > 1 {
            score.saturating_mul(1000).saturating_add(h)
        } else {
            0
        };
        if score > best.1 {
            best = (cand, score);
        }
    }
    best.0
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
    fn a_few_bad_bytes_do_not_make_utf8_windows_1252() {
        let sniff = |b: &[u8]| sniff_encoding(b, EncodingSpec::Auto).name();
        // Accents only in the header, two rows with a stray Windows-1252 byte.
        let mut f = "Razón Social;Teléfono;Código Postal\n".as_bytes().to_vec();
        f.extend_from_slice(b"Mu\xf1oz;1;2\nPe\xf1a;3;4\nok;5;6\n");
        assert_eq!(sniff(&f), "utf-8");
        // A real Windows-1252 file: every accent is an invalid sequence.
        assert_eq!(
            sniff(b"Raz\xf3n;Tel\xe9fono\nN\xfa\xf1ez;1\n"),
            "windows-1252"
        );
        // No valid multi-byte sequence at all: Windows-1252, even with one bad byte.
        assert_eq!(sniff(b"Nombre\nPe\xf1a\n"), "windows-1252");
        // `É` + NBSP happens to be valid UTF-8; the rest of the file outvotes it.
        assert_eq!(
            sniff(b"JOS\xc9\xa0P\xc9REZ;Mu\xf1oz;Ib\xe1\xf1ez\n"),
            "windows-1252"
        );
        // Decided early when one kind clearly leads, whatever comes after.
        let mut big = b"Nombre\n".to_vec();
        for _ in 0..100 {
            big.extend_from_slice(b"Mu\xf1oz\n");
        }
        big.extend(std::iter::repeat_n(b'x', 1 << 20));
        assert_eq!(sniff(&big), "windows-1252");
        let mut big = "Muñoz\n".repeat(100).into_bytes();
        big.extend_from_slice(b"Pe\xf1a\n");
        assert_eq!(sniff(&big), "utf-8");
        assert_eq!(
            utf8_evidence("añ\u{20ac}x".as_bytes()),
            Utf8Evidence {
                multibyte: 2,
                invalid: 0
            }
        );
    }

    #[test]
    fn binary_is_an_early_nul_or_dense_nuls() {
        let mut text = vec![b'a'; 200_000];
        assert!(!is_binary(&text));
        text[100_000] = 0;
        assert!(!is_binary(&text), "one stray NUL is a row problem");
        text[100] = 0;
        assert!(is_binary(&text), "a NUL in the first 8 KiB");
        text[100] = b'a';
        for i in 0..300 {
            text[50_000 + i * 13] = 0;
        }
        assert!(is_binary(&text), "301 NULs in 200 KB");
    }

    #[test]
    fn decode_marked_marks_each_flaw_where_it_is() {
        let bytes = b"ab\xe9c\0d\xc3\xa9";
        let s = sniff_encoding(bytes, EncodingSpec::Utf8);
        let (text, marks) = decode_marked(bytes, s).unwrap();
        assert_eq!(text, "ab\u{fffd}c\u{fffd}dé");
        assert_eq!(
            marks,
            [
                Mark {
                    text_offset: 2,
                    file_offset: 2,
                    flaw: Flaw::invalid(&[0xe9])
                },
                Mark {
                    text_offset: 6,
                    file_offset: 4,
                    flaw: Flaw::Nul
                }
            ]
        );
        let bytes = b"\xe1\x81b\0";
        let s = sniff_encoding(bytes, EncodingSpec::Windows1252);
        let (text, marks) = decode_marked(bytes, s).unwrap();
        assert_eq!(text, "á\u{fffd}b\u{fffd}");
        assert_eq!(
            marks.iter().map(|m| m.file_offset).collect::<Vec<_>>(),
            [1, 3]
        );
        let (text, marks) = decode_marked(
            "\u{feff}año".as_bytes(),
            sniff_encoding("\u{feff}año".as_bytes(), EncodingSpec::Auto),
        )
        .unwrap();
        assert!(matches!(text, Cow::Borrowed("año")));
        assert!(marks.is_empty());
    }

    #[test]
    fn sniffs_each_separator_and_ignores_quoted_ones() {
        assert_eq!(delimiter(b"a;b;c\n1;\"x,y,z,w\";3\n"), b';');
        assert_eq!(delimiter(b"a,b,c\n1,\"x;y;z;w\",3\n"), b',');
        assert_eq!(delimiter(b"a\tb\tc\n1\t2\t3\n"), b'\t');
        assert_eq!(delimiter(b"a|b|c\n1|2|3\n"), b'|');
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
