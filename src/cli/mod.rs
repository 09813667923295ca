//! User commands of the `tether` binary, built on [`crate::client`].

pub mod links;
pub mod run;
