//! Logging: defmt on target (feature `defmt`), the `log` crate on a host (feature `log`), or nothing.

#[cfg(feature = "defmt")]
macro_rules! debug {
    ($($t:tt)*) => { defmt::debug!($($t)*) };
}
#[cfg(all(feature = "log", not(feature = "defmt")))]
macro_rules! debug {
    ($($t:tt)*) => { log::debug!($($t)*) };
}
#[cfg(not(any(feature = "defmt", feature = "log")))]
macro_rules! debug {
    ($($t:tt)*) => {{
        let _ = format_args!($($t)*);
    }};
}

#[cfg(feature = "defmt")]
macro_rules! info {
    ($($t:tt)*) => { defmt::info!($($t)*) };
}
#[cfg(all(feature = "log", not(feature = "defmt")))]
macro_rules! info {
    ($($t:tt)*) => { log::info!($($t)*) };
}
#[cfg(not(any(feature = "defmt", feature = "log")))]
macro_rules! info {
    ($($t:tt)*) => {{
        let _ = format_args!($($t)*);
    }};
}

pub(crate) use {debug, info};
