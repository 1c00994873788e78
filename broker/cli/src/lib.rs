//! What the `quiver` binary shares with programs beside it: the dev profiles that tell
//! a program on this machine where `quiver dev` serves (the `plugins` example reads them).

pub mod profile;
