//! Limits per client address on the public listener's costly requests: appends and certificate
//! requests. Pure (no IO, no clock: callers pass the time in milliseconds of a monotonic clock);
//! `http` applies it to each request before its body is read.
//!
//! One token bucket per client address and class: it holds up to `burst` tokens, refills at
//! `per_minute` tokens a minute, and each request takes one; a request finding no token is
//! refused with the seconds until one is there. Token amounts are integers in units of
//! 1/60,000 of a token, so a rate per minute refills exactly `per_minute` units a millisecond.
//! An IPv6 client is keyed by its /64 (one host usually holds a whole /64), an IPv4 one (or an
//! IPv4-mapped IPv6 address) by its address.
//!
//! The table of buckets is bounded: past `addresses_max` addresses, adding one evicts the
//! oldest, unless it was used since it was queued (then it is queued again, a second chance,
//! a few times at most per insertion). A flood of new addresses therefore costs constant time
//! per request and bounded memory; an evicted address merely starts again with a full bucket.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

/// Milliseconds in a minute: the units of one token.
const UNITS_PER_TOKEN: u64 = 60_000;
/// Most queued entries looked at (and given a second chance) to evict one.
const SECOND_CHANCES_MAX: usize = 8;

/// What a limited request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// An append: Rekor v2 or v1 entry creation.
    Writes,
    /// A certificate request to the keyless CA.
    Certificates,
}

impl Class {
    /// The class's name, as metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            Class::Writes => "writes",
            Class::Certificates => "certificates",
        }
    }
}

/// One class's rate: `per_minute` tokens a minute, at most `burst` at once; `per_minute` 0
/// means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added a minute (0: unlimited).
    pub per_minute: u32,
    /// Most tokens a bucket holds: how many requests a new or rested client may send at once.
    pub burst: u32,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate {
        per_minute: 0,
        burst: 0,
    };

    fn capacity(self) -> u64 {
        u64::from(self.burst.max(1)) * UNITS_PER_TOKEN
    }
}

/// What `[http]` asks of the limits: each class's rate, the table's bound, and the proxies whose
/// `X-Forwarded-For` is believed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Appends per client address.
    pub writes: Rate,
    /// Certificate requests per client address.
    pub certificates: Rate,
    /// Most client addresses tracked per class.
    pub addresses_max: usize,
    /// The peers whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: TrustedProxies,
}

impl ClientLimits {
    /// No limit on anything (in-process servers, benchmarks).
    pub fn unlimited() -> ClientLimits {
        ClientLimits {
            writes: Rate::UNLIMITED,
            certificates: Rate::UNLIMITED,
            ..ClientLimits::default()
        }
    }

    fn rate(&self, class: Class) -> Rate {
        match class {
            Class::Writes => self.writes,
            Class::Certificates => self.certificates,
        }
    }
}

impl Default for ClientLimits {
    /// The defaults `[http]` documents: 300 appends a minute (burst 60) and 60 certificates a
    /// minute (burst 20) per address, 65,536 addresses per class, no trusted proxy.
    fn default() -> ClientLimits {
        ClientLimits {
            writes: Rate {
                per_minute: 300,
                burst: 60,
            },
            certificates: Rate {
                per_minute: 60,
                burst: 20,
            },
            addresses_max: 65_536,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Address ranges (`10.0.0.0/8`, `2001:db8::/32`, or single addresses) of the proxies whose
/// `X-Forwarded-For` header is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses each range; the error names the one that is not an address or `address/bits`.
    pub fn parse(ranges: &[String]) -> Result<TrustedProxies, String> {
        ranges
            .iter()
            .map(|range| {
                let bad = || format!("{range:?} is not an IP address or address/prefix-length");
                let (address, bits) = match range.trim().split_once('/') {
                    Some((address, bits)) => (address, Some(bits)),
                    None => (range.trim(), None),
                };
                let address = normalise(address.parse::<IpAddr>().map_err(|_| bad())?);
                let width = if address.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    Some(bits) => bits.parse::<u8>().map_err(|_| bad())?,
                    None => width,
                };
                if bits > width {
                    return Err(bad());
                }
                Ok((address, bits))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` is in one of the ranges.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = normalise(address);
        self.0
            .iter()
            .any(|&(range, bits)| prefix(range, bits) == prefix(address, bits))
    }

    /// The client a request came from: `peer` itself, unless `peer` is a trusted proxy; then
    /// the `X-Forwarded-For` list (`forwarded_for`, its header values in order) is read from
    /// the right, past trusted proxies, to the first address that is not one. An entry that is
    /// not an address stops the walk at the trusted hop that wrote it, so a client cannot pick
    /// its own key by writing garbage.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let mut client = normalise(peer);
        if !self.contains(client) {
            return client;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).collect();
        for hop in hops.iter().rev() {
            let Some(address) = parse_hop(hop) else {
                return client;
            };
            client = address;
            if !self.contains(client) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .map(normalise)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn normalise(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// `address` with all but its first `bits` bits cleared.
fn prefix(address: IpAddr, bits: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// The key a client's bucket is filed under: its IPv4 address, or its IPv6 /64.
pub fn client_key(address: IpAddr) -> IpAddr {
    let address = normalise(address);
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(_) => prefix(address, 64),
    }
}

/// One client's tokens, in units, as of `at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    units: u64,
    at_ms: u64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn full(rate: Rate, now_ms: u64) -> Bucket {
        Bucket {
            units: rate.capacity(),
            at_ms: now_ms,
        }
    }

    /// Takes one token at `now_ms` (after refilling for the time passed), or returns the
    /// milliseconds until one is there.
    pub fn take(&mut self, rate: Rate, now_ms: u64) -> Result<(), u64> {
        let elapsed = now_ms.saturating_sub(self.at_ms);
        self.units = self
            .units
            .saturating_add(elapsed.saturating_mul(u64::from(rate.per_minute)))
            .min(rate.capacity());
        self.at_ms = self.at_ms.max(now_ms);
        if self.units >= UNITS_PER_TOKEN {
            self.units -= UNITS_PER_TOKEN;
            return Ok(());
        }
        let missing = UNITS_PER_TOKEN - self.units;
        let per_ms = u64::from(rate.per_minute.max(1));
        Err(missing.div_ceil(per_ms))
    }
}

#[derive(Debug)]
struct Entry {
    bucket: Bucket,
    /// When the bucket was last used.
    used_ms: u64,
    /// `used_ms` when the entry was (re)queued: used since if `used_ms` is larger.
    queued_ms: u64,
}

/// The buckets of one class, at most `max` of them (see the module's notes on eviction).
#[derive(Debug)]
pub struct BucketTable {
    entries: HashMap<IpAddr, Entry>,
    /// Every key of `entries` once, oldest first.
    order: VecDeque<IpAddr>,
    max: usize,
}

impl BucketTable {
    /// An empty table of at most `max` (at least 1) buckets.
    pub fn new(max: usize) -> BucketTable {
        BucketTable {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// How many buckets are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no bucket is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` has a bucket.
    pub fn contains(&self, key: IpAddr) -> bool {
        self.entries.contains_key(&key)
    }

    /// Takes a token from `key`'s bucket at `now_ms` (a new bucket starts full), or returns
    /// the milliseconds until one is there.
    pub fn take(&mut self, key: IpAddr, rate: Rate, now_ms: u64) -> Result<(), u64> {
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= self.max {
                self.evict_one();
            }
            self.entries.insert(
                key,
                Entry {
                    bucket: Bucket::full(rate, now_ms),
                    used_ms: now_ms,
                    queued_ms: now_ms,
                },
            );
            self.order.push_back(key);
        }
        let entry = self.entries.get_mut(&key).ok_or(0u64)?;
        entry.used_ms = entry.used_ms.max(now_ms);
        entry.bucket.take(rate, now_ms)
    }

    /// Removes the oldest bucket not used since it was queued, giving at most
    /// [`SECOND_CHANCES_MAX`] used ones another turn first.
    fn evict_one(&mut self) {
        for _ in 0..SECOND_CHANCES_MAX {
            let Some(key) = self.order.pop_front() else {
                return;
            };
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.used_ms > entry.queued_ms {
                entry.queued_ms = entry.used_ms;
                self.order.push_back(key);
                continue;
            }
            self.entries.remove(&key);
            return;
        }
        if let Some(key) = self.order.pop_front() {
            self.entries.remove(&key);
        }
    }
}

/// The limits of one listener: a bucket table per class behind a lock.
#[derive(Debug)]
pub struct Limiter {
    limits: ClientLimits,
    writes: Mutex<BucketTable>,
    certificates: Mutex<BucketTable>,
}

impl Limiter {
    /// A limiter with empty tables.
    pub fn new(limits: ClientLimits) -> Limiter {
        Limiter {
            writes: Mutex::new(BucketTable::new(limits.addresses_max)),
            certificates: Mutex::new(BucketTable::new(limits.addresses_max)),
            limits,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &ClientLimits {
        &self.limits
    }

    /// Charges a `class` request from `client` at `now_ms`; `Err` with the whole seconds to
    /// wait (at least 1) when its bucket is empty.
    pub fn check(&self, class: Class, client: IpAddr, now_ms: u64) -> Result<(), u64> {
        let rate = self.limits.rate(class);
        if rate.per_minute == 0 {
            return Ok(());
        }
        let table = match class {
            Class::Writes => &self.writes,
            Class::Certificates => &self.certificates,
        };
        table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(client_key(client), rate, now_ms)
            .map_err(|wait_ms| wait_ms.div_ceil(1000).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const RATE: Rate = Rate {
        per_minute: 60,
        burst: 3,
    };

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let mut bucket = Bucket::full(RATE, 1_000);
        for _ in 0..3 {
            assert_eq!(bucket.take(RATE, 1_000), Ok(()));
        }
        // Empty: one token a second at 60 a minute.
        assert_eq!(bucket.take(RATE, 1_000), Err(1_000));
        assert_eq!(bucket.take(RATE, 1_400), Err(600));
        assert_eq!(bucket.take(RATE, 2_000), Ok(()));
        assert_eq!(bucket.take(RATE, 2_000), Err(1_000));
        // A long rest fills it to the burst, never past it.
        let later = 2_000 + 3_600_000;
        for _ in 0..3 {
            assert_eq!(bucket.take(RATE, later), Ok(()));
        }
        assert!(bucket.take(RATE, later).is_err());
        // A clock that steps back neither refills nor panics.
        assert!(bucket.take(RATE, 0).is_err());
    }

    #[test]
    fn slow_rates_wait_whole_refills() {
        let rate = Rate {
            per_minute: 1,
            burst: 1,
        };
        let mut bucket = Bucket::full(rate, 0);
        assert_eq!(bucket.take(rate, 0), Ok(()));
        assert_eq!(bucket.take(rate, 0), Err(60_000));
        assert_eq!(bucket.take(rate, 59_999), Err(1));
        assert_eq!(bucket.take(rate, 60_000), Ok(()));
        // Huge rates and bursts saturate instead of overflowing.
        let huge = Rate {
            per_minute: u32::MAX,
            burst: u32::MAX,
        };
        let mut bucket = Bucket::full(huge, 0);
        assert_eq!(bucket.take(huge, u64::MAX), Ok(()));
    }

    #[test]
    fn the_limiter_answers_whole_seconds_per_client() {
        let limiter = Limiter::new(ClientLimits {
            writes: RATE,
            certificates: Rate::UNLIMITED,
            ..ClientLimits::default()
        });
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..3 {
            assert_eq!(limiter.check(Class::Writes, a, 0), Ok(()));
        }
        assert_eq!(limiter.check(Class::Writes, a, 0), Err(1));
        assert_eq!(limiter.check(Class::Writes, a, 999), Err(1));
        assert_eq!(limiter.check(Class::Writes, b, 0), Ok(()));
        // An unlimited class never refuses.
        for _ in 0..100 {
            assert_eq!(limiter.check(Class::Certificates, a, 0), Ok(()));
        }
        // A slow rate waits more than a second.
        let slow = Limiter::new(ClientLimits {
            writes: Rate {
                per_minute: 2,
                burst: 1,
            },
            ..ClientLimits::default()
        });
        assert_eq!(slow.check(Class::Writes, a, 0), Ok(()));
        assert_eq!(slow.check(Class::Writes, a, 0), Err(30));
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(client_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff::1")),
            client_key(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:3::1")),
            client_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn the_table_stays_bounded_and_evicts_the_idle_first() {
        let rate = RATE;
        let mut table = BucketTable::new(3);
        let (a, b, c, d) = (
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            ip("10.0.0.3"),
            ip("10.0.0.4"),
        );
        table.take(a, rate, 0).unwrap();
        table.take(b, rate, 1).unwrap();
        table.take(c, rate, 2).unwrap();
        // a is used again, so b, the oldest idle one, goes when d arrives.
        table.take(a, rate, 3).unwrap();
        table.take(d, rate, 4).unwrap();
        assert_eq!(table.len(), 3);
        assert!(table.contains(a) && !table.contains(b) && table.contains(c));
        // A flood of new addresses never grows the table.
        for n in 0..10_000u32 {
            let key = IpAddr::V4((0x0b00_0000 + n).into());
            table.take(key, rate, 5 + u64::from(n)).unwrap();
            assert!(table.len() <= 3);
        }
        // Every key is still queued once (no leak in the order queue).
        assert_eq!(table.order.len(), table.len());
    }

    #[test]
    fn a_table_of_busy_clients_still_evicts() {
        let mut table = BucketTable::new(2);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        table.take(a, RATE, 0).unwrap();
        table.take(b, RATE, 0).unwrap();
        for now in 1..20 {
            let _ = table.take(a, RATE, now);
            let _ = table.take(b, RATE, now);
        }
        table.take(ip("10.0.0.3"), RATE, 30).unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table.order.len(), 2);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let header = ["203.0.113.9"];
        assert_eq!(
            none.client(ip("198.51.100.1"), header.into_iter()),
            ip("198.51.100.1")
        );
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "2001:db8::1".into()]).unwrap();
        // From a trusted proxy: the rightmost address that is not a proxy.
        let hops = ["203.0.113.9, 198.51.100.4", "10.1.1.1"];
        assert_eq!(
            proxies.client(ip("10.0.0.5"), hops.into_iter()),
            ip("198.51.100.4")
        );
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.5"), ["[2001:db8::7]:443"].into_iter()),
            ip("2001:db8::7")
        );
        // From anyone else, the header is ignored.
        assert_eq!(
            proxies.client(ip("198.51.100.1"), header.into_iter()),
            ip("198.51.100.1")
        );
        // Garbage stops at the proxy that passed it on; no header is the proxy itself.
        assert_eq!(
            proxies.client(ip("10.0.0.5"), ["203.0.113.9, not-an-address"].into_iter()),
            ip("10.0.0.5")
        );
        assert_eq!(
            proxies.client(ip("2001:db8::1"), std::iter::empty()),
            ip("2001:db8::1")
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.example".into()]).is_err());
        assert!(
            TrustedProxies::parse(&["::/0".into()])
                .unwrap()
                .contains(ip("2001:db8::5"))
        );
    }
}
