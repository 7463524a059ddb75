//! Getting an identity token without a browser on this machine: the OAuth 2.0 device
//! authorization grant (RFC 8628) through openidconnect, and the ambient tokens CI systems hand
//! to their jobs.
//!
//! The device flow discovers the issuer, asks for a device code, shows the user where to enter
//! it, polls the token endpoint at the interval the issuer sets, and checks the ID token it gets
//! (signature against the issuer's published keys, issuer, audience, expiry) before keeping it,
//! so a token for the wrong issuer or client is refused here rather than by the CA later.

use std::time::Duration;

use anyhow::{Context as _, bail};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, ClientId, ClientSecret, DeviceAuthorizationUrl,
    HttpRequest, HttpResponse, IssuerUrl, Nonce, ProviderMetadata, Scope,
};
use serde::{Deserialize, Serialize};

use super::net::Http;

/// The audience Sigstore CAs expect in CI tokens.
pub(crate) const SIGSTORE_AUDIENCE: &str = "sigstore";
/// Longest wait for the user to approve a device code, whatever the issuer allows.
const DEVICE_FLOW_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The issuer's discovery document with the device authorization endpoint (not part of the
/// core metadata openidconnect models).
#[derive(Clone, Debug, Deserialize, Serialize)]
struct DeviceEndpoint {
    device_authorization_endpoint: DeviceAuthorizationUrl,
}

impl AdditionalProviderMetadata for DeviceEndpoint {}

type DeviceProviderMetadata = ProviderMetadata<
    DeviceEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A transport failure of one OAuth request (an OAuth error answer is not one: openidconnect
/// reads those from the response).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct OAuthHttpError(String);

/// openidconnect's HTTP seam over `cairn`'s client. Redirects are not followed (`Http` never
/// does), as openidconnect requires against server-side request forgery.
fn oauth_http(http: &Http) -> impl Fn(HttpRequest) -> Result<HttpResponse, OAuthHttpError> + '_ {
    move |request: HttpRequest| {
        let method = request.method().clone();
        let url = request.uri().to_string();
        let headers: Vec<(&str, String)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?.to_owned())))
            .collect();
        // Every status goes back to openidconnect, which reads OAuth errors (400
        // authorization_pending, slow_down, access_denied, expired_token) from the body.
        let all: Vec<u16> = (100..600).collect();
        let answer = http
            .send(method, &url, &headers, request.body().clone(), &all)
            .map_err(|error| OAuthHttpError(format!("{error:#}")))?;
        let mut response = HttpResponse::new(answer.body.to_vec());
        *response.status_mut() = openidconnect::http::StatusCode::from_u16(answer.status)
            .map_err(|error| OAuthHttpError(error.to_string()))?;
        if let Some(content_type) = answer
            .content_type
            .as_deref()
            .and_then(|value| openidconnect::http::HeaderValue::from_str(value).ok())
        {
            response
                .headers_mut()
                .insert(openidconnect::http::header::CONTENT_TYPE, content_type);
        }
        Ok(response)
    }
}

/// Where the user approves a device code; `show` is called once, before polling starts.
pub(crate) struct DeviceLogin<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: Option<&'a str>,
}

impl DeviceLogin<'_> {
    /// Runs the device flow and returns the verified ID token.
    pub(crate) fn run(&self, http: &Http, show: impl FnOnce(&str, &str)) -> anyhow::Result<String> {
        let client_http = oauth_http(http);
        let issuer = IssuerUrl::new(self.issuer.to_owned())
            .with_context(|| format!("--issuer {:?} is not a URL", self.issuer))?;
        let metadata =
            DeviceProviderMetadata::discover(&issuer, &client_http).with_context(|| {
                format!(
                    "discovering {} (its /.well-known/openid-configuration must name a \
                 device_authorization_endpoint)",
                    self.issuer
                )
            })?;
        let device_endpoint = metadata
            .additional_metadata()
            .device_authorization_endpoint
            .clone();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.to_owned()),
            self.client_secret
                .map(|secret| ClientSecret::new(secret.to_owned())),
        )
        .set_device_authorization_url(device_endpoint)
        .set_auth_type(AuthType::RequestBody);
        let details: CoreDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scope(Scope::new("openid".into()))
            .add_scope(Scope::new("email".into()))
            .request(&client_http)
            .map_err(|error| anyhow::anyhow!("{}", describe(&error)))
            .context("asking the issuer for a device code")?;
        let url = details
            .verification_uri_complete()
            .map(|url| url.secret().clone())
            .unwrap_or_else(|| details.verification_uri().to_string());
        show(&url, details.user_code().secret());
        let token = client
            .exchange_device_access_token(&details)
            .context("the issuer's device code answer")?
            .request(&client_http, std::thread::sleep, Some(DEVICE_FLOW_TIMEOUT))
            .map_err(|error| anyhow::anyhow!("{}", describe(&error)))
            .context("waiting for the device code's approval")?;
        let id_token = token
            .extra_fields()
            .id_token()
            .context("the issuer answered without an ID token (is `openid` allowed?)")?;
        // No nonce in the device flow: the token comes straight from the token endpoint over
        // the connection this client opened.
        let no_nonce = |_: Option<&Nonce>| Ok(());
        id_token
            .claims(&client.id_token_verifier(), no_nonce)
            .map_err(|error| anyhow::anyhow!("{}", describe(&error)))
            .context("the issuer's ID token does not verify")?;
        Ok(id_token.to_string())
    }
}

/// An error with its causes on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The token a CI job's environment offers, and the system it came from: GitHub Actions
/// (`ACTIONS_ID_TOKEN_REQUEST_URL` and `_TOKEN`, with `id-token: write`), or any system that
/// puts one in `SIGSTORE_ID_TOKEN` (GitLab's `id_tokens:` with `aud: sigstore`, Buildkite and
/// CircleCI steps that export it). `None` outside CI.
pub(crate) fn ambient_token(http: &Http) -> anyhow::Result<Option<(String, &'static str)>> {
    if let Some(token) = std::env::var("SIGSTORE_ID_TOKEN")
        .ok()
        .filter(|token| !token.trim().is_empty())
    {
        return Ok(Some((token.trim().to_owned(), "$SIGSTORE_ID_TOKEN")));
    }
    let url = std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL").unwrap_or_default();
    let bearer = std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").unwrap_or_default();
    match (url.is_empty(), bearer.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => {
            github_actions_token(http, &url, &bearer).map(|token| Some((token, "GitHub Actions")))
        }
        _ => bail!(
            "GitHub Actions offers only one of ACTIONS_ID_TOKEN_REQUEST_URL and \
             ACTIONS_ID_TOKEN_REQUEST_TOKEN: give the job `permissions: id-token: write`"
        ),
    }
}

/// GitHub Actions' OIDC token for the `sigstore` audience.
fn github_actions_token(http: &Http, url: &str, bearer: &str) -> anyhow::Result<String> {
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}audience={SIGSTORE_AUDIENCE}");
    let answer = http
        .send(
            hyper::Method::GET,
            &url,
            &[("authorization", format!("bearer {bearer}"))],
            Vec::new(),
            &[],
        )
        .context("asking GitHub Actions for an OIDC token")?;
    answer.json()?["value"]
        .as_str()
        .map(str::to_owned)
        .context("GitHub Actions answered without a token (`value`)")
}
