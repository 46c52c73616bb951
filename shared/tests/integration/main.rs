//! The integration tests: one binary (one link of the SDKs, jsonschema and hyper), one
//! module per subject, all on the harness in `support`. Run one subject with a filter,
//! e.g. `cargo test -p shared --test integration -- races::` (several filters are OR'ed).
//!
//! Two suites are binaries of their own, because each installs the process's global log
//! subscriber and reads everything it captures: `tests/leak.rs` (canaries in the logs)
//! and `tests/trace_logs.rs` (which also sets the Lambda runtime's environment variables).

mod support;

mod core_api;
mod credential_safety;
mod deploy_settings;
mod faults;
mod hostile_input;
mod idempotency;
mod isolation;
mod lambda_events;
mod lifecycle;
mod paths;
mod port_contracts;
mod races;
mod resilience;
mod sweep_scale;
mod sweeper_lease;
mod sync_reports;
mod template;
mod versions;
mod write_path;
