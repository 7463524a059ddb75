//! Helpers shared by the node's multi-process tests.

// Test harness code: a failed unwrap is a failed test. Each test crate that includes this
// module uses only part of it.
#![allow(clippy::unwrap_used, dead_code)]

pub(crate) mod cluster;

/// A free port below Linux's ephemeral range (32768 and up): a port taken from that range can
/// be grabbed as the source port of some outgoing connection while its node is down, and the
/// node then cannot bind it again on restart.
pub(crate) fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let offset = u16::try_from(std::process::id() % 97).unwrap() * 100;
    loop {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2_000;
        let port = 20_000 + (offset + step) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A Rekor v1 hashedrekord request for `artifact`, signed by `key`.
pub(crate) fn v1_hashedrekord_request(
    key: &p256::ecdsa::SigningKey,
    artifact: &[u8],
) -> serde_json::Value {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::pkcs8::EncodePublicKey;

    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let digest = tlog::Hash::digest(artifact);
    let signature: p256::ecdsa::Signature = key.sign_prehash(digest.as_bytes()).unwrap();
    serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": { "hash": { "algorithm": "sha256", "value": digest.to_hex() } },
            "signature": {
                "content": BASE64.encode(signature.to_der().as_bytes()),
                "publicKey": { "content": BASE64.encode(pem) },
            },
        },
    })
}
