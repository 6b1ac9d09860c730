//! The fuzz targets' committed corpus (`fuzz/corpus/<target>/`), replayed through the same entry
//! points the fuzzer calls (`support_broker::fuzzing`): every input the fuzzer kept (and every
//! crash it found, once fixed, added there) runs in an ordinary `cargo test`.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} panics", path.display());
        n += 1;
    }
    assert!(n > 0, "the {target} corpus is empty");
    n
}

#[test]
fn the_fuzz_corpora_replay_without_a_panic() {
    use support_broker::fuzzing;
    let counts = [
        (
            "client_frame",
            replay("client_frame", fuzzing::client_frame),
        ),
        (
            "binary_frame",
            replay("binary_frame", fuzzing::binary_frame),
        ),
        ("csv_import", replay("csv_import", fuzzing::csv_import)),
        ("config", replay("config", fuzzing::config)),
    ];
    println!("fuzz corpora replayed: {counts:?}");
}
