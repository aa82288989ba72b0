//! The token store: an in-memory [`Snapshot`] that the request path reads without locks, and a
//! [`Persistence`] behind it that makes every acknowledged change durable.
//!
//! Invariants:
//! - Writers are serialised (one `tokio::sync::Mutex`); a change is persisted (fsync) *before* it
//!   becomes visible and before the admin API answers 2xx.
//! - A write, once planned, runs to completion (persist, then publish) in its own task, whatever
//!   happens to the caller: a client that hangs up during the fsync cannot leave a change on
//!   disk but missing from memory (a revoked token authenticating until the next restart).
//! - Readers never block on writers: they load an `Arc<Snapshot>` from an `ArcSwap`.
//! - Lookups by secret hash are O(1) (a `HashMap` in the snapshot, holding both the current
//!   and, during a rotation's overlap, the previous secret of a token).
//! - `last_used_at` is kept in memory and persisted in batches by [`Store::flush_last_used`].
//!
//! Two kinds of store sit behind this one interface (`Backend`): the embedded file store
//! (`file.rs`, one process) and the cluster store (`cluster.rs`, `[store] kind =
//! "elasticsearch"`, any number of replicas). With the cluster store, a write first catches up
//! with the cluster and is re-planned on the latest state when another replica changed a record
//! first (optimistic concurrency); other replicas' changes arrive through [`Store::poll`].

pub mod cluster;
pub mod exchange;
pub mod file;
pub mod model;
pub mod reach;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use model::{FieldValue, FilterRef, IpFilter, LibraryFilter, Link, SecretHash, Token, UnixTime};

/// One durable change. Changes are whole records (put or delete), so replaying one twice is
/// harmless.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    PutToken {
        token: Token,
    },
    DeleteToken {
        id: String,
    },
    PutFilter {
        filter: LibraryFilter,
    },
    DeleteFilter {
        id: String,
    },
    PutIpFilter {
        ip_filter: IpFilter,
    },
    DeleteIpFilter {
        name: String,
    },
    /// A share link (`crate::kibana`). Deleting its token deletes it too.
    PutLink {
        link: Link,
    },
    DeleteLink {
        id: String,
    },
    /// A batch of last-used times (token id → time).
    LastUsed {
        times: Vec<(String, UnixTime)>,
    },
}

impl Change {
    /// A record's delete (the cluster store writes it as a tombstone).
    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            Change::DeleteToken { .. }
                | Change::DeleteFilter { .. }
                | Change::DeleteIpFilter { .. }
                | Change::DeleteLink { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `record` 0: the file as a whole (a snapshot, a missing or emptied journal).
    #[error("store file {path} is corrupt{}: {reason}", at_record(*.record))]
    Corrupt {
        path: String,
        record: u64,
        reason: String,
    },
    /// The cluster store cannot be reached (or answers errors): nothing was changed.
    #[error("token store cluster unavailable: {0}")]
    Unavailable(String),
    /// Another replica changed the same records at the same time, again and again.
    #[error("the store records were changed concurrently by another replica")]
    Conflict,
    /// The cluster store holds something esgate did not write (refused at start).
    #[error("token store refused: {0}")]
    Foreign(String),
}

fn at_record(record: u64) -> String {
    match record {
        0 => String::new(),
        n => format!(" at record {n}"),
    }
}

/// Where changes are made durable. `load` is called once at start; `append` for every write,
/// and must not return before the changes survive a crash.
pub trait Persistence: Send + 'static {
    fn load(&mut self) -> Result<Vec<Change>, StoreError>;
    fn append(&mut self, changes: &[Change]) -> Result<(), StoreError>;
}

/// An immutable, consistent view of every token, library filter and IP filter.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    tokens: HashMap<String, Arc<Token>, crate::FastHash>,
    /// Each token's record under its current secret's digest and, during a rotation's overlap,
    /// its previous one: the same `Arc` as in `tokens`, so authentication is one probe.
    by_hash: HashMap<SecretHash, Arc<Token>, crate::FastHash>,
    filters: HashMap<String, LibraryFilter>,
    ip_filters: HashMap<String, IpFilter>,
    last_used: HashMap<String, UnixTime>,
    links: HashMap<String, Arc<Link>>,
    /// What the request path derives from each token, kept for this snapshot only.
    scopes: ScopeMemo,
}

/// What every enforced request of a token needs from the token and the filter library: its
/// resolved filters and the id its continuation ids are bound to (a SHA-256 digest of filters
/// and index patterns). Computed once per token and snapshot instead of once per request.
#[derive(Debug)]
pub struct TokenScope {
    pub filters: Arc<crate::es::FilterSet>,
    /// [`crate::es::ids::continuation::scoped_id`] of the token in this snapshot (shared with
    /// every request's binding).
    pub bound_id: Arc<str>,
    /// The token's index patterns, shared with every request's [`crate::es::Scope`].
    pub indices: Arc<[String]>,
}

/// The per-snapshot memo of [`TokenScope`]s. Only the snapshot it was filled from can read it:
/// a clone starts empty and every change empties it, so a token's new filters (or a library
/// filter's new value) take effect on the very next request, as without the memo.
#[derive(Debug, Default)]
struct ScopeMemo(DashMap<String, (usize, Arc<TokenScope>), crate::FastHash>);

impl Clone for ScopeMemo {
    fn clone(&self) -> ScopeMemo {
        ScopeMemo::default()
    }
}

/// A token's filters with library references resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedFilter {
    pub field: String,
    pub value: String,
    /// The library id, when the filter comes from the library.
    pub library_id: Option<String>,
}

/// A token references a library filter or IP filter that no longer exists. The request path
/// treats this as a denial (fail closed).
#[derive(Debug, thiserror::Error)]
#[error("token references a missing {kind} '{name}'")]
pub struct DanglingReference {
    pub kind: &'static str,
    pub name: String,
}

impl Snapshot {
    /// The state a list of changes builds (a load, an import).
    pub fn from_changes(changes: &[Change]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for change in changes {
            snapshot.apply(change);
        }
        snapshot
    }

    pub fn token(&self, id: &str) -> Option<&Arc<Token>> {
        self.tokens.get(id)
    }

    /// The token holding `hash` as its current or previous secret (expired or not): for
    /// uniqueness checks. Authentication uses [`Snapshot::token_by_secret`].
    pub fn token_by_hash(&self, hash: &SecretHash) -> Option<&Arc<Token>> {
        self.by_hash.get(hash)
    }

    /// The token `hash` opens at `now`: its current secret, or its previous one while the
    /// rotation's overlap lasts. One hash-table probe either way.
    pub fn token_by_secret(&self, hash: &SecretHash, now: UnixTime) -> Option<&Arc<Token>> {
        self.token_by_hash(hash).filter(|t| t.accepts(hash, now))
    }

    pub fn tokens(&self) -> impl Iterator<Item = &Arc<Token>> {
        self.tokens.values()
    }

    pub fn filter(&self, id: &str) -> Option<&LibraryFilter> {
        self.filters.get(id)
    }

    pub fn filters(&self) -> impl Iterator<Item = &LibraryFilter> {
        self.filters.values()
    }

    pub fn ip_filter(&self, name: &str) -> Option<&IpFilter> {
        self.ip_filters.get(name)
    }

    pub fn ip_filters(&self) -> impl Iterator<Item = &IpFilter> {
        self.ip_filters.values()
    }

    pub fn link(&self, id: &str) -> Option<&Arc<Link>> {
        self.links.get(id)
    }

    pub fn links(&self) -> impl Iterator<Item = &Arc<Link>> {
        self.links.values()
    }

    /// A token's links, oldest first.
    pub fn links_of(&self, token_id: &str) -> Vec<&Arc<Link>> {
        let mut out: Vec<&Arc<Link>> = self
            .links
            .values()
            .filter(|l| l.token_id == token_id)
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    /// The persisted last-used time (the in-memory one in [`Store`] may be newer).
    pub fn persisted_last_used(&self, id: &str) -> Option<UnixTime> {
        self.last_used.get(id).copied()
    }

    /// Resolves a token's filters through the library.
    pub fn resolve_filters(&self, token: &Token) -> Result<Vec<ResolvedFilter>, DanglingReference> {
        token
            .filters
            .iter()
            .map(|f| match f {
                FilterRef::Inline(FieldValue { field, value }) => Ok(ResolvedFilter {
                    field: field.clone(),
                    value: value.clone(),
                    library_id: None,
                }),
                FilterRef::Library(id) => self
                    .filters
                    .get(id)
                    .map(|lf| ResolvedFilter {
                        field: lf.field.clone(),
                        value: lf.value.clone(),
                        library_id: Some(id.clone()),
                    })
                    .ok_or_else(|| DanglingReference {
                        kind: "filter",
                        name: id.clone(),
                    }),
            })
            .collect()
    }

    /// The token's [`TokenScope`] in this snapshot. `token` must be this snapshot's own record
    /// (the memo checks it by address and computes afresh for any other).
    pub fn scope(&self, token: &Token) -> Result<Arc<TokenScope>, DanglingReference> {
        // An entry is only made for this snapshot's own record, which lives as long as the
        // snapshot: an equal address is that record.
        let address = std::ptr::from_ref(token) as usize;
        if let Some(entry) = self.scopes.0.get(&token.id) {
            if entry.0 == address {
                return Ok(Arc::clone(&entry.1));
            }
        }
        let filters = crate::es::FilterSet::new(
            self.resolve_filters(token)?
                .into_iter()
                .map(|f| (f.field, f.value)),
        )
        .with_constant_scores(token.constant_scores());
        let bound_id = crate::es::ids::continuation::scoped_id(&token.id, &filters, &token.indices);
        let scope = Arc::new(TokenScope {
            filters: Arc::new(filters),
            bound_id: bound_id.into(),
            indices: token.indices.as_slice().into(),
        });
        let own = self
            .tokens
            .get(&token.id)
            .is_some_and(|t| std::ptr::eq(Arc::as_ptr(t), token));
        if own {
            self.scopes
                .0
                .insert(token.id.clone(), (address, Arc::clone(&scope)));
        }
        Ok(scope)
    }

    /// Ids of the tokens that use a library filter.
    pub fn tokens_using_filter(&self, filter_id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .tokens
            .values()
            .filter(|t| {
                t.filters
                    .iter()
                    .any(|f| matches!(f, FilterRef::Library(id) if id == filter_id))
            })
            .map(|t| t.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Ids of the tokens that use a named IP filter.
    pub fn tokens_using_ip_filter(&self, name: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .tokens
            .values()
            .filter(|t| t.ip_filter.as_deref() == Some(name))
            .map(|t| t.id.clone())
            .collect();
        ids.sort();
        ids
    }

    pub(crate) fn apply(&mut self, change: &Change) {
        self.scopes.0.clear();
        match change {
            Change::PutToken { token } => {
                if let Some(old) = self.tokens.get(&token.id) {
                    self.by_hash.remove(&old.secret_hash);
                    if let Some(p) = &old.previous_secret {
                        self.by_hash.remove(&p.hash);
                    }
                }
                let record = Arc::new(token.clone());
                self.by_hash.insert(token.secret_hash, Arc::clone(&record));
                if let Some(p) = &token.previous_secret {
                    self.by_hash.insert(p.hash, Arc::clone(&record));
                }
                self.tokens.insert(token.id.clone(), record);
            }
            Change::DeleteToken { id } => {
                if let Some(old) = self.tokens.remove(id) {
                    self.by_hash.remove(&old.secret_hash);
                    if let Some(p) = &old.previous_secret {
                        self.by_hash.remove(&p.hash);
                    }
                }
                self.last_used.remove(id);
                // A token's links die with it, whatever deleted it (the API, the sweep).
                self.links.retain(|_, l| l.token_id != *id);
            }
            Change::PutLink { link } => {
                // A link of a token that is gone is never stored (replaying an old journal).
                if self.tokens.contains_key(&link.token_id) {
                    self.links.insert(link.id.clone(), Arc::new(link.clone()));
                }
            }
            Change::DeleteLink { id } => {
                self.links.remove(id);
            }
            Change::PutFilter { filter } => {
                self.filters.insert(filter.id.clone(), filter.clone());
            }
            Change::DeleteFilter { id } => {
                self.filters.remove(id);
            }
            Change::PutIpFilter { ip_filter } => {
                self.ip_filters
                    .insert(ip_filter.name.clone(), ip_filter.clone());
            }
            Change::DeleteIpFilter { name } => {
                self.ip_filters.remove(name);
            }
            Change::LastUsed { times } => {
                for (id, t) in times {
                    if self.tokens.contains_key(id) {
                        // Replicas flush their own times: the later one wins.
                        let merged = cluster::merge_last_used(self.last_used.get(id).copied(), *t);
                        self.last_used.insert(id.clone(), merged);
                    }
                }
            }
        }
    }
}

fn task_failed(e: &tokio::task::JoinError) -> StoreError {
    StoreError::Io {
        path: "<writer task>".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Where a [`Store`] makes its changes durable.
enum Backend {
    File(Arc<std::sync::Mutex<Box<dyn Persistence>>>),
    Cluster(Arc<cluster::ClusterStore>),
}

/// How many times a write is re-planned after other replicas changed its records first.
const MAX_CONFLICT_RETRIES: u32 = 8;

/// The store: the current snapshot plus the serialised writer.
pub struct Store {
    /// Shared with the write task, which publishes even when its caller is gone.
    current: Arc<ArcSwap<Snapshot>>,
    /// Serialises writers (and, for the cluster store, the change poll). Held across the whole
    /// write, fsync and publish included.
    writer: Arc<tokio::sync::Mutex<()>>,
    backend: Backend,
    /// Last-used times not yet persisted (token id → time).
    last_used: DashMap<String, UnixTime, crate::FastHash>,
}

fn build(changes: &[Change]) -> Snapshot {
    Snapshot::from_changes(changes)
}

impl Store {
    /// Loads every change from `persistence` and builds the first snapshot.
    pub fn open(mut persistence: Box<dyn Persistence>) -> Result<Store, StoreError> {
        let snapshot = build(&persistence.load()?);
        Ok(Store {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            backend: Backend::File(Arc::new(std::sync::Mutex::new(persistence))),
            last_used: DashMap::default(),
        })
    }

    /// The cluster store: creates its index when missing, loads every record (refusing an
    /// index that is not esgate's).
    pub async fn open_cluster(cluster: Arc<cluster::ClusterStore>) -> Result<Store, StoreError> {
        let started = std::time::Instant::now();
        cluster.prepare_index(true).await?;
        let loaded = cluster.load().await?;
        let read = started.elapsed();
        let snapshot = build(&loaded.changes);
        tracing::info!(
            index = %cluster.index(),
            records = loaded.changes.len(),
            skipped = loaded.skipped.len(),
            read_ms = read.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "Loaded the token store from the cluster"
        );
        Ok(Store {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            backend: Backend::Cluster(cluster),
            last_used: DashMap::default(),
        })
    }

    /// The cluster store, when this store is one.
    pub fn cluster(&self) -> Option<&Arc<cluster::ClusterStore>> {
        match &self.backend {
            Backend::Cluster(c) => Some(c),
            Backend::File(_) => None,
        }
    }

    /// The current snapshot. Cheap; never blocks on writers.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Whether `snapshot` is still the current one (nothing changed since it was taken): a
    /// pointer comparison under a borrowed load, no reference count touched.
    pub fn is_current(&self, snapshot: &Snapshot) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.current.load()), snapshot)
    }

    fn publish(current: &ArcSwap<Snapshot>, base: &Snapshot, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let mut next = base.clone();
        for change in changes {
            next.apply(change);
        }
        current.store(Arc::new(next));
    }

    /// Publishes what a poll brought: a whole store read replaces the state.
    fn publish_polled(current: &ArcSwap<Snapshot>, polled: &cluster::Polled) {
        match &polled.reloaded {
            Some(all) => {
                let mut next = build(all);
                for change in &polled.changes {
                    next.apply(change);
                }
                current.store(Arc::new(next));
            }
            None => Self::publish(current, &current.load_full(), &polled.changes),
        }
    }

    /// Picks up changes other replicas made (cluster store; nothing to do for the file store).
    /// Runs under the writer lock, so a write never plans on a state older than a poll's. Its
    /// cost follows the changes since the last poll; the settle window's re-read is
    /// [`Store::settle_window`], beside it.
    pub async fn poll(&self) -> Result<usize, StoreError> {
        let Backend::Cluster(cluster) = &self.backend else {
            return Ok(0);
        };
        let _writer = self.writer.lock().await;
        let polled = cluster.poll().await?;
        Self::publish_polled(&self.current, &polled);
        Ok(polled.len())
    }

    /// Re-reads the cluster store's settle window (nothing to do for the file store): records
    /// of recent `seq`s that became visible late or in parts (see
    /// `cluster::ClusterStore::window_read`). The read pages through the window without the
    /// writer lock (polls and writes go on: a bulk of many records under one `seq` takes
    /// seconds to read); applying what it found and moving the floor takes it, like a poll.
    /// Returns how many changes it applied.
    pub async fn settle_window(&self) -> Result<usize, StoreError> {
        let Backend::Cluster(cluster) = &self.backend else {
            return Ok(0);
        };
        let read = cluster.window_read().await?;
        if read.is_empty() {
            cluster.window_apply(&read);
            return Ok(0);
        }
        let _writer = self.writer.lock().await;
        let changes = cluster.window_apply(&read);
        Self::publish(&self.current, &self.current.load_full(), &changes);
        Ok(changes.len())
    }

    /// Whether the cluster store's settle window is due for a re-read (every few polls:
    /// `cluster::ClusterStore::window_due`); never for the file store.
    pub fn window_due(&self) -> bool {
        match &self.backend {
            Backend::Cluster(cluster) => cluster.window_due(),
            Backend::File(_) => false,
        }
    }

    /// Reads every record of the cluster store again (nothing to do for the file store) and
    /// applies those newer than the state's: records that landed behind the change poll's
    /// floor (see `cluster::ClusterStore::sweep_read`). The read pages through the store
    /// without the writer lock (polls and writes go on); applying takes it, like a poll.
    /// Then deletes the last-used times of tokens whose document is gone
    /// (`cluster::ClusterStore::purge_orphans`). Returns how many changes it applied.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let Backend::Cluster(cluster) = &self.backend else {
            return Ok(0);
        };
        let found = cluster.sweep_read().await?;
        let applied = if found.is_empty() {
            0
        } else {
            let _writer = self.writer.lock().await;
            let changes = cluster.sweep_apply(&found);
            Self::publish(&self.current, &self.current.load_full(), &changes);
            changes.len()
        };
        // Then the last-used times of tokens gone (left by a purge whose second request
        // failed, or written after the purge read them): read by every load, used by none.
        let orphans = cluster.purge_orphans().await?;
        if orphans > 0 {
            tracing::info!(
                deleted = orphans,
                "Token store sweep deleted the last-used times of tokens gone"
            );
        }
        Ok(applied)
    }

    /// Whether the cluster store wants a sweep now besides the periodic ones (after a load:
    /// `cluster::ClusterStore::sweep_due`); never for the file store.
    pub fn sweep_due(&self) -> bool {
        match &self.backend {
            Backend::Cluster(cluster) => cluster.sweep_due(),
            Backend::File(_) => false,
        }
    }

    /// Deletes the cluster store's tombstones older than `store.tombstone_retention` (nothing
    /// to do for the file store), and writes again, with a deletion time, up to a page of
    /// tombstones that have none (written by esgate before it recorded one). The purge pages
    /// through every tombstone, so it does not take the writer lock (polls and writes go on
    /// meanwhile; each delete names the version read); writing the stamps again does, after a
    /// catch-up, like a write, and not for a record whose version this replica saw change since
    /// the purge read it (a record created again meanwhile is left alone). The tombstones it
    /// read that are newer than held (landed behind the poll's floor) are applied under the
    /// writer lock, like a sweep's finds. Returns how many were purged.
    pub async fn purge_tombstones(&self) -> Result<usize, StoreError> {
        let Backend::Cluster(cluster) = &self.backend else {
            return Ok(0);
        };
        let purged = cluster.purge(crate::time::now()).await?;
        if !purged.newer.is_empty() {
            // Tombstones that landed behind the poll's floor: applied like a sweep's finds.
            let _writer = self.writer.lock().await;
            let changes = cluster.sweep_apply(&purged.newer);
            Self::publish(&self.current, &self.current.load_full(), &changes);
        }
        if !purged.unstamped.is_empty() {
            let _writer = self.writer.lock().await;
            let (counter, polled) = cluster.catch_up().await?;
            Self::publish_polled(&self.current, &polled);
            let unstamped: Vec<Change> = purged
                .unstamped
                .into_iter()
                .filter(|(id, version, _)| !cluster.holds_other_version(id, *version))
                .map(|(_, _, change)| change)
                .collect();
            // Deletes of records that are gone: nothing to publish. A conflict (another
            // replica wrote meanwhile) leaves them for the next round.
            if !unstamped.is_empty() {
                match cluster.commit(counter, &unstamped).await {
                    Ok(()) | Err((_, StoreError::Conflict)) => {}
                    Err((_, e)) => return Err(e),
                }
            }
        }
        Ok(purged.purged)
    }

    /// Runs one serialised write. `plan` sees the current snapshot and returns the changes to
    /// make (possibly none) and a value for the caller, or an error that aborts the write.
    /// The changes are durable and visible when this returns `Ok`. With the cluster store,
    /// `plan` runs again (on the latest state) when another replica changed a record first;
    /// after `MAX_CONFLICT_RETRIES` the write fails with [`StoreError::Conflict`].
    ///
    /// Cancellation-safe: once `plan` returned changes, persisting and publishing them run in a
    /// task of their own, so dropping this future (a client hanging up) cannot leave a change
    /// durable but unpublished. Dropped before `plan` ran, nothing is written.
    pub async fn update<T, E, F>(&self, plan: F) -> Result<T, E>
    where
        F: FnOnce(&Snapshot) -> Result<(Vec<Change>, T), E> + Clone,
        E: From<StoreError>,
    {
        let persistence = match &self.backend {
            Backend::File(p) => Arc::clone(p),
            Backend::Cluster(c) => return self.update_cluster(Arc::clone(c), plan).await,
        };
        let writer = Arc::clone(&self.writer).lock_owned().await;
        let current = self.current.load_full();
        let (changes, value) = plan(&current)?;
        if changes.is_empty() {
            return Ok(value);
        }
        let published = Arc::clone(&self.current);
        let write = tokio::spawn(async move {
            // The writer lock moves into the task: the next writer waits for the publish.
            let _writer = writer;
            // fsync is blocking I/O: keep it off the async workers.
            let changes = tokio::task::spawn_blocking(move || {
                let mut p = persistence.lock().unwrap_or_else(|e| e.into_inner());
                p.append(&changes).map(|()| changes)
            })
            .await
            .map_err(|e| task_failed(&e))??;
            Self::publish(&published, &current, &changes);
            Ok::<(), StoreError>(())
        });
        write.await.map_err(|e| task_failed(&e))??;
        Ok(value)
    }

    async fn update_cluster<T, E, F>(
        &self,
        cluster: Arc<cluster::ClusterStore>,
        plan: F,
    ) -> Result<T, E>
    where
        F: FnOnce(&Snapshot) -> Result<(Vec<Change>, T), E> + Clone,
        E: From<StoreError>,
    {
        let mut writer = Arc::clone(&self.writer).lock_owned().await;
        let mut attempt = 0;
        loop {
            let (counter, polled) = cluster.catch_up().await?;
            Self::publish_polled(&self.current, &polled);
            let current = self.current.load_full();
            let (changes, value) = (plan.clone())(&current)?;
            if changes.is_empty() {
                return Ok(value);
            }
            let published = Arc::clone(&self.current);
            let c = Arc::clone(&cluster);
            // As for the file store: the write and its publish finish even if the caller goes;
            // the writer lock travels with them and comes back for a retry.
            let write = tokio::spawn(async move {
                let result = c.commit(counter, &changes).await;
                match result {
                    Ok(()) => {
                        Self::publish(&published, &current, &changes);
                        (writer, Ok(()))
                    }
                    Err((written, e)) => {
                        Self::publish(&published, &current, &written);
                        (writer, Err(e))
                    }
                }
            });
            let (back, result) = write.await.map_err(|e| task_failed(&e))?;
            writer = back;
            match result {
                Ok(()) => return Ok(value),
                Err(StoreError::Conflict) if attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    // Replicas racing on one record: spread their retries.
                    let jitter = rand::random::<u64>() % (20 * u64::from(attempt));
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Records that a token was used. In memory only; see [`Store::flush_last_used`].
    pub fn touch(&self, token_id: &str, now: UnixTime) {
        // The common case (a token seen before) takes only a shard read lock.
        if let Some(t) = self.last_used.get(token_id) {
            if *t >= now {
                return;
            }
        }
        self.last_used
            .entry(token_id.to_owned())
            .and_modify(|t| *t = (*t).max(now))
            .or_insert(now);
    }

    /// The most recent use of a token, in memory or persisted.
    pub fn last_used(&self, snapshot: &Snapshot, token_id: &str) -> Option<UnixTime> {
        let mem = self.last_used.get(token_id).map(|t| *t);
        let persisted = snapshot.persisted_last_used(token_id);
        mem.max(persisted)
    }

    /// Persists the in-memory last-used times in one change.
    pub async fn flush_last_used(&self) -> Result<(), StoreError> {
        let times: Vec<(String, UnixTime)> = self
            .last_used
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        if times.is_empty() {
            return Ok(());
        }
        // Forget tokens that were deleted since they were used.
        let current = self.snapshot();
        self.last_used.retain(|id, _| current.token(id).is_some());
        self.update(|snap| {
            let changed: Vec<(String, UnixTime)> = times
                .into_iter()
                .filter(|(id, t)| {
                    snap.token(id).is_some() && snap.persisted_last_used(id) < Some(*t)
                })
                .collect();
            if changed.is_empty() {
                Ok::<_, StoreError>((vec![], ()))
            } else {
                Ok((vec![Change::LastUsed { times: changed }], ()))
            }
        })
        .await
    }
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    fn token(filters: Vec<FilterRef>) -> Token {
        Token {
            filters,
            ..Token::sample("t1", 1)
        }
    }

    fn library(value: &str) -> Change {
        Change::PutFilter {
            filter: LibraryFilter {
                id: "tenant".to_owned(),
                description: String::new(),
                field: "tenant".to_owned(),
                value: value.to_owned(),
                created_at: 1_700_000_000,
            },
        }
    }

    fn with_library_token(value: &str) -> Snapshot {
        Snapshot::from_changes(&[
            library(value),
            Change::PutToken {
                token: token(vec![FilterRef::Library("tenant".to_owned())]),
            },
        ])
    }

    /// The scope of a token with `filters`: constant scores, the default of a token with
    /// filters (review 15).
    fn expected(filters: &[(&str, &str)], indices: &[String]) -> (String, String) {
        let set = crate::es::FilterSet::new(
            filters
                .iter()
                .map(|(f, v)| ((*f).to_owned(), (*v).to_owned())),
        )
        .with_constant_scores(!filters.is_empty());
        let bound = crate::es::ids::continuation::scoped_id("t1", &set, indices);
        (format!("{set:?}"), bound)
    }

    fn seen(scope: &TokenScope) -> (String, String) {
        (format!("{:?}", scope.filters), scope.bound_id.to_string())
    }

    #[test]
    fn a_snapshot_computes_a_tokens_scope_once() {
        let snapshot = with_library_token("a");
        let token = Arc::clone(snapshot.token("t1").expect("token"));
        let first = snapshot.scope(&token).expect("scope");
        let again = snapshot.scope(&token).expect("scope");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(seen(&first), expected(&[("tenant", "a")], &token.indices));
    }

    #[test]
    fn a_library_change_is_seen_by_the_next_snapshot_at_once() {
        let before = with_library_token("a");
        let token = Arc::clone(before.token("t1").expect("token"));
        let old = before.scope(&token).expect("scope");
        // The store's own way to the next state: a clone of the published snapshot, changed.
        let mut after = before.clone();
        after.apply(&library("b"));
        let token_after = Arc::clone(after.token("t1").expect("token"));
        let new = after.scope(&token_after).expect("scope");
        assert_eq!(seen(&new), expected(&[("tenant", "b")], &token.indices));
        assert_ne!(
            old.bound_id, new.bound_id,
            "ids sealed under the old value must not open"
        );
        // Changed in place (as `from_changes` and the file store's replay do), too.
        let mut in_place = with_library_token("a");
        let token = Arc::clone(in_place.token("t1").expect("token"));
        in_place.scope(&token).expect("scope");
        in_place.apply(&library("c"));
        assert_eq!(
            seen(&in_place.scope(&token).expect("scope")),
            expected(&[("tenant", "c")], &token.indices)
        );
    }

    #[test]
    fn a_record_from_elsewhere_is_computed_afresh_and_not_kept() {
        let snapshot = with_library_token("a");
        let foreign = token(vec![FilterRef::Inline(FieldValue {
            field: "tenant".to_owned(),
            value: "z".to_owned(),
        })]);
        let scope = snapshot.scope(&foreign).expect("scope");
        assert_eq!(seen(&scope), expected(&[("tenant", "z")], &foreign.indices));
        let own = Arc::clone(snapshot.token("t1").expect("token"));
        assert_eq!(
            seen(&snapshot.scope(&own).expect("scope")),
            expected(&[("tenant", "a")], &own.indices)
        );
    }

    /// Review 15: the scope carries the token's scores, and a change of them is a new scope
    /// (and binding) in the next snapshot.
    #[test]
    fn a_change_of_scores_is_a_new_scope() {
        let before = with_library_token("a");
        let held = Arc::clone(before.token("t1").expect("token"));
        let old = before.scope(&held).expect("scope");
        assert!(old.filters.constant_scores());
        let mut after = before.clone();
        let mut relevance = (*held).clone();
        relevance.scores = Some(model::Scores::Relevance);
        after.apply(&Change::PutToken { token: relevance });
        let token_after = Arc::clone(after.token("t1").expect("token"));
        let new = after.scope(&token_after).expect("scope");
        assert!(!new.filters.constant_scores());
        assert_ne!(old.bound_id, new.bound_id);
        let plain = Snapshot::from_changes(&[Change::PutToken {
            token: token(vec![]),
        }]);
        let t = Arc::clone(plain.token("t1").expect("token"));
        assert!(!plain.scope(&t).expect("scope").filters.constant_scores());
    }

    #[test]
    fn a_dangling_library_reference_is_refused() {
        let snapshot = Snapshot::from_changes(&[Change::PutToken {
            token: token(vec![FilterRef::Library("gone".to_owned())]),
        }]);
        let token = Arc::clone(snapshot.token("t1").expect("token"));
        assert!(snapshot.scope(&token).is_err());
    }
}
