//! Dense page ids from trace labels, in one pass and in order of first appearance. Integer
//! labels are numbers: small ones index a table directly (no hashing), large ones go
//! through an FxHash map; other labels are byte strings in a second map, copied once, on
//! first sight. Nothing is allocated per request.

use rustc_hash::FxHashMap;

/// Most distinct pages a trace may have: ids are `u32`, and the policies keep the two
/// highest values as markers.
pub const MAX_PAGES: usize = (u32::MAX - 1) as usize;

/// An empty slot of the direct table.
const EMPTY: u32 = u32::MAX;
/// Integer labels below this always index the direct table.
const DIRECT_MIN: u64 = 1 << 16;
/// The direct table never covers labels from this one on (4 GiB of table).
const DIRECT_CAP: u64 = 1 << 30;

/// A page label as read from a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label<'a> {
    /// A number: a canonical decimal integer in text, or an id of a binary trace.
    Int(u64),
    /// Any other label, trimmed.
    Bytes(&'a [u8]),
}

/// True for the ASCII characters `char::is_whitespace` (and so `str::trim`) accepts.
#[inline]
fn is_space(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

/// `b` without ASCII white space at either end.
#[inline]
fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| !is_space(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// The value of a canonical decimal integer (digits only, no sign, no leading zero but
/// in `0` itself, at most `u64::MAX`); `None` for anything else. Labels that differ as
/// text (`7` and `007`) stay different pages.
#[inline]
pub fn canonical_int(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || (b[0] == b'0' && b.len() > 1) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(v)
}

/// The label of a trimmed text field: a number when it is a canonical integer.
#[inline]
pub fn str_label(s: &str) -> Label<'_> {
    match canonical_int(s.as_bytes()) {
        Some(v) => Label::Int(v),
        None => Label::Bytes(s.as_bytes()),
    }
}

/// The label of one line of a text trace, trimmed as `str::trim` does; `Ok(None)` for a
/// blank line, `Err` when the line is not UTF-8.
#[inline]
pub fn line_label(line: &[u8]) -> Result<Option<Label<'_>>, std::str::Utf8Error> {
    let t = trim_ascii(line);
    if let Some(v) = canonical_int(t) {
        return Ok(Some(Label::Int(v)));
    }
    if t.is_ascii() {
        // The rest of the line is ASCII white space: `str::trim` gives the same bytes.
        return Ok((!t.is_empty()).then_some(Label::Bytes(t)));
    }
    let s = std::str::from_utf8(line)?.trim();
    Ok((!s.is_empty()).then(|| str_label(s)))
}

/// Dense ids for labels, in order of first appearance.
#[derive(Debug, Default)]
pub struct Renumber {
    /// Id of integer label `v` at index `v` (`EMPTY` if not seen there yet).
    direct: Vec<u32>,
    /// Ids of integer labels the direct table did not cover when first seen.
    ints: FxHashMap<u64, u32>,
    /// Ids of the other labels.
    strs: FxHashMap<Box<[u8]>, u32>,
    /// Distinct labels so far.
    len: usize,
}

impl Renumber {
    /// No labels yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct labels seen.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first label.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id of `label`; `None` once there would be more than [`MAX_PAGES`] pages.
    #[inline]
    pub fn id(&mut self, label: Label<'_>) -> Option<u32> {
        match label {
            Label::Int(v) => self.int(v),
            Label::Bytes(b) => self.bytes(b),
        }
    }

    /// The id of the integer label `v`.
    #[inline]
    pub fn int(&mut self, v: u64) -> Option<u32> {
        if let Some(&slot) = usize::try_from(v).ok().and_then(|i| self.direct.get(i)) {
            if slot != EMPTY {
                return Some(slot);
            }
            return self.int_first_direct(v);
        }
        self.int_outside(v)
    }

    /// Read the direct-table slots of `vals` (so that their ids are cached when
    /// [`Renumber::int`] looks them up next).
    #[inline]
    pub fn touch(&self, vals: &[u64]) {
        let mut acc = 0u32;
        for &v in vals {
            if let Some(&slot) = usize::try_from(v).ok().and_then(|i| self.direct.get(i)) {
                acc |= slot;
            }
        }
        std::hint::black_box(acc);
    }

    /// The first direct-table visit of `v`: it may already have an id in the map, from
    /// before the table covered it.
    #[cold]
    fn int_first_direct(&mut self, v: u64) -> Option<u32> {
        let id = match self.ints.get(&v) {
            Some(&id) => id,
            None => self.fresh()?,
        };
        self.direct[v as usize] = id;
        Some(id)
    }

    /// `v` beyond the direct table: grow the table when `v` is small for the number of
    /// pages seen (the table stays within a few entries per page), else use the map.
    fn int_outside(&mut self, v: u64) -> Option<u32> {
        let limit = (4 * self.len as u64 + 4).clamp(DIRECT_MIN, DIRECT_CAP);
        if v < limit {
            let want = (v + 1).max(2 * self.direct.len() as u64).min(limit);
            self.direct.resize(want as usize, EMPTY);
            return self.int_first_direct(v);
        }
        if let Some(&id) = self.ints.get(&v) {
            return Some(id);
        }
        let id = self.fresh()?;
        self.ints.insert(v, id);
        Some(id)
    }

    /// The id of the byte-string label `b` (copied on first sight only).
    #[inline]
    pub fn bytes(&mut self, b: &[u8]) -> Option<u32> {
        if let Some(&id) = self.strs.get(b) {
            return Some(id);
        }
        let id = self.fresh()?;
        self.strs.insert(b.into(), id);
        Some(id)
    }

    /// The next unused id.
    fn fresh(&mut self) -> Option<u32> {
        if self.len >= MAX_PAGES {
            return None;
        }
        self.len += 1;
        Some(self.len as u32 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers_only() {
        assert_eq!(canonical_int(b"0"), Some(0));
        assert_eq!(canonical_int(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(canonical_int(b"18446744073709551616"), None);
        assert_eq!(canonical_int(b"007"), None);
        assert_eq!(canonical_int(b"+7"), None);
        assert_eq!(canonical_int(b"7a"), None);
        assert_eq!(canonical_int(b""), None);
    }

    #[test]
    fn lines_trim_as_str_trim_does() {
        assert_eq!(line_label(b" 12\r"), Ok(Some(Label::Int(12))));
        assert_eq!(line_label(b"\x0b12\x0c"), Ok(Some(Label::Int(12))));
        assert_eq!(
            line_label(" \u{a0}12\u{3000}".as_bytes()),
            Ok(Some(Label::Int(12)))
        );
        assert_eq!(line_label(b" a b "), Ok(Some(Label::Bytes(b"a b"))));
        assert_eq!(line_label(" \u{a0} ".as_bytes()), Ok(None));
        assert_eq!(line_label(b"\t\r"), Ok(None));
        assert_eq!(line_label(b"\x1f"), Ok(Some(Label::Bytes(b"\x1f"))));
        assert!(line_label(b"a\xff").is_err());
    }

    #[test]
    fn ids_follow_first_appearance_across_the_table_and_the_maps() {
        let mut r = Renumber::new();
        // A large label first goes to the map; once the table covers it, it keeps its id.
        let big = 1u64 << 20;
        assert_eq!(r.int(big), Some(0));
        assert_eq!(r.bytes(b"x"), Some(1));
        assert_eq!(r.int(3), Some(2));
        for v in 10..300_000u64 {
            r.int(v);
        }
        assert_eq!(r.int(big), Some(0));
        assert!(r.direct.len() as u64 > big, "the table grew past the label");
        assert_eq!(r.int(u64::MAX), Some(r.len() as u32 - 1));
        assert_eq!(r.int(u64::MAX), Some(r.len() as u32 - 1));
        assert_eq!(r.bytes(b"x"), Some(1));
        assert_eq!(r.int(3), Some(2));
        assert_eq!(r.len(), 3 + 299_990 + 1);
    }
}
