//! The running service driven by buttons: the real loop (folder replay of corn4-mini, the real
//! backbone, the crash-safe store in a temporary directory) with the fake panel behind the same
//! `Panel` trait as the GPIO backends. A person thread presses buttons as a user would: a long
//! press on the mode button starts a class, a class button labels the current frame, a double
//! press on the mode button takes the last label back; LEDs blink to acknowledge and go dark when
//! the service stops.
//!
//! The person waits on the service's own status (through the command channel the control socket
//! uses) rather than on the clock, so it holds under emulation, where a frame takes seconds.

use crate::device_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fieldtune::board::{Board, ButtonBackend, PredictionSink, SourceKind};
use fieldtune::button::{self, fake, ButtonDriver};
use fieldtune::control::{Incoming, Request};
use fieldtune::embedder::Embedder;
use fieldtune::learner::Learner;
use fieldtune::model::ModelDescriptor;
use fieldtune::notify::Notifier;
use fieldtune::service::output::PredictionOutput;
use fieldtune::service::{learner_config, Command, Parts, Service, Status};

const CLASS_BUTTONS: usize = 2;
const MODE: usize = CLASS_BUTTONS;

fn status(commands: &Sender<Command>) -> Status {
    let (reply, answer) = mpsc::channel();
    commands
        .send(Command::Control(Incoming {
            request: Request::Status,
            reply,
        }))
        .expect("service running");
    let reply = answer
        .recv_timeout(device_support::patience(Duration::from_secs(120)))
        .expect("status reply");
    serde_json::from_value(reply.data.expect("status data")).expect("status shape")
}

/// Polls the status until `done` holds (a frame takes seconds under emulation).
fn wait_for(commands: &Sender<Command>, what: &str, done: impl Fn(&Status) -> bool) -> Status {
    let start = Instant::now();
    loop {
        let s = status(commands);
        if done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < device_support::patience(Duration::from_secs(300)),
            "timed out waiting for {what}; last status {s:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Presses `button` for `ms`, then leaves it up long enough for the release to pass the debounce
/// (a finger does not come back within 20 ms).
fn hold(panel: &fake::FakeHandle, button: usize, ms: u64) {
    panel.set(button, true);
    thread::sleep(Duration::from_millis(ms));
    panel.set(button, false);
    thread::sleep(Duration::from_millis(100));
}

#[test]
fn buttons_teach_the_running_service_and_undo() {
    let _one_at_a_time = device_support::one_service_at_a_time();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = tempfile::tempdir().expect("tempdir");
    let mut board = Board::desktop().expect("desktop board");
    board.source.kind = SourceKind::Folder {
        path: root.join("tests/data/corn4-mini/train"),
        shuffled: false,
        seed: 1,
        repeat: true,
    };
    board.source.frame_interval = Some(Duration::from_millis(50));
    board.store.dir = state.path().join("state");
    board.output.predictions = PredictionSink::Discard;
    board.control_socket = None;
    board.buttons.backend = ButtonBackend::None; // the fake panel is attached below
    board.buttons.debounce = Duration::from_millis(20);
    // Generous gesture times: a loaded machine can stretch a 100 ms sleep several times over, and
    // a short press must never read as a long one.
    board.buttons.long_press = Duration::from_millis(1500);
    board.buttons.double_press = Duration::from_millis(1000);
    board.learning.retrain_every = None;

    let (panel, person_panel) = fake::panel(CLASS_BUTTONS + 1, CLASS_BUTTONS);
    let commands = mpsc::channel::<Command>();
    let driver = ButtonDriver::new(Box::new(panel), CLASS_BUTTONS, &board.buttons);
    let buttons = button::spawn(driver, commands.0.clone(), Command::button);

    let descriptor = ModelDescriptor::load_default().expect("models/ descriptor");
    let embedder = Embedder::load(&descriptor).expect("backbone");
    let (learner, _) = Learner::open(
        &board.store.dir,
        embedder.backbone_id(),
        learner_config(&board),
        None,
    )
    .expect("state");
    let output = PredictionOutput::open(&PredictionSink::Discard, Duration::ZERO).expect("output");
    let to_service = commands.0.clone();
    let source = fieldtune::source::open(&board.source).expect("folder source");
    let service = Service::new(Parts {
        board,
        source,
        embedder,
        learner,
        output,
        notifier: Notifier::disabled(),
        commands,
        buttons: Some(buttons),
        max_frames: None,
        auto_label_every: None,
        live: None,
    })
    .expect("service");

    let stop = Arc::new(AtomicBool::new(false));
    let person_stop = Arc::clone(&stop);
    let person = thread::spawn(move || {
        // Stops the service however this thread ends, a failed wait included.
        let _stop = StopOnDrop(person_stop);
        let c = &to_service;
        wait_for(c, "the first frame", |s| s.frames >= 1);
        // Long press on the mode button: a new class, labelled with the current frame.
        hold(&person_panel, MODE, 1900);
        wait_for(c, "the first class", |s| s.classes.len() == 1);
        hold(&person_panel, MODE, 1900);
        let two = wait_for(c, "the second class", |s| s.classes.len() == 2);
        // A short press on class button 1 labels the current frame as the second class.
        hold(&person_panel, 1, 120);
        let labelled = wait_for(c, "the button label", |s| s.labels == 3);
        // Double press on the mode button: undo that label.
        hold(&person_panel, MODE, 100);
        hold(&person_panel, MODE, 100);
        let undone = wait_for(c, "the undo", |s| s.undos == 1);
        let blinks = person_panel.led_changes();
        (person_panel, two, labelled, undone, blinks)
    });

    let last = service.run(&stop).expect("service ran");
    let (panel, two, labelled, undone, blinks) = person.join().expect("person thread");

    let names: Vec<&str> = two.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["class-1", "class-2"],
        "long presses start numbered classes"
    );
    let counts = |s: &Status| s.classes.iter().map(|c| c.samples).collect::<Vec<_>>();
    assert_eq!(counts(&two), [1, 1]);
    assert_eq!(
        counts(&labelled),
        [1, 2],
        "the class button stored one more frame"
    );
    assert_eq!(counts(&undone), [1, 1], "the double press took it back");
    assert_eq!(last.labels, 3);
    assert_eq!(last.undos, 1);
    // Each label blinked an LED (on, then off, …) of the class it went to.
    for led in 0..CLASS_BUTTONS {
        assert!(
            blinks.contains(&(led, true)) && blinks.contains(&(led, false)),
            "LED {led} never blinked: {blinks:?}"
        );
    }
    // The service has stopped and dropped the driver: every LED is dark.
    assert!(
        panel.leds().iter().all(|on| !on),
        "LEDs left on: {:?}",
        panel.leds()
    );
}
