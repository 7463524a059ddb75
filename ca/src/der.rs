//! The little DER this crate must take apart itself: finding a certificate's TBSCertificate and
//! removing one extension from it (the poison from a precertificate, the SCT list from a
//! certificate), which RFC 6962 §3.2 defines the SCT signature over.
//!
//! Only definite lengths in their shortest form are accepted (that is what DER is), so there is
//! exactly one encoding to compare and re-encode.

use crate::CertError;

/// One TLV: its tag, where its contents start and end, and where the whole element ends.
#[derive(Clone, Copy, Debug)]
struct Tlv {
    tag: u8,
    content_start: usize,
    end: usize,
}

fn read_tlv(bytes: &[u8], at: usize) -> Result<Tlv, CertError> {
    let malformed = |what: &str| CertError::Malformed(format!("DER at byte {at}: {what}"));
    let tag = *bytes.get(at).ok_or_else(|| malformed("truncated tag"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed("multi-byte tags are not used in certificates"));
    }
    let first = *bytes
        .get(at + 1)
        .ok_or_else(|| malformed("truncated length"))?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(malformed("indefinite or oversized length"));
        }
        let digits = bytes
            .get(at + 2..at + 2 + count)
            .ok_or_else(|| malformed("truncated length"))?;
        if digits[0] == 0 {
            return Err(malformed("length not in its shortest form"));
        }
        let length = digits
            .iter()
            .fold(0usize, |length, digit| (length << 8) | usize::from(*digit));
        if length < 0x80 {
            return Err(malformed("length not in its shortest form"));
        }
        (length, 2 + count)
    };
    let content_start = at + header;
    let end = content_start
        .checked_add(length)
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| malformed("length runs past the end"))?;
    Ok(Tlv {
        tag,
        content_start,
        end,
    })
}

/// The children of a constructed element's contents.
fn children(bytes: &[u8], outer: Tlv) -> Result<Vec<Tlv>, CertError> {
    let mut at = outer.content_start;
    let mut out = Vec::new();
    while at < outer.end {
        let child = read_tlv(&bytes[..outer.end], at)?;
        at = child.end;
        out.push(child);
    }
    Ok(out)
}

/// Encodes a tag and length header.
fn header(tag: u8, length: usize) -> Vec<u8> {
    let mut out = vec![tag];
    if length < 0x80 {
        out.push(u8::try_from(length).unwrap_or(0x7f));
    } else {
        let digits: Vec<u8> = length
            .to_be_bytes()
            .into_iter()
            .skip_while(|digit| *digit == 0)
            .collect();
        out.push(0x80 | u8::try_from(digits.len()).unwrap_or(8));
        out.extend_from_slice(&digits);
    }
    out
}

fn wrap(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = header(tag, contents.len());
    out.extend_from_slice(contents);
    out
}

/// The TBSCertificate of a DER certificate, as the exact bytes signed.
pub(crate) fn tbs_certificate(certificate: &[u8]) -> Result<&[u8], CertError> {
    let outer = read_tlv(certificate, 0)?;
    if outer.tag != 0x30 || outer.end != certificate.len() {
        return Err(CertError::Malformed(
            "certificate is not one SEQUENCE".into(),
        ));
    }
    let tbs = read_tlv(certificate, outer.content_start)?;
    if tbs.tag != 0x30 {
        return Err(CertError::Malformed(
            "TBSCertificate is not a SEQUENCE".into(),
        ));
    }
    Ok(&certificate[outer.content_start..tbs.end])
}

/// The DER of an OBJECT IDENTIFIER with these arcs (as the extension's first element holds it).
pub(crate) fn oid_der(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut push = |mut arc: u64| {
        let low7 = |arc: u64| u8::try_from(arc & 0x7f).unwrap_or(0);
        let mut digits = vec![low7(arc)];
        arc >>= 7;
        while arc > 0 {
            digits.push(0x80 | low7(arc));
            arc >>= 7;
        }
        digits.reverse();
        body.extend_from_slice(&digits);
    };
    push(arcs[0] * 40 + arcs[1]);
    for arc in &arcs[2..] {
        push(*arc);
    }
    wrap(0x06, &body)
}

/// `tbs` with the extension `oid` removed; an error if it is not there exactly once, or if it
/// is not the last extension (both our precertificate's poison and our certificate's SCT list
/// are last, so the rest of the two TBSCertificates is the same bytes).
pub(crate) fn remove_last_extension(tbs: &[u8], oid: &[u64]) -> Result<Vec<u8>, CertError> {
    let outer = read_tlv(tbs, 0)?;
    if outer.tag != 0x30 || outer.end != tbs.len() {
        return Err(CertError::Malformed(
            "TBSCertificate is not one SEQUENCE".into(),
        ));
    }
    let fields = children(tbs, outer)?;
    let Some(extensions_field) = fields.last().filter(|field| field.tag == 0xa3) else {
        return Err(CertError::Malformed(
            "TBSCertificate has no extensions".into(),
        ));
    };
    let list = read_tlv(tbs, extensions_field.content_start)?;
    if list.tag != 0x30 || list.end != extensions_field.end {
        return Err(CertError::Malformed(
            "extensions are not one SEQUENCE".into(),
        ));
    }
    let extensions = children(tbs, list)?;
    let wanted = oid_der(oid);
    let matches = |extension: &Tlv| tbs[extension.content_start..].starts_with(&wanted);
    let found: Vec<usize> = (0..extensions.len())
        .filter(|position| matches(&extensions[*position]))
        .collect();
    if found != [extensions.len().wrapping_sub(1)] {
        return Err(CertError::Malformed(format!(
            "extension {oid:?} must be present once, as the last extension"
        )));
    }
    // The last extension's TLV starts where the one before it ends (or where the list starts).
    let kept_end = match extensions.len() {
        0 | 1 => list.content_start,
        count => extensions[count - 2].end,
    };
    let kept = &tbs[list.content_start..kept_end];
    let mut fields_bytes = Vec::new();
    let before_extensions = fields[fields.len() - 2].end;
    fields_bytes.extend_from_slice(&tbs[outer.content_start..before_extensions]);
    if !kept.is_empty() {
        fields_bytes.extend_from_slice(&wrap(0xa3, &wrap(0x30, kept)));
    }
    Ok(wrap(0x30, &fields_bytes))
}

/// Wraps `contents` in an OCTET STRING.
pub(crate) fn octet_string(contents: &[u8]) -> Vec<u8> {
    wrap(0x04, contents)
}

/// A DER UTF8String (the value encoding of Fulcio's extensions `.1.8` and up).
pub(crate) fn utf8_string(text: &str) -> Vec<u8> {
    wrap(0x0c, text.as_bytes())
}

/// A DER NULL (the poison extension's value).
pub(crate) const NULL: [u8; 2] = [0x05, 0x00];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_encode_as_der() {
        // 1.3.6.1.4.1.11129.2.4.3, the CT poison.
        assert_eq!(
            oid_der(&[1, 3, 6, 1, 4, 1, 11129, 2, 4, 3]),
            [
                0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03
            ]
        );
    }

    #[test]
    fn long_lengths_round_trip() {
        let contents = vec![7u8; 300];
        let wrapped = wrap(0x04, &contents);
        let tlv = read_tlv(&wrapped, 0).unwrap();
        assert_eq!((tlv.content_start, tlv.end), (4, 304));
        assert!(read_tlv(&[0x04, 0x81, 0x05, 0, 0, 0, 0, 0], 0).is_err());
    }
}
