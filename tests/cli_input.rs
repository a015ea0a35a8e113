//! Bad command-line input ends the binary at once with one clear line on stderr and a non-zero
//! exit, before anything is created on disk.

use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the node binary with `args` and a fresh home directory, returning its exit code, its
/// stderr and that home.
fn run(args: &[&str]) -> (Option<i32>, String, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("temporary home");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gossipchain"))
        .args(args)
        .args(["--no-mdns", "--no-http", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: the node kept running instead of refusing its input");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status.code(), stderr, home)
}

#[test]
fn a_network_name_that_is_a_path_or_a_zero_difficulty_is_refused_with_one_line() {
    for (args, needle) in [
        (vec!["--network", "../evil"], "network name must be"),
        (vec!["--network", "a/b"], "network name must be"),
        (vec!["--network", ".hidden"], "network name must be"),
        (vec!["--difficulty", "0"], "below the minimum of 1"),
    ] {
        let (code, stderr, home) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {stderr}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {stderr}");
        // Nothing was created: no data directory under the home, none beside it.
        let data = home.path().join("data");
        assert!(!data.exists(), "{args:?}: {} was created", data.display());
    }
}
