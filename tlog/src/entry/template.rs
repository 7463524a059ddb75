//! Reading a hashedrekord body in its canonical form without building a JSON tree.
//!
//! Nearly every leaf of an artifact log is a hashedrekord body exactly as the log wrote it: JCS,
//! members in a fixed order, no whitespace. Every node parses every leaf (to apply it, to derive
//! its search keys, to catch up), and building a `serde_json::Value` was two thirds of that
//! cost. Here such a body is matched against its template instead: fixed text around string
//! values drawn from alphabets that never need a JSON escape (base64, hex, enum names), so the
//! text of each value is its decoded string. Those strings then go through the same validating
//! constructors as the JSON path ([`HashedRekordV001::from_strings`],
//! [`HashedRekordV002::from_strings`]). A body that does not match, or whose values do not
//! validate, returns `None` and takes the JSON path, so `Entry::parse` gives the same answer
//! either way.

use super::Entry;
use super::hashedrekord::{
    HashedRekordV001, HashedRekordV002, SignatureStrings, V001Strings, V002Strings,
};

/// The entry of `body` if it is a hashedrekord body in canonical member order whose values are
/// all valid; `None` otherwise (which says nothing about the body: the JSON path decides).
pub(super) fn parse(body: &[u8]) -> Option<Entry> {
    let mut text = Cursor { rest: body };
    text.literal(r#"{"apiVersion":"0.0."#)?;
    if text
        .literal(r#"1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":""#)
        .is_some()
    {
        let algorithm = text.value()?;
        text.literal(r#"","value":""#)?;
        let value = text.value()?;
        text.literal(r#""}},"signature":{"content":""#)?;
        let content = text.value()?;
        text.literal(r#"","publicKey":{"content":""#)?;
        let public_key = text.value()?;
        text.literal(r#""}}}}"#)?;
        text.end()?;
        let strings = V001Strings {
            algorithm,
            value,
            content,
            public_key,
        };
        return HashedRekordV001::from_strings(&strings)
            .ok()
            .map(Entry::HashedRekordV001);
    }
    text.literal(r#"2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":""#)?;
    let algorithm = text.value()?;
    text.literal(r#"","digest":""#)?;
    let digest = text.value()?;
    text.literal(r#""},"signature":{"content":""#)?;
    let content = text.value()?;
    text.literal(r#"","verifier":{"keyDetails":""#)?;
    let key_details = text.value()?;
    // JCS orders members by name: `keyDetails` before `publicKey` and `x509Certificate`.
    let key_name = if text.literal(r#"","publicKey":{"rawBytes":""#).is_some() {
        "publicKey"
    } else {
        text.literal(r#"","x509Certificate":{"rawBytes":""#)?;
        "x509Certificate"
    };
    let raw_bytes = text.value()?;
    text.literal(r#""}}}}}}"#)?;
    text.end()?;
    let strings = V002Strings {
        algorithm,
        digest,
        signature: SignatureStrings {
            content,
            key_name,
            key_details,
            raw_bytes,
        },
    };
    HashedRekordV002::from_strings(&strings)
        .ok()
        .map(Entry::HashedRekordV002)
}

/// The unread rest of a body.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// Consumes `literal` if the rest starts with it.
    fn literal(&mut self, literal: &str) -> Option<()> {
        self.rest = self.rest.strip_prefix(literal.as_bytes())?;
        Some(())
    }

    /// Consumes the text of a string value up to its closing quote (not consumed), if every
    /// character is one that JSON never escapes and that no value alphabet lacks.
    fn value(&mut self) -> Option<&'a str> {
        let end = self
            .rest
            .iter()
            .position(|&byte| !PLAIN[usize::from(byte)])?;
        let (value, rest) = self.rest.split_at(end);
        self.rest = rest;
        // `plain` admits ASCII only, so this never fails.
        std::str::from_utf8(value).ok()
    }

    fn end(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

/// Base64 (standard and URL-safe), hex and enum-name characters, as a table: this scan is
/// most of the template's cost.
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte: u8 = 0;
    loop {
        table[byte as usize] =
            byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=' | b'_' | b'-' | b'.');
        if byte == u8::MAX {
            break table;
        }
        byte += 1;
    }
};
