//! The C2SP tlog-witness `add-checkpoint` request body:
//!
//! ```text
//! old <size>
//! <base64 consistency proof hash>     (0 to 63 lines)
//!
//! <signed checkpoint note>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tlog::Hash;
use tlog::checkpoint::parse_decimal;

/// The most consistency-proof lines a request may carry (the spec's limit).
pub const PROOF_LINES_MAX: usize = 63;

/// The largest request body accepted: a note at its limit plus a full proof.
pub const REQUEST_BYTES_MAX: usize = tlog::note::NOTE_BYTES_MAX + 64 * 64 + 64;

/// Why a request body is malformed (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The body is larger than [`REQUEST_BYTES_MAX`].
    #[error("request is {0} bytes long, more than the limit")]
    TooLarge(usize),
    /// The body is not UTF-8.
    #[error("request is not UTF-8")]
    NotUtf8,
    /// The first line is not `old <decimal>`.
    #[error("first line is not `old <size>`")]
    OldLine,
    /// A proof line is not a base64 SHA-256 hash.
    #[error("proof line {0} is not a base64 32-byte hash")]
    ProofLine(usize),
    /// More than [`PROOF_LINES_MAX`] proof lines.
    #[error("more than {PROOF_LINES_MAX} proof lines")]
    TooManyProofLines,
    /// No empty line separates the proof from the checkpoint.
    #[error("no empty line before the checkpoint")]
    MissingSeparator,
}

/// A parsed `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size the client believes the witness last cosigned.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, as sent.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// Parses a request body, strictly and bounded.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, RequestError> {
        if body.len() > REQUEST_BYTES_MAX {
            return Err(RequestError::TooLarge(body.len()));
        }
        let text = std::str::from_utf8(body).map_err(|_| RequestError::NotUtf8)?;
        let (first, mut rest) = text.split_once('\n').ok_or(RequestError::OldLine)?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(|n| parse_decimal(n).ok())
            .ok_or(RequestError::OldLine)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or(RequestError::MissingSeparator)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == PROOF_LINES_MAX {
                return Err(RequestError::TooManyProofLines);
            }
            let bytes = BASE64
                .decode(line)
                .map_err(|_| RequestError::ProofLine(proof.len() + 1))?;
            let hash =
                Hash::from_slice(&bytes).map_err(|_| RequestError::ProofLine(proof.len() + 1))?;
            proof.push(hash);
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: rest.to_owned(),
        })
    }

    /// The request body.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&hash.to_base64());
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let request = AddCheckpoint {
            old_size: 7,
            proof: vec![Hash::digest(b"a"), Hash::digest(b"b")],
            checkpoint: "example.com/log\n9\nAAAA\n\n— x y\n".to_owned(),
        };
        assert_eq!(
            AddCheckpoint::parse(request.to_body().as_bytes()),
            Ok(request)
        );
    }

    #[test]
    fn rejects_malformed_bodies() {
        let bad: [(&[u8], RequestError); 6] = [
            (b"old 01\n\nx", RequestError::OldLine),
            (b"new 1\n\nx", RequestError::OldLine),
            (b"old 1\nnot-base64!\n\nx", RequestError::ProofLine(1)),
            (b"old 1\nAAAA\n\nx", RequestError::ProofLine(1)),
            (b"old 1\n", RequestError::MissingSeparator),
            (b"\xff", RequestError::NotUtf8),
        ];
        for (body, want) in bad {
            assert_eq!(AddCheckpoint::parse(body), Err(want));
        }
        let mut many = String::from("old 1\n");
        for _ in 0..64 {
            many.push_str(&Hash::digest(b"x").to_base64());
            many.push('\n');
        }
        many.push('\n');
        assert_eq!(
            AddCheckpoint::parse(many.as_bytes()),
            Err(RequestError::TooManyProofLines)
        );
    }
}
