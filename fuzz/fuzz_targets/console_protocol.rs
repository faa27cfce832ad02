//! The console's wire protocol, both ways: a viewer's message is a command or a refusal with a reason, and what
//! the server sends reads back as itself.
#![no_main]

use catalog::console::{ConsoleCommand, ConsoleEvent, MAX_COMMAND_LEN};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(command) = serde_json::from_slice::<ConsoleCommand>(data) {
        match command.check() {
            Ok(line) => {
                assert!(!line.trim().is_empty() && line.len() <= MAX_COMMAND_LEN);
                assert!(!line.chars().any(|c| c.is_control() && c != '\t'), "one printable line reaches the game");
            }
            Err(reason) => assert!(reason.starts_with("command:")),
        }
    }
    if let Ok(event) = serde_json::from_slice::<ConsoleEvent>(data)
        && event != ConsoleEvent::Unknown
    {
        let again = serde_json::to_string(&event).expect("serialises");
        assert_eq!(serde_json::from_str::<ConsoleEvent>(&again).expect("reads back"), event);
    }
});
