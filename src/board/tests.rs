//! Every message a board file or an overriding flag can be refused with, one row each: the text,
//! the key (or flag) the message must name, and a piece of the fix it must give. A last check makes
//! sure no section's `at.bad("key", …)` is missing from the table.

use std::path::Path;

use super::{Board, BoardError, Overrides};

/// (board text, key named, part of the message)
const INVALID: &[(&str, &str, &str)] = &[
    (
        "[source]\nfps = -1.0\n",
        "source.fps",
        "use 0 (as fast as possible)",
    ),
    ("[source]\nfps = 2000.0\n", "source.fps", "up to 1000"),
    (
        "[source]\nrepeat_each = 0\n",
        "source.repeat_each",
        "use 1 (every frame",
    ),
    (
        "[source]\nkind = \"stdin\"\nrepeat_each = 3\n",
        "source.repeat_each",
        "only applies to kind = \"folder\"",
    ),
    (
        "[source]\nskip_threshold = 300.0\n",
        "source.skip_threshold",
        "grey levels from 0 to 255",
    ),
    (
        "[source]\nskip_threshold = -1.0\n",
        "source.skip_threshold",
        "grey levels from 0 to 255",
    ),
    (
        "[source]\nkind = \"stdin\"\nwait = true\n",
        "source.wait",
        "stdin is always there",
    ),
    (
        "[source]\nkind = \"camera\"\ndevice = 1.5\n",
        "source.device",
        "is a float",
    ),
    (
        "[source]\nkind = \"camera\"\ndevice = -1\n",
        "source.device",
        "use an index from 0",
    ),
    (
        "[source]\nkind = \"camera\"\ndevice = \"video0\"\n",
        "source.device",
        "not a device path under /dev",
    ),
    (
        "[source]\nkind = \"camera\"\ndevice = \"/dev/sda\"\n",
        "source.device",
        "/dev/v4l/by-id/NAME",
    ),
    (
        "[source]\nkind = \"camera\"\nwidth = 8\n",
        "source.width",
        "not a camera size",
    ),
    (
        "[source]\nkind = \"camera\"\nwidth = 8192\nheight = 8192\n",
        "source.width",
        "pixels a frame may have",
    ),
    ("[model]\nthreads = 0\n", "model.threads", "use 1 or more"),
    ("[model]\nthreads = 1000\n", "model.threads", "at most 256"),
    (
        "[head]\nkind = \"mlp\"\nhidden = 0\n",
        "head.hidden",
        "a width like 128",
    ),
    (
        "[head]\nkind = \"mlp\"\nhidden = 100000\n",
        "head.hidden",
        "at most 65536",
    ),
    (
        "[store]\nsnapshot_interval_s = 0\n",
        "store.snapshot_interval_s",
        "labels are journaled",
    ),
    (
        "[store]\nmax_per_class = 0\n",
        "store.max_per_class",
        "use 1 or more",
    ),
    (
        "[store]\nmax_classes = 1\n",
        "store.max_classes",
        "use 2 to 1024",
    ),
    (
        "[store]\nmax_class_name_chars = 0\n",
        "store.max_class_name_chars",
        "use 1 to",
    ),
    (
        "[store]\nthumbnail_px = 16\n",
        "store.thumbnail_px",
        "32 to 512",
    ),
    ("[fleet]\ntopic_root = \"x\"\n", "fleet.group", "is missing"),
    ("[fleet]\ngroup = \"a b\"\n", "fleet.group", "ASCII letters"),
    (
        "[fleet]\ngroup = \"north\"\n",
        "fleet.group",
        "needs [mqtt]",
    ),
    (
        "[mqtt]\nbroker = \"mqtt://h\"\n[fleet]\ngroup = \"n\"\ntopic_root = \"a/#\"\n",
        "fleet.topic_root",
        "without '+'",
    ),
    (
        "[mqtt]\nbroker = \"mqtt://h\"\n[fleet]\ngroup = \"n\"\nmax_message_bytes = 10\n",
        "fleet.max_message_bytes",
        "4096 to 262144",
    ),
    (
        "[learning]\ncontext_frames = 65\n",
        "learning.context_frames",
        "at most 64",
    ),
    (
        "[learning]\nlabel_views = 5\n",
        "learning.label_views",
        "use 0 (no views) to 4",
    ),
    (
        "[output]\npredictions = \"\"\n",
        "output.predictions",
        "is empty",
    ),
    ("[control]\nsocket = \"\"\n", "control.socket", "is empty"),
    (
        "[control]\nmax_request_bytes = 10\n",
        "control.max_request_bytes",
        "256 to 65536",
    ),
    (
        "[control]\nmax_connections = 0\n",
        "control.max_connections",
        "1 to 256",
    ),
    (
        "[control]\nidle_timeout_s = 0\n",
        "control.idle_timeout_s",
        "1 to 3600",
    ),
    (
        "[web]\naddress = \"camera\"\n",
        "web.address",
        "an IP address",
    ),
    ("[web]\naddress = \"0.0.0.0\"\n", "web.address", "no token"),
    (
        "[web]\ntoken = \"0123456789abcdef\"\ntoken_file = \"t\"\n",
        "web.token",
        "both set",
    ),
    (
        "[web]\ntoken = \"short\"\n",
        "web.token",
        "16 or more printable",
    ),
    (
        "[web]\nmax_request_bytes = 10\n",
        "web.max_request_bytes",
        "1024 to 65536",
    ),
    (
        "[web]\nmax_connections = 0\n",
        "web.max_connections",
        "1 to 256",
    ),
    (
        "[web]\nidle_timeout_s = 0\n",
        "web.idle_timeout_s",
        "1 to 3600",
    ),
    (
        "[buttons]\nbackend = \"rpi\"\n",
        "buttons.class_pins",
        "at least one button pin",
    ),
    (
        "[buttons]\nclass_pins = [4, 4]\n",
        "buttons.class_pins",
        "used twice",
    ),
    (
        "[buttons]\nbackend = \"rpi\"\nclass_pins = [40]\n",
        "buttons.class_pins",
        "BCM 0..=27",
    ),
    (
        "[buttons]\ndebounce_ms = 0\n",
        "buttons.debounce_ms",
        "use 1..=500",
    ),
    (
        "[buttons]\ndebounce_ms = 30\nlong_press_ms = 10\n",
        "buttons.long_press_ms",
        "longer than debounce_ms",
    ),
];

/// Refused by the parser: a kind that does not exist, an unknown key, a wrong type, not TOML.
const PARSE: &[(&str, Option<&str>, &str)] = &[
    (
        "[source]\nkind = \"webcam\"\n",
        Some("source.kind"),
        "`folder`, `stdin`, `camera`",
    ),
    (
        "[source]\norder = \"backwards\"\n",
        Some("source.order"),
        "`sorted` or `shuffled`",
    ),
    (
        "[source]\nkind = \"camera\"\nformat = \"h264\"\n",
        Some("source.format"),
        "`mjpeg` or `yuyv`",
    ),
    (
        "[head]\nkind = \"tree\"\n",
        Some("head.kind"),
        "`linear` or `mlp`",
    ),
    (
        "[buttons]\nbackend = \"wiringpi\"\n",
        Some("buttons.backend"),
        "`gpio-cdev`",
    ),
    (
        "[source]\nkidn = \"folder\"\n",
        Some("source.kidn"),
        "unknown field",
    ),
    (
        "[model]\nthreads = \"four\"\n",
        Some("model.threads"),
        "invalid type",
    ),
    ("name = \"x\"\n[source\n", None, "is not valid"),
];

fn parse(text: &str) -> Result<Board, BoardError> {
    Board::parse(text, Path::new("boards/test.toml"))
}

#[test]
fn every_invalid_value_is_refused_naming_the_file_the_key_and_the_fix() {
    for (text, key, fix) in INVALID {
        let error = parse(text).expect_err(text);
        assert!(
            matches!(&error, BoardError::Invalid { key: k, .. } if k == key),
            "{text}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("boards/test.toml"), "{text}: {message}");
        assert!(message.contains(&format!("`{key}`")), "{text}: {message}");
        assert!(message.contains(fix), "{text}: {message}");
    }
}

#[test]
fn what_the_parser_refuses_names_the_key_and_the_values_it_takes() {
    for (text, key, fix) in PARSE {
        let error = parse(text).expect_err(text);
        let message = error.to_string();
        match (&error, key) {
            (
                BoardError::Parse {
                    key: Some(found), ..
                },
                Some(key),
            ) => {
                assert_eq!(found, key, "{text}: {message}")
            }
            (BoardError::Parse { key: None, .. }, None) => {}
            _ => panic!("{text}: {error:?}"),
        }
        assert!(message.contains("boards/test.toml"), "{text}: {message}");
        assert!(message.contains(fix), "{text}: {message}");
    }
}

#[test]
fn a_flag_is_held_to_the_rules_of_its_key_and_named_when_refused() {
    let cases: Vec<(Overrides, &str, &str)> = vec![
        (
            Overrides {
                predictions: Some(String::new()),
                ..Overrides::default()
            },
            "--predictions",
            "is empty",
        ),
        (
            Overrides {
                fps: Some(5000.0),
                ..Overrides::default()
            },
            "--fps",
            "up to 1000",
        ),
        (
            Overrides {
                fps: Some(f64::NAN),
                ..Overrides::default()
            },
            "--fps",
            "use 0",
        ),
        (
            Overrides {
                repeat_each: Some(0),
                ..Overrides::default()
            },
            "--repeat-each",
            "use 1 (every frame",
        ),
        (
            Overrides {
                web: Some("nonsense".into()),
                ..Overrides::default()
            },
            "--web",
            "IP:PORT",
        ),
        (
            Overrides {
                web: Some("0.0.0.0:8080".into()),
                ..Overrides::default()
            },
            "--web",
            "no token",
        ),
        (
            Overrides {
                socket: Some("".into()),
                ..Overrides::default()
            },
            "--socket",
            "is empty",
        ),
    ];
    for (overrides, flag, fix) in cases {
        let error =
            Board::parse_with("", Path::new("boards/test.toml"), &overrides).expect_err(flag);
        let message = error.to_string();
        assert!(
            matches!(&error, BoardError::Flag { flag: f, .. } if *f == flag),
            "{flag}: {error:?}"
        );
        assert!(
            message.starts_with(flag) && message.contains(fix),
            "{message}"
        );
    }
    // A flag a camera board cannot take: --repeat-each without --folder.
    let camera = "[source]\nkind = \"camera\"\n";
    let error = Board::parse_with(
        camera,
        Path::new("cam.toml"),
        &Overrides {
            repeat_each: Some(3),
            ..Overrides::default()
        },
    )
    .expect_err("camera");
    assert!(error.to_string().starts_with("--repeat-each"), "{error}");
    // …and with --folder it is a folder replay.
    let board = Board::parse_with(
        camera,
        Path::new("cam.toml"),
        &Overrides {
            repeat_each: Some(3),
            folder: Some("tests/data/corn4-mini/test".into()),
            ..Overrides::default()
        },
    )
    .expect("a folder now");
    assert_eq!(board.source.repeat_each, 3);
    assert!(
        !board.source.wait,
        "a folder is not waited for unless asked"
    );
    // A key the board got wrong is still blamed on the board, not on an unrelated flag.
    let error = Board::parse_with(
        "[model]\nthreads = 0\n",
        Path::new("boards/test.toml"),
        &Overrides {
            fps: Some(1.0),
            ..Overrides::default()
        },
    )
    .expect_err("threads");
    assert!(
        matches!(
            error,
            BoardError::Invalid {
                key: "model.threads",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn flags_land_in_the_board_as_their_keys_would() {
    let overrides = Overrides {
        state: Some("/tmp/s".into()),
        socket: Some("/tmp/c.sock".into()),
        web: Some("127.0.0.1:0".into()),
        fps: Some(4.0),
        predictions: Some("none".into()),
        skip_unchanged: Some(true),
        ..Overrides::default()
    };
    let board = Board::load_with(None, &overrides).expect("desktop with flags");
    assert_eq!(board.store.dir, Path::new("/tmp/s"));
    assert_eq!(
        board.control_socket.as_deref(),
        Some(Path::new("/tmp/c.sock"))
    );
    assert_eq!(board.web.as_ref().map(|w| w.port), Some(0));
    assert_eq!(
        board.source.frame_interval,
        Some(std::time::Duration::from_millis(250))
    );
    assert_eq!(board.output.predictions, super::PredictionSink::Discard);
    assert_eq!(
        board.source.skip_unchanged,
        Some(super::DEFAULT_SKIP_THRESHOLD)
    );
    let bench = Board::load_with(
        None,
        &Overrides {
            bench: true,
            ..Overrides::default()
        },
    )
    .expect("bench");
    assert_eq!(bench.source.frame_interval, None);
    assert_eq!(bench.output.predictions, super::PredictionSink::Discard);
    let off = Board::load_with(
        None,
        &Overrides {
            web: Some("none".into()),
            ..Overrides::default()
        },
    )
    .expect("no page");
    assert!(off.web.is_none());
}

#[test]
fn the_table_covers_every_key_a_section_can_refuse() {
    let sources = [
        include_str!("source.rs"),
        include_str!("model.rs"),
        include_str!("head.rs"),
        include_str!("store.rs"),
        include_str!("learning.rs"),
        include_str!("output.rs"),
        include_str!("control.rs"),
        include_str!("web.rs"),
        include_str!("buttons.rs"),
        include_str!("fleet.rs"),
    ];
    let mut keys = std::collections::BTreeSet::new();
    for source in sources {
        for (i, _) in source.match_indices("at.bad(") {
            let rest = source[i + "at.bad(".len()..].trim_start();
            let Some(key) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else {
                continue;
            };
            keys.insert(key);
            assert!(
                INVALID.iter().any(|(_, k, _)| *k == key),
                "no row of the table refuses `{key}`"
            );
        }
    }
    // …and the other way round: no row names a key that no section checks.
    let rows: std::collections::BTreeSet<&str> = INVALID.iter().map(|(_, k, _)| *k).collect();
    assert_eq!(keys, rows);
}
