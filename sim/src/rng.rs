//! Seeded randomness: one independent ChaCha stream per component, derived from the run seed, so
//! that an extra draw in one component does not reshuffle the others.

use rand_chacha03::ChaCha8Rng;
use rand08::{Rng, SeedableRng};

/// A component's random stream.
#[derive(Debug, Clone)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// The stream of component `stream` in the run with `seed`.
    pub fn new(seed: u64, stream: u64) -> SimRng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        SimRng(rng)
    }

    /// A uniform integer in `range`.
    pub fn range(&mut self, range: std::ops::Range<u64>) -> u64 {
        if range.is_empty() {
            return range.start;
        }
        self.0.gen_range(range)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.0.gen_bool(p.min(1.0))
    }

    /// A uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0.r#gen::<f64>()
    }

    /// A uniformly chosen element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        let index = usize::try_from(self.range(0..items.len() as u64)).unwrap_or(0);
        items.get(index)
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.range(0..i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.r#gen()
    }
}

/// Stream numbers of the run's components.
pub mod stream {
    /// The derived options.
    pub const OPTIONS: u64 = 1;
    /// The packet simulator.
    pub const NETWORK: u64 = 2;
    /// The fault scheduler.
    pub const FAULTS: u64 = 3;
    /// The clients (each adds its own number).
    pub const CLIENTS: u64 = 100;
    /// The disks at crash time.
    pub const DISK: u64 = 4;
    /// openraft's election timeouts (`node::runtime::seed_thread_rng`).
    pub const RAFT: u64 = 5;
    /// Crashes the moment a vote changes (canary runs, `Options::crash_on_vote`).
    pub const VOTE_CRASHES: u64 = 6;
    /// The keyless CA's SCT key.
    pub const CA: u64 = 7;
    /// The witnesses (each adds its own number).
    pub const WITNESSES: u64 = 200;
    /// The pushed witnesses' keys.
    pub const PUSHED_WITNESSES: u64 = 8;
    /// The witness faults.
    pub const WITNESS_FAULTS: u64 = 9;
    /// Gossip between the pushed witnesses.
    pub const GOSSIP: u64 = 10;
    /// The lying log operator.
    pub const OPERATOR: u64 = 11;
}
