//! The domain: types, rules and the lifecycle, with no I/O.

pub mod api_key;
pub mod catalog;
pub mod connector;
pub mod credentials;
pub mod edits;
pub mod error;
pub mod event;
pub mod fields;
pub mod ids;
pub mod lifecycle;
pub mod secrets;
pub mod sync;
pub mod time;
pub mod versions;
pub mod view;
