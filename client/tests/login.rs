//! `cairn login` without `--dev`: the OAuth device flow against an independent, certified
//! OpenID provider (panva/oidc-provider on loopback, `ca/tests/oidc-provider`, installed by
//! `npm ci` there; scripts/test does it), with the test playing the user's browser on the
//! provider's own pages; and the ambient tokens of CI jobs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PROVIDER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ca/tests/oidc-provider");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The npm oidc-provider on a loopback port, with the device flow on.
struct Provider {
    url: String,
    child: Child,
}

impl Provider {
    fn start() -> Provider {
        assert!(
            Path::new(PROVIDER_DIR)
                .join("node_modules/oidc-provider")
                .exists(),
            "the test OpenID provider is not installed: run `npm ci` in {PROVIDER_DIR} \
             (scripts/test does)"
        );
        let port = free_port();
        let mut child = Command::new("node")
            .arg("server.js")
            .arg(port.to_string())
            .current_dir(PROVIDER_DIR)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("running node (Node.js) for the test OpenID provider");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with("ready "), "provider said {line:?}");
        // Keep reading: the provider's notices would otherwise hit a closed pipe and fail the
        // request that prints them.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Provider {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange over a fresh connection: status, headers (lowercased names), body.
fn exchange(
    url: &str,
    method: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream =
        TcpStream::connect(host).unwrap_or_else(|error| panic!("{method} {url}: {error}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // Node may reset the connection after its answer to a `connection: close` request; what
    // was read before the reset is the whole answer.
    if let Err(error) = stream.read_to_end(&mut answer) {
        assert!(
            error.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty(),
            "{method} {url}: {error}\n{request}"
        );
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The user's browser: follows redirects, keeps cookies, and submits the provider's forms (the
/// code confirmation, the sign-in as `login`, the consent) the way a person clicking through
/// them would; `abort` presses the confirmation page's Abort button instead.
struct Browser {
    origin: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(origin: &str) -> Browser {
        Browser {
            origin: origin.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    fn request(&mut self, method: &str, url: &str, form: &str) -> (u16, Option<String>, String) {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.origin)
        } else {
            url.to_owned()
        };
        let mut headers = Vec::new();
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            headers.push(("cookie", cookie));
        }
        if method == "POST" {
            headers.push(("content-type", "application/x-www-form-urlencoded".into()));
        }
        let (status, answer_headers, body) = exchange(&url, method, &headers, form);
        let mut location = None;
        for (name, value) in answer_headers {
            if name == "set-cookie" {
                let pair = value.split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                self.cookies.insert(name.to_owned(), value.to_owned());
            } else if name == "location" {
                location = Some(value);
            }
        }
        (status, location, body)
    }

    /// Opens `url` and clicks through to the end; returns the last page.
    fn approve(&mut self, url: &str, login: &str, abort: bool) -> String {
        let (mut method, mut target, mut form) = ("GET".to_owned(), url.to_owned(), String::new());
        for _ in 0..20 {
            let (status, location, page) = self.request(&method, &target, &form);
            if let Some(location) = location {
                (method, target, form) = ("GET".into(), location, String::new());
                continue;
            }
            assert_eq!(status, 200, "{method} {target}: {page}");
            let aborted = abort && form.contains("abort=yes");
            let Some(action) = attribute(&page, "<form", "action").filter(|_| !aborted) else {
                return page;
            };
            let mut fields: Vec<(String, String)> = hidden_inputs(&page);
            if page.contains("name=\"user_code\"") {
                fields.push((if abort { "abort" } else { "confirm" }.into(), "yes".into()));
            }
            if page.contains("name=\"login\"") {
                fields.push(("login".into(), login.into()));
                fields.push(("password".into(), "any".into()));
            }
            form = fields
                .iter()
                .map(|(name, value)| format!("{name}={}", encode(value)))
                .collect::<Vec<_>>()
                .join("&");
            (method, target) = ("POST".into(), action);
        }
        panic!("the provider's pages did not end within 20 steps");
    }
}

fn attribute(page: &str, tag: &str, name: &str) -> Option<String> {
    let start = page.find(tag)?;
    let element = &page[start..start + page[start..].find('>')?];
    let at = element.find(&format!("{name}=\""))? + name.len() + 2;
    Some(element[at..at + element[at..].find('"')?].to_owned())
}

fn hidden_inputs(page: &str) -> Vec<(String, String)> {
    page.match_indices("<input type=\"hidden\"")
        .filter_map(|(at, _)| {
            let element = &page[at..];
            Some((
                attribute(element, "<input", "name")?,
                attribute(element, "<input", "value")?,
            ))
        })
        .collect()
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `cairn` with its own home and no CI environment.
fn cairn(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .env("CAIRN_HOME", home)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
    command
}

/// Starts `cairn login --issuer`, reads the URL it shows, and plays the user with `browse`.
fn device_login(
    provider: &Provider,
    home: &Path,
    secret: &str,
    browse: impl FnOnce(&str),
) -> (std::process::ExitStatus, String) {
    let mut child = cairn(home)
        .args(["login", "--issuer", &provider.url])
        .args(["--client-secret", secret])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut shown = String::new();
    let mut browse = Some(browse);
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        shown.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("http://")
            && let Some(browse) = browse.take()
        {
            browse(&format!("http://{url}"));
        }
    }
    (child.wait().unwrap(), shown)
}

#[test]
fn device_flow_login_keeps_a_verified_token_for_the_approved_identity() {
    let provider = Provider::start();
    let home = tempfile::tempdir().unwrap();
    let (status, shown) = device_login(&provider, home.path(), "cairn-test", |url| {
        let page = Browser::new(&provider.url).approve(url, "device-user@example.com", false);
        assert!(page.contains("Sign-in Success"), "{page}");
    });
    assert!(status.success(), "{shown}");
    assert!(shown.contains("check that it shows the code"), "{shown}");
    let token = std::fs::read_to_string(home.path().join("identity-token")).unwrap();
    let claims = claims(token.trim());
    assert_eq!(claims["email"], "device-user@example.com", "{claims}");
    assert_eq!(claims["iss"], provider.url.as_str());
    assert_eq!(claims["aud"], "sigstore");
    assert!(
        shown.contains("logged in as device-user@example.com"),
        "{shown}"
    );
}

#[test]
fn device_flow_login_fails_clearly_when_the_user_aborts_or_the_client_is_wrong() {
    let provider = Provider::start();
    let home = tempfile::tempdir().unwrap();
    let (status, shown) = device_login(&provider, home.path(), "cairn-test", |url| {
        Browser::new(&provider.url).approve(url, "device-user@example.com", true);
    });
    assert_eq!(status.code(), Some(5), "{shown}");
    assert!(shown.contains("access_denied"), "{shown}");
    assert!(!home.path().join("identity-token").exists());

    let (status, shown) = device_login(&provider, home.path(), "not-the-secret", |_| {
        panic!("no URL is shown for a client the issuer refuses")
    });
    assert_eq!(status.code(), Some(5), "{shown}");
    assert!(shown.contains("invalid_client"), "{shown}");

    let output = cairn(home.path())
        .args(["login", "--issuer", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("discovering http://127.0.0.1:1"),
        "{stderr}"
    );
}

/// GitHub Actions' token service, as a job sees it: `GET $ACTIONS_ID_TOKEN_REQUEST_URL
/// &audience=sigstore` with the request token as bearer, answering `{"value": JWT}`. (GitHub's
/// own service cannot run here; this serves its documented protocol on loopback.)
fn github_token_service(token: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/_apis/token?api-version=2.0",
        listener.local_addr().unwrap()
    );
    let served = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let (status, body) = if head
            .starts_with("GET /_apis/token?api-version=2.0&audience=sigstore ")
            && head
                .to_lowercase()
                .contains("authorization: bearer job-request-token")
        {
            ("200 OK", format!("{{\"value\":\"{token}\"}}"))
        } else {
            (
                "401 Unauthorized",
                "{\"message\":\"bad request\"}".to_owned(),
            )
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        head
    });
    (url, served)
}

#[test]
fn ci_ambient_tokens_are_taken_without_flags() {
    let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://token.actions.githubusercontent.com","sub":"repo:o/r:ref:refs/heads/main","aud":"sigstore","exp":4102444800}"#);
    let token: &'static str = Box::leak(format!("e30.{payload}.c2ln").into_boxed_str());
    let home = tempfile::tempdir().unwrap();

    let (url, served) = github_token_service(token);
    let output = cairn(home.path())
        .arg("login")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "job-request-token")
        .output()
        .unwrap();
    let head = served.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\nrequest:\n{head}");
    assert!(stderr.contains("from GitHub Actions"), "{stderr}");
    let kept = std::fs::read_to_string(home.path().join("identity-token")).unwrap();
    assert_eq!(kept.trim(), token);

    // $SIGSTORE_ID_TOKEN (GitLab and others) comes first.
    let output = cairn(home.path())
        .args(["login", "--print-token"])
        .env("SIGSTORE_ID_TOKEN", token)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), token);

    // Half a GitHub Actions setup is a clear error, not a silent fallback.
    let output = cairn(home.path())
        .arg("login")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &url)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&output.stderr).contains("id-token: write"));

    // Nothing at all: say what to do.
    let output = cairn(home.path()).arg("login").output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--issuer URL"));
}
