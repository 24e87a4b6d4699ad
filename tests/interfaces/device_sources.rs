//! Frame sources and the things around them: folder replay (sorted, shuffled, looping), the MJPEG
//! stream splitter on real JPEG files, the camera that fails and comes back (the flaky fake behind
//! the same trait, through the real service loop with the real model), and every board in boards/.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

use fieldtune::board::{Board, PredictionSink};
use fieldtune::source::fake::FlakySource;
use fieldtune::source::folder::{FolderSource, Order};
use fieldtune::source::mjpeg::MjpegStream;
use fieldtune::source::{Backoff, FrameData, FrameSource, SourceError};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn corn() -> PathBuf {
    root().join("tests/data/corn4-mini/test")
}

fn origins(source: &mut dyn FrameSource, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| source.next_frame().expect("frame").origin)
        .collect()
}

#[test]
fn every_board_file_loads() {
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("boards")).expect("boards/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let board = Board::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                Some(board.name.as_str()),
                path.file_stem().and_then(|s| s.to_str())
            );
            seen += 1;
        }
    }
    assert!(seen >= 7, "desktop + six device boards, found {seen}");
    let desktop = Board::desktop().expect("compiled-in desktop board");
    assert_eq!(desktop.name, "desktop");
    // The page: on localhost for the desktop, behind a token file on the devices.
    let web = desktop.web.expect("the desktop board serves the page");
    assert!(web.address.is_loopback());
    let rpi4 = Board::load(&root().join("boards/rpi4.toml")).expect("rpi4");
    let web = rpi4.web.expect("device boards serve the page");
    assert!(!web.address.is_loopback());
    assert!(matches!(web.token, fieldtune::web::TokenSource::File(_)));
}

#[test]
fn web_settings_are_checked_on_load() {
    let path = Path::new("board.toml");
    let refused = [
        ("[web]\naddress = \"0.0.0.0\"\n", "no token"),
        ("[web]\naddress = \"camera\"\n", "web.address"),
        ("[web]\ntoken = \"short\"\n", "web.token"),
        ("[web]\nmax_request_bytes = 10\n", "web.max_request_bytes"),
        ("[store]\nthumbnail_px = 5000\n", "store.thumbnail_px"),
    ];
    for (text, expected) in refused {
        let error = Board::parse(text, path).expect_err(text).to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
    let board = Board::parse("[web]\naddress = \"none\"\n", path).expect("off");
    assert!(board.web.is_none());
    let board = Board::parse("", path).expect("no [web] section");
    assert!(
        board.web.is_none(),
        "the page is off unless a board asks for it"
    );
}

#[test]
fn folder_replay_sorted_shuffled_and_looping() {
    let mut sorted = FolderSource::open(&corn(), Order::Sorted, true).expect("open");
    let n = sorted.len();
    assert_eq!(n, 24);
    let first = origins(&mut sorted, n);
    let mut expected = first.clone();
    expected.sort();
    assert_eq!(first, expected, "sorted by path");
    assert_eq!(origins(&mut sorted, n), first, "loops in the same order");

    let mut a = FolderSource::open(&corn(), Order::Shuffled { seed: 7 }, true).expect("open");
    let mut b = FolderSource::open(&corn(), Order::Shuffled { seed: 7 }, true).expect("open");
    let pass_a = origins(&mut a, n);
    assert_eq!(pass_a, origins(&mut b, n), "same seed, same order");
    assert_ne!(pass_a, first, "shuffled");
    let mut sorted_a = pass_a.clone();
    sorted_a.sort();
    assert_eq!(sorted_a, first, "a pass shows every image once");

    let mut once = FolderSource::open(&corn(), Order::Sorted, false).expect("open");
    origins(&mut once, n);
    assert!(matches!(once.next_frame(), Err(SourceError::Ended { .. })));

    let frame = FolderSource::open(&corn(), Order::Sorted, false)
        .expect("open")
        .next_frame()
        .expect("frame");
    assert_eq!(
        frame.truth.as_deref(),
        Some("Blight"),
        "the class folder is the truth"
    );

    let empty = tempfile::tempdir().expect("tempdir");
    let err = FolderSource::open(empty.path(), Order::Sorted, true).expect_err("empty");
    assert!(err.to_string().contains("holds no"), "{err}");
}

#[test]
fn mjpeg_stream_splits_concatenated_jpegs_and_resyncs_after_garbage() {
    let mut folder = FolderSource::open(&corn(), Order::Sorted, false).expect("open");
    let mut files = Vec::new();
    for _ in 0..5 {
        match folder.next_frame().expect("frame").data {
            FrameData::Encoded(bytes) => files.push(bytes),
            FrameData::Rgb(_) => panic!("folder frames are encoded"),
        }
    }
    let mut stream = b"noise before the first frame".to_vec();
    for (i, f) in files.iter().enumerate() {
        stream.extend_from_slice(f);
        if i == 2 {
            stream.extend_from_slice(&[0x00, 0xFF, 0x12, 0x34]); // garbage between frames
        }
    }
    let mut source = MjpegStream::new(std::io::Cursor::new(stream), "pipe");
    for (i, f) in files.iter().enumerate() {
        let frame = source.next_frame().expect("frame");
        let FrameData::Encoded(bytes) = frame.data else {
            panic!("encoded")
        };
        assert_eq!(&bytes, f, "frame {i} comes out byte for byte");
        image::load_from_memory(&bytes).expect("a decodable JPEG");
    }
    assert!(matches!(
        source.next_frame(),
        Err(SourceError::Ended { .. })
    ));

    let mut cut = MjpegStream::new(
        std::io::Cursor::new(files[0][..files[0].len() / 2].to_vec()),
        "pipe",
    );
    assert!(
        cut.next_frame().is_err(),
        "a truncated frame is not returned"
    );
}

#[test]
fn backoff_doubles_to_a_ceiling_and_resets() {
    let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
    let waits: Vec<_> = (0..6).map(|_| b.failed().as_millis()).collect();
    assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(b.succeeded(), 6);
    assert_eq!(b.failed().as_millis(), 100);
}

#[test]
fn a_camera_that_fails_and_comes_back_keeps_the_service_serving() {
    use fieldtune::embedder::Embedder;
    use fieldtune::learner::Learner;
    use fieldtune::model::ModelDescriptor;
    use fieldtune::notify::Notifier;
    use fieldtune::service::output::PredictionOutput;
    use fieldtune::service::{learner_config, Parts, Service};

    let dir = tempfile::tempdir().expect("tempdir");
    let folder = FolderSource::open(&corn(), Order::Sorted, true).expect("open");
    // Calls 2, 3 and 7, 8 fail: the camera is "unplugged" twice, then comes back each time.
    let flaky = FlakySource::new(Box::new(folder), vec![2..4, 7..9]);
    let mut board = Board::desktop().expect("board");
    board.output.predictions = PredictionSink::Discard;
    board.source.frame_interval = None;
    let descriptor =
        ModelDescriptor::load(&root().join("models/efficientnet_lite0.toml")).expect("model");
    let embedder = Embedder::load(&descriptor).expect("embedder");
    let (learner, _) = Learner::open(
        &dir.path().join("state"),
        embedder.backbone_id(),
        learner_config(&board),
        None,
    )
    .expect("state");
    let output = PredictionOutput::open(&board.output.predictions, board.output.min_interval)
        .expect("output");
    let service = Service::new(Parts {
        board,
        source: Box::new(flaky),
        embedder,
        learner,
        output,
        notifier: Notifier::disabled(),
        commands: mpsc::channel(),
        buttons: None,
        max_frames: Some(8),
        auto_label_every: Some(2),
        live: None,
    })
    .expect("service");
    let status = service.run(&AtomicBool::new(false)).expect("keeps serving");
    assert_eq!(
        status.frames, 8,
        "every frame after the outage was processed"
    );
    assert_eq!(status.faults, 4, "each failed attempt was counted");
    assert_eq!(status.labels, 4, "labels kept working around the outage");
}

#[test]
fn device_boards_skip_unchanged_frames_and_the_desktop_does_not() {
    for entry in std::fs::read_dir(root().join("boards")).expect("boards/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let board = Board::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let desktop = board.name == "desktop";
            assert_eq!(
                board.source.skip_unchanged.is_some(),
                !desktop,
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn skip_and_repeat_keys_are_validated_naming_the_key() {
    let parse = |text: &str| Board::parse(text, Path::new("test.toml"));
    let board = parse("[source]\nskip_unchanged = true\nrepeat_each = 5\n").expect("valid");
    assert_eq!(board.source.skip_unchanged, Some(3.0));
    assert_eq!(board.source.repeat_each, 5);
    let board = parse("[source]\nskip_threshold = 7.5\n").expect("valid");
    assert_eq!(
        board.source.skip_unchanged, None,
        "a threshold alone does not turn it on"
    );
    for (text, key) in [
        ("[source]\nskip_threshold = -1.0\n", "source.skip_threshold"),
        (
            "[source]\nskip_threshold = 300.0\n",
            "source.skip_threshold",
        ),
        ("[source]\nrepeat_each = 0\n", "source.repeat_each"),
        (
            "[source]\nkind = \"stdin\"\nrepeat_each = 3\n",
            "source.repeat_each",
        ),
    ] {
        let e = parse(text).expect_err(text).to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
}

#[test]
fn folder_replay_shows_each_image_for_several_frames() {
    let mut source = FolderSource::open(&corn(), Order::Sorted, true)
        .expect("open")
        .repeat_each(3);
    let origins: Vec<String> = (0..9)
        .map(|_| source.next_frame().expect("frame").origin)
        .collect();
    for group in origins.chunks(3) {
        assert!(group.iter().all(|o| *o == group[0]), "{origins:?}");
    }
    assert_ne!(origins[0], origins[3]);
    assert_ne!(origins[3], origins[6]);
    assert!(source.describe().contains("each shown for 3 frames"));
}

#[test]
fn stable_camera_paths_are_accepted_and_followed_to_their_video_node() {
    let parse = |device: &str| {
        Board::parse(
            &format!("[source]\nkind = \"camera\"\ndevice = {device:?}\n"),
            Path::new("cam.toml"),
        )
    };
    for good in [
        "/dev/video0",
        "/dev/video12",
        "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920-video-index0",
        "/dev/v4l/by-path/platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.2:1.0-video-index0",
    ] {
        let board = parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        match board.source.kind {
            fieldtune::board::SourceKind::Camera { device, .. } => {
                assert_eq!(device.to_string(), good)
            }
            other => panic!("{good}: {other:?}"),
        }
    }
    for bad in [
        "video0",
        "/home/pi/video0",
        "/dev/sda",
        "/dev/videoX",
        "/dev/v4l/by-id",
        "/dev/v4l/by-label/cam",
        "/dev/v4l/by-id/../../sda",
    ] {
        let e = parse(bad).expect_err(bad).to_string();
        assert!(
            e.contains("source.device") && e.contains("/dev/v4l/by-id/NAME"),
            "{bad}: {e}"
        );
    }

    // The links as udev makes them: relative, two levels up to the node.
    let dev = tempfile::tempdir().expect("tempdir");
    std::fs::write(dev.path().join("video7"), b"").expect("node");
    std::fs::write(dev.path().join("sda"), b"").expect("disk");
    let by_id = dev.path().join("v4l/by-id");
    std::fs::create_dir_all(&by_id).expect("mkdir");
    let link = |name: &str, target: &str| {
        let path = by_id.join(name);
        std::os::unix::fs::symlink(target, &path).expect("symlink");
        path
    };
    let camera = link("usb-cam-video-index0", "../../video7");
    assert_eq!(fieldtune::source::video_index(&camera).expect("follows"), 7);
    assert_eq!(
        fieldtune::source::video_index(&dev.path().join("video7")).expect("the node itself"),
        7
    );
    let unplugged = link("usb-gone-video-index0", "../../video9");
    assert!(matches!(
        fieldtune::source::video_index(&unplugged),
        Err(SourceError::CameraMissing { .. })
    ));
    assert!(
        SourceError::CameraMissing { path: unplugged }.is_absent(),
        "an unplugged camera is waited for"
    );
    let disk = link("not-a-camera", "../../sda");
    let e = fieldtune::source::video_index(&disk).expect_err("not a video node");
    assert!(
        matches!(e, SourceError::NotAVideoDevice { .. }) && !e.is_absent() && !e.is_transient(),
        "{e}"
    );
    assert!(e.to_string().contains("sda"), "{e}");
}
