//! The verifying client.
//!
//! This crate will hold the library behind the `cairn` command: sign, attest and verify
//! (offline, from a Sigstore bundle and a trust root), container images in an OCI registry,
//! witness and monitor. It depends on `tlog` and never on `node`: it trusts nothing a server
//! says until it has verified it.
//!
//! Nothing is implemented yet; see the client issue.
