//! The write functions refuse to start inside Lambda without the fingerprint key's secret:
//! the `connect` binary itself, started as Lambda starts it (`AWS_LAMBDA_FUNCTION_NAME`
//! set, no `AWS_SAM_LOCAL`), exits at init with the reason, before it asks the Runtime
//! API for an invocation; the other four call the same `App::from_env_for_writes`.

use std::process::{Command, Output};

const REASON: &str = "IDEMPOTENCY_FINGERPRINT_KEY_SECRET is not set";

/// `connect` started with `vars` and nothing else but PATH; no Runtime API answers, so
/// a binary that gets past init fails at its first poll instead.
fn start(vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_connect"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"); // discard port: nothing answers
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn inside_lambda_without_the_secret_a_write_function_fails_at_init() {
    let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "connect");
    let failed = start(&[lambda, ("IDEMPOTENCY_FINGERPRINT_KEY", "plain-text-key")]);
    assert!(!failed.status.success());
    assert!(stderr(&failed).contains(REASON), "{}", stderr(&failed));
    assert!(!stderr(&failed).contains("plain-text-key"));

    // With the secret named it gets past init (and fails only for want of a Runtime API);
    // under sam local the development key may stand in.
    for vars in [
        vec![
            lambda,
            ("IDEMPOTENCY_FINGERPRINT_KEY_SECRET", "connectors-test-fingerprint-key"),
        ],
        vec![lambda, ("AWS_SAM_LOCAL", "true")],
    ] {
        let started = start(&vars);
        assert!(!stderr(&started).contains(REASON), "{vars:?}: {}", stderr(&started));
    }
}
