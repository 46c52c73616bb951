//! Who signs each AWS call. The emulator `make test` runs enforces IAM
//! (`infra/emulator.sh start-iam`): one IAM user per function of template.yaml holds
//! exactly that function's grants, and an admin user serves the harness's own calls. Their
//! keys are in `.local/emulator-iam-<port>.json` (written by `infra/emulator_iam.py`).
//!
//! The service's clients sign with [`PerFunction`]: the keys of the function whose code is
//! running ([`recorder::FUNCTION`], set around every request and sweep), looked up on every
//! call (the SDK's identity cache is off), so a call a function's grants do not allow is
//! refused by the emulator just as AWS would refuse it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_dynamodb::config::Credentials;
use serde::Deserialize;

use super::recorder::{self, OPERATOR};

#[derive(Debug, Deserialize)]
pub struct Key {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Key {
    pub fn credentials(&self) -> Credentials {
        Credentials::new(&self.access_key_id, &self.secret_access_key, None, None, "emulator-iam")
    }
}

#[derive(Debug, Deserialize)]
pub struct Identities {
    pub admin: Key,
    /// By binary name (`connect`, `sweeper`, …), as `recorder::FUNCTION` names them.
    pub functions: BTreeMap<String, Key>,
}

fn file(endpoint: &str) -> PathBuf {
    let port = endpoint.trim_end_matches('/').rsplit(':').next().unwrap_or_default();
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.local")).join(format!("emulator-iam-{port}.json"))
}

/// The users of the emulator at `AWS_ENDPOINT_URL`.
pub fn identities() -> &'static Identities {
    static IDENTITIES: OnceLock<Identities> = OnceLock::new();
    IDENTITIES.get_or_init(|| {
        let endpoint = super::emulator_endpoint();
        let path = file(&endpoint);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no IAM users for the emulator at {endpoint} ({}: {e}). The tests need an \
                 IAM-enforcing emulator: run `make test`, or `bash infra/emulator.sh start-iam` \
                 with AWS_ENDPOINT_URL set to a free port",
                path.display()
            )
        });
        let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        assert!(
            modified(&path) >= modified(std::path::Path::new(template)),
            "template.yaml changed after the emulator's users got their policies: run \
             `bash infra/emulator.sh start-iam` again (it re-reads the template)"
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// The keys `function`'s code signs with ([`OPERATOR`]: the admin's).
pub fn credentials_of(function: &str) -> Credentials {
    let ids = identities();
    if function == OPERATOR {
        return ids.admin.credentials();
    }
    ids.functions
        .get(function)
        .unwrap_or_else(|| panic!("no IAM user for function `{function}`: is it a function of template.yaml?"))
        .credentials()
}

/// The function every call of the service's code outside a request's task belongs to, in
/// a test binary that serves one function whose after-answer work runs in tasks of its
/// own (where the request's [`recorder::FUNCTION`] is not set). Set once, by that binary.
static WHOLE_PROCESS: OnceLock<&'static str> = OnceLock::new();

/// Makes every call of the service's code that no request claims sign as `function`
/// (used by `tests/after_answer.rs`). It gives up, for that binary, the panic below on a
/// call outside any function: there every call is that function's anyway.
#[allow(dead_code)]
pub fn whole_process_is(function: &'static str) {
    assert_eq!(
        *WHOLE_PROCESS.get_or_init(|| function),
        function,
        "one function per test binary"
    );
}

/// Signs as the function whose code is running. A call of the service's code outside any
/// function is a harness bug (it would go unchecked), so it panics.
#[derive(Debug)]
pub struct PerFunction;

impl ProvideCredentials for PerFunction {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let function = recorder::FUNCTION
            .try_with(|f| *f)
            .or_else(|e| WHOLE_PROCESS.get().copied().ok_or(e));
        let function = function.unwrap_or_else(|_| {
            panic!(
                "an AWS call of the service's code ran outside any function: serve it with \
                 Harness::send/sweep, or wrap the harness's own use in support::as_operator"
            )
        });
        future::ProvideCredentials::ready(Ok(credentials_of(function)))
    }
}
