//! The openraft `AsyncRuntime` Cairn runs on: tokio, with openraft's randomness drawn from a
//! seedable per-thread stream.
//!
//! openraft 0.9 uses randomness in one place, the randomised election timeout
//! (`Config::new_rand_election_timeout`). Routing it through [`SeededRng`] is half of what makes
//! a simulated cluster replay bit for bit (the other half is tokio's own seeded RNG, set by the
//! simulator's runtime builder). Production threads seed themselves from the operating system
//! on first use; the simulator calls [`seed_thread_rng`] at the start of every run.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioInstant};
use rand_chacha03::ChaCha8Rng;
use rand08::{RngCore, SeedableRng};

thread_local! {
    static THREAD_RNG: RefCell<Option<ChaCha8Rng>> = const { RefCell::new(None) };
}

/// Seeds this thread's openraft RNG. Every draw openraft makes on this thread afterwards is a
/// function of `seed`.
pub fn seed_thread_rng(seed: u64) {
    THREAD_RNG.with(|rng| *rng.borrow_mut() = Some(ChaCha8Rng::seed_from_u64(seed)));
}

/// A handle onto the calling thread's seeded RNG (see [`seed_thread_rng`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededRng;

impl SeededRng {
    fn with<T>(f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
        THREAD_RNG.with(|rng| {
            let mut rng = rng.borrow_mut();
            // An unseeded thread is a production thread: the operating system is its source.
            let rng = rng.get_or_insert_with(ChaCha8Rng::from_entropy);
            f(rng)
        })
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        SeededRng::with(RngCore::next_u32)
    }

    fn next_u64(&mut self) -> u64 {
        SeededRng::with(RngCore::next_u64)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        SeededRng::with(|rng| rng.fill_bytes(dest));
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand08::Error> {
        SeededRng::with(|rng| rng.try_fill_bytes(dest))
    }
}

/// tokio for everything but randomness, which comes from [`SeededRng`].
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct CairnRuntime;

/// The sending half of a tokio oneshot channel, as openraft wants it.
pub struct OneshotSender<T>(tokio::sync::oneshot::Sender<T>);

impl<T> fmt::Debug for OneshotSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneshotSender")
    }
}

impl<T: OptionalSend> openraft::async_runtime::AsyncOneshotSendExt<T> for OneshotSender<T> {
    fn send(self, value: T) -> Result<(), T> {
        self.0.send(value)
    }
}

impl AsyncRuntime for CairnRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = SeededRng;
    type OneshotSender<T: OptionalSend> = OneshotSender<T>;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::task::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        SeededRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        (OneshotSender(sender), receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_repeat() {
        seed_thread_rng(7);
        let first: Vec<u64> = (0..4).map(|_| SeededRng.next_u64()).collect();
        seed_thread_rng(7);
        let second: Vec<u64> = (0..4).map(|_| SeededRng.next_u64()).collect();
        assert_eq!(first, second);
        seed_thread_rng(8);
        assert_ne!(first[0], SeededRng.next_u64());
    }
}
