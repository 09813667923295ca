//! User commands of the `tether` binary, built on [`crate::client`].

pub mod links;
pub mod run;

/// `tether --version`: the version, the commit it was built from (build.rs), and
/// whether the C library is linked in (a static binary runs in an empty root).
#[cfg(target_feature = "crt-static")]
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TETHER_COMMIT"),
    ", static)"
);
#[cfg(not(target_feature = "crt-static"))]
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TETHER_COMMIT"),
    ", dynamic)"
);
