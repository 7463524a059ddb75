//! The catch-up seam in memory: a node installing a snapshot reads the entry bundles it lacks,
//! and their batch times, straight from the other simulated nodes' `StateReader` views, subject
//! to the same crashes and partitions as Raft traffic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use node::catch_up::{BundleFuture, BundleSource, FetchError, TimesFuture};
use node::storage::{StateReader, StateView};
use node::types::{LogName, NodeAddress, NodeId};

use crate::net::SharedRouter;

/// The readers of the nodes that are up, by API URL.
#[derive(Debug, Clone, Default)]
pub struct Readers(Arc<Mutex<BTreeMap<String, (NodeId, StateReader)>>>);

impl Readers {
    /// Registers a node's reader (it is up).
    pub fn up(&self, url: String, id: NodeId, reader: StateReader) {
        if let Ok(mut readers) = self.0.lock() {
            readers.insert(url, (id, reader));
        }
    }

    /// Forgets a node's reader (it crashed).
    pub fn down(&self, url: &str) {
        if let Ok(mut readers) = self.0.lock() {
            readers.remove(url);
        }
    }

    fn get(&self, url: &str) -> Option<(NodeId, StateReader)> {
        self.0.lock().ok()?.get(url).cloned()
    }
}

/// One node's bundle source.
#[derive(Debug, Clone)]
pub struct SimBundleSource {
    /// The node fetching.
    pub me: NodeId,
    /// Who is up.
    pub readers: Readers,
    /// Who can reach whom.
    pub router: SharedRouter,
}

impl SimBundleSource {
    /// One round trip's worth of virtual time to `member`, then a read view of its state, or
    /// why it cannot be reached.
    async fn reach(&self, member: &NodeAddress) -> Result<StateView, FetchError> {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let (id, reader) = self
            .readers
            .get(&member.api_url)
            .ok_or_else(|| failed(member, "member is down"))?;
        if !self.router.can_reach(self.me, id) || !self.router.can_reach(id, self.me) {
            return Err(failed(member, "partitioned"));
        }
        reader
            .view()
            .map_err(|error| failed(member, &error.to_string()))
    }
}

/// A fetch from `member` that failed for `reason`.
fn failed(member: &NodeAddress, reason: &str) -> FetchError {
    FetchError::Failed {
        member: member.api_url.clone(),
        reason: reason.into(),
    }
}

impl BundleSource for SimBundleSource {
    fn entry_bundle<'a>(
        &'a self,
        member: &'a NodeAddress,
        log: &'a LogName,
        index: u64,
        width: u16,
    ) -> BundleFuture<'a> {
        Box::pin(async move {
            let failed = |reason: &str| failed(member, reason);
            let view = self.reach(member).await?;
            match view.entry_bundle(log, index, width) {
                Ok(Some(bundle)) => Ok(bundle),
                Ok(None) => Err(FetchError::NotFound {
                    member: member.api_url.clone(),
                    log: log.clone(),
                    index,
                    width,
                }),
                Err(error) => Err(failed(&error.to_string())),
            }
        })
    }

    fn batch_times<'a>(
        &'a self,
        member: &'a NodeAddress,
        log: &'a LogName,
        first: u64,
        end: u64,
    ) -> TimesFuture<'a> {
        Box::pin(async move {
            let failed = |reason: &str| failed(member, reason);
            let view = self.reach(member).await?;
            match view.batch_times(log, first, end) {
                Ok(Some(rows)) => Ok(rows),
                Ok(None) => Err(FetchError::NotFound {
                    member: member.api_url.clone(),
                    log: log.clone(),
                    index: first,
                    width: u16::try_from(end - first).unwrap_or(u16::MAX),
                }),
                Err(error) => Err(failed(&error.to_string())),
            }
        })
    }
}
