mod base;
mod channel;
mod runner;
mod worker;

pub use base::*;
pub use channel::*;
pub use runner::RemoteDevice;
