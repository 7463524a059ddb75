//! A minimal DER reader and writer, for the two structures x509-parser does not model: the CMS
//! `SignedData` of an RFC 3161 timestamp token, and the precertificate `TBSCertificate` an SCT
//! signs (the issued certificate's TBS with the SCT-list extension taken out, RFC 6962 §3.2).
//!
//! Only what those need: single-byte tags (tag numbers below 31), definite lengths of at most
//! four bytes, and spans of the input; no value is interpreted here. Lengths are checked against
//! the input before any slice is taken, so hostile input can only produce an error.

/// Why DER input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DerError {
    /// The input ended inside a tag, length or value.
    #[error("truncated DER")]
    Truncated,
    /// A multi-byte tag, an indefinite length or a non-minimal length.
    #[error("unsupported or non-canonical DER encoding")]
    Unsupported,
    /// A different tag than the structure requires.
    #[error("expected DER tag 0x{expected:02x}, found 0x{found:02x}")]
    UnexpectedTag {
        /// The tag required.
        expected: u8,
        /// The tag found.
        found: u8,
    },
    /// Bytes left over after a complete structure.
    #[error("trailing bytes after DER value")]
    TrailingBytes,
}

/// DER tags used by the callers.
pub(crate) mod tag {
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const OCTET_STRING: u8 = 0x04;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const UTF8_STRING: u8 = 0x0c;
    pub(crate) const GENERALIZED_TIME: u8 = 0x18;
    pub(crate) const SEQUENCE: u8 = 0x30;
    pub(crate) const SET: u8 = 0x31;
    /// `[0]` constructed (EXPLICIT, or IMPLICIT of a constructed type).
    pub(crate) const CONTEXT_0: u8 = 0xa0;
    /// `[1]` constructed.
    pub(crate) const CONTEXT_1: u8 = 0xa1;
    /// `[3]` constructed: the extensions of a TBSCertificate.
    pub(crate) const CONTEXT_3: u8 = 0xa3;
}

/// One tag-length-value: the tag, the value bytes and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) value: &'a [u8],
    pub(crate) raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over this value's contents (for constructed types).
    pub(crate) fn reader(&self) -> Reader<'a> {
        Reader::new(self.value)
    }
}

/// Reads a sequence of TLVs from a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next TLV, whatever its tag.
    pub(crate) fn next_any(&mut self) -> Result<Tlv<'a>, DerError> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(DerError::Truncated)?;
        // Tag number 31 in the low bits announces a multi-byte tag, which nothing here uses.
        if tag & 0x1f == 0x1f {
            return Err(DerError::Unsupported);
        }
        let (&first, after_first) = after_tag.split_first().ok_or(DerError::Truncated)?;
        let (len, after_len) = if first < 0x80 {
            (usize::from(first), after_first)
        } else {
            let count = usize::from(first & 0x7f);
            // 0x80 is BER's indefinite length; more than 4 length bytes is far beyond any bound.
            if count == 0 || count > 4 {
                return Err(DerError::Unsupported);
            }
            let bytes = after_first.get(..count).ok_or(DerError::Truncated)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            // DER: the shortest form, no leading zero byte.
            if len < 0x80 || bytes.first() == Some(&0) {
                return Err(DerError::Unsupported);
            }
            (len, &after_first[count..])
        };
        let value = after_len.get(..len).ok_or(DerError::Truncated)?;
        let header_len = input.len() - after_len.len();
        let raw = &input[..header_len + len];
        self.rest = &after_len[len..];
        Ok(Tlv { tag, value, raw })
    }

    /// The next TLV, which must have tag `expected`.
    pub(crate) fn next(&mut self, expected: u8) -> Result<Tlv<'a>, DerError> {
        let found = self.peek_tag().ok_or(DerError::Truncated)?;
        if found != expected {
            return Err(DerError::UnexpectedTag { expected, found });
        }
        self.next_any()
    }

    /// The next TLV if it has tag `expected`, else nothing (for OPTIONAL fields).
    pub(crate) fn optional(&mut self, expected: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(expected) {
            self.next_any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(&self) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError::TrailingBytes)
        }
    }
}

/// Parses exactly one TLV with tag `expected` from `bytes`.
pub(crate) fn parse_one(bytes: &[u8], expected: u8) -> Result<Tlv<'_>, DerError> {
    let mut reader = Reader::new(bytes);
    let tlv = reader.next(expected)?;
    reader.finish()?;
    Ok(tlv)
}

/// Encodes `value` under `tag` with a DER length.
pub(crate) fn encode(tag: u8, value: &[u8]) -> Vec<u8> {
    let len = value.len();
    let mut out = Vec::with_capacity(value.len() + 10);
    out.push(tag);
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            let significant = &bytes[skip..];
            // At most 8 length bytes (a usize), so the count fits in the low 7 bits.
            let count = u8::try_from(significant.len()).unwrap_or(8);
            out.push(0x80 | count);
            out.extend_from_slice(significant);
        }
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trips_short_and_long_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let value = vec![7u8; len];
            let encoded = encode(tag::OCTET_STRING, &value);
            let tlv = parse_one(&encoded, tag::OCTET_STRING).unwrap();
            assert_eq!(tlv.value, value.as_slice());
            assert_eq!(tlv.raw, encoded.as_slice());
        }
    }

    #[test]
    fn refuses_bad_encodings() {
        // Indefinite length, non-minimal long form, truncated value, multi-byte tag.
        assert_eq!(
            parse_one(&[0x30, 0x80, 0, 0], tag::SEQUENCE).unwrap_err(),
            DerError::Unsupported
        );
        assert_eq!(
            parse_one(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5], tag::OCTET_STRING).unwrap_err(),
            DerError::Unsupported
        );
        assert_eq!(
            parse_one(&[0x04, 0x05, 1], tag::OCTET_STRING).unwrap_err(),
            DerError::Truncated
        );
        assert_eq!(
            parse_one(&[0x1f, 0x01, 0x00], 0x1f).unwrap_err(),
            DerError::Unsupported
        );
        assert_eq!(
            parse_one(&[0x04, 0x00, 0x00], tag::OCTET_STRING).unwrap_err(),
            DerError::TrailingBytes
        );
    }
}
