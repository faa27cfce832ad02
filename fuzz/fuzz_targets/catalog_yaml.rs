//! The catalog parser: any text is a catalog or a list of problems, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(catalog) = catalog::Catalog::from_yaml(text) {
        // What was accepted holds together: every game has a plan, and it is found again by its ids.
        for game in catalog.games() {
            assert!(!game.plans.is_empty());
            assert!(catalog.plan(&game.id, &game.plans[0].id).is_some());
        }
    }
});
