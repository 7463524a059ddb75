//! The load itself: N client tasks, each on its own keep-alive HTTP/1.1 connection to one node,
//! submitting pre-signed entries and verifying every answer.
//!
//! Why raw `hyper::client::conn::http1` instead of a pooled client (hyper-util's or reqwest):
//! one task = one connection = one request at a time is exactly the closed-loop model, it makes
//! "clients" mean connections to the server, and the spread over nodes is explicit (client i
//! talks to node i mod n). hyper is already the node's HTTP stack, so nothing new is built.
//!
//! Closed loop (default): each client sends its next request as soon as the previous one is
//! verified; latency is from send to verified answer. Open loop (`--rate`): request k is due at
//! `start + k / rate`; a client that falls behind sends late, and latency is measured from the
//! due time, so a stalled server shows up as latency instead of silently lowering the offered
//! load (coordinated omission).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::stats::{Latencies, Tally};
use crate::verify::ResponseVerifier;
use crate::workload::Prepared;

/// How a run is driven.
#[derive(Clone, Debug)]
pub(crate) struct LoadConfig {
    pub(crate) urls: Vec<String>,
    pub(crate) clients: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// Total offered appends/s (open loop); `None` for closed loop.
    pub(crate) rate: Option<f64>,
    /// Longest wait for one attempt's answer.
    pub(crate) timeout: Duration,
    /// Attempts per entry before it counts as an error.
    pub(crate) attempts_max: u32,
}

/// Counters the progress line reads while the run goes on (every phase, not only the window).
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) ok: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) in_flight: AtomicU64,
}

/// What one client saw inside the measured window.
#[derive(Debug)]
pub(crate) struct ClientStats {
    pub(crate) latencies: Latencies,
    pub(crate) ok: u64,
    /// Verified answers with status 200: the entry was already logged (a retry of ours that
    /// had in fact committed).
    pub(crate) duplicates: u64,
    pub(crate) errors: Tally,
    pub(crate) retries: Tally,
}

impl ClientStats {
    fn new() -> ClientStats {
        ClientStats {
            latencies: Latencies::new(),
            ok: 0,
            duplicates: 0,
            errors: Tally::default(),
            retries: Tally::default(),
        }
    }

    pub(crate) fn merge(&mut self, other: &ClientStats) {
        self.latencies.merge(&other.latencies);
        self.ok += other.ok;
        self.duplicates += other.duplicates;
        self.errors.merge(&other.errors);
        self.retries.merge(&other.retries);
    }
}

/// Everything the client tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: LoadConfig,
    pub(crate) requests: Vec<Prepared>,
    /// The next request to send (closed loop).
    next: AtomicUsize,
    /// Set when the pre-signed requests ran out before the window ended.
    pub(crate) exhausted: std::sync::atomic::AtomicBool,
    pub(crate) verifier: Arc<ResponseVerifier>,
    pub(crate) live: Live,
    /// Load starts.
    pub(crate) start: Instant,
    /// Measurement starts (after warm-up).
    pub(crate) window_start: Instant,
    /// Measurement and load end.
    pub(crate) end: Instant,
}

impl Shared {
    pub(crate) fn new(
        config: LoadConfig,
        requests: Vec<Prepared>,
        verifier: Arc<ResponseVerifier>,
        start: Instant,
    ) -> Shared {
        let window_start = start + config.warmup;
        let end = window_start + config.duration;
        Shared {
            config,
            requests,
            next: AtomicUsize::new(0),
            exhausted: std::sync::atomic::AtomicBool::new(false),
            verifier,
            live: Live::default(),
            start,
            window_start,
            end,
        }
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.window_start && at <= self.end
    }
}

/// One node's address, for a raw connection.
pub(crate) fn authority(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// node URLs are supported"))?;
    Ok(rest.split('/').next().unwrap_or(rest).to_string())
}

pub(crate) async fn connect(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    // Small request/response exchanges: Nagle's algorithm would add delayed-ACK stalls.
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the server closes it; either way
        // the client notices on its next request and reconnects.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The result of one attempt.
enum Attempt {
    Answer {
        status: u16,
        retry_after: Option<u64>,
        body: Bytes,
    },
    Transport(&'static str),
}

async fn attempt(
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    authority: &str,
    body: Bytes,
    timeout: Duration,
) -> Attempt {
    let exchange = async {
        if sender.as_ref().is_none_or(SendRequest::is_closed) {
            *sender = Some(connect(authority).await.map_err(|_| "connect")?);
        }
        let Some(connection) = sender.as_mut() else {
            return Err("connect");
        };
        connection.ready().await.map_err(|_| "transport")?;
        let request = hyper::Request::post("/api/v2/log/entries")
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|_| "request")?;
        let response = connection
            .send_request(request)
            .await
            .map_err(|_| "transport")?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| "transport")?
            .to_bytes();
        Ok::<_, &'static str>(Attempt::Answer {
            status,
            retry_after,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(kind)) => {
            // The connection may be half-used; start afresh.
            *sender = None;
            Attempt::Transport(kind)
        }
        Err(_) => {
            *sender = None;
            Attempt::Transport("timeout")
        }
    }
}

/// One client: runs until the end of the window, recording into `stats`.
///
/// `stats` is a per-client mutex, locked briefly once per answer and never contended during
/// the run: it lets the driver read the numbers after aborting the task at the window's end
/// without waiting for its in-flight request.
pub(crate) async fn client(
    shared: Arc<Shared>,
    id: usize,
    stats: Arc<Mutex<ClientStats>>,
) -> anyhow::Result<()> {
    let config = &shared.config;
    let authority = authority(&config.urls[id % config.urls.len()])?;
    let mut sender = None;
    let mut sequence = 0usize;
    loop {
        // Which request, and from when its latency counts.
        let (index, due) = match config.rate {
            None => {
                let now = Instant::now();
                if now >= shared.end {
                    return Ok(());
                }
                (shared.next.fetch_add(1, Ordering::Relaxed), None)
            }
            Some(rate) => {
                let index = id + sequence * config.clients;
                sequence += 1;
                let due = shared.start + Duration::from_secs_f64(index as f64 / rate);
                if due >= shared.end {
                    return Ok(());
                }
                tokio::time::sleep_until(due).await;
                (index, Some(due))
            }
        };
        let Some(request) = shared.requests.get(index) else {
            shared.exhausted.store(true, Ordering::Relaxed);
            return Ok(());
        };
        let started = due.unwrap_or_else(Instant::now);
        shared.live.in_flight.fetch_add(1, Ordering::Relaxed);
        let outcome = submit(&shared, &mut sender, &authority, request, &stats).await;
        shared.live.in_flight.fetch_sub(1, Ordering::Relaxed);
        let finished = Instant::now();
        let counted = shared.in_window(finished);
        let mut stats = lock(&stats);
        match outcome {
            Ok(duplicate) => {
                shared.live.ok.fetch_add(1, Ordering::Relaxed);
                if counted {
                    stats.ok += 1;
                    stats.duplicates += u64::from(duplicate);
                    stats.latencies.record(finished - started);
                }
            }
            Err(kind) => {
                shared.live.errors.fetch_add(1, Ordering::Relaxed);
                if counted {
                    stats.errors.add(&kind);
                }
            }
        }
    }
}

fn lock(stats: &Mutex<ClientStats>) -> std::sync::MutexGuard<'_, ClientStats> {
    // Plain counters: a panic elsewhere cannot leave them inconsistent.
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Submits one entry, retrying what is safe to retry, and verifies the answer. `Ok(true)` for a
/// verified duplicate answer, `Err(kind)` for a final failure.
async fn submit(
    shared: &Shared,
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    authority: &str,
    request: &Prepared,
    stats: &Mutex<ClientStats>,
) -> Result<bool, String> {
    let config = &shared.config;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (kind, wait) =
            match attempt(sender, authority, request.body.clone(), config.timeout).await {
                Attempt::Answer {
                    status: status @ (200 | 201),
                    body,
                    ..
                } => {
                    return match shared.verifier.verify(&body, &request.leaf_hash) {
                        Ok(_) => Ok(status == 200),
                        Err(error) => Err(error.kind().to_string()),
                    };
                }
                // Overload and unknown outcomes: the node asks us to come back; resending the same
                // entry is safe because the log deduplicates it.
                Attempt::Answer {
                    status: status @ (429 | 503),
                    retry_after,
                    ..
                } => (
                    format!("http {status}"),
                    Duration::from_secs(retry_after.unwrap_or(1).min(5)),
                ),
                Attempt::Answer { status, .. } => return Err(format!("http {status}")),
                Attempt::Transport(kind) => (kind.to_string(), Duration::from_millis(50)),
            };
        if attempts >= config.attempts_max {
            return Err(kind);
        }
        shared.live.retries.fetch_add(1, Ordering::Relaxed);
        if shared.in_window(Instant::now()) {
            lock(stats).retries.add(&kind);
        }
        tokio::time::sleep(wait).await;
    }
}

/// A running client task.
pub(crate) type ClientTask = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Starts every client; returns their tasks and stats.
pub(crate) fn spawn_clients(
    shared: &Arc<Shared>,
) -> (Vec<ClientTask>, Vec<Arc<Mutex<ClientStats>>>) {
    let mut tasks = Vec::new();
    let mut all = Vec::new();
    for id in 0..shared.config.clients {
        let stats = Arc::new(Mutex::new(ClientStats::new()));
        all.push(Arc::clone(&stats));
        tasks.push(tokio::spawn(client(Arc::clone(shared), id, stats)));
    }
    (tasks, all)
}

/// Merges every client's stats.
pub(crate) fn merged(stats: &[Arc<Mutex<ClientStats>>]) -> ClientStats {
    let mut total = ClientStats::new();
    for one in stats {
        total.merge(&lock(one));
    }
    total
}

/// A plain GET, for `/metrics` and `/logs`.
pub(crate) async fn get(url: &str) -> anyhow::Result<Bytes> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are supported"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut sender = connect(host).await?;
    let request = hyper::Request::get(format!("/{path}"))
        .header(hyper::header::HOST, host)
        .body(Full::new(Bytes::new()))?;
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .with_context(|| format!("GET {url}: timeout"))??;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(status.is_success(), "GET {url}: {status}");
    Ok(body)
}
