//! `scale load` refuses what it must never do before it contacts anything: another host, a
//! scheme it does not speak, or bounds beyond its limits.

mod common;

use common::Scale;

#[test]
fn load_refuses_other_hosts_and_unbounded_runs() {
    // (arguments, exit code: 1 refused target, 64 (usage) a flag out of its bounds, what it says)
    let cases: [(&[&str], i32, &str); 4] = [
        (&["load", "example.com:80/", "-p", "shop"], 1, "refusing to send load to \"example.com\""),
        (&["load", "https://localhost:8080/", "-p", "shop"], 1, "only http:// URLs are supported"),
        (&["load", "localhost:8080/", "-p", "shop", "--rate", "5000"], 64, "5000"),
        (&["load", "localhost:8080/", "-p", "shop", "--duration", "2h"], 64, "at most 10m"),
    ];
    for (args, exit, expected) in cases {
        let run = Scale::new(args).isolated().run();
        let (code, output) = run.code_and_output();
        assert_eq!(code, Some(exit), "{args:?}:\n{output}");
        assert!(output.contains(expected), "{args:?} should say {expected:?}:\n{output}");
    }
}
