//! The compact trace: one line per event, stamped with virtual microseconds since the run
//! started, hashed (FNV-1a) so two runs of a seed can be compared.
//!
//! Columns: `<virtual µs> <component> <event> <details>`; components are `n<id>` (a node's Raft
//! metrics changed: state, term, leader, last log index, applied index), `c<id>` (a client: ack,
//! dup, unknown, redirect), `fault` (partition, heal, crash, restart, skew) and `phase`.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// The trace of one run.
#[derive(Debug)]
pub struct Trace {
    start: Instant,
    hash: u64,
    events: u64,
    print: bool,
}

/// A trace shared by every task of a run.
pub type SharedTrace = Arc<Mutex<Trace>>;

impl Trace {
    /// An empty trace starting now; `print` writes each line to stdout too.
    pub fn new(print: bool) -> Trace {
        Trace {
            start: Instant::now(),
            hash: 0xcbf2_9ce4_8422_2325,
            events: 0,
            print,
        }
    }

    /// Records one event.
    pub fn event(&mut self, component: &str, line: &str) {
        let micros = self.start.elapsed().as_micros();
        let line = format!("{micros:>10} {component} {line}");
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.events += 1;
        if self.print {
            println!("{line}");
        }
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The number of events so far.
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// Records one event on a shared trace.
pub fn event(trace: &SharedTrace, component: &str, line: &str) {
    if let Ok(mut trace) = trace.lock() {
        trace.event(component, line);
    }
}
