//! The embedded file store: a crash-safe [`Persistence`] in one directory.
//!
//! Layout of `dir` (created 0700; files 0600):
//! - `lock`: holds an exclusive advisory lock while a [`FileStore`] is open, so two esgate
//!   processes can never share a store.
//! - `journal.log`: append-only, one record per line,
//!   `<crc32 hex> <seq> <json array of Change>\n`, where the CRC32 covers `<seq> <json>`. One
//!   record per `append` call (all its changes, atomically), `fdatasync`ed before `append` returns.
//! - `snapshot.json`: `{"version":2,"seq":N,"sha256":"<hex>","changes":[...]}`, the whole state
//!   as `Put*` changes (and one `LastUsed`) up to record `N`, where the SHA-256 covers
//!   `<N> <changes as written>` and is verified on load (version 1, written before snapshots
//!   were checksummed, is still read and rewritten as version 2 at once); replaced atomically (tmp file, fsync, rename, fsync
//!   of the directory). After a snapshot is durable the journal is truncated (never removed)
//!   and given a base record, `<crc> N []`, naming the snapshot it continues (every other
//!   record has changes; older esgates left the journal empty, still valid); journal records
//!   with `seq <= N` are skipped on load, so a crash between the rename and the truncation is
//!   harmless.
//! - `journal.base`: `N`, written (not atomically: a torn one reads as another number) once the
//!   base record of the compaction to snapshot `N` is durable. A journal found empty beside
//!   snapshot `N` was then emptied behind the store (a log rotation's `copytruncate`, or a
//!   rename and a fresh file), every change since the compaction gone: refused. A crash before
//!   the base record leaves the previous compaction's number (or none), an older esgate's
//!   compaction a later snapshot: both load. Deleting `journal.base` accepts the snapshot alone.
//!
//! Invariant: a change for which `append` returned `Ok` survives a crash (`kill -9`, power loss
//! with honest disks) at any moment. Loading accepts exactly the artefacts a crash can leave (a
//! torn last write: the beginning of a record without its newline, which is cut off; a complete
//! last record lacking only its newline, which is kept; a stale snapshot tmp file, which is
//! removed) and refuses everything else with [`StoreError::Corrupt`] rather than dropping data:
//! any complete record (the last one included) failing its checksum, a gap or jump in the
//! sequence numbers, a journal that continues a snapshot that is missing (its first record
//! after a missing snapshot, or a base record naming one), a snapshot whose journal is missing,
//! a snapshot that is unreadable or fails its checksum. If an append fails midway, the
//! journal is cut back to its previous length so it stays well-formed; if even that fails, the
//! store refuses further appends. Nothing secret is ever logged (records hold only hashes anyway,
//! and error reasons never quote record content).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Change, Persistence, Snapshot, StoreError};

const JOURNAL: &str = "journal.log";
const SNAPSHOT: &str = "snapshot.json";
const SNAPSHOT_TMP: &str = "snapshot.json.tmp";
const LOCK: &str = "lock";
/// The `seq` of the snapshot whose compaction gave the journal its base record, written once
/// that record is durable: an empty journal beside that snapshot was emptied behind the store.
const JOURNAL_BASE: &str = "journal.base";
const SNAPSHOT_VERSION: u32 = 2;
/// Snapshots written before they carried a checksum.
const SNAPSHOT_VERSION_UNCHECKED: u32 = 1;

/// Compact when the journal holds this many records...
pub const DEFAULT_COMPACT_RECORDS: u64 = 1000;
/// ...or this many bytes.
pub const DEFAULT_COMPACT_BYTES: u64 = 4 * 1024 * 1024;

/// A store directory, locked for this process. See the module docs for the format.
pub struct FileStore {
    dir: PathBuf,
    /// Holds the advisory lock for as long as the store is open.
    _lock: File,
    /// Opened by `load` (read + append).
    journal: Option<File>,
    /// Everything loaded and appended so far, replayed: what a compaction writes out.
    state: Snapshot,
    /// Sequence number of the last durable record (or of the snapshot, if later).
    last_seq: u64,
    /// Records and bytes currently in the journal file.
    journal_records: u64,
    journal_len: u64,
    /// Set when a failed append could not be rolled back: the journal's tail is unknown, so no
    /// further record may be written after it.
    poisoned: bool,
    compact_records: u64,
    compact_bytes: u64,
    /// After a failed compaction, do not retry before the journal holds this many records.
    compact_retry_at: u64,
    #[cfg(test)]
    fail_next_write: Option<FailWrite>,
}

/// `snapshot.json` as written.
#[derive(Serialize)]
struct SnapshotOut<'a> {
    version: u32,
    seq: u64,
    sha256: String,
    changes: &'a serde_json::value::RawValue,
}

/// `snapshot.json` as read: the changes stay raw until their checksum is verified.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile<'a> {
    version: u32,
    seq: u64,
    sha256: Option<String>,
    #[serde(borrow)]
    changes: &'a serde_json::value::RawValue,
}

/// A verified snapshot.
struct SnapshotIn {
    seq: u64,
    changes: Vec<Change>,
    /// Written before snapshots were checksummed: rewrite it.
    unchecked: bool,
}

/// The snapshot checksum: SHA-256 of `<seq> <changes as written>`, lowercase hex.
fn snapshot_checksum(seq: u64, changes: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("{seq} ").as_bytes());
    h.update(changes.as_bytes());
    format!("{:x}", h.finalize())
}

impl FileStore {
    /// Opens (creating if needed) the store under `dir`. Takes an exclusive lock on the directory.
    pub fn open(dir: &Path) -> Result<FileStore, StoreError> {
        if dir.exists() {
            warn_if_not_private(dir);
        } else {
            // Every directory created here must have a durable entry in its parent.
            let created: Vec<PathBuf> = dir
                .ancestors()
                .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
                .map(Path::to_path_buf)
                .collect();
            create_dir(dir).map_err(|e| io_err(dir, e))?;
            for path in created.iter().rev() {
                if let Some(parent) = path.parent() {
                    sync_dir(parent).map_err(|e| io_err(parent, e))?;
                }
            }
        }
        let lock_path = dir.join(LOCK);
        let lock = private_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io_err(
                    &lock_path,
                    io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "the store is in use by another esgate process (its lock is held): stop \
                         that process, or give this one another store.path",
                    ),
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path, e)),
        }
        // A tmp snapshot is a compaction that never reached its rename: discard it.
        let tmp = dir.join(SNAPSHOT_TMP);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&tmp, e)),
        }
        Ok(FileStore {
            dir: dir.to_owned(),
            _lock: lock,
            journal: None,
            state: Snapshot::default(),
            last_seq: 0,
            journal_records: 0,
            journal_len: 0,
            poisoned: false,
            compact_records: DEFAULT_COMPACT_RECORDS,
            compact_bytes: DEFAULT_COMPACT_BYTES,
            compact_retry_at: 0,
            #[cfg(test)]
            fail_next_write: None,
        })
    }

    /// Changes when the journal is compacted into the snapshot (defaults: 1000 records, 4 MiB).
    pub fn set_compaction_thresholds(&mut self, records: u64, bytes: u64) {
        self.compact_records = records.max(1);
        self.compact_bytes = bytes.max(1);
    }

    /// Writes the whole state as a new snapshot and empties the journal. Runs by itself when
    /// the journal grows past the thresholds; public for tools and tests.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let journal = self.journal.as_mut().ok_or_else(|| not_loaded(&self.dir))?;
        let changes = state_changes(&self.state);
        let encode_err = |e| io_err(&self.dir.join(SNAPSHOT), io::Error::other(e));
        let changes = serde_json::value::to_raw_value(&changes).map_err(encode_err)?;
        let body = serde_json::to_vec(&SnapshotOut {
            version: SNAPSHOT_VERSION,
            seq: self.last_seq,
            sha256: snapshot_checksum(self.last_seq, changes.get()),
            changes: &changes,
        })
        .map_err(encode_err)?;

        let tmp = self.dir.join(SNAPSHOT_TMP);
        let written = (|| {
            let mut f = private_file_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&tmp, e));
        }
        let snapshot = self.dir.join(SNAPSHOT);
        fs::rename(&tmp, &snapshot).map_err(|e| io_err(&snapshot, e))?;
        // The rename must be durable before the journal it replaces is emptied.
        sync_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?;

        let journal_path = self.dir.join(JOURNAL);
        journal
            .set_len(0)
            .and_then(|()| journal.sync_all())
            .map_err(|e| io_err(&journal_path, e))?;
        // The base record names the snapshot the journal continues, so that a snapshot lost
        // later is refused at load rather than read as an empty store. Without it (a crash
        // right here, a failed write) the journal is empty, as older esgates left it: valid.
        let mut len = 0;
        if self.last_seq > 0 {
            let base = encode_record(self.last_seq, &[]).map_err(|e| io_err(&journal_path, e))?;
            if journal
                .write_all(&base)
                .and_then(|()| journal.sync_data())
                .is_ok()
            {
                len = base.len() as u64;
                self.write_journal_base();
            } else if let Err(e) = journal.set_len(0).and_then(|()| journal.sync_all()) {
                // The snapshot holds everything, but the journal's tail is unknown: nothing may
                // be appended after it until a compaction empties it.
                self.journal_records = 0;
                self.journal_len = 0;
                self.poisoned = true;
                return Err(io_err(&journal_path, e));
            }
        }
        self.journal_records = 0;
        self.journal_len = len;
        self.compact_retry_at = 0;
        // The journal was emptied, so an unknown tail left by a failed append is gone too.
        self.poisoned = false;
        Ok(())
    }

    // === internals ===

    /// The `journal.base` number, when the file holds one.
    fn journal_base(&self) -> Option<u64> {
        let text = fs::read_to_string(self.dir.join(JOURNAL_BASE)).ok()?;
        text.trim().parse().ok()
    }

    /// Records that the journal holds the base record of snapshot `last_seq`. Best effort: a
    /// marker left stale only means an emptied journal goes unnoticed at the next start.
    fn write_journal_base(&self) {
        let path = self.dir.join(JOURNAL_BASE);
        let written = private_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(format!("{}\n", self.last_seq).as_bytes())?;
                f.sync_all()
            });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "store: cannot record the journal's base");
        }
    }

    fn read_snapshot(&self) -> Result<Option<SnapshotIn>, StoreError> {
        let path = self.dir.join(SNAPSHOT);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.display().to_string(),
            record: 0,
            reason: format!(
                "{reason}. Nothing was changed: restore {SNAPSHOT} and {JOURNAL} together from \
                 a backup (docs/file-store.md)"
            ),
        };
        let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(|e| {
            corrupt(format!(
                "unreadable snapshot (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let unchecked = match (file.version, file.sha256.as_deref()) {
            (SNAPSHOT_VERSION, Some(sum)) => {
                if sum != snapshot_checksum(file.seq, file.changes.get()) {
                    return Err(corrupt(
                        "snapshot fails its checksum (the file was altered or damaged)".into(),
                    ));
                }
                false
            }
            (SNAPSHOT_VERSION, None) => return Err(corrupt("snapshot has no checksum".into())),
            (SNAPSHOT_VERSION_UNCHECKED, None) => true,
            (v, _) => {
                return Err(corrupt(format!(
                    "unsupported snapshot version {v} (written by a newer esgate? run that one)"
                )))
            }
        };
        let changes: Vec<Change> = serde_json::from_str(file.changes.get()).map_err(|e| {
            corrupt(format!(
                "unreadable snapshot changes (column {})",
                e.column()
            ))
        })?;
        Ok(Some(SnapshotIn {
            seq: file.seq,
            changes,
            unchecked,
        }))
    }

    fn maybe_compact(&mut self) {
        if self.journal_records == 0 || self.journal_records < self.compact_retry_at {
            return;
        }
        if self.journal_records < self.compact_records && self.journal_len < self.compact_bytes {
            return;
        }
        if let Err(e) = self.compact() {
            // The append itself is durable; compaction is retried after more records.
            tracing::warn!(error = %e, "store compaction failed; will retry later");
            self.compact_retry_at = self.journal_records + 100;
        }
    }

    fn write_record(&mut self, line: &[u8]) -> io::Result<()> {
        let journal = match self.journal.as_mut() {
            Some(j) => j,
            None => return Err(io::Error::other("journal not open")),
        };
        #[cfg(test)]
        if let Some(fail) = self.fail_next_write.take() {
            let n = fail.after_bytes.min(line.len());
            journal.write_all(&line[..n])?;
            return Err(io::Error::other("injected write failure"));
        }
        journal.write_all(line)?;
        journal.sync_data()
    }
}

impl Persistence for FileStore {
    fn load(&mut self) -> Result<Vec<Change>, StoreError> {
        let snapshot = self.read_snapshot()?;
        let snapshot_seq = snapshot.as_ref().map_or(0, |s| s.seq);

        let journal_path = self.dir.join(JOURNAL);
        let existed = journal_path.exists();
        if !existed && snapshot.is_some() {
            // The journal is created before the first snapshot and only ever emptied after:
            // no crash leaves a snapshot without it. Changes since the snapshot, revocations
            // among them, would be lost without a word.
            return Err(StoreError::Corrupt {
                path: journal_path.display().to_string(),
                record: 0,
                reason: "the journal is missing beside its snapshot; the changes made since \
                         the last compaction are lost with it. Restore it from a backup, or \
                         create it empty and delete journal.base to start from the snapshot \
                         alone"
                    .into(),
            });
        }
        let mut journal = private_file_options()
            .read(true)
            .append(true)
            .create(true)
            .open(&journal_path)
            .map_err(|e| io_err(&journal_path, e))?;
        if !existed {
            // The new file's directory entry must be durable before any record in it is.
            sync_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        }
        let mut data = Vec::new();
        journal
            .read_to_end(&mut data)
            .map_err(|e| io_err(&journal_path, e))?;
        if data.is_empty() && snapshot.is_some() && self.journal_base() == Some(snapshot_seq) {
            return Err(StoreError::Corrupt {
                path: journal_path.display().to_string(),
                record: 0,
                reason: "the journal is empty, but it held its base record after the last \
                         compaction: it was emptied or replaced behind esgate (a log rotation?), \
                         and the changes made since that compaction are gone with it. Restore \
                         it from the rotated copy or a backup, or delete journal.base to start \
                         from the snapshot alone"
                    .into(),
            });
        }

        let scan =
            scan_journal(&data, snapshot_seq).map_err(|(record, reason)| StoreError::Corrupt {
                path: journal_path.display().to_string(),
                record,
                reason,
            })?;
        let mut valid_len = scan.valid_len;
        if valid_len < data.len() as u64 {
            tracing::warn!(
                path = %journal_path.display(),
                dropped_bytes = data.len() as u64 - valid_len,
                "store journal: dropped a torn last write (never acknowledged) left by a crash"
            );
            journal
                .set_len(valid_len)
                .and_then(|()| journal.sync_all())
                .map_err(|e| io_err(&journal_path, e))?;
        } else if scan.missing_newline {
            // A complete record whose newline was never written: keep it, and end its line so
            // the next record starts on its own.
            journal
                .write_all(b"\n")
                .and_then(|()| journal.sync_all())
                .map_err(|e| io_err(&journal_path, e))?;
            valid_len += 1;
        }

        let unchecked = snapshot.as_ref().is_some_and(|s| s.unchecked);
        let mut changes = snapshot.map(|s| s.changes).unwrap_or_default();
        changes.extend(scan.changes);
        let mut state = Snapshot::default();
        for change in &changes {
            state.apply(change);
        }
        self.state = state;
        self.last_seq = scan.last_seq.max(snapshot_seq);
        self.journal_records = scan.records;
        self.journal_len = valid_len;
        self.journal = Some(journal);
        self.poisoned = false;
        self.compact_retry_at = 0;
        if unchecked {
            tracing::warn!(
                path = %self.dir.join(SNAPSHOT).display(),
                "store snapshot has no checksum (written by an older esgate); rewriting it"
            );
            self.compact()?;
        }
        self.maybe_compact();
        Ok(changes)
    }

    fn append(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let journal_path = self.dir.join(JOURNAL);
        if self.poisoned {
            // The journal's tail is unknown. A compaction writes the state (every acknowledged
            // change, none of the failed one) and empties the journal, which clears it.
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "store still unwritable after an earlier failed write");
                return Err(io_err(
                    &journal_path,
                    io::Error::other("an earlier write failed and could not be undone"),
                ));
            }
        }
        let Some(open) = self.journal.as_ref() else {
            return Err(not_loaded(&self.dir));
        };
        if changes.is_empty() {
            return Ok(());
        }
        if moved(&journal_path, open).map_err(|e| io_err(&journal_path, e))? {
            // Moved away behind the store (logrotate renames, then creates an empty file):
            // records written to the moved file would be lost to the next start, which reads
            // the file at the path (review 16e). It is opened there again, and the length
            // check below writes the state as the snapshot it continues.
            tracing::warn!(
                path = %journal_path.display(),
                "store journal: moved or replaced by something else (a log rotation?); starting it again at its path"
            );
            let journal = private_file_options()
                .read(true)
                .append(true)
                .create(true)
                .open(&journal_path)
                .map_err(|e| io_err(&journal_path, e))?;
            sync_dir(&self.dir).map_err(|e| io_err(&self.dir, e))?;
            self.journal = Some(journal);
            self.journal_len = u64::MAX;
        }
        let mut prev_len = match self.journal.as_ref() {
            Some(j) => j.metadata().map_err(|e| io_err(&journal_path, e))?.len(),
            None => return Err(not_loaded(&self.dir)),
        };
        if prev_len != self.journal_len {
            // Changed behind the store (logrotate's `copytruncate` empties it in place, review
            // 16e): a record written now would continue records that are gone, and the next
            // start would refuse the journal. The state holds every acknowledged change: it
            // becomes the snapshot, and the journal starts again after it.
            tracing::warn!(
                path = %journal_path.display(),
                expected_bytes = self.journal_len,
                found_bytes = prev_len,
                "store journal: changed by something else (a log rotation?); writing the state as a snapshot before the next record"
            );
            self.compact()?;
            prev_len = self.journal_len;
        }
        let seq = self.last_seq + 1;
        let line = encode_record(seq, changes).map_err(|e| io_err(&journal_path, e))?;

        if let Err(e) = self.write_record(&line) {
            // Cut the partial record off so the journal stays well-formed. If that fails, the
            // tail is unknown: refuse all further writes rather than append after garbage.
            let rolled_back = self
                .journal
                .as_mut()
                .map(|j| j.set_len(prev_len).and_then(|()| j.sync_data()).is_ok())
                .unwrap_or(false);
            if !rolled_back {
                self.poisoned = true;
            }
            return Err(io_err(&journal_path, e));
        }

        self.last_seq = seq;
        self.journal_records += 1;
        self.journal_len = prev_len + line.len() as u64;
        for change in changes {
            self.state.apply(change);
        }
        self.maybe_compact();
        Ok(())
    }
}

// === record format ===

fn encode_record(seq: u64, changes: &[Change]) -> io::Result<Vec<u8>> {
    let json = serde_json::to_string(changes).map_err(io::Error::other)?;
    let body = format!("{seq} {json}");
    Ok(format!("{:08x} {body}\n", crc32fast::hash(body.as_bytes())).into_bytes())
}

/// One journal line (without its newline) to `(seq, changes)`, or why it is bad.
fn decode_record(line: &[u8]) -> Result<(u64, Vec<Change>), String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let (crc, body) = text
        .split_once(' ')
        .ok_or_else(|| "no checksum".to_owned())?;
    let crc_ok = crc.len() == 8
        && crc
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && u32::from_str_radix(crc, 16).ok() == Some(crc32fast::hash(body.as_bytes()));
    if !crc_ok {
        return Err("checksum mismatch".to_owned());
    }
    let (seq, json) = body
        .split_once(' ')
        .ok_or_else(|| "no sequence number".to_owned())?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad sequence number".to_owned());
    }
    let seq: u64 = seq.parse().map_err(|_| "bad sequence number".to_owned())?;
    let changes: Vec<Change> = serde_json::from_str(json)
        .map_err(|e| format!("invalid changes (column {})", e.column()))?;
    Ok((seq, changes))
}

struct Scan {
    /// Changes of records with `seq > snapshot_seq`, in order.
    changes: Vec<Change>,
    /// Well-formed records kept in the file (skipped ones included).
    records: u64,
    /// Length of the well-formed prefix; anything after it is a torn last write.
    valid_len: u64,
    last_seq: u64,
    /// The last record is complete but its newline was never written: load adds it.
    missing_newline: bool,
}

/// What the bytes after the last newline (or a last line) are.
#[derive(Debug, PartialEq)]
enum Tail {
    /// A complete, valid record.
    Complete(u64, Vec<Change>),
    /// The beginning of a record whose write never finished (possibly followed by the zeros
    /// some filesystems leave in a block allocated before its data): safe to drop, it was never
    /// acknowledged.
    Torn,
    /// Complete but damaged: it may have been acknowledged, so it must not be dropped.
    Corrupt(String),
}

/// Classifies the bytes after the journal's last newline. Only a strict prefix of a
/// well-formed record (then only zeros) is torn; a record whose JSON is whole but that fails its
/// checksum, or any other shape, is corrupt.
fn classify_tail(tail: &[u8]) -> Tail {
    if let Ok((seq, changes)) = decode_record(tail) {
        return Tail::Complete(seq, changes);
    }
    let written = match tail.iter().rposition(|&b| b != 0) {
        Some(last) => &tail[..=last],
        None => return Tail::Torn,
    };
    if is_record_prefix(written) {
        Tail::Torn
    } else {
        Tail::Corrupt("the last record is complete but fails its checksum or format".to_owned())
    }
}

/// A damaged record's reason, with what an operator can do about it: the journal is left as it
/// is, and the records before this one are whole (each checked), so cutting the file where this
/// one starts keeps them.
fn damaged(record: u64, offset: usize, reason: String) -> (u64, String) {
    let kept = record - 1;
    (
        record,
        format!(
            "{reason}. Nothing was changed. Restore the store directory from a backup; or keep \
             the {kept} record(s) before this one by cutting {JOURNAL} where it starts \
             (`truncate -s {offset} {JOURNAL}`, esgate stopped), losing this record and every \
             change after it: a token revoked or deleted by them is valid again until revoked \
             anew (the audit log names them; docs/file-store.md)"
        ),
    )
}

/// Whether `bytes` can be the beginning (not the whole) of `<crc32 hex> <seq> <json>`.
fn is_record_prefix(bytes: &[u8]) -> bool {
    let crc_len = bytes
        .iter()
        .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .count();
    if crc_len < 8 {
        return crc_len == bytes.len();
    }
    let rest = &bytes[8..];
    let Some(rest) = rest.strip_prefix(b" ") else {
        return rest.is_empty();
    };
    let seq_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(json) = rest[seq_len..].strip_prefix(b" ") else {
        return rest.len() == seq_len;
    };
    // A prefix of valid JSON fails only with "unexpected end of input".
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(_) => false,
        Err(e) => e.is_eof(),
    }
}

/// Validates the journal. Err is `(record number, reason)` for corruption.
///
/// Only a torn last write may be dropped: every line that ends with a newline was written
/// whole, so it must decode (a flipped bit in an acknowledged last record stops the start
/// instead of silently undoing it), and bytes after the last newline are kept when they form a
/// complete record (only the newline is missing), dropped when they are the beginning of one,
/// and refused otherwise.
fn scan_journal(data: &[u8], snapshot_seq: u64) -> Result<Scan, (u64, String)> {
    let mut scan = Scan {
        changes: Vec::new(),
        records: 0,
        valid_len: 0,
        last_seq: 0,
        missing_newline: false,
    };
    let mut prev_seq: Option<u64> = None;
    let mut pos = 0usize;
    while pos < data.len() {
        let record = scan.records + 1;
        let (seq, changes, next) = match data[pos..].iter().position(|&b| b == b'\n') {
            Some(nl) => match decode_record(&data[pos..pos + nl]) {
                Ok((seq, changes)) => (seq, changes, pos + nl + 1),
                Err(reason) => return Err(damaged(record, pos, reason)),
            },
            None => match classify_tail(&data[pos..]) {
                Tail::Complete(seq, changes) => {
                    scan.missing_newline = true;
                    (seq, changes, data.len())
                }
                Tail::Torn => break,
                Tail::Corrupt(reason) => return Err(damaged(record, pos, reason)),
            },
        };
        match prev_seq {
            Some(p) if seq != p + 1 => {
                return Err(damaged(
                    record,
                    pos,
                    format!("sequence jumps from {p} to {seq}"),
                ))
            }
            _ => {}
        }
        if seq > snapshot_seq && changes.is_empty() {
            // A base record (`FileStore::compact`): every real record has changes.
            return Err((
                record,
                format!(
                    "the journal continues snapshot {seq}, but the snapshot ends at \
                     {snapshot_seq} (missing or older); restore it from a backup"
                ),
            ));
        }
        if seq > snapshot_seq {
            let first_new = match prev_seq {
                Some(p) => p <= snapshot_seq,
                None => true,
            };
            if first_new && seq != snapshot_seq + 1 {
                return Err((
                    record,
                    format!(
                        "journal starts at record {seq} but the snapshot ends at {snapshot_seq}; \
                         records are missing"
                    ),
                ));
            }
            scan.changes.extend(changes);
        }
        prev_seq = Some(seq);
        scan.last_seq = seq;
        scan.records = record;
        pos = next;
        scan.valid_len = pos as u64;
    }
    Ok(scan)
}

/// The state as a minimal list of changes that rebuilds it: IP filters, library filters,
/// tokens, share links (each sorted by key, for a deterministic file), then one `LastUsed`.
pub(crate) fn state_changes(state: &Snapshot) -> Vec<Change> {
    let mut ip_filters: Vec<_> = state.ip_filters.values().cloned().collect();
    ip_filters.sort_by(|a, b| a.name.cmp(&b.name));
    let mut filters: Vec<_> = state.filters.values().cloned().collect();
    filters.sort_by(|a, b| a.id.cmp(&b.id));
    let mut tokens: Vec<_> = state.tokens.values().map(|t| (**t).clone()).collect();
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    let mut times: Vec<_> = state
        .last_used
        .iter()
        .map(|(id, t)| (id.clone(), *t))
        .collect();
    times.sort();
    let mut links: Vec<_> = state.links.values().map(|l| (**l).clone()).collect();
    links.sort_by(|a, b| a.id.cmp(&b.id));

    let mut out =
        Vec::with_capacity(ip_filters.len() + filters.len() + tokens.len() + links.len() + 1);
    out.extend(
        ip_filters
            .into_iter()
            .map(|ip_filter| Change::PutIpFilter { ip_filter }),
    );
    out.extend(
        filters
            .into_iter()
            .map(|filter| Change::PutFilter { filter }),
    );
    out.extend(tokens.into_iter().map(|token| Change::PutToken { token }));
    out.extend(links.into_iter().map(|link| Change::PutLink { link }));
    if !times.is_empty() {
        out.push(Change::LastUsed { times });
    }
    out
}

// === filesystem helpers ===

/// Whether the file at `path` is no longer `open` (moved, replaced or removed).
#[cfg(unix)]
fn moved(path: &Path, open: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = open.metadata()?;
    match fs::metadata(path) {
        Ok(at) => Ok(at.dev() != held.dev() || at.ino() != held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn moved(_path: &Path, _open: &File) -> io::Result<bool> {
    Ok(false)
}

fn io_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn not_loaded(dir: &Path) -> StoreError {
    io_err(dir, io::Error::other("store used before load"))
}

#[cfg(unix)]
fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file_options() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

#[cfg(not(unix))]
fn private_file_options() -> OpenOptions {
    OpenOptions::new()
}

/// An existing store directory readable by others is the operator's choice, but worth a warning:
/// the journal names every token and filter.
#[cfg(unix)]
fn warn_if_not_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{mode:o}"),
                "store directory is accessible to other users; 0700 is recommended"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_not_private(_dir: &Path) {}

/// Makes a directory's entries (new files, renames) durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
struct FailWrite {
    after_bytes: usize,
}

#[cfg(test)]
mod tests;
