//! The one strict JSON reader every API request body goes through: serde_json's parser with a
//! value builder that refuses duplicate members (RFC 8259 leaves them to the implementation;
//! two readers that keep different copies would see different requests), bounds the body's
//! size, the nesting depth and the members per object or array, and names the JSON path where
//! it stopped. Unknown and missing fields are the caller's to judge, on the value it returns.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The bounds of one kind of request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest body, in bytes.
    pub bytes: usize,
    /// The deepest nesting (the top value is depth 1).
    pub depth: usize,
    /// The most members of one object or items of one array.
    pub members: usize,
}

/// Why a body is not acceptable JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The body is longer than [`Limits::bytes`].
    #[error("request body is {actual} bytes, at most {max} allowed")]
    TooLarge {
        /// The length found.
        actual: usize,
        /// The bound.
        max: usize,
    },
    /// The body is not JSON (truncated, trailing data, invalid UTF-8, bad syntax...).
    #[error("request body is not valid JSON: {reason}")]
    Syntax {
        /// The JSON parser's message (with line and column).
        reason: String,
    },
    /// An object has the same member twice.
    #[error("{path}: duplicate member")]
    DuplicateMember {
        /// JSON path of the repeated member.
        path: String,
    },
    /// Nesting is deeper than [`Limits::depth`].
    #[error("{path}: JSON nested deeper than {max} levels")]
    TooDeep {
        /// JSON path of the value that is too deep.
        path: String,
        /// The bound.
        max: usize,
    },
    /// An object or array has more members than [`Limits::members`].
    #[error("{path}: {count} items, at most {max} allowed")]
    TooMany {
        /// JSON path of the object or array.
        path: String,
        /// The number found (counting stops one past the bound while parsing).
        count: usize,
        /// The bound.
        max: usize,
    },
}

impl JsonError {
    /// A stable, machine-readable code: `body_too_large` (413), `invalid_json`,
    /// `duplicate_member`, `too_deep`, `too_many` (400).
    pub fn code(&self) -> &'static str {
        match self {
            JsonError::TooLarge { .. } => "body_too_large",
            JsonError::Syntax { .. } => "invalid_json",
            JsonError::DuplicateMember { .. } => "duplicate_member",
            JsonError::TooDeep { .. } => "too_deep",
            JsonError::TooMany { .. } => "too_many",
        }
    }

    /// The HTTP status: 413 for a body over the size bound, 400 for everything else.
    pub fn http_status(&self) -> u16 {
        match self {
            JsonError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Parses `body` as one JSON value with nothing after it, within `limits`.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Value, JsonError> {
    if body.len() > limits.bytes {
        return Err(JsonError::TooLarge {
            actual: body.len(),
            max: limits.bytes,
        });
    }
    let state = RefCell::new(ParseState::default());
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = StrictSeed {
        depth: 1,
        limits,
        state: &state,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| {
        let state = state.take();
        match state.issue {
            Some(Issue::Duplicate) => JsonError::DuplicateMember {
                path: state.path_text(),
            },
            Some(Issue::TooDeep) => JsonError::TooDeep {
                path: state.path_text(),
                max: limits.depth,
            },
            Some(Issue::TooMany) => JsonError::TooMany {
                path: state.path_text(),
                count: limits.members + 1,
                max: limits.members,
            },
            None => JsonError::Syntax {
                reason: error.to_string(),
            },
        }
    })
}

#[derive(Debug, Clone, Copy)]
enum Issue {
    Duplicate,
    TooDeep,
    TooMany,
}

#[derive(Debug, Default)]
struct ParseState {
    /// The path to the value being parsed: member names (truncated) and array indices.
    path: Vec<Segment>,
    /// Set when the builder refuses the input, before it returns its error.
    issue: Option<Issue>,
}

#[derive(Debug)]
enum Segment {
    Member(String),
    Index(usize),
}

impl ParseState {
    fn path_text(&self) -> String {
        let mut text = String::new();
        for segment in &self.path {
            match segment {
                Segment::Member(name) => {
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(name);
                }
                Segment::Index(index) => text.push_str(&format!("[{index}]")),
            }
        }
        if text.is_empty() {
            text.push_str("request");
        }
        text
    }
}

struct StrictSeed<'s> {
    depth: usize,
    limits: &'s Limits,
    state: &'s RefCell<ParseState>,
}

impl StrictSeed<'_> {
    fn fail<E: de::Error>(&self, issue: Issue, message: &str) -> E {
        self.state.borrow_mut().issue = Some(issue);
        E::custom(message)
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        if self.depth > self.limits.depth {
            return Err(self.fail(Issue::TooDeep, "JSON nested too deep"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        // serde_json never produces NaN or infinities (it refuses out-of-range numbers).
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            if items.len() == self.limits.members {
                // One more item is an error; the end of the array is not.
                self.state
                    .borrow_mut()
                    .path
                    .push(Segment::Index(items.len()));
                let next = seq.next_element_seed(StrictSeed {
                    depth: self.depth + 1,
                    limits: self.limits,
                    state: self.state,
                })?;
                self.state.borrow_mut().path.pop();
                if next.is_some() {
                    return Err(self.fail(Issue::TooMany, "too many array items"));
                }
                break;
            }
            self.state
                .borrow_mut()
                .path
                .push(Segment::Index(items.len()));
            let item = seq.next_element_seed(StrictSeed {
                depth: self.depth + 1,
                limits: self.limits,
                state: self.state,
            })?;
            self.state.borrow_mut().path.pop();
            match item {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.state
                .borrow_mut()
                .path
                .push(Segment::Member(key.chars().take(64).collect()));
            if members.contains_key(&key) {
                return Err(self.fail(Issue::Duplicate, "duplicate member"));
            }
            if members.len() == self.limits.members {
                self.state.borrow_mut().path.pop();
                return Err(self.fail(Issue::TooMany, "too many object members"));
            }
            let value = map.next_value_seed(StrictSeed {
                depth: self.depth + 1,
                limits: self.limits,
                state: self.state,
            })?;
            self.state.borrow_mut().path.pop();
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        bytes: 1024,
        depth: 4,
        members: 3,
    };

    #[test]
    fn a_well_formed_body_is_its_value() {
        let value = parse(br#"{"a": [1, 2, {"b": null}], "c": "d"}"#, &LIMITS).unwrap();
        assert_eq!(value["a"][2]["b"], Value::Null);
        assert_eq!(value["c"], "d");
    }

    #[test]
    fn each_bound_and_duplicate_names_its_path() {
        assert_eq!(
            parse(br#"{"a": {"b": 1, "b": 2}}"#, &LIMITS),
            Err(JsonError::DuplicateMember { path: "a.b".into() })
        );
        assert_eq!(
            parse(br#"{"a": [[[[1]]]]}"#, &LIMITS),
            Err(JsonError::TooDeep {
                path: "a[0][0][0]".into(),
                max: 4
            })
        );
        assert_eq!(
            parse(br#"{"a": [1, 2, 3, 4]}"#, &LIMITS),
            Err(JsonError::TooMany {
                path: "a".into(),
                count: 4,
                max: 3
            })
        );
        assert_eq!(
            parse(br#"{"a": 1, "b": 2, "c": 3, "d": 4}"#, &LIMITS).map_err(|e| e.code()),
            Err("too_many")
        );
        assert_eq!(
            parse(&[b' '; 1025], &LIMITS),
            Err(JsonError::TooLarge {
                actual: 1025,
                max: 1024
            })
        );
        assert_eq!(
            parse(&[b' '; 1025], &LIMITS).map_err(|e| e.http_status()),
            Err(413)
        );
        assert_eq!(parse(b"{", &LIMITS).map_err(|e| e.http_status()), Err(400));
        for bad in [&b""[..], b"{", b"{} x", b"{\"a\": 01}", b"\xff"] {
            assert_eq!(
                parse(bad, &LIMITS).map_err(|e| e.code()),
                Err("invalid_json"),
                "{bad:?}"
            );
        }
    }
}
