//! Recipe mistakes reported the way a compiler would: `file:line:column`, the key, what is
//! wrong and, when we can guess, the key that was meant.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

/// One mistake, also as JSON (`--json`): `file`, `line`, `column`, `key`, `message`, `help`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The offending key or value, when known.
    pub key: Option<String>,
    pub message: String,
    pub help: Option<String>,
    /// The key this one was probably meant to be, when `help` is a "did you mean".
    #[serde(skip)]
    pub suggestion: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of one TOML source to 1-based line and column (in characters).
pub struct SourceMap<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl<'a> SourceMap<'a> {
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        // A span inside a multi-byte character points at that character.
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub fn at(
        &self,
        span: std::ops::Range<usize>,
        key: Option<&str>,
        message: String,
    ) -> Diagnostic {
        let (line, column) = self.position(span.start);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.map(str::to_string),
            message,
            help: None,
            suggestion: None,
        }
    }

    /// Turns a serde/TOML error into a diagnostic, naming the unknown key and the closest
    /// expected one (`unknown field `fromm`` → help: did you mean `from`?).
    pub fn from_toml(&self, err: &toml::de::Error) -> Diagnostic {
        let span = err.span().unwrap_or(0..0);
        let message = err.message().trim().to_string();
        let mut diag = self.at(span, None, message.clone());
        static UNKNOWN: OnceLock<Regex> = OnceLock::new();
        let unknown = UNKNOWN.get_or_init(|| {
            Regex::new(r"unknown (field|variant) `([^`]*)`, expected (.*)").expect("static regex")
        });
        if let Some(caps) = unknown.captures(&message) {
            let got = caps[2].to_string();
            let expected: Vec<String> = caps[3]
                .split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s.to_string())
                .collect();
            diag.suggestion = suggest(&got, expected.iter().map(String::as_str));
            // Without a near key, the message's own "expected …" list is the help.
            diag.help = diag
                .suggestion
                .as_ref()
                .map(|s| format!("did you mean `{s}`?"));
            diag.key = Some(got);
        } else if let Some(caps) = Regex::new(r"missing field `([^`]*)`")
            .expect("static regex")
            .captures(&message)
        {
            diag.key = Some(caps[1].to_string());
        }
        diag
    }
}

/// The candidate closest to `got` by edit distance, if it is close enough to be a typo.
pub fn suggest<'c>(got: &str, candidates: impl Iterator<Item = &'c str>) -> Option<String> {
    let got_l = got.to_lowercase();
    candidates
        .map(|c| (strsim::levenshtein(&got_l, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_chars() {
        let map = SourceMap {
            file: Path::new("r.toml"),
            text: "a = 1\nñb = 2\n",
        };
        assert_eq!(map.position(0), (1, 1));
        assert_eq!(map.position(6), (2, 1));
        // 'ñ' is two bytes but one column.
        assert_eq!(map.position(8), (2, 2));
        // An offset inside 'ñ' (or past the end) is clamped, not a panic.
        assert_eq!(map.position(7), (2, 1));
        assert_eq!(map.position(99), (3, 1));
    }

    #[test]
    fn suggest_picks_the_nearest_key_only_when_close() {
        let keys = ["from", "name", "type", "required"];
        assert_eq!(
            suggest("fromm", keys.iter().copied()).as_deref(),
            Some("from")
        );
        assert_eq!(
            suggest("requird", keys.iter().copied()).as_deref(),
            Some("required")
        );
        assert_eq!(suggest("zzzzzzzz", keys.iter().copied()), None);
    }
}
