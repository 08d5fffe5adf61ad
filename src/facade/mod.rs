//! The facade: listeners, TLS, the stream type, the RESP parser and reply encoder, and the
//! connection loop. It knows nothing of the keyspace or of what commands mean.

pub mod connection;
pub mod listener;
pub mod reply;
pub mod resp;
pub mod stream;
pub mod tls;
pub mod tls_conn;

pub use connection::{serve, ConnError, ConnLimits, Event, Flow, Layered, Service, Waiting};
pub use reply::Reply;
