//! From verified token claims to what the certificate says: the SAN, the issuer extensions and,
//! for CI workflow identities, the Fulcio extension OIDs (sigstore/fulcio docs/oid-info.md).

use serde::{Deserialize, Serialize};

use crate::TokenError;
use crate::der;

/// The Sigstore OID arc, `1.3.6.1.4.1.57264.1`.
const FULCIO: [u64; 8] = [1, 3, 6, 1, 4, 1, 57264, 1];

fn fulcio_oid(last: u64) -> Vec<u64> {
    let mut oid = FULCIO.to_vec();
    oid.push(last);
    oid
}

/// How an issuer's tokens name their subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    /// The `email` claim, which must be verified (`email_verified: true`); SAN rfc822Name.
    Email,
    /// The `sub` claim, which must be an absolute URI (SPIFFE IDs and the like); SAN URI.
    Uri,
    /// A GitHub Actions workflow token: SAN URI `https://github.com/<job_workflow_ref>`, and the
    /// workflow's claims in the Fulcio extensions `.1.2` to `.1.6` and `.1.9` to `.1.23`.
    GithubWorkflow,
}

/// The subject alternative name of a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum San {
    /// An rfc822Name.
    Email(String),
    /// A uniformResourceIdentifier.
    Uri(String),
}

impl San {
    /// The SAN's value.
    pub fn value(&self) -> &str {
        match self {
            San::Email(value) | San::Uri(value) => value,
        }
    }
}

/// What a verified token proves, ready to be written into a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The one SAN.
    pub san: San,
    /// The issuer URL, exactly as allow-listed.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// What a proof of possession must sign: the email for email identities, else `sub`
    /// (sigstore-go's `SubjectFromUnverifiedToken` rule).
    pub challenge: String,
    /// Extensions after the standard ones, in certificate order: OID arcs and DER value.
    pub extensions: Vec<(Vec<u64>, Vec<u8>)>,
}

/// The claims of a GitHub Actions token that Fulcio maps (all optional here; which are required
/// is checked in [`map`]).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct CiClaims {
    #[serde(default)]
    job_workflow_ref: Option<String>,
    #[serde(default)]
    job_workflow_sha: Option<String>,
    #[serde(default)]
    runner_environment: Option<String>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    repository_id: Option<String>,
    #[serde(default)]
    repository_owner: Option<String>,
    #[serde(default)]
    repository_owner_id: Option<String>,
    #[serde(default)]
    repository_visibility: Option<String>,
    #[serde(default)]
    workflow_ref: Option<String>,
    #[serde(default)]
    workflow_sha: Option<String>,
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default)]
    event_name: Option<String>,
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_attempt: Option<String>,
    #[serde(default)]
    environment: Option<String>,
}

impl openidconnect::AdditionalClaims for CiClaims {}

/// The claims [`map`] reads, taken from a token that has been verified.
#[derive(Clone, Debug)]
pub struct VerifiedClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `email`.
    pub email: Option<String>,
    /// `email_verified`.
    pub email_verified: Option<bool>,
    /// The CI claims.
    pub ci: CiClaims,
}

/// Longest SAN or claim value written into a certificate.
const VALUE_BYTES_MAX: usize = 1024;

fn check_email(email: &str) -> Result<(), TokenError> {
    let invalid = || TokenError::InvalidIdentity(format!("email {email:?} is not an address"));
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let printable = |text: &str| {
        text.bytes()
            .all(|byte| byte.is_ascii_graphic() && byte != b'@' && byte != b'<' && byte != b'>')
    };
    if email.len() > 254
        || local.is_empty()
        || domain.is_empty()
        || !printable(local)
        || !printable(domain)
        || !domain.contains('.') && domain != "localhost"
    {
        return Err(invalid());
    }
    Ok(())
}

fn check_uri(uri: &str) -> Result<(), TokenError> {
    let scheme = uri.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
    let valid = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"+-.".contains(&byte))
        && uri.len() <= VALUE_BYTES_MAX
        && uri.bytes().all(|byte| byte.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(TokenError::InvalidIdentity(format!(
            "sub {uri:?} is not an absolute URI"
        )))
    }
}

/// Maps verified claims of an issuer of `kind` to a certificate identity.
pub fn map(kind: IdentityKind, claims: &VerifiedClaims) -> Result<Identity, TokenError> {
    let mut extensions = vec![
        // `.1.1`: raw bytes, the one sigstore-python and sigstore-rs check.
        (fulcio_oid(1), claims.issuer.as_bytes().to_vec()),
        // `.1.8`: the same as a DER UTF8String.
        (fulcio_oid(8), der::utf8_string(&claims.issuer)),
    ];
    if claims.subject.is_empty() || claims.subject.len() > VALUE_BYTES_MAX {
        return Err(TokenError::InvalidIdentity(
            "sub must be 1 to 1024 bytes".into(),
        ));
    }
    let (san, challenge) = match kind {
        IdentityKind::Email => {
            let email = claims.email.clone().ok_or_else(|| {
                TokenError::InvalidIdentity("the issuer's tokens need an email claim".into())
            })?;
            if claims.email_verified != Some(true) {
                return Err(TokenError::EmailNotVerified);
            }
            check_email(&email)?;
            (San::Email(email.clone()), email)
        }
        IdentityKind::Uri => {
            check_uri(&claims.subject)?;
            (San::Uri(claims.subject.clone()), claims.subject.clone())
        }
        IdentityKind::GithubWorkflow => {
            let ci = &claims.ci;
            let required = |name: &str, value: &Option<String>| {
                value
                    .clone()
                    .filter(|value| !value.is_empty() && value.len() <= VALUE_BYTES_MAX)
                    .ok_or_else(|| {
                        TokenError::InvalidIdentity(format!("workflow token without {name}"))
                    })
            };
            let job_workflow_ref = required("job_workflow_ref", &ci.job_workflow_ref)?;
            let repository = required("repository", &ci.repository)?;
            let sha = required("sha", &ci.sha)?;
            let event_name = required("event_name", &ci.event_name)?;
            let git_ref = required("ref", &ci.git_ref)?;
            let workflow = required("workflow", &ci.workflow)?;
            let run_id = required("run_id", &ci.run_id)?;
            let run_attempt = required("run_attempt", &ci.run_attempt)?;
            let server = "https://github.com";
            // Deprecated raw-valued extensions `.1.2` to `.1.6`, still read by older verifiers.
            for (arc, value) in [
                (2, &event_name),
                (3, &sha),
                (4, &workflow),
                (5, &repository),
                (6, &git_ref),
            ] {
                extensions.push((fulcio_oid(arc), value.as_bytes().to_vec()));
            }
            let mut utf8 = |arc: u64, value: Option<String>| {
                if let Some(value) = value.filter(|value| value.len() <= VALUE_BYTES_MAX) {
                    extensions.push((fulcio_oid(arc), der::utf8_string(&value)));
                }
            };
            let url = |path: &Option<String>| path.as_ref().map(|path| format!("{server}/{path}"));
            utf8(9, Some(format!("{server}/{job_workflow_ref}")));
            utf8(10, ci.job_workflow_sha.clone());
            utf8(11, ci.runner_environment.clone());
            utf8(12, Some(format!("{server}/{repository}")));
            utf8(13, Some(sha.clone()));
            utf8(14, Some(git_ref.clone()));
            utf8(15, ci.repository_id.clone());
            utf8(16, url(&ci.repository_owner));
            utf8(17, ci.repository_owner_id.clone());
            utf8(18, url(&ci.workflow_ref));
            utf8(19, ci.workflow_sha.clone());
            utf8(20, Some(event_name.clone()));
            utf8(
                21,
                Some(format!(
                    "{server}/{repository}/actions/runs/{run_id}/attempts/{run_attempt}"
                )),
            );
            utf8(22, ci.repository_visibility.clone());
            utf8(23, ci.environment.clone());
            let san = format!("{server}/{job_workflow_ref}");
            check_uri(&san)?;
            (San::Uri(san), claims.subject.clone())
        }
    };
    Ok(Identity {
        san,
        issuer: claims.issuer.clone(),
        subject: claims.subject.clone(),
        challenge,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims(email: Option<&str>, verified: Option<bool>) -> VerifiedClaims {
        VerifiedClaims {
            issuer: "https://issuer.example".into(),
            subject: "alice".into(),
            email: email.map(String::from),
            email_verified: verified,
            ci: CiClaims::default(),
        }
    }

    #[test]
    fn email_identities_need_a_verified_address() {
        let identity = map(
            IdentityKind::Email,
            &claims(Some("alice@example.com"), Some(true)),
        )
        .unwrap();
        assert_eq!(identity.san, San::Email("alice@example.com".into()));
        assert_eq!(identity.challenge, "alice@example.com");
        assert_eq!(identity.extensions[0].1, b"https://issuer.example");
        assert!(matches!(
            map(
                IdentityKind::Email,
                &claims(Some("alice@example.com"), None)
            ),
            Err(TokenError::EmailNotVerified)
        ));
        assert!(matches!(
            map(
                IdentityKind::Email,
                &claims(Some("alice@example.com"), Some(false))
            ),
            Err(TokenError::EmailNotVerified)
        ));
        for bad in ["alice", "@example.com", "a b@example.com", "alice@"] {
            assert!(
                map(IdentityKind::Email, &claims(Some(bad), Some(true))).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn workflow_claims_map_to_fulcio_extensions() {
        let ci: CiClaims = serde_json::from_value(serde_json::json!({
            "job_workflow_ref": "octo/repo/.github/workflows/release.yml@refs/tags/v1",
            "repository": "octo/repo", "repository_id": "42", "repository_owner": "octo",
            "repository_owner_id": "7", "sha": "abc", "event_name": "push",
            "ref": "refs/tags/v1", "workflow": "release", "run_id": "9", "run_attempt": "1",
            "workflow_ref": "octo/repo/.github/workflows/release.yml@refs/tags/v1",
        }))
        .unwrap();
        let claims = VerifiedClaims {
            ci,
            ..claims(None, None)
        };
        let identity = map(IdentityKind::GithubWorkflow, &claims).unwrap();
        assert_eq!(
            identity.san,
            San::Uri(
                "https://github.com/octo/repo/.github/workflows/release.yml@refs/tags/v1".into()
            )
        );
        let value = |arc: u64| {
            identity
                .extensions
                .iter()
                .find(|(oid, _)| *oid == fulcio_oid(arc))
                .map(|(_, value)| value.clone())
        };
        assert_eq!(value(5).unwrap(), b"octo/repo");
        assert_eq!(value(15).unwrap(), der::utf8_string("42"));
        assert_eq!(
            value(21).unwrap(),
            der::utf8_string("https://github.com/octo/repo/actions/runs/9/attempts/1")
        );
        let missing = VerifiedClaims {
            ci: CiClaims::default(),
            ..claims
        };
        assert!(map(IdentityKind::GithubWorkflow, &missing).is_err());
    }
}
