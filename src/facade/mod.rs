//! The facade: listeners, TLS, the stream type, the RESP parser and reply encoder, and the
//! connection loop (and when its replies leave: `pass`). It knows nothing of the keyspace or of what commands mean.

mod ciphers;
pub(crate) mod connection;
pub(crate) mod listener;
pub(crate) mod pass;
pub(crate) mod reply;
pub(crate) mod resp;
pub(crate) mod stream;
pub(crate) mod tls;
pub(crate) mod tls_conn;

pub(crate) use connection::{serve, Buffers, ConnError, ConnLimits, Event, Flow, Service, Waiting};
pub(crate) use reply::Reply;
