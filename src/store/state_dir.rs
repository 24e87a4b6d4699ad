//! [`Store`]: a state directory kept crash-safe. Applies label events in memory, makes them durable
//! in the journal before saying so, writes snapshots when due, and recovers on open. Knows nothing
//! of heads: the head travels as opaque bytes (see [`super::device_state`] for the glue).
//!
//! # Directory layout
//! `snapshot-<seq>.ft` (whole state up to event seq), `journal-<start>.ft` (events from start on),
//! `*.tmp` (an interrupted save, removed on open), `*.corrupt` (damaged files set aside, kept for
//! inspection, never read again).
//!
//! # Commit protocol
//! 1. An event is checked, applied in memory and appended to the current journal segment, then
//!    the segment is fsync'd; only then is the event acknowledged (`durable: Ok`).
//! 2. If the append fails (disk full, read-only, I/O error), the event stays applied in memory and
//!    queued; every later commit, [`Store::flush`] and [`Store::snapshot`] retries it. The segment
//!    cuts off any partial record before appending again, so nothing saved is damaged.
//! 3. A snapshot is due when the journal has grown to `journal_to_snapshot_ratio` × the last
//!    snapshot's size (and at least `min_journal_bytes`), or past `max_journal_bytes`. It is written
//!    atomically (see [`super::snapshot`]), then a new journal segment starts after it, then
//!    snapshots beyond `keep_snapshots` and the segments only they needed are removed.
//!
//! Flash writes per label are therefore the journal record (about the feature's bytes + 60) plus
//! the amortised snapshot (at most as much again at ratio 1.0); `fieldtune state bench` measures it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::config::StoreConfig;
use super::data::{Applied, StateData};
use super::events::{JournalEntry, LabelEvent};
use super::features::Blob;
use super::format::FileKind;
use super::fs::{parent_dir, write_atomic, Fs};
use super::journal::{segment_name, Segment};
use super::recovery::{recover, RecoveryReport};
use super::snapshot::{self, snapshot_name};
use super::{Result, StoreError};
use crate::model::BackboneId;

/// Bytes and operations a store has written since it was opened (for the benchmark and wear logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Bytes appended to journal segments.
    pub journal_bytes: u64,
    /// Bytes of snapshot files written.
    pub snapshot_bytes: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// Events made durable through the journal.
    pub journaled_events: u64,
}

/// The outcome of [`Store::commit`] for an event that was valid.
#[derive(Debug)]
pub struct Committed {
    /// The event's sequence number.
    pub seq: u64,
    /// What applying it did.
    pub applied: Applied,
    /// Ok once the event (and every earlier one) is on flash; otherwise it is applied in memory,
    /// queued, and retried by the next commit, flush or snapshot.
    pub durable: Result<()>,
}

/// What [`Store::open`] recovered, for the code that rebuilds the head.
#[derive(Debug)]
pub struct Opened {
    /// Head bytes of the snapshot recovery started from.
    pub base_head: Option<Blob>,
    /// Events replayed after that snapshot, in order.
    pub replayed: Vec<JournalEntry>,
    /// What was recovered, dropped and set aside.
    pub report: RecoveryReport,
}

/// A state directory, open for writing.
#[derive(Debug)]
pub struct Store {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    backbone: BackboneId,
    config: StoreConfig,
    data: StateData,
    segment: Option<Segment>,
    pending: Vec<JournalEntry>,
    snapshots: Vec<u64>,
    /// Journal segments on disk (start, damaged), ascending.
    segments: Vec<(u64, bool)>,
    last_snapshot_bytes: u64,
    journal_bytes: u64,
    events_since_snapshot: u64,
    repair_due: bool,
    stats: WriteStats,
}

impl Store {
    /// Opens (creating if needed) the state in `dir`: recovers, removes leftover temporary files,
    /// sets damaged files aside, marks a repair snapshot due if anything was dropped (see
    /// [`Self::snapshot_due`]), and gets a journal segment ready. A storage failure after recovery (e.g. a read-only card) does not
    /// fail the open: the state serves from memory and saving is retried.
    ///
    /// # Errors
    /// [`StoreError::OtherBackbone`] (the directory belongs to another model),
    /// [`StoreError::NewerVersion`], [`StoreError::Config`], or an I/O error creating or listing
    /// the directory.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        backbone: BackboneId,
        config: StoreConfig,
    ) -> Result<(Self, Opened)> {
        config.validate()?;
        fs.create_dir_all(dir)
            .map_err(|e| StoreError::io("create the state directory", dir, e))?;
        let recovery = recover(fs.as_ref(), dir, &backbone, &config)?;
        let report = recovery.report;
        info!("{}: {report}", dir.display());
        let mut store = Self {
            fs,
            dir: dir.to_path_buf(),
            backbone,
            config,
            data: recovery.data,
            segment: recovery
                .resume
                .map(|(path, len)| Segment::resume(path, len)),
            pending: Vec::new(),
            snapshots: recovery.snapshots,
            segments: recovery.segments,
            last_snapshot_bytes: 0,
            journal_bytes: report.journal_bytes,
            events_since_snapshot: recovery.replayed.len() as u64,
            repair_due: false,
            stats: WriteStats::default(),
        };
        if let Some(seq) = store.snapshots.last() {
            let path = store.dir.join(snapshot_name(*seq));
            store.last_snapshot_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        }
        for name in &report.temporaries {
            let path = store.dir.join(name);
            match store.fs.remove(&path) {
                Ok(()) => info!("removed {}, left by an interrupted save", path.display()),
                Err(e) => warn!("cannot remove {}: {e}", path.display()),
            }
        }
        for (name, reason) in &report.set_aside {
            store.set_aside(name, reason);
        }
        let damaged = store.segments.iter().any(|(_, damaged)| *damaged);
        // Anything dropped: a snapshot of what was recovered makes the directory clean again.
        // It is left to the owner of the head (who first brings the head up to date), through
        // `snapshot_if_due`, so the snapshot never pairs a stale head with newer events.
        if damaged || !report.is_clean() {
            store.repair_due = true;
        }
        if store.segment.is_none() {
            if let Err(e) = store.start_segment() {
                warn!("cannot start a journal segment yet ({e}); will retry on the next label");
            }
        }
        let opened = Opened {
            base_head: recovery.base_head,
            replayed: recovery.replayed,
            report,
        };
        Ok((store, opened))
    }

    /// The state as it is in memory (including events not yet durable).
    pub fn data(&self) -> &StateData {
        &self.data
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The backbone the state belongs to.
    pub fn backbone(&self) -> &BackboneId {
        &self.backbone
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Events applied in memory but not yet durable.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes written so far.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Journal record bytes since the last snapshot.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes
    }

    /// Checks and applies `event`, then makes it durable (see [`Committed::durable`]).
    ///
    /// # Errors
    /// [`StoreError::InvalidEvent`] when the event does not fit the state; nothing changed then.
    pub fn commit(&mut self, event: LabelEvent) -> Result<Committed> {
        self.data.check(&event, self.backbone.dim)?;
        let entry = JournalEntry {
            seq: self.data.seq + 1,
            event,
        };
        let applied = self.data.apply(&entry, self.backbone.dim, &self.config)?;
        self.pending.push(entry);
        self.events_since_snapshot += 1;
        let durable = self.flush();
        Ok(Committed {
            seq: self.data.seq,
            applied,
            durable,
        })
    }

    /// Writes queued events to the journal and fsyncs.
    ///
    /// # Errors
    /// The storage failure; the events stay queued.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.segment.is_none() {
            self.start_segment()?;
        }
        let Some(segment) = self.segment.as_mut() else {
            return Ok(());
        };
        let written = segment.append(self.fs.as_ref(), &self.pending)?;
        self.stats.journal_bytes += written;
        self.stats.journaled_events += self.pending.len() as u64;
        self.journal_bytes += written;
        self.pending.clear();
        Ok(())
    }

    /// Whether a snapshot is due (journal grown past its budget, a repair pending, or events that
    /// the journal could not take).
    pub fn snapshot_due(&self) -> bool {
        let c = &self.config;
        let by_ratio = (c.journal_to_snapshot_ratio * self.last_snapshot_bytes as f64) as u64;
        self.repair_due
            || self.journal_bytes >= by_ratio.max(c.min_journal_bytes)
            || self.journal_bytes >= c.max_journal_bytes
            || (c.snapshot_every_events > 0
                && self.events_since_snapshot >= c.snapshot_every_events)
            || (!self.pending.is_empty()
                && self.events_since_snapshot > 0
                && self.segment.is_none())
    }

    /// Sets the head bytes the next snapshot will hold.
    pub fn set_head(&mut self, head: Option<Vec<u8>>) {
        self.data.head = head.map(Blob);
    }

    /// Writes a snapshot of the whole state now (including queued events, which it makes
    /// durable), starts a new journal segment after it and removes what is no longer needed.
    ///
    /// # Errors
    /// The storage failure; the previous snapshot and journal are untouched and still recover the
    /// last durable state.
    pub fn snapshot(&mut self) -> Result<u64> {
        let seq = self.data.seq;
        let path = self.dir.join(snapshot_name(seq));
        let bytes = snapshot::encode(&self.data, FileKind::Snapshot, &self.backbone, &path)?;
        write_atomic(self.fs.as_ref(), &path, &bytes)?;
        self.stats.snapshot_bytes += bytes.len() as u64;
        self.stats.snapshots += 1;
        if !self.snapshots.contains(&seq) {
            self.snapshots.push(seq);
        }
        self.pending.clear();
        self.last_snapshot_bytes = bytes.len() as u64;
        self.journal_bytes = 0;
        self.events_since_snapshot = 0;
        self.repair_due = false;
        if let Err(e) = self.start_segment() {
            warn!("snapshot written, but cannot start a new journal segment ({e}); retrying later");
        }
        self.prune();
        Ok(bytes.len() as u64)
    }

    /// Snapshots if [`Self::snapshot_due`]; retries queued events first.
    ///
    /// # Errors
    /// The storage failure (the state keeps serving from memory).
    pub fn snapshot_if_due(&mut self) -> Result<bool> {
        let flushed = self.flush();
        if self.snapshot_due() || flushed.is_err() {
            self.snapshot()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn start_segment(&mut self) -> Result<()> {
        let start = self.data.seq + 1 - self.pending.len() as u64;
        let name = segment_name(start);
        if let Some(pos) = self.segments.iter().position(|(s, _)| *s == start) {
            if self
                .segment
                .as_ref()
                .is_some_and(|s| s.path().ends_with(&name))
            {
                return Ok(());
            }
            // A damaged segment of that name holds nothing the state uses (else the state would
            // be past `start`), but it is kept for inspection, not overwritten.
            if self.segments[pos].1 {
                self.set_aside(&name, "damaged, and its name is needed for a new segment");
                self.segments.remove(pos);
            }
        }
        let segment = Segment::create(self.fs.as_ref(), &self.dir, start, &self.backbone)?;
        self.segments.retain(|(s, _)| *s != start);
        self.segments.push((start, false));
        self.segments.sort_unstable();
        self.segment = Some(segment);
        Ok(())
    }

    /// Removes snapshots beyond `keep_snapshots` and segments only they needed; damaged segments
    /// are set aside instead of removed.
    fn prune(&mut self) {
        let keep = self.config.keep_snapshots as usize;
        self.snapshots.sort_unstable();
        while self.snapshots.len() > keep {
            let seq = self.snapshots.remove(0);
            self.remove(&snapshot_name(seq));
        }
        let Some(&oldest) = self.snapshots.first() else {
            return;
        };
        let current = self.segment.as_ref().map(|s| s.path().to_path_buf());
        let mut keep_segments = Vec::new();
        let starts: Vec<(u64, bool)> = self.segments.clone();
        for (i, (start, damaged)) in starts.iter().enumerate() {
            let name = segment_name(*start);
            let is_current = current.as_ref().is_some_and(|p| p.ends_with(&name));
            // Segment i holds events up to the next segment's start − 1 (or beyond, for the last).
            let covered = starts
                .get(i + 1)
                .is_some_and(|(next, _)| next.saturating_sub(1) <= oldest);
            if is_current {
                keep_segments.push((*start, *damaged));
            } else if *damaged {
                // Its valid events are all in the snapshot just written.
                self.set_aside(&name, "damaged; its valid events are in a newer snapshot");
            } else if covered {
                self.remove(&name);
            } else {
                keep_segments.push((*start, *damaged));
            }
        }
        self.segments = keep_segments;
        if let Err(e) = self.fs.sync_dir(&self.dir) {
            warn!("cannot fsync {}: {e}", self.dir.display());
        }
    }

    fn remove(&self, name: &str) {
        let path = self.dir.join(name);
        if let Err(e) = self.fs.remove(&path) {
            warn!("cannot remove {} ({e}); it will be retried", path.display());
        }
    }

    /// Renames a damaged file to `<name>.corrupt` (or `.corrupt-2`, …) so it is kept but never read.
    fn set_aside(&self, name: &str, reason: &str) {
        let from = self.dir.join(name);
        let mut to = self.dir.join(format!("{name}.corrupt"));
        let mut n = 2;
        while to.exists() {
            to = self.dir.join(format!("{name}.corrupt-{n}"));
            n += 1;
        }
        match self.fs.rename(&from, &to) {
            Ok(()) => {
                warn!(
                    "set aside {} as {} ({reason})",
                    from.display(),
                    to.display()
                );
                if let Err(e) = self.fs.sync_dir(&parent_dir(&to)) {
                    warn!("cannot fsync {}: {e}", self.dir.display());
                }
            }
            Err(e) => warn!("cannot set aside {} ({e}); it stays unused", from.display()),
        }
    }
}
