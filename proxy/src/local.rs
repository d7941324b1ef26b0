//! One node on its own: the [`Cluster`] for a proxy without a ring.

use crate::cluster::{BoxFuture, Cluster, ClusterError, Fetch, LoadRequest};
use crate::key::ObjectKey;
use crate::loader::Loader;

/// One node on its own: every key's home is here, so a fetch is a load (0 hops) and a purge
/// drops the key from the store.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    loader: Loader,
    name: String,
}

impl LocalCluster {
    /// A one-node cluster loading through `loader`.
    pub fn new(loader: Loader, name: impl Into<String>) -> Self {
        LocalCluster { loader, name: name.into() }
    }
}

impl Cluster for LocalCluster {
    fn fetch(&self, key: ObjectKey, load: LoadRequest, _refresh: bool) -> BoxFuture<'_, Fetch> {
        // The loader is the home: it revalidates a stale copy whether asked to or not.
        Box::pin(self.loader.load(key, load))
    }

    fn served_locally(&self, _key: ObjectKey) {}

    fn purge(&self, key: ObjectKey) -> BoxFuture<'_, Result<(), ClusterError>> {
        self.loader.purge(&key);
        Box::pin(async { Ok(()) })
    }

    fn node_name(&self) -> &str {
        &self.name
    }
}
