//! RFC 8785 JSON Canonicalization Scheme (JCS), the last step of every Rekor body.
//!
//! Rekor v1 (`sigstore/rekor:pkg/types/entries.go`, `CanonicalizeEntry`) and Rekor v2
//! (`sigstore/rekor-tiles:internal/server/service.go`, `CreateEntry`) both pass their JSON
//! through `github.com/cyberphone/json-canonicalization`'s `jsoncanonicalizer.Transform`. We use
//! the `serde_json_canonicalizer` crate, which implements the same RFC: object members sorted
//! by the UTF-16 code units of their names, no whitespace, strings escaped only where JSON
//! requires it (`\b \t \n \f \r \" \\`, other controls as lowercase `\u00xx`, everything else
//! literal, `/` unescaped), ES6 number formatting. The tests below pin the behaviour that
//! matters to us against the RFC's own examples.

use serde_json::Value;

/// The JCS serialisation of `value`.
pub(super) fn canonicalize(value: &Value) -> Vec<u8> {
    // Serialising a `Value` into a `Vec` cannot fail: the writer is infallible and a `Value`
    // cannot hold a non-finite number, the only other error JCS has.
    serde_json_canonicalizer::to_vec(value).expect("JCS of a serde_json::Value cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jcs(json: &str) -> String {
        let value: Value = serde_json::from_str(json).unwrap();
        String::from_utf8(canonicalize(&value)).unwrap()
    }

    #[test]
    fn sorts_members_by_utf16_code_units() {
        // RFC 8785 §3.2.3. U+1F600 is the surrogate pair D83D DE00, so it sorts before U+FB33
        // in UTF-16 although it comes after it in code point (and UTF-8 byte) order.
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                    \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
                    \"\u{1f600}\":\"Emoji: Grinning Face\",\
                    \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(jcs(input), want);
    }

    #[test]
    fn escapes_strings_as_the_rfc() {
        // RFC 8785 §3.2.2.2: the only escapes are the short forms and \u00xx for other
        // controls; non-ASCII stays literal and the solidus is not escaped.
        let input = r#"{"string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"}"#;
        let want = "{\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(jcs(input), want);
        assert_eq!(
            jcs(r#"["\u0000\u0008\u0009\u000c\u001f\u007f"]"#),
            "[\"\\u0000\\b\\t\\f\\u001f\u{7f}\"]"
        );
    }

    #[test]
    fn removes_whitespace_and_sorts_nested_objects() {
        assert_eq!(
            jcs("{ \"b\" : [ 1 , { \"d\":true, \"c\":null } ], \"a\" : \"x\" }"),
            r#"{"a":"x","b":[1,{"c":null,"d":true}]}"#
        );
    }

    #[test]
    fn formats_numbers_as_es6() {
        // RFC 8785 §3.2.2.3 examples (bodies hold no numbers; this guards the dependency).
        assert_eq!(
            jcs("[1e30, 4.50, 0.000001, 1e-7, -0]"),
            "[1e+30,4.5,0.000001,1e-7,0]"
        );
    }
}
