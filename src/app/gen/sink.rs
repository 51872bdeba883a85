//! A text file written in chunks: rows are appended to a `String`, and every ~256 KiB the chunk is
//! encoded (Windows-1252 via `encoding_rs`, or UTF-8 as is) and handed to a `BufWriter`. Memory stays
//! flat whatever the drop size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use encoding_rs::{EncoderResult, WINDOWS_1252};

use super::{GenEncoding, GenError};

const CHUNK: usize = 256 * 1024;

/// An output file being written.
pub(super) struct TextSink {
    path: PathBuf,
    out: BufWriter<File>,
    cp1252: Option<encoding_rs::Encoder>,
    text: String,
    bytes: Vec<u8>,
}

impl TextSink {
    /// Creates (truncates) `path`; a UTF-8-with-BOM file starts with `EF BB BF`.
    pub(super) fn create(path: &Path, encoding: GenEncoding) -> Result<TextSink, GenError> {
        let file = File::create(path).map_err(|e| GenError::io(path, e))?;
        let mut out = BufWriter::with_capacity(CHUNK, file);
        if encoding == GenEncoding::Utf8Bom {
            out.write_all(b"\xEF\xBB\xBF")
                .map_err(|e| GenError::io(path, e))?;
        }
        Ok(TextSink {
            path: path.to_path_buf(),
            out,
            cp1252: (encoding == GenEncoding::Cp1252).then(|| WINDOWS_1252.new_encoder()),
            text: String::with_capacity(CHUNK + 4096),
            bytes: Vec::with_capacity(CHUNK + 4096),
        })
    }

    /// The pending text; append to it, then call [`TextSink::maybe_flush`].
    pub(super) fn text(&mut self) -> &mut String {
        &mut self.text
    }

    /// Encodes and writes the pending text once it is a full chunk.
    pub(super) fn maybe_flush(&mut self) -> Result<(), GenError> {
        if self.text.len() >= CHUNK {
            self.flush_text(false)?;
        }
        Ok(())
    }

    fn flush_text(&mut self, last: bool) -> Result<(), GenError> {
        match &mut self.cp1252 {
            None => self
                .out
                .write_all(self.text.as_bytes())
                .map_err(|e| GenError::io(&self.path, e))?,
            Some(encoder) => {
                self.bytes.clear();
                let need = encoder
                    .max_buffer_length_from_utf8_without_replacement(self.text.len())
                    .unwrap_or(self.text.len() * 2);
                self.bytes.reserve(need);
                let (result, _read) = encoder.encode_from_utf8_to_vec_without_replacement(
                    &self.text,
                    &mut self.bytes,
                    last,
                );
                match result {
                    EncoderResult::InputEmpty => {}
                    EncoderResult::Unmappable(ch) => {
                        return Err(GenError::Unencodable {
                            path: self.path.clone(),
                            ch,
                        })
                    }
                    EncoderResult::OutputFull => unreachable!("buffer reserved for the worst case"),
                }
                self.out
                    .write_all(&self.bytes)
                    .map_err(|e| GenError::io(&self.path, e))?;
            }
        }
        self.text.clear();
        Ok(())
    }

    /// Writes what is left and flushes the file.
    pub(super) fn finish(mut self) -> Result<(), GenError> {
        self.flush_text(true)?;
        self.out.flush().map_err(|e| GenError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(enc: GenEncoding, text: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let mut sink = TextSink::create(&path, enc).unwrap();
        for line in text.split_inclusive('\n') {
            sink.text().push_str(line);
            sink.maybe_flush().unwrap();
        }
        sink.finish().unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn encodes_per_chosen_encoding() {
        assert_eq!(write(GenEncoding::Cp1252, "Núñez"), b"N\xFA\xF1ez");
        assert_eq!(write(GenEncoding::Utf8Bom, "ñ"), b"\xEF\xBB\xBF\xC3\xB1");
        assert_eq!(write(GenEncoding::Utf8, "ñ"), b"\xC3\xB1");
    }

    #[test]
    fn large_text_is_written_in_chunks_intact() {
        let line = "Peña;Ñandubay;€\r\n";
        let text = line.repeat(40_000);
        let bytes = write(GenEncoding::Cp1252, &text);
        let (decoded, _, bad) = WINDOWS_1252.decode(&bytes);
        assert!(!bad);
        assert_eq!(decoded, text);
    }

    #[test]
    fn unencodable_characters_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let mut sink = TextSink::create(&path, GenEncoding::Cp1252).unwrap();
        sink.text().push('Ω');
        assert!(matches!(
            sink.finish(),
            Err(GenError::Unencodable { ch: 'Ω', .. })
        ));
    }
}
