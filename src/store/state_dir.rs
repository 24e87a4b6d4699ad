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
//! 1. An event is checked, appended to the current journal segment and the segment fsync'd; only
//!    then is it applied in memory and acknowledged. There is no state that is applied but not
//!    saved.
//! 2. If the append fails (disk full, read-only, I/O error), the event is not applied and the
//!    caller gets the error to pass on ("not saved, because …"). The segment cuts off any partial
//!    record before appending again, so nothing saved is damaged.
//! 3. A snapshot is due when the journal has grown to `journal_to_snapshot_ratio` × the last
//!    snapshot's size (and at least `min_journal_bytes`), or past `max_journal_bytes`. It is written
//!    atomically (see [`super::snapshot`]) and read back; then a new journal segment starts after
//!    it, snapshots beyond `keep_snapshots` are removed, and journal segments are removed only
//!    once a second, older snapshot covers them: a damaged newest snapshot always has an older
//!    snapshot or the whole journal to be rebuilt from.
//!
//! Flash writes per label are therefore the journal record (about the feature's bytes + 60) plus
//! the amortised snapshot (at most as much again at ratio 1.0); `fieldtune state bench` measures it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::config::StoreConfig;
use super::data::{Applied, HeadBlob, StateData};
use super::events::{JournalEntry, LabelEvent};
use super::format::FileKind;
use super::fs::{parent_dir, Fs};
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
}

/// What [`Store::open`] recovered, for the code that rebuilds the head.
#[derive(Debug)]
pub struct Opened {
    /// Events replayed after that snapshot, in order.
    pub replayed: Vec<JournalEntry>,
    /// What was recovered, dropped and set aside.
    pub report: RecoveryReport,
}

/// What [`Store::open_with`] does when events that were saved once cannot be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfLost {
    /// Refuse to open ([`StoreError::Unrecoverable`]) and change nothing: the person decides.
    Refuse,
    /// Start from what could be recovered; damaged files are set aside as `*.corrupt`.
    StartFromWhatIsLeft,
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
        Self::open_with(fs, dir, backbone, config, IfLost::Refuse)
    }

    /// [`Self::open`], saying what to do when saved events cannot be recovered.
    ///
    /// # Errors
    /// As [`Self::open`]; [`StoreError::Unrecoverable`] with [`IfLost::Refuse`] when events that
    /// were saved once are lost (nothing is changed on disk then).
    pub fn open_with(
        fs: Arc<dyn Fs>,
        dir: &Path,
        backbone: BackboneId,
        config: StoreConfig,
        if_lost: IfLost,
    ) -> Result<(Self, Opened)> {
        config.validate()?;
        fs.create_dir_all(dir)
            .map_err(|e| StoreError::io("create the state directory", dir, e))?;
        let recovery = recover(fs.as_ref(), dir, &backbone, &config)?;
        let report = recovery.report;
        if report.lost_events() && if_lost == IfLost::Refuse {
            return Err(StoreError::Unrecoverable {
                dir: dir.to_path_buf(),
                detail: report.loss_summary(),
            });
        }
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
        if damaged || !report.is_clean() || report.migrated {
            store.repair_due = true;
        }
        if store.segment.is_none() {
            if let Err(e) = store.start_segment() {
                warn!("cannot start a journal segment yet ({e}); will retry on the next label");
            }
        }
        let opened = Opened {
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

    /// Bytes written so far.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Journal record bytes since the last snapshot.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes
    }

    /// Checks `event`, makes it durable in the journal, then applies it.
    ///
    /// # Errors
    /// [`StoreError::InvalidEvent`] when the event does not fit the state, or the storage failure
    /// (full, read-only, I/O) that kept it from the journal; in both cases nothing changed.
    pub fn commit(&mut self, event: LabelEvent) -> Result<Committed> {
        self.data.check(&event, self.backbone.dim)?;
        let entry = JournalEntry {
            seq: self.data.seq + 1,
            event,
        };
        if self.segment.is_none() {
            self.start_segment()?;
        }
        let Some(segment) = self.segment.as_mut() else {
            return Err(StoreError::InvalidEvent("no journal segment".into()));
        };
        let written = segment.append(self.fs.as_ref(), std::slice::from_ref(&entry))?;
        self.stats.journal_bytes += written;
        self.stats.journaled_events += 1;
        self.journal_bytes += written;
        self.events_since_snapshot += 1;
        let applied = self.data.apply(&entry, self.backbone.dim, &self.config)?;
        Ok(Committed {
            seq: self.data.seq,
            applied,
        })
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
    }

    /// Sets the head the next snapshot will hold (None: the next start retrains).
    pub fn set_head(&mut self, head: Option<HeadBlob>) {
        self.data.head = head;
    }

    /// Writes a snapshot of the whole state now, reads it back, starts a new journal segment
    /// after it and removes what is no longer needed.
    ///
    /// # Errors
    /// The storage failure, or a snapshot that does not read back; the previous snapshot and
    /// journal are untouched and still recover the state.
    pub fn snapshot(&mut self) -> Result<u64> {
        let seq = self.data.seq;
        let path = self.dir.join(snapshot_name(seq));
        // Written and read back a window at a time: a snapshot meets a device's retrain, and
        // neither its bytes nor a second decoded state are held beside the live one.
        let written = snapshot::write(
            self.fs.as_ref(),
            &self.data,
            FileKind::Snapshot,
            &self.backbone,
            &path,
        )?;
        // Only a snapshot that reads back whole may let older files go.
        snapshot::verify(self.fs.as_ref(), &path, FileKind::Snapshot, &self.backbone)?;
        self.stats.snapshot_bytes += written;
        self.stats.snapshots += 1;
        if !self.snapshots.contains(&seq) {
            self.snapshots.push(seq);
        }
        self.last_snapshot_bytes = written;
        self.journal_bytes = 0;
        self.events_since_snapshot = 0;
        self.repair_due = false;
        if let Err(e) = self.start_segment() {
            warn!("snapshot written, but cannot start a new journal segment ({e}); retrying later");
        }
        self.prune();
        Ok(written)
    }

    /// Snapshots if [`Self::snapshot_due`].
    ///
    /// # Errors
    /// The storage failure (everything acknowledged is still in the journal).
    pub fn snapshot_if_due(&mut self) -> Result<bool> {
        if self.snapshot_due() {
            self.snapshot()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn start_segment(&mut self) -> Result<()> {
        let start = self.data.seq + 1;
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

    /// Removes snapshots beyond `keep_snapshots`, and journal segments that an older kept
    /// snapshot covers (with a single snapshot, every segment stays: it is what rebuilds the
    /// state if that snapshot is damaged); damaged segments are set aside instead of removed.
    fn prune(&mut self) {
        let keep = self.config.keep_snapshots as usize;
        self.snapshots.sort_unstable();
        while self.snapshots.len() > keep {
            let seq = self.snapshots.remove(0);
            self.remove(&snapshot_name(seq));
        }
        if self.snapshots.len() < 2 {
            return;
        }
        let oldest = self.snapshots[0];
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
