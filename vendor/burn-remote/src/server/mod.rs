pub(crate) mod processor;
pub(crate) mod session;
pub(crate) mod stream;

mod base;

pub use base::{start_websocket, start_websocket_async};
