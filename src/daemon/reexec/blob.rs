//! The raw bytes that follow the handover's JSON document (format 2):
//! client buffers and partial output lines, each named in the document by
//! a `[offset, length]` span, so that no byte is written as a JSON number.

/// `[offset, length]` in the bytes after the document.
pub(in crate::daemon) type Span = (usize, usize);

/// The raw bytes that follow the document (format 2).
#[derive(Default)]
pub(in crate::daemon) struct Blob(pub(super) Vec<u8>);

impl Blob {
    pub fn put(&mut self, data: &[u8]) -> Option<Span> {
        if data.is_empty() {
            return None;
        }
        let at = self.0.len();
        self.0.extend_from_slice(data);
        Some((at, data.len()))
    }

    /// The bytes a span names (format 2), or what format 1 gave inline.
    pub fn get(&self, span: Option<Span>, old: Vec<u8>) -> Result<Vec<u8>, String> {
        match span {
            None => Ok(old),
            Some((at, len)) => self
                .0
                .get(at..at.saturating_add(len))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| format!("bytes {at}+{len} are not in the state")),
        }
    }
}
