//! The keyless certificate authority (Fulcio's job).
//!
//! This crate will hold: OpenID Connect token verification against an issuer allow-list, the
//! mapping from token claims to a certificate identity, proof of possession of the requested key,
//! the Fulcio certificate profile (20-minute leaf, critical SAN, Sigstore extension OIDs), and
//! the signed certificate timestamp issued from Cairn's certificate log. The rule it exists to
//! enforce: no certificate reaches a caller before its entry is committed to the log.
//!
//! Nothing is implemented yet; see the CA issue.
