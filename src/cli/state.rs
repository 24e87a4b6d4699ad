//! `fieldtune state …`: look into a device state directory (`inspect`), move a state between
//! devices (`export`, `import`, `merge`), start a device from a head trained by `fieldtune train`
//! (`import --head`), and two tools for testing the store: a hidden `soak` labelling
//! loop (the kill test runs it and SIGKILLs it) and `bench` (flash bytes per label and per
//! snapshot, commit latency, recovery time of 10,000 samples).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ndarray::Array1;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::learner::{Frame, Learner, LearnerConfig};
use crate::model::BackboneId;
use crate::store;

/// The `state` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Classes, counts, sizes, format version, journal length and health of a state directory (or
    /// of one fieldtune file).
    Inspect {
        /// The state directory or file.
        path: PathBuf,
    },
    /// Packs a state directory into one file (replay set, classes, head) to move it to another
    /// device, and/or writes its samples' thumbnails as class folders (`--images`) that
    /// `fieldtune train` reads. Reads only; safe while the service runs.
    Export {
        /// The state directory.
        path: PathBuf,
        /// The file to write.
        #[arg(long, required_unless_present_any = ["images", "head"])]
        out: Option<PathBuf>,
        /// Write each live class's thumbnails as DIR/<class>/<sample id>.jpg (DIR must not exist
        /// or be empty).
        #[arg(long, value_name = "DIR")]
        images: Option<PathBuf>,
        /// Write the head the device serves (refitted to the stored samples when labels came
        /// after its last snapshot) as a head file for `fieldtune eval` and `predict`.
        #[arg(long, value_name = "FILE")]
        head: Option<PathBuf>,
    },
    /// Unpacks an exported file into a new state directory, or (`--head`) starts a device state
    /// from a head trained by `fieldtune train`: its classes become the device's and the device's
    /// labels then fine-tune it (it stays the prior of every retrain).
    Import {
        /// The exported file (`fieldtune state export --out`).
        #[arg(required_unless_present = "head", conflicts_with = "head")]
        file: Option<PathBuf>,
        /// A head file written by `fieldtune train` (or `state export --head`).
        #[arg(long, value_name = "FILE")]
        head: Option<PathBuf>,
        /// The state directory (for `--head`: new, or one whose service is stopped).
        #[arg(long)]
        into: PathBuf,
        /// With `--head`: import into a state that already has labelled samples or an imported
        /// head. The samples are kept and fine-tune the new head; a class of the head whose name
        /// the state has is that class, the others are added; an earlier imported head is
        /// replaced.
        #[arg(long, requires = "head")]
        force: bool,
        /// With `--head`: the model descriptor of the device's backbone (default: the shipped
        /// one); the head must have been trained with it.
        #[arg(long, value_name = "FILE", requires = "head")]
        model: Option<PathBuf>,
    },
    /// Merges exported file B's labels into exported file A, as a new exported file: classes
    /// matched by name, B's samples added unless A labelled the same frame (A's label wins),
    /// within the store's caps; the head is left out, so the device refits it on import. Both
    /// must come from the same backbone.
    Merge {
        /// The exported file whose labels win.
        a: PathBuf,
        /// The exported file merged into it.
        b: PathBuf,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-embeds a state's samples from their thumbnails with another backbone into a new state
    /// directory (classes and samples kept; samples without a thumbnail, the undo history and the
    /// head are left behind: the device refits the head on start). Reads only from the source.
    Rebase {
        /// The state directory.
        path: PathBuf,
        /// The model descriptor of the new backbone (models/*.toml).
        #[arg(long, value_name = "FILE")]
        model: PathBuf,
        /// The state directory to create (must not hold a state yet).
        #[arg(long, value_name = "DIR")]
        into: PathBuf,
    },
    /// Test tool: labels random features in a loop, printing `ack <sample id>` after each durable
    /// label (the kill test SIGKILLs it).
    #[command(hide = true)]
    Soak {
        /// The state directory.
        #[arg(long)]
        dir: PathBuf,
        /// Labels to make.
        #[arg(long, default_value_t = 1000)]
        events: u64,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Feature length.
        #[arg(long, default_value_t = 1280)]
        dim: u32,
    },
    /// Measures flash bytes per label and per snapshot, the time to commit a label durably and to
    /// recover a state of `--samples` stored samples.
    Bench {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Where to write the benchmark states (default: a temporary directory, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Stored samples of the recovery benchmark.
        #[arg(long, default_value_t = 10_000)]
        samples: u64,
        /// Labels of the write benchmark.
        #[arg(long, default_value_t = 2_000)]
        labels: u64,
        /// Bytes of the thumbnail kept with each label of the write benchmark (0: none; the
        /// default is about a real 112 px JPEG).
        #[arg(long, default_value_t = STAND_IN_THUMBNAIL_BYTES)]
        thumbnail_bytes: usize,
    },
}

/// Runs a `state` subcommand.
///
/// # Errors
/// Whatever the store reports, with the file and the fix.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Merge { a, b, out } => merge(&a, &b, &out),
        Command::Inspect { path } => inspect(&path),
        Command::Export {
            path,
            out,
            images,
            head,
        } => {
            if let Some(out) = out {
                export(&path, &out)?;
            }
            if let Some(head) = head {
                export_head(&path, &head)?;
            }
            match images {
                Some(images) => export_images(&path, &images),
                None => Ok(()),
            }
        }
        Command::Import {
            file,
            head,
            into,
            force,
            model,
        } => match (file, head) {
            (_, Some(head)) => import_head(&head, &into, force, model.as_deref()),
            (Some(file), None) => import(&file, &into),
            (None, None) => bail!("give an exported file or --head FILE"),
        },
        Command::Rebase { path, model, into } => rebase(&path, &model, &into),
        Command::Soak {
            dir,
            events,
            seed,
            dim,
        } => soak(&dir, events, seed, dim),
        Command::Bench {
            json,
            dir,
            samples,
            labels,
            thumbnail_bytes,
        } => bench(json, dir.as_deref(), samples, labels, thumbnail_bytes),
    }
}

/// The backbone identity `soak` and `bench` use (their features are random, not a model's).
pub fn soak_backbone(dim: u32) -> BackboneId {
    BackboneId {
        sha256: Sha256::digest(b"fieldtune state soak").into(),
        dim,
    }
}

fn fs() -> Arc<dyn store::fs::Fs> {
    Arc::new(store::fs::RealFs)
}

fn inspect(path: &Path) -> anyhow::Result<()> {
    if path.is_file() {
        return inspect_file(path);
    }
    let fs = fs();
    let backbone = store::recovery::detect_backbone(fs.as_ref(), path).with_context(|| {
        format!(
            "{} holds no readable fieldtune state (no snapshot-*.ft or journal-*.ft with a valid header)",
            path.display()
        )
    })?;
    let config = store::StoreConfig::default();
    let recovery = store::recovery::recover(fs.as_ref(), path, &backbone, &config)?;
    let data = &recovery.data;
    outln!("state directory   {}", path.display());
    outln!(
        "in use            {}",
        match store::lock::StateLock::holder(path) {
            Some(h) => format!(
                "by process {} ({}){}",
                h.pid,
                h.command.escape_debug(),
                h.socket
                    .map(|s| format!(", control socket {}", s.display()))
                    .unwrap_or_default()
            ),
            None => "no (no fieldtune holds it now)".to_string(),
        }
    );
    outln!(
        "backbone          {}",
        store::format::describe_backbone(&backbone)
    );
    outln!(
        "format version    {} (this build writes {})",
        recovery
            .report
            .snapshot_version
            .map_or("- (journal only)".into(), |v| v.to_string()),
        store::format::FORMAT_VERSION
    );
    outln!("last event        {}", data.seq);
    outln!(
        "classes           {} ({} stored samples, {} KiB of features and thumbnails{})",
        data.classes.len(),
        data.samples.len(),
        data.feature_bytes / 1024,
        data.samples
            .first()
            .map_or(String::new(), |s| format!(", {:?}", s.feature.encoding()))
    );
    for (i, class) in data.classes.iter().enumerate() {
        outln!(
            "  {i:>3} {:<24} {:>6} stored, {:>6} labelled{}",
            class.name.escape_debug().to_string(),
            data.class_count(i as u32),
            class.seen,
            if class.deleted { " (deleted)" } else { "" }
        );
    }
    outln!("undo history      {} actions", data.undo.len());
    match crate::learner::prior::Prior::load(path, &backbone) {
        Ok(None) => {}
        Ok(Some(prior)) => outln!(
            "imported head     {} classes ({}), the prior every retrain fine-tunes ({})",
            prior.imported().head.classes().len(),
            prior.live_classes(data).len().to_string() + " live",
            crate::learner::prior::IMPORTED_HEAD_FILE
        ),
        Err(e) => outln!("imported head     DAMAGED, ignored by the device: {e}"),
    }
    let prior = crate::learner::prior::Prior::load(path, &backbone)
        .ok()
        .flatten();
    outln!(
        "head              {}",
        data.head.as_ref().map_or(
            "none in the snapshot (refitted on start)".into(),
            |h| format!(
                "{} bytes in the snapshot{}",
                h.bytes.0.len(),
                if h.basis == crate::learner::prior::head_basis(data, prior.as_ref()) {
                    ", fitted to exactly these samples"
                } else {
                    " (predates the last labels: refitted on start)"
                }
            )
        )
    );
    outln!(
        "journal           {} events after the snapshot, {} segments, {} bytes",
        recovery.report.replayed,
        recovery.report.journal_segments,
        recovery.report.journal_bytes
    );
    let mut names = fs.list(path).unwrap_or_default();
    names.sort();
    outln!("files");
    for name in &names {
        let len = std::fs::metadata(path.join(name)).map_or(0, |m| m.len());
        outln!("  {name:<48} {len:>12} bytes");
    }
    let corrupt: Vec<&String> = names.iter().filter(|n| n.contains(".corrupt")).collect();
    let healthy = recovery.report.is_clean() && recovery.report.temporaries.is_empty();
    outln!(
        "health            {}",
        if recovery.report.lost_events() {
            "LOST EVENTS: the service refuses to start on this state (see below); restore the \
             damaged files or start with `fieldtune run --start-fresh`"
                .to_string()
        } else if healthy && corrupt.is_empty() {
            "ok".to_string()
        } else if healthy {
            format!(
                "ok ({} damaged files set aside earlier, kept for inspection)",
                corrupt.len()
            )
        } else {
            "damaged: the device will drop what is listed below on its next start".to_string()
        }
    );
    for line in &recovery.report.lost {
        outln!("  lost: {line}");
    }
    for line in &recovery.report.dropped {
        outln!("  dropped: {line}");
    }
    for name in &recovery.report.temporaries {
        outln!("  leftover of an interrupted save: {name}");
    }
    Ok(())
}

fn inspect_file(path: &Path) -> anyhow::Result<()> {
    let bytes = crate::bounded_file::read(path, crate::bounded_file::MAX_STATE_FILE_BYTES)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let header = store::format::Header::decode(&bytes, path)?;
    let container = store::format::read_container(&bytes, path, header.kind, &header.backbone)?;
    outln!("file              {}", path.display());
    outln!("kind              {}", header.kind.name());
    outln!("format version    {}", header.version);
    outln!(
        "backbone          {}",
        store::format::describe_backbone(&header.backbone)
    );
    outln!(
        "records           {} ({} bytes)",
        container.records.len(),
        bytes.len()
    );
    match &container.damage {
        None => outln!("health            ok"),
        Some(damage) => outln!("health            damaged: {damage}"),
    }
    Ok(())
}

fn export(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let fs = fs();
    let backbone = store::recovery::detect_backbone(fs.as_ref(), dir)
        .with_context(|| format!("{} holds no fieldtune state", dir.display()))?;
    let recovery =
        store::recovery::recover(fs.as_ref(), dir, &backbone, &store::StoreConfig::default())?;
    let mut data = recovery.data;
    if !recovery.replayed.is_empty() {
        // The snapshot's head predates the journal; the importing device retrains from the
        // replay set rather than start from a head that misses labels.
        data.head = None;
    }
    let bytes = store::snapshot::encode(&data, store::format::FileKind::Export, &backbone, out)?;
    store::fs::write_atomic(fs.as_ref(), out, &bytes)?;
    outln!(
        "exported {} classes, {} samples (up to event {}) to {} ({} bytes)",
        data.classes.len(),
        data.samples.len(),
        data.seq,
        out.display(),
        bytes.len()
    );
    Ok(())
}

/// A class name as a folder name: `/` and `%` are escaped as `%2F` and `%25`, and a name of dots
/// only gets its first dot escaped, so every name is one folder and the same name twice is one.
pub fn folder_name(class: &str) -> String {
    let escaped = class.replace('%', "%25").replace('/', "%2F");
    if escaped.chars().all(|c| c == '.') {
        format!("%2E{}", &escaped[1..])
    } else {
        escaped
    }
}

/// The device's head as a head file: the state is copied aside (the running service is not
/// disturbed and nothing in `dir` is written), opened there and settled, as the device does on
/// start; heads that must be refitted are fitted with the default (linear) head settings.
fn export_head(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let fs = fs();
    let backbone = store::recovery::detect_backbone(fs.as_ref(), dir)
        .with_context(|| format!("{} holds no fieldtune state", dir.display()))?;
    let copy = std::env::temp_dir().join(format!("fieldtune-export-head-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).with_context(|| format!("cannot create {}", copy.display()))?;
    let result = (|| {
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".ft") {
                std::fs::copy(entry.path(), copy.join(&name))
                    .with_context(|| format!("cannot copy {}", entry.path().display()))?;
            }
        }
        let (mut learner, _) = Learner::open(&copy, backbone, LearnerConfig::default(), None)?;
        learner.settle();
        store::save_head(out, learner.head(), &backbone)?;
        outln!(
            "wrote the head of {} ({} classes: {}) to {}",
            dir.display(),
            learner.head().classes().len(),
            learner.head().classes().join(", "),
            out.display()
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&copy);
    result
}

fn export_images(dir: &Path, images: &Path) -> anyhow::Result<()> {
    let fs = fs();
    let backbone = store::recovery::detect_backbone(fs.as_ref(), dir)
        .with_context(|| format!("{} holds no fieldtune state", dir.display()))?;
    let recovery =
        store::recovery::recover(fs.as_ref(), dir, &backbone, &store::StoreConfig::default())?;
    let data = recovery.data;
    if images.exists()
        && std::fs::read_dir(images)
            .with_context(|| format!("cannot read {}", images.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; export --images writes into a new or empty folder only",
            images.display()
        );
    }
    let (mut written, mut without) = (0usize, 0usize);
    for (index, class) in data.live_classes() {
        let folder = images.join(folder_name(&class.name));
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        for sample in data.samples.iter().filter(|s| s.class == index) {
            if sample.thumbnail.is_empty() {
                without += 1;
                continue;
            }
            let path = folder.join(format!("{:08}.jpg", sample.id));
            std::fs::write(&path, &sample.thumbnail.0)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written += 1;
        }
    }
    outln!(
        "wrote {written} thumbnails of {} classes to {}{}",
        data.live_classes().count(),
        images.display(),
        if without > 0 {
            format!(" ({without} samples have none: labelled before format 4 or with store.thumbnail_px = 0)")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Reads an exported file: its backbone and its state.
fn read_export(file: &Path) -> anyhow::Result<(BackboneId, store::data::StateData)> {
    let bytes = crate::bounded_file::read(file, crate::bounded_file::MAX_STATE_FILE_BYTES)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let header = store::format::Header::decode(&bytes, file)?;
    let decoded = store::snapshot::decode(
        &bytes,
        file,
        store::format::FileKind::Export,
        &header.backbone,
    )?;
    Ok((header.backbone, decoded.data))
}

fn merge(a: &Path, b: &Path, out: &Path) -> anyhow::Result<()> {
    let (backbone, mut data) = read_export(a)?;
    let (other_backbone, other) = read_export(b)?;
    if other_backbone != backbone {
        bail!(
            "{} was made with backbone {} but {} with {}: features of two backbones cannot be mixed; `fieldtune state rebase` one of them to the other's model first",
            a.display(),
            store::format::describe_backbone(&backbone),
            b.display(),
            store::format::describe_backbone(&other_backbone)
        );
    }
    let report = store::merge::merge(&mut data, &other, &store::StoreConfig::default());
    let bytes = store::snapshot::encode(&data, store::format::FileKind::Export, &backbone, out)?;
    store::fs::write_atomic(fs().as_ref(), out, &bytes)?;
    outln!(
        "merged {} samples of {} into {} (left out: {} of frames it had labelled itself, {} over the store's caps; new classes: {}) → {} ({} samples, {} bytes)",
        report.added,
        b.display(),
        a.display(),
        report.same_frame,
        report.over_cap,
        if report.new_classes.is_empty() {
            "none".to_string()
        } else {
            report.new_classes.join(", ")
        },
        out.display(),
        data.live_samples().count(),
        bytes.len()
    );
    Ok(())
}

fn import(file: &Path, into: &Path) -> anyhow::Result<()> {
    let fs = fs();
    let bytes = crate::bounded_file::read(file, crate::bounded_file::MAX_STATE_FILE_BYTES)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let header = store::format::Header::decode(&bytes, file)?;
    let decoded = store::snapshot::decode(
        &bytes,
        file,
        store::format::FileKind::Export,
        &header.backbone,
    )?;
    let _lock = store::lock::StateLock::acquire(into, &store::lock::Holder::this_process(None))?;
    if let Some(existing) = store::recovery::detect_backbone(fs.as_ref(), into) {
        bail!(
            "{} already holds a state (backbone {}); move it away first, import never overwrites",
            into.display(),
            store::format::describe_backbone(&existing)
        );
    }
    fs.create_dir_all(into)
        .with_context(|| format!("cannot create {}", into.display()))?;
    let mut data = decoded.data;
    check_imported_names(&mut data).with_context(|| {
        format!(
            "{} cannot be imported; rename the class on the exporting device (`fieldtune class rename`) and export again",
            file.display()
        )
    })?;
    let path = into.join(store::snapshot::snapshot_name(data.seq));
    let snapshot = store::snapshot::encode(
        &data,
        store::format::FileKind::Snapshot,
        &header.backbone,
        &path,
    )?;
    store::fs::write_atomic(fs.as_ref(), &path, &snapshot)?;
    outln!(
        "imported {} classes, {} samples into {}",
        data.classes.len(),
        data.samples.len(),
        into.display()
    );
    Ok(())
}

/// `state import --head`: see [`Learner::import_head`] for what it does and in which order.
fn import_head(
    head_path: &Path,
    into: &Path,
    force: bool,
    model: Option<&Path>,
) -> anyhow::Result<()> {
    let descriptor = match model {
        Some(path) => crate::model::ModelDescriptor::load(path)
            .with_context(|| format!("loading model descriptor {}", path.display()))?,
        None => crate::model::ModelDescriptor::load_default()?,
    };
    let backbone = descriptor.backbone_id();
    let head = crate::cli::common::load_head_file(head_path, &descriptor).with_context(|| {
        format!(
            "{} cannot start a device of backbone {} ({}); train the head with that model (`fieldtune train --model {}`)",
            head_path.display(),
            descriptor.name,
            store::format::describe_backbone(&backbone),
            model.map_or_else(|| "…".to_string(), |m| m.display().to_string()),
        )
    })?;
    let fs = fs();
    if let Some(existing) = store::recovery::detect_backbone(fs.as_ref(), into) {
        if existing != backbone {
            bail!(
                "{} holds a state of backbone {}, the head was trained with {} ({}); give that state's model with --model, or import into a new directory",
                into.display(),
                store::format::describe_backbone(&existing),
                descriptor.name,
                store::format::describe_backbone(&backbone)
            );
        }
    }
    let lock = store::lock::StateLock::acquire(into, &store::lock::Holder::this_process(None))
        .with_context(|| {
            format!(
                "stop the service that uses {} before importing a head into it",
                into.display()
            )
        })?;
    let (mut learner, _) = Learner::open(into, backbone, LearnerConfig::default(), Some(lock))
        .with_context(|| format!("cannot open the state in {}", into.display()))?;
    let samples = learner.data().live_samples().count();
    let earlier = learner.imported_head().is_some();
    if !force && (samples > 0 || earlier) {
        let classes: Vec<String> = learner
            .classes()
            .into_iter()
            .filter(|c| c.samples > 0)
            .map(|c| format!("{} ({})", c.name, c.samples))
            .collect();
        bail!(
            "{} already {}; nothing changed. With --force the samples are kept and fine-tune the imported head (a class of the head with a name the state has is that class, the others are added{}); or import into a new directory",
            into.display(),
            match (samples > 0, earlier) {
                (true, true) => format!("holds an imported head and {samples} labelled samples: {}", classes.join(", ")),
                (true, false) => format!("holds {samples} labelled samples: {}", classes.join(", ")),
                _ => "holds an imported head".to_string(),
            },
            if earlier { "; the earlier imported head is replaced" } else { "" }
        );
    }
    let imported = learner.import_head(head).with_context(|| {
        format!(
            "cannot import {} into {}",
            head_path.display(),
            into.display()
        )
    })?;
    outln!(
        "imported the head {} ({} classes: {}) into {}{}{}",
        head_path.display(),
        imported.classes.len(),
        imported.classes.join(", "),
        into.display(),
        if imported.created.len() < imported.classes.len() {
            format!(
                "; {} of its classes existed and keep their samples",
                imported.classes.len() - imported.created.len()
            )
        } else {
            String::new()
        },
        match (imported.samples, imported.replaced) {
            (0, false) =>
                "; the device predicts as this head until its labels fine-tune it".to_string(),
            (n, replaced) => format!(
                "; fine-tuned on the {n} stored samples{}",
                if replaced {
                    ", replacing the earlier imported head"
                } else {
                    ""
                }
            ),
        }
    );
    Ok(())
}

fn rebase(dir: &Path, model: &Path, into: &Path) -> anyhow::Result<()> {
    let fs = fs();
    let backbone = store::recovery::detect_backbone(fs.as_ref(), dir)
        .with_context(|| format!("{} holds no fieldtune state", dir.display()))?;
    let recovery =
        store::recovery::recover(fs.as_ref(), dir, &backbone, &store::StoreConfig::default())?;
    let descriptor = crate::model::ModelDescriptor::load(model)
        .with_context(|| format!("loading model descriptor {}", model.display()))?;
    let mut embedder = crate::embedder::Embedder::load(&descriptor)?;
    let target = embedder.backbone_id();
    let _lock = store::lock::StateLock::acquire(into, &store::lock::Holder::this_process(None))?;
    if let Some(existing) = store::recovery::detect_backbone(fs.as_ref(), into) {
        bail!(
            "{} already holds a state (backbone {}); rebase writes a new state only",
            into.display(),
            store::format::describe_backbone(&existing)
        );
    }
    let mut data = recovery.data;
    // Hidden samples (deleted classes, deleted samples) go with the undo history they served.
    data.undo.clear();
    let live: Vec<bool> = (0..data.classes.len() as u32)
        .map(|c| data.is_live(c))
        .collect();
    let before = data.samples.len();
    data.samples
        .retain(|s| live[s.class as usize] && !s.thumbnail.is_empty());
    let dropped = before - data.samples.len();
    for sample in &mut data.samples {
        let features = embedder
            .embed_bytes(&sample.thumbnail.0)
            .with_context(|| format!("sample {}: its thumbnail does not embed", sample.id))?;
        sample.feature =
            store::features::StoredFeature::encode(&features, sample.feature.encoding());
        sample.views.clear();
    }
    data.head = None;
    data.feature_bytes = data.samples.iter().map(|s| s.stored_bytes()).sum();
    fs.create_dir_all(into)
        .with_context(|| format!("cannot create {}", into.display()))?;
    let path = into.join(store::snapshot::snapshot_name(data.seq));
    let snapshot =
        store::snapshot::encode(&data, store::format::FileKind::Snapshot, &target, &path)?;
    store::fs::write_atomic(fs.as_ref(), &path, &snapshot)?;
    outln!(
        "re-embedded {} samples of {} classes with {} into {}{}",
        data.samples.len(),
        data.live_classes().count(),
        descriptor.name,
        into.display(),
        if dropped > 0 {
            format!(" ({dropped} left behind: no thumbnail, or hidden by a deletion)")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn random_feature(rng: &mut ChaCha8Rng, dim: u32) -> Array1<f32> {
    Array1::from_iter((0..dim).map(|_| rng.gen_range(0.0f32..6.0)))
}

fn soak_config() -> LearnerConfig {
    LearnerConfig {
        store: store::StoreConfig {
            // Keep every sample so the kill test can find each acknowledged one.
            max_samples_per_class: u32::MAX,
            max_feature_bytes: u64::MAX,
            // Small journal budget: snapshots happen often, so kills land inside them too.
            min_journal_bytes: 64 << 10,
            ..store::StoreConfig::default()
        },
        ..LearnerConfig::default()
    }
}

/// One random labelled frame through the learner; returns the id of its stored sample.
fn label_random(
    learner: &mut Learner,
    rng: &mut ChaCha8Rng,
    dim: u32,
    classes: u32,
    thumbnail_bytes: usize,
) -> anyhow::Result<u64> {
    let feature = random_feature(rng, dim);
    let class = format!("class-{}", rng.gen_range(0..classes));
    let hash = store::FrameHash(rng.gen());
    let id = learner.data().next_sample_id;
    // The stand-in, repeated or cut to the size asked for.
    let stand_in = soak_thumbnail(&hash);
    let thumbnail: Vec<u8> = stand_in
        .iter()
        .copied()
        .cycle()
        .take(thumbnail_bytes)
        .collect();
    let frame = Frame {
        features: feature.as_slice().unwrap_or_default(),
        hash,
        thumbnail: &thumbnail,
    };
    learner.label(&class, &[frame])?;
    Ok(id)
}

/// Bytes of the stand-in thumbnail of the soak and the storage bench: about a real 112 px JPEG.
pub const STAND_IN_THUMBNAIL_BYTES: usize = 3072;

/// The soak's stand-in thumbnail of a frame: its hash repeated to
/// [`STAND_IN_THUMBNAIL_BYTES`], so a crash test can tell each recovered sample's thumbnail is
/// whole and its own.
pub fn soak_thumbnail(hash: &store::FrameHash) -> Vec<u8> {
    hash.0
        .iter()
        .copied()
        .cycle()
        .take(STAND_IN_THUMBNAIL_BYTES)
        .collect()
}

fn soak(dir: &Path, events: u64, seed: u64, dim: u32) -> anyhow::Result<()> {
    let (mut learner, report) = Learner::open(dir, soak_backbone(dim), soak_config(), None)?;
    tracing::info!("{report}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ learner.data().seq);
    let stdout = std::io::stdout();
    for _ in 0..events {
        let id = label_random(&mut learner, &mut rng, dim, 4, STAND_IN_THUMBNAIL_BYTES)?;
        let mut out = stdout.lock();
        writeln!(out, "ack {id}")?;
        out.flush()?;
        drop(out);
        learner.snapshot_if_due()?;
    }
    Ok(())
}

struct Latency {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let n = samples.len().max(1);
    let total: Duration = samples.iter().sum();
    Latency {
        median: samples.get(n / 2).copied().unwrap_or_default(),
        p99: samples.get(n * 99 / 100).copied().unwrap_or_default(),
        mean: total / n as u32,
    }
}

fn bench(
    json: bool,
    dir: Option<&Path>,
    samples: u64,
    labels: u64,
    thumbnail_bytes: usize,
) -> anyhow::Result<()> {
    let tmp = tempfile_dir(dir)?;
    let dim = 1280;
    let backbone = soak_backbone(dim);
    let mut rng = ChaCha8Rng::seed_from_u64(7);

    // 1. Writes: labels through the real device state with the default configuration.
    let write_dir = tmp.join("writes");
    let _ = std::fs::remove_dir_all(&write_dir);
    let config = LearnerConfig::default();
    let (mut state, _) = Learner::open(&write_dir, backbone, config.clone(), None)?;
    let mut commit_times = Vec::with_capacity(labels as usize);
    let mut snapshot_times = Vec::new();
    for _ in 0..labels {
        let start = Instant::now();
        label_random(&mut state, &mut rng, dim, 8, thumbnail_bytes)?;
        commit_times.push(start.elapsed());
        let start = Instant::now();
        if state.snapshot_if_due()? {
            snapshot_times.push(start.elapsed());
        }
    }
    let stats = state.store().stats();
    let events = stats.journaled_events.max(1);
    let journal_per_event = stats.journal_bytes as f64 / events as f64;
    let total_per_event = (stats.journal_bytes + stats.snapshot_bytes) as f64 / labels as f64;
    let per_snapshot = stats.snapshot_bytes as f64 / stats.snapshots.max(1) as f64;
    let commit = latency(commit_times);
    let snap = latency(snapshot_times);
    drop(state);

    // 2. Recovery of a state of `samples` stored samples (snapshot + 100 journal events).
    let rec_dir = tmp.join("recovery");
    let _ = std::fs::remove_dir_all(&rec_dir);
    let rec_config = LearnerConfig {
        store: store::StoreConfig {
            max_samples_per_class: u32::MAX,
            max_feature_bytes: u64::MAX,
            min_journal_bytes: u64::MAX,
            max_journal_bytes: u64::MAX,
            ..store::StoreConfig::default()
        },
        ..LearnerConfig::default()
    };
    build_state(&rec_dir, backbone, &rec_config, samples, &mut rng)?;
    let mut open_times = Vec::new();
    let mut recovered = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let (state, _) = Learner::open(&rec_dir, backbone, rec_config.clone(), None)?;
        open_times.push(start.elapsed());
        recovered = state.data().samples.len();
    }
    let open = latency(open_times);
    let snapshot_file_bytes: u64 = std::fs::read_dir(&rec_dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    if dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if json {
        let value = serde_json::json!({
            "labels": labels,
            "feature_encoding": format!("{:?}", config.store.feature_encoding),
            "journal_bytes_per_label": journal_per_event,
            "total_bytes_per_label_incl_snapshots": total_per_event,
            "snapshots": stats.snapshots,
            "bytes_per_snapshot_mean": per_snapshot,
            "commit_ms_median": ms(commit.median),
            "commit_ms_p99": ms(commit.p99),
            "commit_ms_mean": ms(commit.mean),
            "snapshot_ms_median": ms(snap.median),
            "recovery_samples": recovered,
            "recovery_snapshot_bytes": snapshot_file_bytes,
            "recovery_ms_median": ms(open.median),
            "recovery_ms_max": ms(open.p99),
        });
        outln!("{value}");
    } else {
        outln!("labels written                 {labels} (random {dim}-d features, 8 classes, default config, {:?} storage)", config.store.feature_encoding);
        outln!("journal bytes per label        {journal_per_event:.0}");
        outln!("all bytes per label            {total_per_event:.0} (journal + amortised snapshots; goal ≤ 8192)");
        outln!(
            "snapshots written              {} (mean {per_snapshot:.0} bytes, median {:.1} ms)",
            stats.snapshots,
            ms(snap.median)
        );
        outln!("durable label commit           median {:.2} ms, p99 {:.2} ms, mean {:.2} ms (journal append + fsync + head SGD step)", ms(commit.median), ms(commit.p99), ms(commit.mean));
        outln!("recovery of {recovered} samples      median {:.1} ms, max {:.1} ms (snapshot {} bytes + 100 journal events; goal < 1000 ms)", ms(open.median), ms(open.p99), snapshot_file_bytes);
    }
    Ok(())
}

/// A state of `samples` stored samples in one snapshot plus 100 journaled labels, built without
/// an fsync per sample (the recovery benchmark measures reading it, not writing it).
fn build_state(
    dir: &Path,
    backbone: BackboneId,
    config: &LearnerConfig,
    samples: u64,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<()> {
    use store::data::StateData;
    use store::events::{ClassTarget, JournalEntry, LabelEvent, Sample};
    let classes = 8u32;
    let mut data = StateData::default();
    let mut seq = 0;
    let mut apply = |data: &mut StateData, event: LabelEvent| -> anyhow::Result<()> {
        seq += 1;
        data.apply(&JournalEntry { seq, event }, backbone.dim, &config.store)?;
        Ok(())
    };
    for c in 0..classes {
        apply(
            &mut data,
            LabelEvent::NewClass {
                name: format!("class-{c}"),
            },
        )?;
    }
    for id in 0..samples {
        let feature: Vec<f32> = (0..backbone.dim).map(|_| rng.gen_range(0.0..6.0)).collect();
        let class = (id % u64::from(classes)) as u32;
        apply(
            &mut data,
            LabelEvent::Label {
                class: ClassTarget::Existing(class),
                samples: vec![Sample {
                    id,
                    class,
                    time_ms: store::snapshot::now_ms(),
                    frame_hash: store::FrameHash(rng.gen()),
                    feature: store::features::StoredFeature::encode(
                        &feature,
                        config.store.feature_encoding,
                    ),
                    thumbnail: store::features::Blob::default(),
                    views: Vec::new(),
                }],
            },
        )?;
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join(store::snapshot::snapshot_name(data.seq));
    let bytes =
        store::snapshot::encode(&data, store::format::FileKind::Snapshot, &backbone, &path)?;
    std::fs::write(&path, bytes)?;
    // A fitted head and 100 journaled labels on top, through the real learner.
    let (mut state, _) = Learner::open(dir, backbone, config.clone(), None)?;
    state.snapshot()?;
    for _ in 0..100 {
        label_random(
            &mut state,
            rng,
            backbone.dim,
            classes,
            STAND_IN_THUMBNAIL_BYTES,
        )?;
    }
    Ok(())
}

fn tempfile_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("fieldtune-state-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(path)
}

/// Holds an imported state's live class names to the rules of every class name (NFC-normalised in
/// place, bounded, printable, unique) and its classes to the most a board may allow.
fn check_imported_names(data: &mut store::data::StateData) -> anyhow::Result<()> {
    use crate::learner::names::{check_unique, NameRules};
    let rules = NameRules::BROADEST;
    let live: Vec<u32> = data.live_classes().map(|(i, _)| i).collect();
    if live.len() > rules.max_classes {
        bail!(
            "it holds {} classes, more than any board allows ({})",
            live.len(),
            rules.max_classes
        );
    }
    // Every class, deleted ones too: an undo can bring one back.
    for entry in &mut data.classes {
        entry.name = rules.normalize(&entry.name)?;
    }
    let mut names: Vec<&str> = Vec::with_capacity(live.len());
    for i in live {
        let name = data.classes[i as usize].name.as_str();
        check_unique(name, names.iter().copied())?;
        names.push(name);
    }
    Ok(())
}
