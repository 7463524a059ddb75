//! The simulated disk under the real redb: a durable image plus the writes issued since the
//! last `sync_data`. Reads see every write; `sync_data` makes them durable; a crash keeps the
//! durable image and, chosen from the seed, none, a random subset (at page granularity) or an
//! in-order prefix ending in a torn write (at sector granularity) of the unsynced writes. Synced
//! bytes are never corrupted: a crash only ever applies writes redb really issued (losing synced
//! data is outside Raft's fault model; a wiped machine rejoins under a new node id instead).
//!
//! A full disk refuses every write and every growth with `StorageFull` until space is freed,
//! as a real one does at ENOSPC; reads and syncs of what was written still work.
//!
//! A crashed disk's old handle stays usable (the dead node's last tasks may still write while
//! they stop), but it is detached: nothing written through it reaches the image a restarted node
//! opens.

use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

type BackendIoError = std::io::Error;

use crate::options::CrashMode;
use crate::rng::SimRng;

const PAGE: usize = 4096;
const SECTOR: usize = 512;

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct DiskState {
    /// What reads see.
    live: Vec<u8>,
    /// What survives any crash.
    durable: Vec<u8>,
    /// The writes since the last sync, in order.
    pending: Vec<Op>,
    /// Canary: syncs do nothing.
    syncs_lost: bool,
    /// Out of space: writes and growth fail.
    full: bool,
    syncs: u64,
}

/// One simulated disk (one redb file).
#[derive(Debug, Clone)]
pub struct SimDisk(Arc<Mutex<DiskState>>);

fn io_error(what: &str) -> BackendIoError {
    std::io::Error::other(what.to_string())
}

fn no_space() -> BackendIoError {
    std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device")
}

impl SimDisk {
    /// An empty disk; `syncs_lost` makes `sync_data` a no-op (the canary).
    pub fn new(syncs_lost: bool) -> SimDisk {
        SimDisk(Arc::new(Mutex::new(DiskState {
            syncs_lost,
            ..DiskState::default()
        })))
    }

    fn state(&self) -> MutexGuard<'_, DiskState> {
        // A panic while holding the lock is already a failed run.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The disk as it is after power loss now: a new handle over the surviving image. This
    /// handle keeps working but no longer affects the returned disk.
    pub fn crash(&self, mode: CrashMode, rng: &mut SimRng) -> SimDisk {
        let state = self.state();
        let mut image = state.durable.clone();
        match mode {
            CrashMode::DropAll => {}
            CrashMode::Pages => {
                for op in &state.pending {
                    match op {
                        Op::SetLen(_) => {
                            if rng.chance(0.5) {
                                apply(&mut image, op);
                            }
                        }
                        Op::Write(offset, data) => {
                            // Split at page boundaries; each page of the write survives or not.
                            let mut done = 0usize;
                            while done < data.len() {
                                let at = usize::try_from(*offset).unwrap_or(0) + done;
                                let take = (PAGE - at % PAGE).min(data.len() - done);
                                if rng.chance(0.5) {
                                    let piece =
                                        Op::Write(at as u64, data[done..done + take].to_vec());
                                    apply(&mut image, &piece);
                                }
                                done += take;
                            }
                        }
                    }
                }
            }
            CrashMode::Torn => {
                let count = state.pending.len() as u64;
                let keep = usize::try_from(rng.range(0..count + 1)).unwrap_or(0);
                for op in state.pending.iter().take(keep) {
                    apply(&mut image, op);
                }
                if let Some(Op::Write(offset, data)) = state.pending.get(keep) {
                    let sectors = data.len().div_ceil(SECTOR) as u64;
                    let cut = usize::try_from(rng.range(0..sectors)).unwrap_or(0) * SECTOR;
                    let cut = cut.min(data.len());
                    apply(&mut image, &Op::Write(*offset, data[..cut].to_vec()));
                }
            }
        }
        SimDisk(Arc::new(Mutex::new(DiskState {
            live: image.clone(),
            durable: image,
            pending: Vec::new(),
            syncs_lost: state.syncs_lost,
            full: state.full,
            syncs: 0,
        })))
    }

    /// Fills the disk (`true`: every later write fails with `StorageFull`) or frees space.
    pub fn set_full(&self, full: bool) {
        self.state().full = full;
    }

    /// Whether the disk is full.
    pub fn is_full(&self) -> bool {
        self.state().full
    }

    /// How many times `sync_data` was called on this handle.
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }
}

/// Applies one issued operation to an image.
fn apply(image: &mut Vec<u8>, op: &Op) {
    match op {
        Op::SetLen(len) => image.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0),
        Op::Write(offset, data) => {
            let start = usize::try_from(*offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(data.len());
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
    }
}

impl StorageBackend for SimDisk {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.state().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let state = self.state();
        let start = usize::try_from(offset).map_err(|_| io_error("offset out of range"))?;
        let source = state
            .live
            .get(start..start.saturating_add(out.len()))
            .ok_or_else(|| io_error("read beyond the end"))?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let mut state = self.state();
        let new_len = usize::try_from(len).map_err(|_| io_error("length out of range"))?;
        if state.full && new_len > state.live.len() {
            return Err(no_space());
        }
        state.live.resize(new_len, 0);
        state.pending.push(Op::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        let mut state = self.state();
        state.syncs += 1;
        if !state.syncs_lost {
            // Promote the pending writes in order (cheaper than copying the whole image).
            let pending = std::mem::take(&mut state.pending);
            for op in &pending {
                apply(&mut state.durable, op);
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut state = self.state();
        if state.full {
            return Err(no_space());
        }
        let start = usize::try_from(offset).map_err(|_| io_error("offset out of range"))?;
        state
            .live
            .get_mut(start..start.saturating_add(data.len()))
            .ok_or_else(|| io_error("write beyond the end"))?
            .copy_from_slice(data);
        state.pending.push(Op::Write(offset, data.to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(disk: &SimDisk) -> Vec<u8> {
        let mut out = vec![0; usize::try_from(disk.len().unwrap_or(0)).unwrap_or(0)];
        disk.read(0, &mut out).expect("in range");
        out
    }

    fn written(mode: CrashMode, seed: u64) -> (SimDisk, SimDisk) {
        let disk = SimDisk::new(false);
        disk.set_len(2 * PAGE as u64).expect("set_len");
        disk.write(0, &[1; PAGE]).expect("write");
        disk.sync_data().expect("sync");
        disk.write(0, &[2; 2 * PAGE]).expect("write");
        let crashed = disk.crash(mode, &mut SimRng::new(seed, 0));
        (disk, crashed)
    }

    #[test]
    fn a_crash_keeps_synced_bytes_and_drops_unsynced_ones() {
        let (disk, crashed) = written(CrashMode::DropAll, 1);
        let mut expected = vec![1; PAGE];
        expected.extend_from_slice(&[0; PAGE]);
        assert_eq!(read_all(&crashed), expected);
        // The old handle still sees its own writes and no longer affects the crashed image.
        assert_eq!(read_all(&disk), vec![2; 2 * PAGE]);
        disk.write(0, &[3; 8]).expect("write");
        disk.sync_data().expect("sync");
        assert_eq!(read_all(&crashed), expected);
    }

    #[test]
    fn page_and_torn_crashes_only_apply_issued_writes() {
        for seed in 0..32 {
            for mode in [CrashMode::Pages, CrashMode::Torn] {
                let (_, crashed) = written(mode, seed);
                let image = read_all(&crashed);
                assert_eq!(image.len(), 2 * PAGE);
                // Every byte is either what was synced or what was written after.
                assert!(
                    image[..PAGE].iter().all(|&b| b == 1 || b == 2),
                    "{mode:?} {seed}"
                );
                assert!(
                    image[PAGE..].iter().all(|&b| b == 0 || b == 2),
                    "{mode:?} {seed}"
                );
                // Torn writes are cut at sector boundaries.
                if mode == CrashMode::Torn {
                    let twos = image.iter().take_while(|&&b| b == 2).count();
                    assert_eq!(twos % SECTOR, 0);
                }
            }
        }
    }

    #[test]
    fn a_full_disk_refuses_writes_and_growth_until_space_is_freed() {
        let disk = SimDisk::new(false);
        disk.set_len(16).expect("set_len");
        disk.set_full(true);
        let refused = disk.write(0, &[1; 4]).expect_err("full");
        assert_eq!(refused.kind(), std::io::ErrorKind::StorageFull);
        assert!(disk.set_len(32).is_err());
        disk.set_len(8).expect("shrinking needs no space");
        disk.sync_data().expect("sync");
        disk.set_full(false);
        disk.write(0, &[1; 4]).expect("space freed");
    }

    #[test]
    fn the_canary_never_makes_anything_durable() {
        let disk = SimDisk::new(true);
        disk.set_len(16).expect("set_len");
        disk.write(0, &[9; 16]).expect("write");
        disk.sync_data().expect("sync");
        let crashed = disk.crash(CrashMode::DropAll, &mut SimRng::new(0, 0));
        assert_eq!(crashed.len().expect("len"), 0);
    }
}
