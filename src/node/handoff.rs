//! Moving home objects to the node that becomes their home: to the successor when this node
//! leaves, and to a new predecessor that takes part of this node's arc when it joins, so that
//! the newcomer (often this ring's own node restarted) does not fetch from the origin what its
//! successor already holds.

use super::metrics::Metrics;
use super::store::BodyStore;
use super::transport::Transport;
use beehive_replication::{Id, Peer};
use std::time::Duration;
use tokio::time::Instant;

/// Pushes every stored object whose key `moves` to `to`, within `bound`. Returns how many `to`
/// accepted; the receiver stores each and takes it on as its home object.
pub async fn hand_over(
    transport: &Transport,
    store: &dyn BodyStore,
    to: Peer,
    moves: impl Fn(Id) -> bool,
    metrics: &Metrics,
    bound: Duration,
) -> u64 {
    let deadline = Instant::now() + bound;
    let mut handed = 0;
    for (key, _, _) in store.list().into_iter().filter(|(key, _, _)| moves(*key)) {
        let Some(object) = store.get(key) else { continue };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match transport.store_body(to, key, object.body, left).await {
            Ok(true) => {
                handed += 1;
                metrics.handoff_sent.inc();
            }
            Ok(false) => tracing::warn!(?key, peer = ?to, "a handed-off object was refused"),
            Err(e) => tracing::warn!(?key, peer = ?to, error = %e, "handoff failed"),
        }
    }
    handed
}
