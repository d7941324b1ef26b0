//! `beehive sim` as a user runs it: one process, the report on stdout.

use std::process::Command;

/// Runs a small `beehive sim` with `extra` flags and returns its event-log line.
fn event_log(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_beehive"))
        .args(["sim", "--nodes", "32", "--objects", "256", "--duration", "20"])
        .args(["--interval", "10", "--warmup", "5", "--converged-start", "--seed", "7"])
        .args(extra)
        .output()
        .expect("start beehive sim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "beehive sim {extra:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "lookups failed in a static ring:\n{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("event log blake3 "));
    line.unwrap_or_else(|| panic!("no event log line:\n{stdout}")).to_string()
}

#[test]
fn no_huge_pages_changes_memory_not_the_run() {
    assert_eq!(event_log(&["--no-huge-pages"]), event_log(&[]));
}
