//! INSECURE development OpenID issuer, for `cairn-node dev` only: it mints a token for any
//! e-mail address it is given, with no login at all, so that a newcomer can get certificates
//! from a local cluster without an outside account. It listens on loopback only and its issuer
//! URL is allow-listed only in the configuration `dev` writes. Never allow-list it in a real
//! deployment: anyone who can reach it can be anyone.
//!
//! `GET /.well-known/openid-configuration`, `GET /jwks`, and
//! `POST /token` with `{"email": "alice@example.com"}` (JSON or form) answering
//! `{"id_token": ..., "token_type": "Bearer", "expires_in": 600}`: an ES256 token with
//! `aud: sigstore`, `sub` and `email` set to the address, `email_verified: true`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Signer as _;
use tokio::net::TcpListener;

use super::{ApiError, Body, BodyDeadline, ConnectionLimits, accept_loop, json, read_body};
use crate::env::SharedClock;

/// How long a development token is valid.
const TOKEN_SECONDS: u64 = 600;

/// The development issuer: its URL and signing key.
pub struct DevIssuer {
    url: String,
    key: p256::ecdsa::SigningKey,
    kid: String,
    clock: SharedClock,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// An issuer at `url` signing with `key`.
    pub fn new(url: String, key: p256::ecdsa::SigningKey, clock: SharedClock) -> DevIssuer {
        let point = key.verifying_key().to_sec1_bytes();
        let kid = tlog::Hash::digest(&point).to_hex()[..16].to_string();
        DevIssuer {
            url,
            key,
            kid,
            clock,
        }
    }

    fn jwks(&self) -> serde_json::Value {
        let point = self.key.verifying_key().to_sec1_point(false);
        let coordinate = |bytes: Option<&p256::FieldBytes>| {
            bytes
                .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
                .unwrap_or_default()
        };
        serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": coordinate(point.x()), "y": coordinate(point.y()),
        }]})
    }

    fn discovery(&self) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.url,
            "jwks_uri": format!("{}/jwks", self.url),
            "authorization_endpoint": format!("{}/auth", self.url),
            "token_endpoint": format!("{}/token", self.url),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "email", "email_verified"],
        })
    }

    /// A token for `email`.
    pub fn mint(&self, email: &str) -> String {
        let now = self.clock.now_unix_ms() / 1000;
        let part = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let input = format!(
            "{}.{}",
            part(serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid })),
            part(serde_json::json!({
                "iss": self.url, "aud": "sigstore", "sub": email, "email": email,
                "email_verified": true, "iat": now, "exp": now + TOKEN_SECONDS,
            })),
        );
        let signature: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    async fn token(&self, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let body = read_body(request, 4096).await?;
        let email = match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(value) => value["email"].as_str().map(str::to_string),
            Err(_) => form_urlencoded::parse(&body)
                .find(|(name, _)| name == "email")
                .map(|(_, value)| value.into_owned()),
        }
        .filter(|email| email.len() <= 254 && email.contains('@'))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                "give an e-mail address: {\"email\": \"...\"}",
            )
        })?;
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "id_token": self.mint(&email),
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
            }),
        ))
    }
}

/// Serves `issuer` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    issuer: Arc<DevIssuer>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = ConnectionLimits::default();
    accept_loop(
        listener,
        shutdown,
        limits.connections_max,
        super::REFUSED,
        |stream, _peer, slot| {
            let issuer = Arc::clone(&issuer);
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |mut request: Request<Incoming>| {
                    let issuer = Arc::clone(&issuer);
                    BodyDeadline::stamp(&mut request, &limits);
                    async move {
                        let path = request.uri().path().to_string();
                        let response = match (request.method(), path.as_str()) {
                            (&Method::GET, "/.well-known/openid-configuration") => {
                                Ok(json(StatusCode::OK, &issuer.discovery()))
                            }
                            (&Method::GET, "/jwks") => Ok(json(StatusCode::OK, &issuer.jwks())),
                            (&Method::POST, "/token") => issuer.token(request).await,
                            _ => Err(ApiError::not_found(format!("no endpoint {path}"))),
                        };
                        Ok::<_, Infallible>(response.unwrap_or_else(ApiError::into_response))
                    }
                });
                let _ = limits
                    .http1()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves the dev issuer's own documents, as the node's HTTP fetch would.
    struct Documents(Arc<DevIssuer>);

    impl ca::oidc::Fetch for Documents {
        fn get<'a>(
            &'a self,
            url: &'a str,
            _limit: usize,
        ) -> ca::oidc::BoxFuture<'a, Result<Vec<u8>, ca::oidc::FetchError>> {
            let body = if url.ends_with("/.well-known/openid-configuration") {
                Ok(self.0.discovery().to_string().into_bytes())
            } else if url.ends_with("/jwks") {
                Ok(self.0.jwks().to_string().into_bytes())
            } else {
                Err(ca::oidc::FetchError(format!("no {url}")))
            };
            Box::pin(async move { body })
        }
    }

    #[derive(Debug)]
    struct FixedClock;

    impl crate::env::Clock for FixedClock {
        fn now_unix_ms(&self) -> u64 {
            1_800_000_000_000
        }
    }

    #[tokio::test]
    async fn the_ca_accepts_the_dev_issuers_tokens() {
        let key = p256::ecdsa::SigningKey::from_slice(&[11u8; 32]).expect("a valid scalar");
        let issuer = Arc::new(DevIssuer::new(
            "http://127.0.0.1:7301".into(),
            key,
            Arc::new(FixedClock),
        ));
        let verifier = ca::oidc::TokenVerifier::new(
            vec![ca::oidc::IssuerConfig {
                url: "http://127.0.0.1:7301".into(),
                client_id: "sigstore".into(),
                kind: ca::identity::IdentityKind::Email,
            }],
            Arc::new(Documents(Arc::clone(&issuer))),
        );
        let token = issuer.mint("dev@example.com");
        let identity = verifier
            .verify(&token, 1_800_000_000)
            .await
            .expect("the token verifies");
        assert_eq!(
            identity.san,
            ca::identity::San::Email("dev@example.com".into())
        );
        assert!(verifier.verify(&token, 1_800_000_000 + 700).await.is_err());
    }
}
