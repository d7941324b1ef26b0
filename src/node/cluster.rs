//! The ring behind the HTTP face: [`RingCluster`] implements the proxy's [`Cluster`] on the
//! driver and the transport, and answers other nodes' loads and purges as a home
//! ([`HomeService`]).
//!
//! A miss at an entry node is one object lookup ([`Command::Fetch`]): the first node on the
//! path that holds a copy answers, and its body comes over the transport, checked against the
//! hash the lookup returned. A lookup that ends at a home without a body turns into a
//! [`BodyMsg::Load`](crate::rpc::BodyMsg::Load) to that home, which loads the object from the
//! origin (coalesced there per key) and takes it on ([`Command::PutHome`]). A stale copy at the
//! entry node goes to the home directly (`refresh`), which revalidates it with the origin.
//!
//! Concurrent misses for one key on one node share one fetch ([`Flights`], as the home's
//! loads do); since only homes load from origins, the origin sees one request per object
//! however many nodes miss at once. The exception is a miss the ring cannot answer (see
//! `Ring::fetch`): the entry node then asks the live node after the silent home for its
//! successor copy ([`super::copies`]), and loads from the origin itself only if it has none.
//! A home without the body likewise asks its successor's copy before the origin.

use super::copy_sync::home_keys;
use super::driver::{Command, DirectLookups, Found, HitCounts};
use super::snapshot::RingSnapshot;
use super::store::{BodyStore, StoredObject};
use super::transport::{BoxFuture as HomeFuture, HomeService, Transport};
use crate::rpc::BodyMsg;
use arc_swap::ArcSwap;
use beehive_proxy::{
    BoxFuture, Cluster, ClusterError, Fetch, Fetched, Flights, LoadRequest, Loader, ObjectKey,
    ObjectStore,
};
use beehive_replication::node::{ObjectAnswer, NO_RESULT_LEVEL};
use beehive_replication::{Id, Peer};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a body transfer or a load at the home may take (the home's own origin timeout
/// is shorter, so an origin timeout comes back as a 504, not as this).
const BODY_WAIT: Duration = Duration::from_secs(15);
/// How long a successor copy is waited for before the origin is asked instead: a copy is
/// one loopback-to-LAN round trip away, and the node asked may be the silent one.
const COPY_WAIT: Duration = Duration::from_millis(500);
/// How long a direct request to the successor home is waited for before the lookup is made
/// after all (which routes around a home that went silent).
const DIRECT_WAIT: Duration = Duration::from_secs(1);

/// The ring as the HTTP face sees it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RingCluster {
    ring: Arc<Ring>,
}

#[derive(Debug)]
struct Ring {
    name: String,
    me: Peer,
    commands: mpsc::Sender<Command>,
    served: HitCounts,
    direct: DirectLookups,
    transport: Transport,
    store: ObjectStore,
    loader: Loader,
    /// The routing state: our successor (whose copies we ask) and the live peers.
    snapshot: Arc<ArcSwap<RingSnapshot>>,
    /// Misses in flight on this node, per (key, refresh).
    misses: Flights<(ObjectKey, bool)>,
}

/// The level to report for `level`: `None` for the core's "home only, no leader result yet"
/// marker, which is not a level a client can compare.
fn shown(level: u8) -> Option<u8> {
    (level != NO_RESULT_LEVEL).then_some(level)
}

/// The ring id of an object key.
pub fn ring_id(key: ObjectKey) -> Id {
    Id(key.0)
}

impl RingCluster {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        me: Peer,
        commands: mpsc::Sender<Command>,
        served: HitCounts,
        direct: DirectLookups,
        transport: Transport,
        store: ObjectStore,
        loader: Loader,
        snapshot: Arc<ArcSwap<RingSnapshot>>,
    ) -> Self {
        let ring = Ring {
            name,
            me,
            commands,
            served,
            direct,
            transport,
            store,
            loader,
            snapshot,
            misses: Flights::default(),
        };
        RingCluster { ring: Arc::new(ring) }
    }
}

impl Ring {
    async fn ask(&self, make: impl FnOnce(oneshot::Sender<Found>) -> Command) -> Found {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(make(reply)).await.is_err() {
            return Found::Failed { hops: 0 };
        }
        answer.await.unwrap_or(Found::Failed { hops: 0 })
    }

    /// One miss: through the ring, and if the ring cannot answer now (a lookup that ran out of
    /// routes around dead or frozen nodes, a home that does not answer), from the successor
    /// copy held by the first live node after the key, else from the origin directly, so that
    /// a request another node could not serve still gets its answer. Such a body is coalesced
    /// per key like a home's load; it is not the home's copy, so the core never offers it and
    /// the next local hit drops it.
    async fn fetch(self: Arc<Self>, key: ObjectKey, load: LoadRequest, refresh: bool) -> Fetch {
        match self.clone().fetch_through_ring(key, load.clone(), refresh).await {
            Err(ClusterError::Unavailable(why)) => {
                tracing::debug!(?key, %why, "ring unavailable: asking a copy, else the origin");
                let holder = self.snapshot.load().live_home_of(ring_id(key));
                if let Some(holder) = holder.filter(|_| !refresh) {
                    self.seed_from_copy(key, holder).await;
                }
                self.loader.load(key, load).await
            }
            answer => answer,
        }
    }

    /// Puts `holder`'s copy of `key` (a successor copy, or its own) into the store, where the
    /// loader finds it (and revalidates it if stale). Nothing if `key` is stored already or
    /// `holder` has no copy within [`COPY_WAIT`].
    async fn seed_from_copy(&self, key: ObjectKey, holder: Peer) {
        if self.store.get_hashed(&key).is_some() {
            return;
        }
        let id = ring_id(key);
        if let Ok(body) = self.transport.fetch_copy(holder, id, None, COPY_WAIT).await {
            BodyStore::put(&self.store, id, StoredObject::new(body));
        }
    }

    async fn fetch_through_ring(
        self: Arc<Self>,
        key: ObjectKey,
        load: LoadRequest,
        refresh: bool,
    ) -> Fetch {
        let id = ring_id(key);
        if refresh {
            return self.load_at_home(key, load).await;
        }
        if let Some(home) = self.successor_home(id) {
            match self.transport.get_from(home, id, DIRECT_WAIT).await {
                Ok((level, object, body)) => {
                    self.direct.record(id, home, ObjectAnswer { level, object });
                    return match object {
                        Some(info) => Ok(Fetched {
                            object: body,
                            hops: 1,
                            level: shown(level),
                            cacheable: true,
                            hash: Some(info.hash),
                        }),
                        None => self.load_from(home, 1, shown(level), key, load).await,
                    };
                }
                Err(e) => tracing::debug!(?id, peer = ?home, error = %e, "direct get failed"),
            }
        }
        match self.ask(|reply| Command::Fetch { key: id, reply }).await {
            Found::Failed { hops } => {
                Err(ClusterError::Unavailable(format!("lookup failed after {hops} hops")))
            }
            Found::At { holder, hops, served: Some(served) } => match served.object {
                Some(info) if holder.id != self.me.id => {
                    let body = self.transport.fetch_body(holder, id, info.hash, BODY_WAIT).await;
                    match body {
                        Ok(object) => Ok(Fetched {
                            object,
                            hops,
                            level: shown(served.level),
                            cacheable: true,
                            hash: Some(info.hash),
                        }),
                        Err(e) => {
                            tracing::debug!(?id, peer = ?holder, error = %e, "copy unavailable");
                            self.load_at_home(key, load).await
                        }
                    }
                }
                Some(_) => match self.store.get_hashed(&key) {
                    Some((object, hash)) => Ok(Fetched {
                        object,
                        hops,
                        level: shown(served.level),
                        cacheable: true,
                        hash: Some(hash),
                    }),
                    None => self.load_at_home(key, load).await,
                },
                None => self.load_from(holder, hops, shown(served.level), key, load).await,
            },
            Found::At { holder, hops, served: None } => {
                self.load_from(holder, hops, None, key, load).await
            }
        }
    }

    /// Our successor, when it is `key`'s home as we see the ring: our object lookup would
    /// ask it, and only it, first; asking it directly ([`Transport::get_from`]) saves that
    /// round trip and the driver's part in it.
    fn successor_home(&self, key: Id) -> Option<Peer> {
        let succ = self.snapshot.load().successor_peer?;
        (succ.id != self.me.id && key.in_open_closed(self.me.id, succ.id)).then_some(succ)
    }

    /// Finds `key`'s home with a plain lookup and loads from it.
    async fn load_at_home(&self, key: ObjectKey, load: LoadRequest) -> Fetch {
        match self.ask(|reply| Command::Lookup { key: ring_id(key), reply }).await {
            Found::At { holder, hops, .. } => self.load_from(holder, hops, None, key, load).await,
            Found::Failed { hops } => {
                Err(ClusterError::Unavailable(format!("no home found after {hops} hops")))
            }
        }
    }

    /// Loads `key` at `home` (which may be this node); the answer carries this lookup's
    /// `hops` and `level`.
    async fn load_from(
        &self,
        home: Peer,
        hops: u32,
        level: Option<u8>,
        key: ObjectKey,
        load: LoadRequest,
    ) -> Fetch {
        let fetched = if home.id == self.me.id {
            self.load_here(key, load).await
        } else {
            self.transport.load_from(home, ring_id(key), load, BODY_WAIT).await
        };
        fetched.map(|f| Fetched { hops, level, ..f })
    }

    /// Purges `key` as its home: the core invalidates it over the replica arc, and the
    /// loader forgets it (including a "not shareable" verdict). `false`: not the home.
    async fn purge_here(&self, key: ObjectKey) -> bool {
        let (reply, answer) = oneshot::channel();
        let _ = self.commands.send(Command::Purge { key: ring_id(key), reply }).await;
        let done = answer.await.unwrap_or(false);
        if done {
            self.loader.purge(&key);
            self.drop_successor_copy().await;
        }
        done
    }

    /// Lists our home objects to our successor now, so that it drops the copy of one just
    /// purged before a miss could bring it back.
    async fn drop_successor_copy(&self) {
        let snap = self.snapshot.load_full();
        let Some(succ) = snap.successor_peer.filter(|s| s.id != self.me.id) else { return };
        if snap.predecessor_peer.is_none() {
            return;
        }
        let keys = home_keys(&self.store, &snap, self.me.id);
        if let Err(e) = self.transport.sync_copies(succ, false, keys, COPY_WAIT).await {
            tracing::debug!(peer = ?succ, error = %e, "could not drop the purged copy");
        }
    }

    /// Loads `key` as its home: from the store, a successor copy (ours, of a dead
    /// predecessor's object; or our successor's, of ours from before a restart) or the origin,
    /// then tells the core.
    async fn load_here(&self, key: ObjectKey, load: LoadRequest) -> Fetch {
        let id = ring_id(key);
        if self.store.get_hashed(&key).is_none() {
            if let Some(object) = self.transport.copies().take_key(id) {
                BodyStore::put(&self.store, id, object);
            } else if let Some(succ) = self.snapshot.load().successor_peer {
                if succ.id != self.me.id {
                    self.seed_from_copy(key, succ).await;
                }
            }
        }
        let loaded = self.loader.load(key, load).await?;
        if let Some(hash) = loaded.hash {
            let size = loaded.object.len() as u64;
            let _ = self.commands.send(Command::PutHome { key: ring_id(key), hash, size }).await;
        }
        Ok(loaded)
    }
}

impl Cluster for RingCluster {
    fn fetch(&self, key: ObjectKey, load: LoadRequest, refresh: bool) -> BoxFuture<'_, Fetch> {
        let ring = self.ring.clone();
        let start = move || ring.fetch(key, load, refresh);
        Box::pin(self.ring.misses.join((key, refresh), start))
    }

    fn served_locally(&self, key: ObjectKey) {
        self.ring.served.count(ring_id(key));
    }

    fn purge(&self, key: ObjectKey) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            let ring = &self.ring;
            let id = ring_id(key);
            ring.store.remove(&key);
            let Found::At { holder, .. } =
                ring.ask(|reply| Command::Lookup { key: id, reply }).await
            else {
                return Err(ClusterError::Unavailable("no home found for the purge".into()));
            };
            let done = if holder.id == ring.me.id {
                ring.purge_here(key).await
            } else {
                ring.transport
                    .purge_at(holder, id, BODY_WAIT)
                    .await
                    .map_err(|e| ClusterError::Unavailable(format!("home {}: {e}", holder.addr)))?
            };
            if done {
                Ok(())
            } else {
                Err(ClusterError::Unavailable("the home moved during the purge; retry".into()))
            }
        })
    }

    fn node_name(&self) -> &str {
        &self.ring.name
    }

    fn keeps_fetched(&self) -> bool {
        false
    }
}

impl HomeService for RingCluster {
    fn serve_as_home(&self, from: Peer, id: u64, key: Id) {
        let ring = &self.ring;
        if ring.commands.try_send(Command::ServeAsHome { from, id, key }).is_err() {
            ring.transport.answer(from, BodyMsg::Missing { id });
        }
    }

    fn load(&self, key: Id, load: LoadRequest) -> HomeFuture<Fetch> {
        let ring = self.ring.clone();
        Box::pin(async move { ring.load_here(ObjectKey(key.0), load).await })
    }

    fn purge(&self, key: Id) -> HomeFuture<bool> {
        let ring = self.ring.clone();
        Box::pin(async move { ring.purge_here(ObjectKey(key.0)).await })
    }

    /// A handed body goes into the store only once we are its home. A leaving node hands
    /// its arc over before its leave reaches us: a body stored meanwhile would be one the core
    /// does not know, and the next local hit would drop it. Until then it is kept as a
    /// successor copy, which the predecessor change (or a miss) takes on.
    fn adopt(&self, from: Peer, key: Id, object: StoredObject) {
        let ring = &self.ring;
        let owns = ring
            .snapshot
            .load()
            .predecessor_peer
            .is_some_and(|p| key.in_open_closed(p.id, ring.me.id));
        let (hash, size) = (object.hash, object.body.len() as u64);
        // The core must hear of a stored home object, or a hit drops it: with the driver's
        // queue full, it waits as a copy for the next sync to take it on.
        if owns && ring.commands.try_send(Command::PutHome { key, hash, size }).is_ok() {
            BodyStore::put(&ring.store, key, object);
        } else if !ring.transport.copies().put(from.id, key, object.body) {
            tracing::debug!(?key, "a handed object did not fit the copy budget");
        }
    }
}
