//! C2SP tlog-policy (c2sp.org/tlog-policy, from Sigsum's policy format): which logs and
//! witnesses are trusted, and the quorum of witness cosignatures a checkpoint needs.
//!
//! Format. Line based; items are separated by runs of spaces and tabs; leading and trailing
//! whitespace, blank lines and `#` comment lines are ignored. Lines:
//! - `log <vkey> [<url>]`: a log whose signature makes a checkpoint acceptable (type 0x01
//!   Ed25519 or 0x02 ECDSA keys);
//! - `witness <name> <vkey> [<url>]`: a witness, with a cosignature key (type 0x04);
//! - `group <name> <all|any|k> <member>...`: satisfied when at least k members are (members are
//!   witnesses or groups defined on earlier lines, each at most once);
//! - `quorum <name|none>`: exactly one; `none` needs no cosignature.
//!
//! Names share one namespace, `none` is reserved, and every reference must be to an earlier
//! line, which rules out cycles. Duplicate keys (the same public key twice among logs, or among
//! witnesses) are rejected. Parsing is strict and every error names its line.
//!
//! Verification ([`Policy::verify_note`]): a listed log key whose name is the checkpoint's
//! origin must verify the note (and no listed key may fail), and the valid cosignatures of
//! listed witnesses must satisfy the quorum. Groups are evaluated in definition order, so the
//! evaluation is linear and needs no recursion.
//!
//! Deviations, all stricter than the spec: the file must be UTF-8 (names are still compared as
//! bytes); a numeric threshold must have no leading zeros; two witnesses (or two logs) whose
//! vkeys share a key name and key id are rejected, since their signature lines would be
//! ambiguous. Because the log key's name must be the origin, a Rekor v1 ECDSA log (key named
//! after the host, origin `<host> - <tree id>`) can be listed but never satisfies a policy;
//! such checkpoints are opened with [`crate::checkpoint::open`] instead.

use std::collections::BTreeMap;
use std::fmt;

use crate::checkpoint::{Checkpoint, CheckpointError, parse_decimal};
use crate::keys::{KeyError, Verifier, Verifiers};
use crate::note::{
    Note, NoteError, SIGNATURE_TYPE_COSIGNATURE_V1, SIGNATURE_TYPE_ECDSA, SIGNATURE_TYPE_ED25519,
};

/// The largest policy file accepted, in bytes.
pub const POLICY_BYTES_MAX: usize = 256 * 1024;

/// The most `log` lines a policy may have (the spec recommends supporting at least 32).
pub const POLICY_LOGS_MAX: usize = 256;

/// The most `witness` lines a policy may have (the spec recommends supporting at least 32).
pub const POLICY_WITNESSES_MAX: usize = 256;

/// The most `group` lines a policy may have (the spec recommends supporting at least 32).
pub const POLICY_GROUPS_MAX: usize = 256;

/// The reserved name of the empty quorum.
const NONE: &str = "none";

/// What is wrong with one line of a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyLineError {
    /// A control character other than tab, or DEL, is on the line.
    #[error("control character")]
    ControlCharacter,
    /// The first item is not `log`, `witness`, `group` or `quorum`.
    #[error("unknown keyword {0:?}")]
    UnknownKeyword(String),
    /// The line has the wrong number of items for its keyword.
    #[error("expected `{usage}`")]
    Arguments {
        /// The form the line must take.
        usage: &'static str,
    },
    /// The vkey does not parse.
    #[error("vkey: {0}")]
    Key(KeyError),
    /// A log key is not an Ed25519 (0x01) or ECDSA (0x02) note key.
    #[error("log key has signature type 0x{0:02x}, want 0x01 (Ed25519) or 0x02 (ECDSA)")]
    LogKeyType(u8),
    /// A witness key is not an Ed25519 cosignature (0x04) key.
    #[error("witness key has signature type 0x{0:02x}, want 0x04 (Ed25519 cosignature)")]
    WitnessKeyType(u8),
    /// The same public key is already listed (for a log, or for a witness).
    #[error("public key already listed on line {first_line}")]
    DuplicateKey {
        /// The line that listed it first.
        first_line: usize,
    },
    /// The witness or group name is already defined.
    #[error("name {name:?} already defined on line {first_line}")]
    DuplicateName {
        /// The name.
        name: String,
        /// The line that defined it first.
        first_line: usize,
    },
    /// A witness or group is named `none`, or a group lists `none` as a member.
    #[error("the name \"none\" is reserved")]
    ReservedName,
    /// A group member or the quorum names nothing defined on an earlier line.
    #[error("name {name:?} is not defined on an earlier line")]
    UndefinedName {
        /// The name.
        name: String,
    },
    /// A group lists the same member twice.
    #[error("group member {name:?} listed twice")]
    DuplicateMember {
        /// The name.
        name: String,
    },
    /// A group threshold is not `all`, `any` or a decimal number without leading zeros.
    #[error("group threshold must be all, any or a decimal number")]
    Threshold,
    /// A numeric group threshold is not between 1 and the number of members.
    #[error("group threshold {k} is not between 1 and the {n} members")]
    ThresholdRange {
        /// The threshold.
        k: u64,
        /// The number of members.
        n: usize,
    },
    /// A second quorum line.
    #[error("quorum already defined on line {first_line}")]
    DuplicateQuorum {
        /// The line of the first quorum.
        first_line: usize,
    },
    /// More logs, witnesses or groups than this implementation accepts.
    #[error("more than {max} {what}")]
    TooMany {
        /// "logs", "witnesses" or "groups".
        what: &'static str,
        /// The limit.
        max: usize,
    },
}

/// Why a policy did not parse, or a checkpoint did not satisfy it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy file is longer than [`POLICY_BYTES_MAX`].
    #[error("policy is {len} bytes long, more than the limit of {max}")]
    TooLarge {
        /// The length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A line is malformed.
    #[error("line {line}: {problem}")]
    Line {
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        problem: PolicyLineError,
    },
    /// The policy has no quorum line.
    #[error("policy has no quorum line")]
    MissingQuorum,
    /// The policy lists no logs, so it cannot say which log signature to trust.
    #[error("policy lists no logs, so no log signature can be verified")]
    NoLogs,
    /// No listed log verified the note, or a listed log's signature failed.
    #[error("log signature: {0}")]
    LogSignature(NoteError),
    /// A listed witness's cosignature failed to verify.
    #[error("witness cosignature: {0}")]
    Cosignature(NoteError),
    /// The note text is not a checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// No log key whose name is the checkpoint's origin verified the note.
    #[error("no log key named {origin:?} (the checkpoint origin) verified the checkpoint")]
    OriginMismatch {
        /// The checkpoint's origin.
        origin: String,
    },
    /// The valid cosignatures do not satisfy the quorum.
    #[error("quorum not met: {cosignatures} valid witness cosignatures are not enough")]
    QuorumNotMet {
        /// The number of listed witnesses whose cosignatures verified.
        cosignatures: usize,
    },
}

/// A log the policy trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLog {
    /// Its checkpoint key; the key name is the log's origin.
    pub verifier: Verifier,
    /// Where to reach it, if given.
    pub url: Option<String>,
}

/// A witness the policy knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWitness {
    /// Its name within the policy (not necessarily its key name).
    pub name: String,
    /// Its cosignature key.
    pub verifier: Verifier,
    /// Its submission prefix, if given.
    pub url: Option<String>,
}

/// How many members of a group must be satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    /// Every member.
    All,
    /// At least one member.
    Any,
    /// At least this many members (1 to the number of members).
    AtLeast(u64),
}

/// A named group of witnesses and groups with a threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyGroup {
    /// Its name.
    pub name: String,
    /// How many members must be satisfied.
    pub threshold: Threshold,
    /// Names of witnesses and groups defined before it.
    pub members: Vec<String>,
}

/// The rule a checkpoint's cosignatures must satisfy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quorum {
    /// No cosignature is needed (`quorum none`).
    None,
    /// The named witness or group must be satisfied.
    Named(String),
}

/// A valid cosignature from a witness the policy lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessCosignature<'p> {
    /// The witness.
    pub witness: &'p PolicyWitness,
    /// The cosignature's timestamp (POSIX seconds); the caller decides whether it is recent.
    pub timestamp: u64,
}

/// A checkpoint note that satisfied a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVerified<'p> {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The log key that verified it.
    pub log: &'p Verifier,
    /// Every valid cosignature from a listed witness, in note order.
    pub cosignatures: Vec<WitnessCosignature<'p>>,
}

/// A parsed tlog-policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<PolicyGroup>,
    quorum: Quorum,
    /// The log keys, for note verification; same order as `logs`.
    log_verifiers: Verifiers,
    /// The witness keys, for note verification; same order as `witnesses`.
    witness_verifiers: Verifiers,
}

/// Where a name was defined while parsing.
#[derive(Clone, Copy)]
struct Definition {
    line: usize,
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > POLICY_BYTES_MAX {
            return Err(PolicyError::TooLarge {
                len: text.len(),
                max: POLICY_BYTES_MAX,
            });
        }
        let mut parser = Parser::default();
        // A missing final newline leaves a last line without one; it is parsed like the rest.
        for (i, line) in text.split('\n').enumerate() {
            parser
                .line(line, i + 1)
                .map_err(|problem| PolicyError::Line {
                    line: i + 1,
                    problem,
                })?;
        }
        let quorum = parser
            .quorum
            .map(|(quorum, _)| quorum)
            .ok_or(PolicyError::MissingQuorum)?;
        Ok(Policy {
            logs: parser.logs,
            witnesses: parser.witnesses,
            groups: parser.groups,
            quorum,
            log_verifiers: parser.log_verifiers,
            witness_verifiers: parser.witness_verifiers,
        })
    }

    /// The logs, in file order.
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The witnesses, in file order.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// The groups, in file order.
    pub fn groups(&self) -> &[PolicyGroup] {
        &self.groups
    }

    /// The quorum.
    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// The log keys as a verifier set.
    pub fn log_verifiers(&self) -> &Verifiers {
        &self.log_verifiers
    }

    /// The witness keys as a verifier set.
    pub fn witness_verifiers(&self) -> &Verifiers {
        &self.witness_verifiers
    }

    /// Whether cosignatures from these witnesses (by policy name) satisfy the quorum. Names
    /// that are not witnesses of the policy count for nothing.
    pub fn is_satisfied_by<'a>(&self, witnesses: impl IntoIterator<Item = &'a str>) -> bool {
        let mut satisfied: BTreeMap<&str, bool> = self
            .witnesses
            .iter()
            .map(|w| (w.name.as_str(), false))
            .collect();
        for name in witnesses {
            if let Some(entry) = satisfied.get_mut(name) {
                *entry = true;
            }
        }
        // Groups only name earlier definitions, so one pass in file order settles them all.
        for group in &self.groups {
            let count = group
                .members
                .iter()
                .filter(|m| satisfied.get(m.as_str()).copied().unwrap_or(false))
                .count();
            let need = match group.threshold {
                Threshold::All => group.members.len() as u64,
                Threshold::Any => 1,
                Threshold::AtLeast(k) => k,
            };
            satisfied.insert(group.name.as_str(), count as u64 >= need);
        }
        match &self.quorum {
            Quorum::None => true,
            Quorum::Named(name) => satisfied.get(name.as_str()).copied().unwrap_or(false),
        }
    }

    /// The valid cosignatures of listed witnesses on a note. A listed witness whose
    /// cosignature fails rejects the note; unknown signature lines are ignored.
    pub fn cosignatures<'p>(
        &'p self,
        note: &Note,
    ) -> Result<Vec<WitnessCosignature<'p>>, PolicyError> {
        let verified = note
            .verify_known(&self.witness_verifiers)
            .map_err(PolicyError::Cosignature)?;
        Ok(verified
            .iter()
            .filter_map(|v| {
                let witness = self.witnesses.iter().find(|w| {
                    w.verifier.name() == v.verifier.name()
                        && w.verifier.key_id() == v.verifier.key_id()
                })?;
                Some(WitnessCosignature {
                    witness,
                    timestamp: v.timestamp()?,
                })
            })
            .collect())
    }

    /// Checks a signed checkpoint note against the policy: a listed log key named after the
    /// origin verifies it, no listed key's signature fails, and the valid cosignatures satisfy
    /// the quorum.
    pub fn verify_note<'p>(&'p self, note: &Note) -> Result<PolicyVerified<'p>, PolicyError> {
        if self.logs.is_empty() {
            return Err(PolicyError::NoLogs);
        }
        let logs = note
            .verify(&self.log_verifiers)
            .map_err(PolicyError::LogSignature)?;
        let checkpoint = Checkpoint::parse(note.text()).map_err(PolicyError::Checkpoint)?;
        // The spec ties a log's key name to its origin; a key for another origin must not vouch
        // for this one.
        let log = logs
            .iter()
            .find(|v| v.verifier.name() == checkpoint.origin)
            .map(|v| v.verifier)
            .ok_or_else(|| PolicyError::OriginMismatch {
                origin: checkpoint.origin.clone(),
            })?;
        let cosignatures = self.cosignatures(note)?;
        if !self.is_satisfied_by(cosignatures.iter().map(|c| c.witness.name.as_str())) {
            return Err(PolicyError::QuorumNotMet {
                cosignatures: cosignatures.len(),
            });
        }
        Ok(PolicyVerified {
            checkpoint,
            log,
            cosignatures,
        })
    }

    /// Parses a signed checkpoint note and checks it with [`Policy::verify_note`].
    pub fn verify_checkpoint(&self, bytes: &[u8]) -> Result<PolicyVerified<'_>, PolicyError> {
        let note = Note::parse(bytes).map_err(PolicyError::LogSignature)?;
        self.verify_note(&note)
    }
}

impl fmt::Display for Policy {
    /// The policy in canonical form: logs, witnesses, groups, then the quorum.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for log in &self.logs {
            write!(f, "log {}", log.verifier)?;
            write_url(f, log.url.as_deref())?;
        }
        for witness in &self.witnesses {
            write!(f, "witness {} {}", witness.name, witness.verifier)?;
            write_url(f, witness.url.as_deref())?;
        }
        for group in &self.groups {
            write!(f, "group {} ", group.name)?;
            match group.threshold {
                Threshold::All => f.write_str("all")?,
                Threshold::Any => f.write_str("any")?,
                Threshold::AtLeast(k) => write!(f, "{k}")?,
            }
            for member in &group.members {
                write!(f, " {member}")?;
            }
            f.write_str("\n")?;
        }
        match &self.quorum {
            Quorum::None => writeln!(f, "quorum {NONE}"),
            Quorum::Named(name) => writeln!(f, "quorum {name}"),
        }
    }
}

fn write_url(f: &mut fmt::Formatter<'_>, url: Option<&str>) -> fmt::Result {
    match url {
        Some(url) => writeln!(f, " {url}"),
        None => f.write_str("\n"),
    }
}

/// Parsing state: what is defined so far, and where.
#[derive(Default)]
struct Parser {
    logs: Vec<PolicyLog>,
    log_lines: Vec<usize>,
    witnesses: Vec<PolicyWitness>,
    witness_lines: Vec<usize>,
    groups: Vec<PolicyGroup>,
    quorum: Option<(Quorum, usize)>,
    names: BTreeMap<String, Definition>,
    log_verifiers: Verifiers,
    witness_verifiers: Verifiers,
}

impl Parser {
    fn line(&mut self, line: &str, number: usize) -> Result<(), PolicyLineError> {
        // Allowed: tab, 0x20-0x7E and anything non-ASCII (the newline was split off).
        if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(PolicyLineError::ControlCharacter);
        }
        let items: Vec<&str> = line.split([' ', '\t']).filter(|s| !s.is_empty()).collect();
        let Some((&keyword, arguments)) = items.split_first() else {
            return Ok(());
        };
        if keyword.starts_with('#') {
            return Ok(());
        }
        match keyword {
            "log" => self.log(arguments, number),
            "witness" => self.witness(arguments, number),
            "group" => self.group(arguments, number),
            "quorum" => self.quorum(arguments, number),
            other => Err(PolicyLineError::UnknownKeyword(other.to_owned())),
        }
    }

    fn log(&mut self, arguments: &[&str], number: usize) -> Result<(), PolicyLineError> {
        let (&vkey, url) = match arguments {
            [vkey] => (vkey, None),
            [vkey, url] => (vkey, Some((*url).to_owned())),
            _ => {
                return Err(PolicyLineError::Arguments {
                    usage: "log <vkey> [<url>]",
                });
            }
        };
        if self.logs.len() >= POLICY_LOGS_MAX {
            return Err(PolicyLineError::TooMany {
                what: "logs",
                max: POLICY_LOGS_MAX,
            });
        }
        let verifier = Verifier::parse(vkey).map_err(PolicyLineError::Key)?;
        let key_type = verifier.key_type();
        if key_type != SIGNATURE_TYPE_ED25519 && key_type != SIGNATURE_TYPE_ECDSA {
            return Err(PolicyLineError::LogKeyType(key_type));
        }
        let keys = self.logs.iter().map(|l| &l.verifier);
        if let Some(i) = duplicate_key(keys, &verifier) {
            return Err(PolicyLineError::DuplicateKey {
                first_line: self.log_lines[i],
            });
        }
        self.log_verifiers
            .push(verifier.clone())
            .map_err(PolicyLineError::Key)?;
        self.logs.push(PolicyLog { verifier, url });
        self.log_lines.push(number);
        Ok(())
    }

    fn witness(&mut self, arguments: &[&str], number: usize) -> Result<(), PolicyLineError> {
        let (&name, &vkey, url) = match arguments {
            [name, vkey] => (name, vkey, None),
            [name, vkey, url] => (name, vkey, Some((*url).to_owned())),
            _ => {
                return Err(PolicyLineError::Arguments {
                    usage: "witness <name> <vkey> [<url>]",
                });
            }
        };
        if self.witnesses.len() >= POLICY_WITNESSES_MAX {
            return Err(PolicyLineError::TooMany {
                what: "witnesses",
                max: POLICY_WITNESSES_MAX,
            });
        }
        self.check_new_name(name)?;
        let verifier = Verifier::parse(vkey).map_err(PolicyLineError::Key)?;
        if verifier.key_type() != SIGNATURE_TYPE_COSIGNATURE_V1 {
            return Err(PolicyLineError::WitnessKeyType(verifier.key_type()));
        }
        let keys = self.witnesses.iter().map(|w| &w.verifier);
        if let Some(i) = duplicate_key(keys, &verifier) {
            return Err(PolicyLineError::DuplicateKey {
                first_line: self.witness_lines[i],
            });
        }
        self.witness_verifiers
            .push(verifier.clone())
            .map_err(PolicyLineError::Key)?;
        self.names
            .insert(name.to_owned(), Definition { line: number });
        self.witnesses.push(PolicyWitness {
            name: name.to_owned(),
            verifier,
            url,
        });
        self.witness_lines.push(number);
        Ok(())
    }

    fn group(&mut self, arguments: &[&str], number: usize) -> Result<(), PolicyLineError> {
        let [name, threshold, members @ ..] = arguments else {
            return Err(group_usage());
        };
        if members.is_empty() {
            return Err(group_usage());
        }
        if self.groups.len() >= POLICY_GROUPS_MAX {
            return Err(PolicyLineError::TooMany {
                what: "groups",
                max: POLICY_GROUPS_MAX,
            });
        }
        self.check_new_name(name)?;
        for (i, &member) in members.iter().enumerate() {
            if member == NONE {
                return Err(PolicyLineError::ReservedName);
            }
            if !self.names.contains_key(member) {
                return Err(PolicyLineError::UndefinedName {
                    name: member.to_owned(),
                });
            }
            if members[..i].contains(&member) {
                return Err(PolicyLineError::DuplicateMember {
                    name: member.to_owned(),
                });
            }
        }
        let threshold = match *threshold {
            "all" => Threshold::All,
            "any" => Threshold::Any,
            k => {
                let k = parse_decimal(k).map_err(|_| PolicyLineError::Threshold)?;
                if k == 0 || k > members.len() as u64 {
                    return Err(PolicyLineError::ThresholdRange {
                        k,
                        n: members.len(),
                    });
                }
                Threshold::AtLeast(k)
            }
        };
        self.names
            .insert((*name).to_owned(), Definition { line: number });
        self.groups.push(PolicyGroup {
            name: (*name).to_owned(),
            threshold,
            members: members.iter().map(|&m| m.to_owned()).collect(),
        });
        Ok(())
    }

    fn quorum(&mut self, arguments: &[&str], number: usize) -> Result<(), PolicyLineError> {
        let [name] = arguments else {
            return Err(PolicyLineError::Arguments {
                usage: "quorum <name>",
            });
        };
        if let Some((_, first_line)) = self.quorum {
            return Err(PolicyLineError::DuplicateQuorum { first_line });
        }
        let quorum = if *name == NONE {
            Quorum::None
        } else if self.names.contains_key(*name) {
            Quorum::Named((*name).to_owned())
        } else {
            return Err(PolicyLineError::UndefinedName {
                name: (*name).to_owned(),
            });
        };
        self.quorum = Some((quorum, number));
        Ok(())
    }

    fn check_new_name(&self, name: &str) -> Result<(), PolicyLineError> {
        if name == NONE {
            return Err(PolicyLineError::ReservedName);
        }
        if let Some(definition) = self.names.get(name) {
            return Err(PolicyLineError::DuplicateName {
                name: name.to_owned(),
                first_line: definition.line,
            });
        }
        Ok(())
    }
}

fn group_usage() -> PolicyLineError {
    PolicyLineError::Arguments {
        usage: "group <name> <all|any|k> <member>...",
    }
}

/// The position of a key wrapping the same public key as `verifier`, whatever its name and id.
fn duplicate_key<'a>(
    keys: impl Iterator<Item = &'a Verifier>,
    verifier: &Verifier,
) -> Option<usize> {
    let public_key = verifier.public_key();
    keys.enumerate()
        .find(|(_, k)| k.public_key() == public_key)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::keys::Cosigner;
    use crate::keys::Ed25519Signer;
    use crate::note::NoteSigner;
    use crate::tree::TreeSize;

    const ORIGIN: &str = "example.com/log";
    const TIME: u64 = 1_700_000_000;

    fn log_signer() -> Ed25519Signer {
        Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap()
    }

    fn cosigner(name: &str) -> Cosigner {
        // A distinct, deterministic key per witness name.
        let seed = crate::hash::Hash::digest(name.as_bytes()).0;
        Cosigner::new(
            &format!("{name}.witness.example"),
            ed25519_dalek::SigningKey::from_bytes(&seed),
        )
        .unwrap()
    }

    fn witness_line(name: &str) -> String {
        format!("witness {name} {}\n", cosigner(name).verifier())
    }

    /// The spec's example policy, with real keys.
    fn example_policy() -> String {
        let mut text = format!(
            "# Example from c2sp.org/tlog-policy\nlog {}\n\n",
            log_signer().verifier()
        );
        for name in ["X1", "X2", "X3"] {
            text.push_str(&witness_line(name));
        }
        text.push_str("group X-witnesses 2 X1 X2 X3\n\n");
        for name in ["Y1", "Y2", "Y3"] {
            text.push_str(&witness_line(name));
        }
        text.push_str("group Y-witnesses any Y1 Y2 Y3\n\n");
        text.push_str("  group\tX-and-Y all X-witnesses  Y-witnesses  \n");
        text.push_str("quorum X-and-Y\n");
        text
    }

    fn note_cosigned_by(witnesses: &[&str]) -> Note {
        let checkpoint = Checkpoint::new(ORIGIN, TreeSize(10), Hash::EMPTY_ROOT);
        let mut note = checkpoint.sign(&[&log_signer()]).unwrap();
        for name in witnesses {
            let witness = cosigner(name);
            note.sign(&witness.at(TIME).unwrap()).unwrap();
        }
        note
    }

    #[test]
    fn example_policy_parses_and_round_trips() {
        let policy = Policy::parse(&example_policy()).unwrap();
        assert_eq!(policy.logs().len(), 1);
        assert_eq!(policy.witnesses().len(), 6);
        assert_eq!(policy.groups().len(), 3);
        assert_eq!(policy.groups()[0].threshold, Threshold::AtLeast(2));
        assert_eq!(policy.groups()[1].threshold, Threshold::Any);
        assert_eq!(policy.groups()[2].threshold, Threshold::All);
        assert_eq!(policy.quorum(), &Quorum::Named("X-and-Y".to_owned()));
        let formatted = policy.to_string();
        assert_eq!(Policy::parse(&formatted).unwrap(), policy);
        // Canonical text is a fixed point.
        assert_eq!(Policy::parse(&formatted).unwrap().to_string(), formatted);
    }

    #[test]
    fn urls_and_missing_final_newline() {
        let text = format!(
            "log {} https://log.example/\nwitness W {} https://w.example/\tquorum W",
            log_signer().verifier(),
            cosigner("W").verifier()
        );
        assert!(Policy::parse(&text).is_err(), "quorum on the witness line");
        let text = format!(
            "log {} https://log.example/\nwitness W {} https://w.example/\nquorum W",
            log_signer().verifier(),
            cosigner("W").verifier()
        );
        let policy = Policy::parse(&text).unwrap();
        assert_eq!(
            policy.logs()[0].url.as_deref(),
            Some("https://log.example/")
        );
        assert_eq!(
            policy.witnesses()[0].url.as_deref(),
            Some("https://w.example/")
        );
        assert_eq!(Policy::parse(&policy.to_string()).unwrap(), policy);
    }

    #[test]
    fn k_of_n_and_nested_groups() {
        let policy = Policy::parse(&example_policy()).unwrap();
        let cases: [(&[&str], bool); 8] = [
            (&[], false),
            (&["X1", "X2"], false),
            (&["Y1"], false),
            (&["X1", "Y3"], false),
            (&["X1", "X2", "Y1"], true),
            (&["X3", "X1", "Y2", "Y3"], true),
            (&["X1", "X2", "X3", "Y1", "Y2", "Y3"], true),
            // Group names and unknown names count for nothing.
            (&["X-witnesses", "Y-witnesses", "Z9"], false),
        ];
        for (cosigned, want) in cases {
            assert_eq!(
                policy.is_satisfied_by(cosigned.iter().copied()),
                want,
                "{cosigned:?}"
            );
        }
    }

    #[test]
    fn checkpoints_are_verified_against_the_policy() {
        let policy = Policy::parse(&example_policy()).unwrap();
        let note = note_cosigned_by(&["X1", "X3", "Y2"]);
        let verified = policy.verify_note(&note).unwrap();
        assert_eq!(verified.checkpoint.size, TreeSize(10));
        assert_eq!(verified.log.name(), ORIGIN);
        let names: Vec<&str> = verified
            .cosignatures
            .iter()
            .map(|c| c.witness.name.as_str())
            .collect();
        assert_eq!(names, ["X1", "X3", "Y2"]);
        assert!(verified.cosignatures.iter().all(|c| c.timestamp == TIME));
        let bytes = note.format().unwrap();
        assert_eq!(
            policy.verify_checkpoint(bytes.as_bytes()).unwrap(),
            verified
        );

        assert_eq!(
            policy.verify_note(&note_cosigned_by(&["X1", "Y2"])),
            Err(PolicyError::QuorumNotMet { cosignatures: 2 })
        );
        // An unlisted witness does not help.
        assert_eq!(
            policy.verify_note(&note_cosigned_by(&["X1", "Q1", "Y2"])),
            Err(PolicyError::QuorumNotMet { cosignatures: 2 })
        );
        // A listed witness's bad cosignature rejects the note even when the quorum is met.
        let mut note = note_cosigned_by(&["X1", "X2", "Y1"]);
        let forged = cosigner("X3");
        note.add_signature(forged.sign("another checkpoint\n", TIME).unwrap())
            .unwrap();
        assert!(matches!(
            policy.verify_note(&note),
            Err(PolicyError::Cosignature(NoteError::SignatureInvalid { .. }))
        ));
    }

    #[test]
    fn log_signature_and_origin_are_required() {
        let policy =
            Policy::parse(&format!("log {}\nquorum none\n", log_signer().verifier())).unwrap();
        assert!(policy.verify_note(&note_cosigned_by(&[])).is_ok());

        // Signed by another log key.
        let other =
            Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[2; 32])).unwrap();
        let checkpoint = Checkpoint::new(ORIGIN, TreeSize(10), Hash::EMPTY_ROOT);
        let note = checkpoint.sign(&[&other]).unwrap();
        assert_eq!(
            policy.verify_note(&note),
            Err(PolicyError::LogSignature(NoteError::NoKnownSignature))
        );
        // Signed by the listed key, but for another origin.
        let checkpoint = Checkpoint::new("example.com/other", TreeSize(10), Hash::EMPTY_ROOT);
        let note = checkpoint.sign(&[&log_signer()]).unwrap();
        assert_eq!(
            policy.verify_note(&note),
            Err(PolicyError::OriginMismatch {
                origin: "example.com/other".to_owned()
            })
        );
        // A policy without logs cannot verify a log signature, but can check cosignatures.
        let policy = Policy::parse(&format!("{}quorum W\n", witness_line("W"))).unwrap();
        assert_eq!(
            policy.verify_note(&note_cosigned_by(&["W"])),
            Err(PolicyError::NoLogs)
        );
        assert_eq!(
            policy
                .cosignatures(&note_cosigned_by(&["W"]))
                .unwrap()
                .len(),
            1
        );
        // A cosignature alone is not a log signature.
        let log_only = Policy::parse(&format!(
            "log {}\n{}quorum W\n",
            log_signer().verifier(),
            witness_line("W")
        ))
        .unwrap();
        let mut note = Note::new(
            &Checkpoint::new(ORIGIN, TreeSize(1), Hash::EMPTY_ROOT)
                .to_text()
                .unwrap(),
        )
        .unwrap();
        note.sign(&cosigner("W").at(TIME).unwrap()).unwrap();
        assert_eq!(
            log_only.verify_note(&note),
            Err(PolicyError::LogSignature(NoteError::NoKnownSignature))
        );
        assert_eq!(log_signer().name(), ORIGIN);
    }

    #[test]
    fn malformed_policies_name_the_line() {
        let log = format!("log {}\n", log_signer().verifier());
        let w = witness_line("W");
        let v = witness_line("V");
        let w_vkey = cosigner("W").verifier().to_string();
        let cases: Vec<(String, usize, PolicyLineError)> = vec![
            (
                format!("{log}frobnicate x\nquorum none\n"),
                2,
                PolicyLineError::UnknownKeyword("frobnicate".into()),
            ),
            (
                format!("{log}log\nquorum none\n"),
                2,
                PolicyLineError::Arguments {
                    usage: "log <vkey> [<url>]",
                },
            ),
            (
                format!("{log}log a b c\nquorum none\n"),
                2,
                PolicyLineError::Arguments {
                    usage: "log <vkey> [<url>]",
                },
            ),
            (
                format!("{log}{log}quorum none\n"),
                2,
                PolicyLineError::DuplicateKey { first_line: 1 },
            ),
            (
                format!("{log}log {w_vkey}\nquorum none\n"),
                2,
                PolicyLineError::LogKeyType(0x04),
            ),
            (
                format!("{log}witness W {}\nquorum none\n", log_signer().verifier()),
                2,
                PolicyLineError::WitnessKeyType(0x01),
            ),
            (
                format!("{log}witness W not-a-vkey\nquorum none\n"),
                2,
                PolicyLineError::Key(KeyError::Format),
            ),
            (
                format!("{log}{w}{w}quorum W\n"),
                3,
                PolicyLineError::DuplicateName {
                    name: "W".into(),
                    first_line: 2,
                },
            ),
            (
                format!("{log}{w}witness W2 {w_vkey}\nquorum W\n"),
                3,
                PolicyLineError::DuplicateKey { first_line: 2 },
            ),
            (
                format!("{log}witness none {w_vkey}\nquorum none\n"),
                2,
                PolicyLineError::ReservedName,
            ),
            (
                format!("{log}{w}group none any W\nquorum none\n"),
                3,
                PolicyLineError::ReservedName,
            ),
            (
                format!("{log}{w}group G any W none\nquorum none\n"),
                3,
                PolicyLineError::ReservedName,
            ),
            (
                format!("{log}{w}group G any W X\nquorum G\n"),
                3,
                PolicyLineError::UndefinedName { name: "X".into() },
            ),
            (
                format!("{log}{w}group G any W W\nquorum G\n"),
                3,
                PolicyLineError::DuplicateMember { name: "W".into() },
            ),
            (
                format!("{log}{w}group G 0 W\nquorum G\n"),
                3,
                PolicyLineError::ThresholdRange { k: 0, n: 1 },
            ),
            (
                format!("{log}{w}group G 2 W\nquorum G\n"),
                3,
                PolicyLineError::ThresholdRange { k: 2, n: 1 },
            ),
            (
                format!("{log}{w}group G 01 W\nquorum G\n"),
                3,
                PolicyLineError::Threshold,
            ),
            (
                format!("{log}{w}group G some W\nquorum G\n"),
                3,
                PolicyLineError::Threshold,
            ),
            (format!("{log}{w}group G any\nquorum G\n"), 3, group_usage()),
            (
                format!("{log}{w}group W any W\nquorum W\n"),
                3,
                PolicyLineError::DuplicateName {
                    name: "W".into(),
                    first_line: 2,
                },
            ),
            // A group cannot name itself or a later group: no cycles.
            (
                format!("{log}{w}group G any G\nquorum G\n"),
                3,
                PolicyLineError::UndefinedName { name: "G".into() },
            ),
            (
                format!("{log}{w}group G any W H\ngroup H any G\nquorum G\n"),
                3,
                PolicyLineError::UndefinedName { name: "H".into() },
            ),
            // The quorum must name an earlier definition.
            (
                format!("{log}quorum W\n{w}"),
                2,
                PolicyLineError::UndefinedName { name: "W".into() },
            ),
            (
                format!("{log}{w}quorum W\nquorum none\n"),
                4,
                PolicyLineError::DuplicateQuorum { first_line: 3 },
            ),
            (
                format!("{log}{w}quorum W W\n"),
                3,
                PolicyLineError::Arguments {
                    usage: "quorum <name>",
                },
            ),
            (
                format!("{log}{v}{w}quorum\tW # trailing comment\n"),
                4,
                PolicyLineError::Arguments {
                    usage: "quorum <name>",
                },
            ),
            (
                format!("{log}quorum none\r\n"),
                2,
                PolicyLineError::ControlCharacter,
            ),
            (
                format!("{log}quorum none\x7f\n"),
                2,
                PolicyLineError::ControlCharacter,
            ),
        ];
        for (text, line, problem) in cases {
            assert_eq!(
                Policy::parse(&text),
                Err(PolicyError::Line { line, problem }),
                "{text}"
            );
        }
        assert_eq!(Policy::parse(&log), Err(PolicyError::MissingQuorum));
        assert_eq!(Policy::parse(""), Err(PolicyError::MissingQuorum));
        assert!(matches!(
            Policy::parse(&"#".repeat(POLICY_BYTES_MAX + 1)),
            Err(PolicyError::TooLarge { .. })
        ));
        let err = Policy::parse(&format!("{log}{w}group G any W W\nquorum G\n")).unwrap_err();
        assert_eq!(err.to_string(), "line 3: group member \"W\" listed twice");
    }

    #[test]
    fn comments_blank_lines_and_limits() {
        let text = format!(
            "\n   # indented comment\n\t\n#log nonsense\n{}quorum none\n",
            witness_line("W")
        );
        let policy = Policy::parse(&text).unwrap();
        assert_eq!(policy.witnesses().len(), 1);
        assert!(policy.is_satisfied_by([]));
        // Non-ASCII names are opaque bytes.
        let text = format!("{}quorum K\n", witness_line("\u{212a}"));
        assert!(matches!(
            Policy::parse(&text),
            Err(PolicyError::Line {
                line: 2,
                problem: PolicyLineError::UndefinedName { .. }
            })
        ));

        let mut many = String::new();
        for i in 0..=POLICY_WITNESSES_MAX {
            many.push_str(&witness_line(&format!("w{i}")));
        }
        many.push_str("quorum none\n");
        assert_eq!(
            Policy::parse(&many),
            Err(PolicyError::Line {
                line: POLICY_WITNESSES_MAX + 1,
                problem: PolicyLineError::TooMany {
                    what: "witnesses",
                    max: POLICY_WITNESSES_MAX
                }
            })
        );
    }
}
