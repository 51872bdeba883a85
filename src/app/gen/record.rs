//! One output row as text cells, reused from row to row so the hot loop allocates nothing.

/// The cells of one row, in header order. `absent` marks optional XML elements left out entirely
/// (the CSV writer writes those as empty cells).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Record {
    fields: Vec<String>,
    absent: u64,
}

impl Record {
    /// A record of `width` empty cells.
    pub(super) fn new(width: usize) -> Record {
        Record {
            fields: (0..width).map(|_| String::with_capacity(32)).collect(),
            absent: 0,
        }
    }

    /// Empties every cell, keeping their buffers.
    pub(super) fn reset(&mut self) {
        for f in &mut self.fields {
            f.clear();
        }
        self.absent = 0;
    }

    /// The buffer of cell `k`, to append to.
    pub(super) fn f(&mut self, k: usize) -> &mut String {
        &mut self.fields[k]
    }

    /// Replaces cell `k` (an XML element left out is written again).
    pub(super) fn set(&mut self, k: usize, value: &str) {
        self.fields[k].clear();
        self.fields[k].push_str(value);
        self.absent &= !(1 << k);
    }

    /// Cell `k`.
    pub(super) fn get(&self, k: usize) -> &str {
        &self.fields[k]
    }

    /// All cells.
    pub(super) fn cells(&self) -> &[String] {
        &self.fields
    }

    /// Marks cell `k` as an element missing from the XML (it must be empty).
    pub(super) fn mark_absent(&mut self, k: usize) {
        self.fields[k].clear();
        self.absent |= 1 << k;
    }

    /// True when cell `k` is an element missing from the XML.
    pub(super) fn is_absent(&self, k: usize) -> bool {
        self.absent & (1 << k) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_keeps_width_and_clears_marks() {
        let mut r = Record::new(3);
        r.f(0).push('a');
        r.set(1, "b");
        r.mark_absent(2);
        assert_eq!((r.get(0), r.get(1), r.is_absent(2)), ("a", "b", true));
        r.set(2, "c");
        assert!(!r.is_absent(2), "setting a value brings the element back");
        r.reset();
        assert_eq!(r.cells().len(), 3);
        assert!(r.cells().iter().all(String::is_empty));
        assert!(!r.is_absent(2));
    }
}
