//! Coalescing: concurrent fetches of one key share one flight. Used where a node asks for an
//! object (the entry node's fetch through the ring) and where it loads one (the home's origin
//! load), so the origin sees one request per object however many clients miss at once.

use crate::cluster::{ClusterError, Fetch};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

type Flight = Shared<BoxFuture<'static, Fetch>>;

/// The flights in the air, per key. Cheap to clone; clones share the flights.
#[derive(Debug)]
pub struct Flights<K> {
    air: Arc<Mutex<HashMap<K, Flight>>>,
}

impl<K> Clone for Flights<K> {
    fn clone(&self) -> Self {
        Flights { air: self.air.clone() }
    }
}

impl<K> Default for Flights<K> {
    fn default() -> Self {
        Flights { air: Arc::default() }
    }
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> Flights<K> {
    /// Joins the flight for `key`, or starts one with `start`. A flight runs in a task of its
    /// own, so a client that goes away does not cancel it for the others. A non-cacheable
    /// answer goes to the caller that started the flight only; the callers that joined get
    /// [`ClusterError::Pass`], so a response meant for one client (a `Set-Cookie`, say) is
    /// never handed to two.
    pub async fn join<F>(&self, key: K, start: impl FnOnce() -> F) -> Fetch
    where
        F: Future<Output = Fetch> + Send + 'static,
    {
        let (flight, leader) = {
            let mut air = self.air.lock().unwrap_or_else(|e| e.into_inner());
            match air.get(&key) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let work = start();
                    let (done, landed) = (self.air.clone(), key.clone());
                    // The task cannot land before the flight is listed: it needs the lock.
                    let task = tokio::spawn(async move {
                        let fetch = work.await;
                        done.lock().unwrap_or_else(|e| e.into_inner()).remove(&landed);
                        fetch
                    });
                    let flight = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(ClusterError::Unavailable(format!("fetch task failed: {e}")))
                        })
                    }
                    .boxed()
                    .shared();
                    air.insert(key, flight.clone());
                    (flight, true)
                }
            }
        };
        match flight.await {
            Ok(f) if !f.cacheable && !leader => Err(ClusterError::Pass),
            fetch => fetch,
        }
    }

    /// Flights in the air.
    pub fn len(&self) -> usize {
        self.air.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no flight is in the air.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Fetched;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    fn fetched(cacheable: bool) -> Fetch {
        Ok(Fetched {
            object: Bytes::from_static(b"o"),
            hops: 0,
            level: None,
            cacheable,
            hash: None,
        })
    }

    async fn crowd(flights: &Flights<u8>, cacheable: bool, starts: &Arc<AtomicU32>) -> Vec<Fetch> {
        let calls = (0..10).map(|_| {
            let starts = starts.clone();
            flights.join(1, move || async move {
                starts.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                fetched(cacheable)
            })
        });
        futures_util::future::join_all(calls).await
    }

    #[tokio::test]
    async fn one_flight_per_key_and_joiners_of_a_private_answer_pass() {
        let flights = Flights::default();
        let starts = Arc::new(AtomicU32::new(0));
        let all = crowd(&flights, true, &starts).await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert!(all.iter().all(|f| f.as_ref().is_ok_and(|f| f.cacheable)));
        assert!(flights.is_empty(), "a landed flight leaves the map");

        let all = crowd(&flights, false, &starts).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        let private = all.iter().filter(|f| f.as_ref().is_ok_and(|f| !f.cacheable)).count();
        let passed = all.iter().filter(|f| matches!(f, Err(ClusterError::Pass))).count();
        assert_eq!((private, passed), (1, 9));
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cancel_the_flight() {
        let flights = Flights::default();
        let starts = Arc::new(AtomicU32::new(0));
        let s = starts.clone();
        let first = flights.join(7u8, move || async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.fetch_add(1, Ordering::SeqCst);
            fetched(true)
        });
        let _ = tokio::time::timeout(Duration::from_millis(5), first).await;
        assert_eq!(flights.len(), 1);
        // A second start would answer non-cacheable; joining the flight answers cacheable.
        let again = flights.join(7u8, || async { fetched(false) }).await;
        assert!(again.is_ok_and(|f| f.cacheable), "joins the flight in the air");
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }
}
