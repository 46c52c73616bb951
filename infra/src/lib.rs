//! Local tooling shared by the `connectors-admin` and `connectors-dev` binaries, the bench
//! and the integration tests.

pub mod api_gateway;
pub mod dev_server;
pub mod loopback;
pub mod runtime_api;
pub mod watch;
