//! Buttons and LEDs: the debounce and gesture state machine driven with exact times, and the
//! driver over the fake panel (the same trait as the GPIO backends): label, new class, undo, LEDs.

use std::time::Duration;

use fieldtune::board::Board;
use fieldtune::button::fake;
use fieldtune::button::gesture::{Gesture, GestureConfig, GestureDetector};
use fieldtune::button::{Action, ButtonDriver, LedCommand};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(double: Option<u64>) -> GestureConfig {
    GestureConfig {
        debounce: ms(30),
        long_press: ms(1500),
        double_press: double.map(ms),
    }
}

/// Feeds (time, level) steps and polls every 5 ms in between; returns the gestures with their times.
fn drive(detector: &mut GestureDetector, steps: &[(u64, bool)], until: u64) -> Vec<(u64, Gesture)> {
    let mut out = Vec::new();
    let mut level = false;
    let mut i = 0;
    for t in (0..=until).step_by(1) {
        while i < steps.len() && steps[i].0 <= t {
            level = steps[i].1;
            i += 1;
        }
        if t % 5 == 0 || (i > 0 && steps[i - 1].0 == t) {
            if let Some(g) = detector.update(ms(t), level) {
                out.push((t, g));
            }
        }
    }
    out
}

#[test]
fn bouncing_contacts_give_one_short_press() {
    let mut d = GestureDetector::new(config(None));
    // Press at 100 ms with 8 ms of bounce, release at 300 ms with bounce.
    let steps = [
        (100, true),
        (102, false),
        (104, true),
        (106, false),
        (108, true),
        (300, false),
        (302, true),
        (305, false),
    ];
    let gestures = drive(&mut d, &steps, 1000);
    assert_eq!(gestures.len(), 1, "{gestures:?}");
    assert_eq!(gestures[0].1, Gesture::Short);
    assert!(
        gestures[0].0 >= 305 + 30,
        "a release counts once stable: {gestures:?}"
    );
}

#[test]
fn a_glitch_shorter_than_the_debounce_is_ignored() {
    let mut d = GestureDetector::new(config(None));
    let gestures = drive(&mut d, &[(100, true), (120, false)], 1000);
    assert!(gestures.is_empty(), "{gestures:?}");
    assert!(!d.is_pressed());
}

#[test]
fn holding_fires_a_long_press_while_still_held_and_nothing_on_release() {
    let mut d = GestureDetector::new(config(Some(400)));
    let gestures = drive(&mut d, &[(100, true), (2500, false)], 4000);
    assert_eq!(gestures.len(), 1, "{gestures:?}");
    assert_eq!(gestures[0].1, Gesture::Long);
    assert!(
        gestures[0].0 >= 1600 && gestures[0].0 < 2500,
        "{gestures:?}"
    );
}

#[test]
fn two_quick_presses_are_a_double_press_and_one_is_a_short_press_after_the_window() {
    let mut d = GestureDetector::new(config(Some(400)));
    let double = drive(
        &mut d,
        &[(100, true), (200, false), (400, true), (500, false)],
        2000,
    );
    assert_eq!(
        double.iter().map(|g| g.1).collect::<Vec<_>>(),
        [Gesture::Double]
    );

    let mut d = GestureDetector::new(config(Some(400)));
    let single = drive(&mut d, &[(100, true), (200, false)], 2000);
    assert_eq!(
        single.iter().map(|g| g.1).collect::<Vec<_>>(),
        [Gesture::Short]
    );
    assert!(single[0].0 > 200 + 400, "waits for the window: {single:?}");

    let mut d = GestureDetector::new(config(Some(400)));
    let two = drive(
        &mut d,
        &[(100, true), (200, false), (1000, true), (1100, false)],
        3000,
    );
    assert_eq!(
        two.iter().map(|g| g.1).collect::<Vec<_>>(),
        [Gesture::Short, Gesture::Short],
        "presses further apart than the window are two single presses"
    );
}

fn board_buttons() -> fieldtune::board::ButtonsConfig {
    let text = "[buttons]\nbackend = \"none\"\ndebounce_ms = 30\nlong_press_ms = 1500\ndouble_press_ms = 400\n";
    Board::parse(text, std::path::Path::new("test.toml"))
        .expect("valid board")
        .buttons
}

#[test]
fn the_driver_turns_gestures_into_label_new_class_and_undo() {
    // Two class buttons (0, 1) and the mode button (2); two LEDs.
    let (panel, hand) = fake::panel(3, 2);
    let mut driver = ButtonDriver::new(Box::new(panel), 2, &board_buttons());
    let mut actions = Vec::new();
    let mut t = 0u64;
    let mut press = |button: usize, hold: u64, driver: &mut ButtonDriver, t: &mut u64| {
        hand.set(button, true);
        for _ in 0..hold / 5 {
            *t += 5;
            actions.extend(driver.poll(ms(*t)).expect("poll"));
        }
        hand.set(button, false);
        for _ in 0..20 {
            *t += 5;
            actions.extend(driver.poll(ms(*t)).expect("poll"));
        }
    };
    press(1, 100, &mut driver, &mut t); // class button 1: label
    press(2, 2000, &mut driver, &mut t); // mode, long: new class
    press(2, 80, &mut driver, &mut t); // mode, double: undo
    press(2, 80, &mut driver, &mut t);
    for _ in 0..200 {
        t += 5;
        actions.extend(driver.poll(ms(t)).expect("poll"));
    }
    assert_eq!(actions, [Action::Label(1), Action::NewClass, Action::Undo]);
}

#[test]
fn leds_show_the_prediction_and_blink_to_acknowledge() {
    let (panel, hand) = fake::panel(2, 2);
    let mut driver = ButtonDriver::new(Box::new(panel), 2, &board_buttons());
    driver.led(LedCommand::Show(Some(1)), ms(0)).expect("led");
    assert_eq!(hand.leds(), [false, true]);
    driver.led(LedCommand::Acknowledge(0), ms(10)).expect("led");
    let mut t = 10;
    while t < 1000 {
        t += 5;
        driver.poll(ms(t)).expect("poll");
    }
    let blinks = hand
        .led_changes()
        .iter()
        .filter(|(led, on)| *led == 0 && *on)
        .count();
    assert!(blinks >= 2, "LED 0 blinked: {:?}", hand.led_changes());
    assert_eq!(hand.leds(), [false, true], "back to showing the prediction");
    drop(driver);
    assert_eq!(
        hand.leds(),
        [false, false],
        "LEDs off when the driver stops"
    );
}
