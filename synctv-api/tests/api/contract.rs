//! The project keeps its own copy of the wire contract in `docs/PROTOCOL.md`; it must say
//! what the shared contract says, word for word.

use std::path::Path;

#[test]
fn the_docs_copy_of_the_contract_is_the_shared_contract() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ours = std::fs::read_to_string(repo.join("docs/PROTOCOL.md")).expect("docs/PROTOCOL.md");
    for section in [
        "## HTTP",
        "## PlaybackState",
        "## WebSocket",
        "### Recovery",
        "### Error codes",
    ] {
        assert!(
            ours.contains(section),
            "docs/PROTOCOL.md lost its section {section}"
        );
    }
    // The shared contract sits beside the repository in the workplace and in CI.
    match std::fs::read_to_string(repo.join("../shared/PROTOCOL.md")) {
        Ok(shared) => assert!(
            ours == shared,
            "docs/PROTOCOL.md differs from ../shared/PROTOCOL.md: copy it again"
        ),
        Err(e) => {
            eprintln!("no shared contract beside the repository ({e}); compared the sections only")
        }
    }
}
