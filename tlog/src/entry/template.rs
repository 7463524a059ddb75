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
//!
//! Writing is the mirror image: a hashedrekord's canonical body is the same template filled
//! with its values ([`write`]), which is what JCS of its JSON gives, without building the JSON
//! tree (that took 6% of a loaded cluster's CPU). A value outside the plain alphabet, which
//! the types never produce, sends the entry back to the JSON path.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::hashedrekord::{
    HashedRekordV001, HashedRekordV002, SignatureStrings, V001Strings, V002Strings,
};
use super::{Entry, VerifierKey};

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

/// The canonical body of a hashedrekord entry, written from the template `parse` reads; `None`
/// for other kinds, and for a value that would need a JSON escape (never, for valid entries).
pub(super) fn write(entry: &Entry) -> Option<Vec<u8>> {
    let mut body = Body(Vec::with_capacity(1024));
    match entry {
        Entry::HashedRekordV001(entry) => {
            body.literal(r#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":""#);
            body.value(entry.digest().algorithm().rekor_v1_name())?;
            body.literal(r#"","value":""#);
            body.value(&entry.digest().to_hex())?;
            body.literal(r#""}},"signature":{"content":""#);
            body.value(&entry.signature().to_base64())?;
            body.literal(r#"","publicKey":{"content":""#);
            body.value(&entry.public_key().to_base64_pem())?;
            body.literal(r#""}}}}"#);
        }
        Entry::HashedRekordV002(entry) => {
            body.literal(r#"{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":""#);
            body.value(entry.digest().algorithm().protobuf_name())?;
            body.literal(r#"","digest":""#);
            body.value(&entry.digest().to_base64())?;
            body.literal(r#""},"signature":{"content":""#);
            let signature = entry.signature();
            body.value(&signature.content.to_base64())?;
            body.literal(r#"","verifier":{"keyDetails":""#);
            body.value(signature.verifier.key_details().protobuf_name())?;
            // JCS orders members by name: `keyDetails` before `publicKey` and `x509Certificate`.
            let (name, der) = match signature.verifier.key() {
                VerifierKey::PublicKey(der) => (r#"","publicKey":{"rawBytes":""#, der),
                VerifierKey::X509Certificate(der) => (r#"","x509Certificate":{"rawBytes":""#, der),
            };
            body.literal(name);
            body.value(&BASE64.encode(der))?;
            body.literal(r#""}}}}}}"#);
        }
        Entry::DsseV001(_) | Entry::DsseV002(_) | Entry::IntotoV002(_) => return None,
    }
    Some(body.0)
}

/// A body being written.
struct Body(Vec<u8>);

impl Body {
    fn literal(&mut self, literal: &str) {
        self.0.extend_from_slice(literal.as_bytes());
    }

    /// Appends the text of a string value, if JSON never escapes any of its characters.
    fn value(&mut self, value: &str) -> Option<()> {
        if !value.bytes().all(|byte| PLAIN[usize::from(byte)]) {
            return None;
        }
        self.0.extend_from_slice(value.as_bytes());
        Some(())
    }
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
