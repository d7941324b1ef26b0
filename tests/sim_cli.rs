//! `beehive sim` as a user runs it: one process, the report on stdout.

mod support;

/// A small ring and catalogue, run for 20 s: enough for replication to start.
#[rustfmt::skip]
const SMALL: [&str; 12] = [
    "--nodes", "32", "--objects", "256", "--duration", "20", "--interval", "10", "--warmup", "5",
    "--seed", "7",
];

/// Runs `beehive sim ARGS`; its stdout, once it has exited successfully.
fn sim(args: &[&str]) -> String {
    support::beehive_stdout(&[&["sim"], args].concat())
}

/// Runs a small `beehive sim` with `extra` flags and returns its event-log line.
fn event_log(extra: &[&str]) -> String {
    let stdout = sim(&[&SMALL[..], &["--converged-start"], extra].concat());
    assert!(stdout.contains(" 0 failed"), "lookups failed in a static ring:\n{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("event log blake3 "));
    line.unwrap_or_else(|| panic!("no event log line:\n{stdout}")).to_string()
}

#[test]
fn no_huge_pages_changes_memory_not_the_run() {
    assert_eq!(event_log(&["--no-huge-pages"]), event_log(&[]));
}

/// Runs `beehive sim` with `args`, writing its JSON report (and the paper command's plot)
/// under a name of its own, and returns the parsed report.
fn json_report(name: &str, args: &[&str]) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("beehive-sim-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    let (path, plot) = (dir.join("report.json"), dir.join("plot.svg"));
    let (json, plot) = (path.to_str().expect("UTF-8 path"), plot.to_str().expect("UTF-8 path"));
    sim(&[args, &["--json", json, "--plot", plot]].concat());
    let report = std::fs::read(&path).expect("read the JSON report");
    std::fs::remove_dir_all(&dir).ok();
    serde_json::from_slice(&report).expect("the JSON report parses")
}

/// The paper command puts its four runs on as many threads as there are cores, longest
/// first: whatever order they finish in, the table lists them in the plan's order, and each
/// run is the run `beehive sim` makes alone with the same settings.
#[test]
fn the_paper_command_s_runs_are_the_runs_alone_in_the_plan_s_order() {
    let paper = json_report("paper", &[&["--experiment", "paper"], &SMALL[..]].concat());
    let labels: Vec<&str> = (paper["runs"].as_array().expect("runs").iter())
        .map(|r| r["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["chord", "passive", "beehive C=1", "beehive C=0.5"]);
    for (n, mode, c) in
        [(0, "chord", "1"), (1, "passive", "1"), (2, "beehive", "1"), (3, "beehive", "0.5")]
    {
        let alone = [&SMALL[..], &["--converged-start", "--mode", mode, "--target-hops", c]];
        let alone = json_report(&format!("{mode}-{c}"), &alone.concat());
        let in_paper = &paper["intervals"][n][1];
        assert!(in_paper.as_array().is_some_and(|i| i.len() >= 2), "{mode} C={c}: {in_paper}");
        // Every interval's figures, lookups and bytes included.
        assert_eq!(in_paper, &alone["intervals"], "{mode} C={c}");
    }
}
