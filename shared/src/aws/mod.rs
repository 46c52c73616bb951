//! AWS adapters of the ports, all built from one `SdkConfig`.

mod errors;
pub mod events;
pub mod idempotency;
pub mod items;
pub mod keys;
pub mod secrets;
pub mod store;
pub mod table;
