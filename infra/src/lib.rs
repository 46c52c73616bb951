//! Local tooling shared by the `connectors-admin` and `connectors-dev` binaries.

pub mod watch;
